"""Experiment files: YAML -> typed, frozen, validated configuration.

- ``schema``: the core sections (trainer, search, resources, costs, tracking) and
  ``Section``, the base of every section (the kinds' too);
- ``experiment``: ``Experiment``, the core sections plus the active kinds' sections;
- ``files``: strict YAML and the files an experiment names (``search_spaces/``);
- ``overrides``: dotted-path values (``--set``, one trial's sampled values);
- ``plugins``: ``{name: ..., **params}`` sections against their registries;
- ``keys``: accepted keys read from the schema; ``validate``: the pipeline, every error at once;
- ``store_uri``: which tracking URIs growray accepts (plain strings, no pydantic).

Never imports ``growray.tune`` (no Ray) or ``growray.tracking`` (no MLflow).

Importing this package imports none of its modules: each name is imported from its module on
first use (PEP 562), so a command that needs one of them (``growray ls``: the tracking URI
check; ``growray show plugins``: the search-space files) pays neither for the pydantic
models nor for what they import.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    )
    from .store_uri import tracking_uri_problem
    from .validate import load_experiment, validate_dict

#: each public name -> the module of this package that defines it
_MODULES = {
    "ConfigError": "errors",
    "ConfigIssue": "errors",
    "format_path": "errors",
    "Experiment": "experiment",
    "load_yaml": "files",
    "accepted_keys": "keys",
    "apply_overrides": "overrides",
    "get_path": "overrides",
    "parse_overrides": "overrides",
    "set_path": "overrides",
    "plugin_schema": "plugins",
    "plugin_slots": "plugins",
    **dict.fromkeys(
        (
            "SCHEDULERS",
            "AugmentConfig",
            "Constraint",
            "CostsConfig",
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
        ),
        "schema",
    ),
    "tracking_uri_problem": "store_uri",
    "load_experiment": "validate",
    "validate_dict": "validate",
}

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


def __getattr__(name: str) -> Any:
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
