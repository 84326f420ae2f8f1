"""Experiment files: YAML -> typed, frozen, validated configuration.

- ``schema``: the core sections (trainer, search, resources, costs, tracking) and
  ``Section``, the base of every section (the kinds' too);
- ``experiment``: ``Experiment``, the core sections plus the active kinds' sections;
- ``files``: strict YAML and the files an experiment names (``search_spaces/``);
- ``overrides``: dotted-path values (``--set``, one trial's sampled values);
- ``plugins``: ``{name: ..., **params}`` sections against their registries;
- ``keys``: accepted keys read from the schema; ``validate``: the pipeline, every error at once.

Never imports ``growray.tune`` (no Ray) or ``growray.tracking`` (no MLflow).
"""

from .errors import ConfigError, ConfigIssue, format_path
from .experiment import Experiment
from .files import load_yaml
from .keys import accepted_keys
from .overrides import apply_overrides, get_path, parse_overrides, set_path
from .plugins import plugin_schema, plugin_slots
from .schema import (
    SCHEDULERS,
    AugmentConfig,
    Constraint,
    CostsConfig,
    LatencyConfig,
    Objective,
    PluginDict,
    ResourcesConfig,
    SchedulerConfig,
    SearchConfig,
    SearchParam,
    Section,
    TrackingConfig,
    TrainerConfig,
    tracking_uri_problem,
)
from .validate import load_experiment, validate_dict

__all__ = [
    "SCHEDULERS",
    "AugmentConfig",
    "ConfigError",
    "ConfigIssue",
    "Constraint",
    "CostsConfig",
    "Experiment",
    "LatencyConfig",
    "Objective",
    "PluginDict",
    "ResourcesConfig",
    "SchedulerConfig",
    "SearchConfig",
    "SearchParam",
    "Section",
    "TrackingConfig",
    "TrainerConfig",
    "accepted_keys",
    "apply_overrides",
    "format_path",
    "get_path",
    "load_experiment",
    "load_yaml",
    "parse_overrides",
    "plugin_schema",
    "plugin_slots",
    "set_path",
    "tracking_uri_problem",
    "validate_dict",
]
