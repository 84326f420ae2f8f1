"""Which keys a section accepts, read from the schema itself (never a hand-kept table).

``accepted_keys(("growth", "diagnostics"))`` walks the pydantic models from the top of the
experiment (core sections, then the registered kinds' sections) down the path and returns
the field names of the model found there, so every section's unknown-key error can list
what is accepted and suggest the closest key.
"""

from __future__ import annotations

import types
import typing
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel

from growray.registry import closest

from .schema import Section

__all__ = ["accepted_keys", "model_at", "top_level_keys", "unknown_key_hint"]


def top_level_keys() -> list[str]:
    """Keys an experiment file may have at its top level: core sections and kind sections."""
    from .experiment import CORE_SECTIONS, kind_names

    return sorted([*CORE_SECTIONS, *kind_names()])


def _models_in(annotation: Any) -> tuple[type[BaseModel] | None, type[BaseModel] | None]:
    """``(model, value model)`` of a field's annotation: the BaseModel it holds directly
    (also inside ``X | None``), and the one it holds as mapping values (``dict[str, X]``)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation, None
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            model, values = _models_in(arg)
            if model is not None or values is not None:
                return model, values
    if origin is dict and len(args) == 2:
        value_model, _ = _models_in(args[1])
        return None, value_model
    return None, None


def model_at(parts: Sequence[Any]) -> type[BaseModel] | None:
    """The section model at ``parts`` (``("search", "scheduler")``), or None when the path does
    not lead to a model (a plug-in section, a list, an unknown key)."""
    from .experiment import Experiment, kind_names

    if not parts:
        return Experiment
    head, rest = str(parts[0]), list(parts[1:])
    model: type[BaseModel] | None
    if head == "data" and rest and rest[0] == "augment":  # the one typed key of the data section
        model, _ = _models_in(Experiment.model_fields["augment"].annotation)
        rest = rest[1:]
    elif head in kind_names():
        from growray.kinds import get_kind

        model = get_kind(head).section
    elif head in Experiment.model_fields and head != "kinds":
        model, _ = _models_in(Experiment.model_fields[head].annotation)
    else:
        return None
    i = 0
    while model is not None and i < len(rest):
        field = model.model_fields.get(str(rest[i]))
        if field is None:
            # a section may hold sub-sections keyed by a plug-in's name (nas.<method>)
            model = model.subsection_model(str(rest[i])) if issubclass(model, Section) else None
            i += 1
            continue
        model, values = _models_in(field.annotation)
        if model is None and values is not None:  # dict[str, Model]: skip the key
            i += 1
            model = values
        i += 1
    return model if i >= len(rest) else None


def accepted_keys(parts: Sequence[Any]) -> list[str] | None:
    """The keys accepted at ``parts`` (None when the schema does not describe that place)."""
    if not parts:
        return top_level_keys()
    model = model_at(parts)
    if model is None:
        return None
    return model.file_keys() if issubclass(model, Section) else sorted(model.model_fields)


def unknown_key_hint(loc: Sequence[Any]) -> str:
    """``"; accepted: a, b (did you mean 'a'?)"`` for an unknown key at ``loc``, or ''."""
    accepted = accepted_keys(loc[:-1])
    if accepted is None:
        return ""
    hint = closest(str(loc[-1]), accepted)
    return f"; accepted: {', '.join(accepted)}" + (f" (did you mean {hint!r}?)" if hint else "")
