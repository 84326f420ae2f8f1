"""Experiment files: YAML -> typed, frozen, validated configuration."""

from ._errors import ConfigError, ConfigIssue
from ._load import PLUGIN_PATHS, apply_overrides, get_path, load_experiment, load_yaml, validate_dict
from ._models import (
    Constraint,
    CostsConfig,
    Experiment,
    LatencyConfig,
    NewbornDiagnosticsConfig,
    Objective,
    GrowthConfig,
    ResourcesConfig,
    SchedulerConfig,
    SearchConfig,
    SearchParam,
    TrackingConfig,
    TrainerConfig,
)
from ._nas import ControllerConfig, NasConfig, RetrainConfig, SUPERNETS
from ._plasticity import PlasticityConfig
from ._plugins import plugin_schema

__all__ = [
    "PLUGIN_PATHS",
    "ConfigError",
    "ConfigIssue",
    "ControllerConfig",
    "NasConfig",
    "PlasticityConfig",
    "RetrainConfig",
    "SUPERNETS",
    "Constraint",
    "CostsConfig",
    "LatencyConfig",
    "NewbornDiagnosticsConfig",
    "Objective",
    "Experiment",
    "GrowthConfig",
    "ResourcesConfig",
    "SchedulerConfig",
    "SearchConfig",
    "SearchParam",
    "TrackingConfig",
    "TrainerConfig",
    "apply_overrides",
    "get_path",
    "load_experiment",
    "load_yaml",
    "plugin_schema",
    "validate_dict",
]
