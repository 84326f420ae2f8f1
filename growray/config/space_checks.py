"""Checks of ``search.space``: every searched path exists, every bound and choice gives a
valid experiment, grid samplers get discrete spaces. Each issue names its YAML path."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from growray.registry import closest

from .errors import ConfigError, ConfigIssue, format_path
from .overrides import apply_overrides, get_path
from .schema import SearchParam

if TYPE_CHECKING:
    from .experiment import Experiment

__all__ = ["check_space", "grid_size", "static_space_checks"]

#: sections that describe the sweep itself and cannot be searched
UNSEARCHABLE = ("search", "tracking", "name", "output_dir")


def static_space_checks(space: dict[str, Any]) -> list[ConfigIssue]:
    """Checks that need no valid base experiment: section and key names, plug-in choices."""
    from .keys import accepted_keys, top_level_keys
    from .plugins import plugin_slots

    slots = plugin_slots()
    sections = top_level_keys()
    issues: list[ConfigIssue] = []
    for key, param in space.items():
        where = format_path(("search", "space", key))
        parts = str(key).split(".")
        if parts[0] not in sections:
            hint = closest(parts[0], sections)
            issues.append(
                ConfigIssue(
                    where,
                    f"{parts[0]!r} is not a section of the experiment; sections: {', '.join(sections)}"
                    + (f" (did you mean {hint!r}?)" if hint else ""),
                )
            )
            continue
        accepted = accepted_keys(parts[:1])
        if accepted is not None and len(parts) == 2 and parts[1] not in accepted:
            hint = closest(parts[1], accepted)
            issues.append(
                ConfigIssue(
                    where,
                    f"{parts[0]} has no key {parts[1]!r}; accepted: {', '.join(accepted)}"
                    + (f" (did you mean {hint!r}?)" if hint else ""),
                )
            )
            continue
        section = ".".join(parts[:-1])
        if parts[-1] == "name" and section in slots and isinstance(param, dict):
            registry = slots[section].registry
            for choice in param.get("choices") or []:
                if choice not in registry:
                    hint = closest(str(choice), registry.names())
                    issues.append(
                        ConfigIssue(
                            f"{where}.choices",
                            f"unknown {registry.kind}; registered: {', '.join(registry.names())}"
                            + (f" (did you mean {hint!r}?)" if hint else ""),
                            choice,
                        )
                    )
    return issues


def grid_size(space: dict[str, SearchParam]) -> int | None:
    """Points of an unconditional discrete grid (None when conditional or not discrete)."""
    size = 1
    for p in space.values():
        if p.when:
            return None
        if p.type == "categorical":
            size *= len(p.choices or [])
        elif p.low is None or p.high is None:
            return None
        elif p.type == "int":
            size *= (int(p.high) - int(p.low)) // int(p.step or 1) + 1
        elif p.step is not None:
            size *= round((p.high - p.low) / p.step) + 1
        else:
            return None
    return size


def _candidate_values(p: SearchParam) -> list[Any]:
    if p.type == "categorical":
        return list(p.choices or [])
    if p.type == "int":
        return [int(p.low or 0), int(p.high or 0)]
    return [p.low, p.high]


def _holds(when: dict[str, Any], trial: dict[str, Any], base: dict[str, Any]) -> bool:
    """Whether every condition of ``when`` holds for the sampled ``trial`` over ``base``."""
    for path, expected in when.items():
        value = trial[path] if path in trial else get_path(base, path.split("."))[1]
        if value not in (expected if isinstance(expected, list) else [expected]):
            return False
    return True


def _dependents(space: dict[str, SearchParam], key: str, trial: dict[str, Any], base: dict[str, Any]) -> dict[str, Any]:
    """The parameters that a value of ``key`` switches on (their ``when`` names ``key`` and
    holds for ``trial``), each at its first candidate value: a choice is checked together with
    the settings that come with it (e.g. the sites an initializer is restricted to)."""
    out: dict[str, Any] = {}
    for other, p in space.items():
        when = p.when or {}
        if other != key and key in when and _holds(when, trial, base):
            out[other] = _candidate_values(p)[0]
    return out


def check_space(exp: Experiment) -> list[ConfigIssue]:
    """Every searched path must exist, and every bound/choice must give a valid experiment."""
    from .validate import validate_dict

    issues: list[ConfigIssue] = []
    base = exp.to_dict()
    seen: list[str] = []
    for key, param in exp.search.space.items():
        where = ("search", "space", key)
        if not key or any(not part for part in key.split(".")):
            issues.append(
                ConfigIssue(format_path(where), "a parameter is a dotted path into the experiment, e.g. trainer.lr")
            )
            continue
        if key.split(".")[0] in UNSEARCHABLE:
            issues.append(
                ConfigIssue(format_path(where), "this section cannot be searched (it describes the sweep itself)")
            )
            continue
        conditions: dict[str, Any] = {}
        for cond_path, cond_value in (param.when or {}).items():
            cond_where = format_path((*where, "when", cond_path))
            if cond_path not in seen and not get_path(base, cond_path.split("."))[0]:
                issues.append(
                    ConfigIssue(
                        cond_where, "a condition refers to an earlier search parameter or an existing config path"
                    )
                )
                continue
            conditions[cond_path] = cond_value[0] if isinstance(cond_value, list) and cond_value else cond_value
        for value in _candidate_values(param):
            trial = {**conditions, key: value}
            trial.update(_dependents(exp.search.space, key, trial, base))
            try:
                validate_dict(apply_overrides(base, trial), check_space=False)
            except ConfigError as exc:
                for inner in exc.issues:
                    issues.append(
                        ConfigIssue(format_path(where), f"with {key}={value!r}: {inner.path}: {inner.message}")
                    )
                break
        seen.append(key)
    return issues
