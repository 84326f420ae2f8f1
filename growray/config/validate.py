"""Parsed YAML -> validated Experiment, reporting every problem at once with its YAML path.

Pipeline: top-level keys (core sections and registered kinds) -> ``search.space`` and
``model.space`` file references -> plug-in sections against their registries (the core's
and every kind's) -> the kinds' sections -> the core schema -> cross-field checks (metrics,
sampler support, resources, each kind's ``check``, search-space paths and bounds).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from growray.registry import closest

from .errors import ConfigError, ConfigIssue, format_path
from .experiment import Experiment, kind_names
from .files import include_model_space, include_search_space, load_yaml
from .keys import model_at, top_level_keys, unknown_key_hint
from .overrides import apply_overrides, get_path, set_path
from .plugins import plugin_slots, validate_plugin
from .schema import AugmentConfig
from .semantics import check_experiment, check_metric
from .space_checks import static_space_checks

__all__ = ["load_experiment", "pydantic_issues", "validate_dict"]


def pydantic_issues(exc: ValidationError, prefix: tuple[Any, ...] = ()) -> list[ConfigIssue]:
    """pydantic's errors as ConfigIssues at their YAML paths (``prefix`` + the error's location)."""
    issues = []
    for err in exc.errors():
        # pydantic reports union branches and validators as extra path elements; keep the user's path.
        loc = prefix + tuple(
            p for p in err["loc"] if not (isinstance(p, str) and (p.startswith(("function-", "dict[")) or p == "str"))
        )
        if err["type"] == "extra_forbidden":
            issues.append(ConfigIssue(format_path(loc), "unknown key" + unknown_key_hint(loc)))
        elif err["type"] == "missing":
            issues.append(ConfigIssue(format_path(loc), "required key is missing"))
        else:
            msg = err["msg"].removeprefix("Value error, ")
            issues.append(ConfigIssue(format_path(loc), msg, err.get("input")))
    return issues


def _top_level_issues(raw: dict[str, Any]) -> list[ConfigIssue]:
    """Unknown top-level keys, removed from ``raw`` so that nothing else repeats them."""
    accepted = top_level_keys()
    issues = []
    for key in [k for k in raw if k not in accepted]:
        hint = closest(str(key), accepted)
        msg = f"unknown key; accepted: {', '.join(accepted)}" + (f" (did you mean {hint!r}?)" if hint else "")
        issues.append(ConfigIssue(format_path((key,)), msg))
        del raw[key]
    return issues


def _plugin_issues(raw: dict[str, Any]) -> list[ConfigIssue]:
    """Every plug-in section normalized in place (defaults filled in), or marked invalid."""
    issues: list[ConfigIssue] = []
    kinds = set(kind_names())
    for path, slot in plugin_slots().items():
        parts = path.split(".")
        found, section = get_path(raw, parts)
        if not found:
            # a plug-in left to its schema default (search.sampler: tpe) is normalized as well, so
            # the resolved config states every parameter that ran; a kind's only when it is set
            if parts[0] in kinds and raw.get(parts[0]) is None:
                continue
            parent_found, parent_value = get_path(raw, parts[:-1])
            if parent_found and not isinstance(parent_value, dict):
                continue  # the section itself is wrong; the schema reports it
            parent = model_at(parts[:-1])
            field = parent.model_fields.get(parts[-1]) if parent is not None else None
            section = field.get_default(call_default_factory=True) if field is not None else None
            if not isinstance(section, dict):
                continue
        elif section is None:
            continue
        normalized, found_issues = validate_plugin(section, slot.registry, tuple(parts), construct=slot.construct)
        issues += found_issues
        # an invalid plug-in keeps pydantic from repeating the error; the issue is already recorded
        set_path(raw, parts, normalized if normalized is not None else {"name": "__invalid__"})
    return issues


def _augment_issues(raw: dict[str, Any]) -> list[ConfigIssue]:
    """``data.augment`` taken out of the dataset's section (checked against the dataset's
    signature) and validated as ``AugmentConfig``, errors at ``data.augment.<key>``."""
    data = raw.get("data")
    if not isinstance(data, dict) or "augment" not in data:
        return []
    value = data.pop("augment")
    try:
        raw["augment"] = AugmentConfig.model_validate({} if value is None else value)
    except ValidationError as exc:
        return pydantic_issues(exc, ("data", "augment"))
    return []


def _kind_section_issues(raw: dict[str, Any]) -> list[ConfigIssue]:
    """Each set kind section validated by its kind's model (replaced by the model in ``raw``)."""
    from growray.kinds import get_kind

    issues: list[ConfigIssue] = []
    for name in kind_names():
        value = raw.get(name)
        if value is None:
            continue
        try:
            raw[name] = get_kind(name).section.model_validate(value)
        except ValidationError as exc:
            issues += pydantic_issues(exc, (name,))
            del raw[name]
    return issues


def _apply_kind_defaults(raw: dict[str, Any]) -> None:
    """Values each set kind section implies (``Kind.defaults``) at the paths the file leaves
    unset; a section that does not validate adds none (its errors are reported later)."""
    from growray.kinds import Kind, get_kind

    for name in kind_names():
        kind = get_kind(name)
        value = raw.get(name)
        if not isinstance(value, dict) or type(kind).defaults is Kind.defaults:
            continue
        try:
            cfg = kind.section.model_validate(value)
        except ValidationError:
            continue
        for path, default in kind.defaults(cfg).items():
            parts = path.split(".")
            if not get_path(raw, parts)[0] or get_path(raw, parts)[1] in (None, {}):
                set_path(raw, parts, copy.deepcopy(default))


def _dedupe(issues: list[ConfigIssue]) -> list[ConfigIssue]:
    out: list[ConfigIssue] = []
    for issue in issues:
        if issue not in out:
            out.append(issue)
    return out


def validate_dict(
    raw: Any, *, source: str | None = None, base_dir: Path | None = None, check_space: bool = True
) -> Experiment:
    """Validate a parsed experiment mapping; raise ConfigError listing every issue.

    Args:
        raw: the parsed file (or a resolved config's ``to_dict()``).
        source: the file's name, for messages.
        base_dir: the folder of the file; ``search_spaces/`` beside it is searched first.
        check_space: also validate the experiment at every search-space bound and choice
            (off for one trial's config, which is already a point of the space).
    """
    if not isinstance(raw, dict):
        raise ConfigError([ConfigIssue("<root>", "an experiment file is a YAML mapping", raw)], source)
    raw = copy.deepcopy(raw)
    src = Path(source) if source else None
    issues = _top_level_issues(raw)
    issues += include_search_space(raw, base_dir, src)
    issues += include_model_space(raw, base_dir, src)
    _apply_kind_defaults(raw)
    issues += _augment_issues(raw)
    issues += _plugin_issues(raw)
    issues += _kind_section_issues(raw)

    exp: Experiment | None = None
    try:
        exp = Experiment.model_validate(raw)
    except ValidationError as exc:
        issues += pydantic_issues(exc)

    if exp is not None and not issues:
        issues += check_experiment(exp, check_space_bounds=check_space)
    elif isinstance(raw.get("search"), dict):
        from growray.kinds import KINDS, get_kind

        every_kind = [get_kind(name) for name in KINDS.names()]  # the experiment's own are unknown here
        issues += check_metric(raw["search"].get("metric", "val/acc"), every_kind)
        if check_space and isinstance(raw["search"].get("space"), dict):
            issues += static_space_checks(raw["search"]["space"])

    if issues:
        raise ConfigError(_dedupe(issues), source)
    assert exp is not None
    return exp


def load_experiment(path: str | Path, overrides: dict[str, Any] | None = None) -> Experiment:
    """Read, resolve and validate an experiment file (plus optional ``--set`` overrides)."""
    path = Path(path)
    raw = load_yaml(path)
    if overrides and isinstance(raw, dict):
        raw = apply_overrides(raw, overrides)
    return validate_dict(raw, source=str(path), base_dir=path.resolve().parent)
