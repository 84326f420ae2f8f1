"""Experiment files: YAML -> typed, frozen, validated configuration."""

from ._errors import ConfigError, ConfigIssue
from ._load import PLUGIN_PATHS, apply_overrides, get_path, load_experiment, load_yaml, validate_dict
from ._models import (
    Constraint,
    CostsConfig,
    Experiment,
    GrowthConfig,
    LatencyConfig,
    NewbornDiagnosticsConfig,
    Objective,
    ResourcesConfig,
    SchedulerConfig,
    SearchConfig,
    SearchParam,
    TrackingConfig,
    TrainerConfig,
)
from ._nas import SUPERNETS, ControllerConfig, NasConfig, RetrainConfig
from ._plasticity import PlasticityConfig
from ._plugins import plugin_schema

__all__ = [
    "PLUGIN_PATHS",
    "SUPERNETS",
    "ConfigError",
    "ConfigIssue",
    "Constraint",
    "ControllerConfig",
    "CostsConfig",
    "Experiment",
    "GrowthConfig",
    "LatencyConfig",
    "NasConfig",
    "NewbornDiagnosticsConfig",
    "Objective",
    "PlasticityConfig",
    "ResourcesConfig",
    "RetrainConfig",
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
