"""Dotted-path overrides (``--set trainer.lr=0.01``, one trial's sampled values) and path lookups."""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any

import yaml

from growray.dotted import get_path, set_path

from .errors import ConfigError, ConfigIssue

__all__ = ["apply_overrides", "get_path", "parse_overrides", "set_path"]


def apply_overrides(raw: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """Set dotted-path values in a copy of ``raw``.

    Setting a plug-in's ``name`` to a different plug-in (``growth.trigger.name: plateau``)
    starts that section afresh: the base file's parameters belonged to the old plug-in.
    Other overrides under the section are applied after, so they survive.
    """
    from .plugins import plugin_slots

    slots = plugin_slots()
    out = copy.deepcopy(raw)
    ordered = sorted(overrides.items(), key=lambda kv: not kv[0].endswith(".name"))
    for path, value in ordered:
        parts = path.split(".")
        if parts[-1] == "name" and ".".join(parts[:-1]) in slots:
            found, section = get_path(out, parts[:-1])
            if not found or not isinstance(section, dict) or section.get("name") != value:
                set_path(out, parts[:-1], {"name": value})
            continue
        set_path(out, parts, value)
    return out


def parse_overrides(items: Iterable[str]) -> dict[str, Any]:
    """``["trainer.epochs=3", "model.hidden=[8, 8]"]`` -> ``{path: value}``; values are YAML
    (so numbers, lists and ``null`` keep their types).

    Raises:
        ConfigError: an item is not ``PATH=VALUE`` or its value is not valid YAML.
    """
    out: dict[str, Any] = {}
    issues = []
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            issues.append(ConfigIssue("--set", "takes PATH=VALUE, e.g. trainer.epochs=3", item))
            continue
        try:
            out[key] = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            issues.append(ConfigIssue(f"--set {key}", f"the value is not valid YAML: {exc}", text))
    if issues:
        raise ConfigError(issues)
    return out
