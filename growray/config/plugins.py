"""Plug-in sections (``{name: ..., **params}``) validated against the registry entry's signature.

A registered constructor's annotated keyword parameters *are* its schema: this module
turns them into a closed pydantic model, so ``growth.trigger.every_step`` (a typo) is an
error naming the accepted parameters, and values are type-checked before Ray starts.
"""

from __future__ import annotations

import functools
import importlib.util
import inspect
import types
import typing
from typing import Any

from pydantic import BaseModel, ConfigDict, StrictFloat, StrictInt, ValidationError, create_model

from growray.kinds import PluginSlot
from growray.registry import Registry, closest

from .errors import ConfigIssue, format_path

__all__ = ["plugin_schema", "plugin_slots", "validate_plugin"]


def plugin_slots() -> dict[str, PluginSlot]:
    """Every plug-in section of an experiment by its dotted path: the core's (``data``,
    ``model``, ``search.sampler``) and every registered kind's (``growth.trigger``, ...)."""
    from growray.data import DATASETS
    from growray.kinds import KINDS, get_kind
    from growray.models import MODELS
    from growray.plugins import load_plugins
    from growray.search.samplers import SAMPLERS

    load_plugins()
    slots = {"data": PluginSlot(DATASETS), "model": PluginSlot(MODELS), "search.sampler": PluginSlot(SAMPLERS)}
    for name in KINDS.names():
        for rel, slot in get_kind(name).plugins.items():
            slots[f"{name}.{rel}"] = slot
    return slots


def _strict(annotation: Any) -> Any:
    """``annotation`` with ``int``/``float`` made strict at every level (``list[int] | None``):
    YAML's true/false is never taken for 1/0 (an int is still accepted for a float)."""
    if annotation is int:
        return StrictInt
    if annotation is float:
        return StrictFloat
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if not args or origin is typing.Literal:
        return annotation
    strict = tuple(_strict(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return typing.Union[strict]  # noqa: UP007 - built from a runtime tuple
    if origin is typing.Annotated:
        return typing.Annotated[(strict[0], *annotation.__metadata__)]
    try:
        return origin[strict]
    except TypeError:  # a type that is not generic at run time
        return annotation


@functools.cache
def _params_model(registry: Registry[Any], name: str) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for pname, p in registry.user_parameters(name).items():
        ann = Any if p.annotation is inspect.Parameter.empty else _strict(p.annotation)
        default = ... if p.default is inspect.Parameter.empty else p.default
        fields[pname] = (ann, default)
    return create_model(
        f"{registry.kind.title()}_{name}",
        __config__=ConfigDict(extra="forbid", arbitrary_types_allowed=True, strict=False, allow_inf_nan=False),
        **fields,
    )


def plugin_schema(registry: Registry[Any], name: str) -> dict[str, Any]:
    """JSON schema of a plug-in's user-facing parameters (for docs and ``growray show``):
    the ones its registration declares internal (``internal=(...)``) are left out, though
    a file may still set them."""
    schema = _params_model(registry, name).model_json_schema()
    hidden = registry.get(name).internal()
    if hidden:
        schema["properties"] = {k: v for k, v in schema.get("properties", {}).items() if k not in hidden}
        schema["required"] = [k for k in schema.get("required", []) if k not in hidden]
    return schema


def validate_plugin(
    raw: Any, registry: Registry, path: tuple[str, ...], *, construct: bool = False
) -> tuple[dict[str, Any] | None, list[ConfigIssue]]:
    """Validate one plug-in section; returns ``(normalized, issues)``.

    ``raw`` may be a bare name (``trigger: plateau``) or a mapping with ``name``.
    With ``construct`` the plug-in is also built once (only for cheap plug-ins with no
    context arguments), so its constructor's range checks are reported at validate time.
    The normalized form has every parameter, defaults filled in, so the resolved
    config logged to MLflow states what actually ran.
    """
    where = format_path(path)
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict):
        return None, [ConfigIssue(where, f"expected a {registry.kind} name or a mapping with 'name'", raw)]
    name = raw.get("name")
    if name is None:
        return None, [
            ConfigIssue(f"{where}.name", f"missing; registered {registry.kind}s: {', '.join(registry.names())}")
        ]
    if name not in registry:
        hint = closest(name, registry.names()) if isinstance(name, str) else None
        msg = f"unknown {registry.kind}; registered: {', '.join(registry.names())}"
        if hint:
            msg += f" (did you mean {hint!r}?)"
        return None, [ConfigIssue(f"{where}.name", msg, name)]
    missing = [m for m in registry.get(name).capability("requires", ()) if importlib.util.find_spec(m) is None]
    if missing:
        return None, [
            ConfigIssue(
                f"{where}.name",
                f"{registry.kind} {name!r} needs the package(s) {missing}; install with "
                f"`pip install {' '.join(missing)}` or choose another of: {', '.join(registry.names())}",
                name,
            )
        ]
    params = {k: v for k, v in raw.items() if k != "name"}
    model = _params_model(registry, name)
    try:
        obj = model.model_validate(params)
    except ValidationError as exc:
        issues = []
        accepted = sorted(model.model_fields)
        for err in exc.errors():
            loc = path + tuple(err["loc"])
            if err["type"] == "extra_forbidden":
                key = str(err["loc"][0])
                hint = closest(key, accepted)
                msg = f"{registry.kind} {name!r} has no parameter {key!r}; accepted: {', '.join(accepted) or '(none)'}"
                if hint:
                    msg += f" (did you mean {hint!r}?)"
                issues.append(ConfigIssue(format_path(loc), msg))
            else:
                issues.append(ConfigIssue(format_path(loc), err["msg"], err.get("input")))
        return None, issues
    normalized = {"name": name, **obj.model_dump(mode="json")}
    if construct:
        try:
            registry.build(normalized)
        except (ValueError, TypeError) as exc:
            # Constructor messages start with the parameter they reject ("noise must be ...").
            first = str(exc).split(" ", 1)[0].strip(":")
            at = f"{where}.{first}" if first in params or first in model.model_fields else where
            return None, [ConfigIssue(at, str(exc))]
    return normalized, []
