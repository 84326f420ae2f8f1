"""One registry type for every kind of plug-in (datasets, models, triggers, ...).

A plug-in is a class or a function registered under a short name. YAML refers to it by
that name; code may pass the object itself. Constructor keyword arguments are the
plug-in's parameters: their annotations and defaults are its schema, which the config
layer turns into a typed, closed model (unknown keys are errors).

Nothing is built at registration time; ``build`` constructs exactly the one asked for.

An entry may carry *capabilities* as data (``@SAMPLERS.register("tpe", constraints=True)``):
what the rest of growray needs to know about a plug-in without building it, e.g. which
samplers handle constraints, which packages a plug-in needs (``requires``), which model a
NAS method searches. Read them with ``registry.get(name).capability(key, default)``.
``internal=(...)`` names parameters growray itself sets (site ids of a network rebuilt from
its spec): still accepted in YAML, hidden from ``growray show plugins`` and the docs.
"""

from __future__ import annotations

import difflib
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Generic, TypeVar

__all__ = ["INTERNAL", "Registry", "RegistryEntry", "UnknownNameError", "closest", "first_paragraph"]

T = TypeVar("T")

#: the capability that declares a plug-in's internal parameters (hidden from listings)
INTERNAL = "internal"


def closest(name: str, candidates: list[str]) -> str | None:
    """The candidate most similar to ``name``, or None when nothing is close."""
    matches = difflib.get_close_matches(name, candidates, n=1, cutoff=0.6)
    return matches[0] if matches else None


def first_paragraph(doc: str) -> str:
    """A docstring's first paragraph on one line (a whole sentence, never its first line only)."""
    return " ".join(doc.strip().split("\n\n", 1)[0].split())


class UnknownNameError(KeyError):
    """A name that is not registered; the message lists the valid names."""

    def __init__(self, kind: str, name: object, valid: list[str]):
        self.kind, self.name, self.valid = kind, name, valid
        hint = closest(name, valid) if isinstance(name, str) else None
        msg = f"unknown {kind} {name!r}; registered: {', '.join(valid) or '(none)'}"
        if hint:
            msg += f" (did you mean {hint!r}?)"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would quote the message
        return self.args[0]


@dataclass(frozen=True)
class RegistryEntry(Generic[T]):
    name: str
    obj: Callable[..., T]
    description: str
    capabilities: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    def capability(self, key: str, default: Any = None) -> Any:
        """A capability declared at registration, or ``default``."""
        return self.capabilities.get(key, default)

    def internal(self) -> tuple[str, ...]:
        """Parameters declared internal at registration (``internal=("conv_ids",)``): growray
        sets them (a grown network rebuilt from its spec); a user may, but listings hide them."""
        return tuple(self.capability(INTERNAL, ()))

    def parameters(self, skip: tuple[str, ...] = ()) -> dict[str, inspect.Parameter]:
        """Keyword parameters a user may set, by name (positional-only and skipped excluded)."""
        try:
            sig = _cached_signature(self.obj)
        except TypeError:  # an unhashable callable: not cached
            sig = _signature(self.obj)
        return {
            n: p
            for n, p in sig.parameters.items()
            if n not in skip and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and not n.startswith("_")
        }


def _signature(obj: Callable[..., Any]) -> inspect.Signature:
    try:  # resolve string annotations (``from __future__ import annotations``)
        return inspect.signature(obj, eval_str=True)
    except (NameError, TypeError):
        return inspect.signature(obj)


#: a registered object's signature, computed once: ``growray validate`` asks for it on every
#: build and schema of every plug-in, at every search-space bound it checks
_cached_signature = functools.cache(_signature)


class Registry(Generic[T]):
    """Named plug-ins of one kind.

    Args:
        kind: what the entries are, used in messages ("trigger", "dataset").
        context_args: constructor arguments supplied by growray rather than the user
            (e.g. ``model`` for an initializer); they are not part of the YAML schema.
    """

    def __init__(self, kind: str, context_args: tuple[str, ...] = ()):
        self.kind = kind
        self.context_args = context_args
        self._entries: dict[str, RegistryEntry[T]] = {}

    def register(
        self, name: str, *, description: str = "", **capabilities: Any
    ) -> Callable[[Callable[..., T]], Callable[..., T]]:
        """Decorator: ``@TRIGGERS.register("plateau")``; keyword arguments are capabilities."""
        if not name or not name.replace("_", "").isalnum() or name != name.lower():
            raise ValueError(f"{self.kind} names are lower_snake_case; got {name!r}")

        def deco(obj: Callable[..., T]) -> Callable[..., T]:
            if name in self._entries and self._entries[name].obj is not obj:
                raise ValueError(f"{self.kind} {name!r} is already registered to {self._entries[name].obj!r}")
            doc = description or first_paragraph(inspect.getdoc(obj) or "")
            self._entries[name] = RegistryEntry(name, obj, doc, MappingProxyType(dict(capabilities)))
            return obj

        return deco

    def unregister(self, name: str) -> None:
        """Remove ``name`` (tests that register a throw-away plug-in; plug-in reloads)."""
        self.get(name)  # an UnknownNameError lists what is registered
        del self._entries[name]

    def names(self, **capabilities: Any) -> list[str]:
        """Registered names, sorted; with keywords, only entries whose capabilities match."""
        return sorted(n for n, e in self._entries.items() if all(e.capability(k) == v for k, v in capabilities.items()))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, name: str) -> RegistryEntry[T]:
        try:
            return self._entries[name]
        except (KeyError, TypeError):
            raise UnknownNameError(self.kind, name, self.names()) from None

    def user_parameters(self, name: str) -> dict[str, inspect.Parameter]:
        """Parameters YAML may set (growray's context arguments excluded, internal ones kept)."""
        return self.get(name).parameters(skip=self.context_args)

    def public_parameters(self, name: str) -> dict[str, inspect.Parameter]:
        """The user-facing parameters: ``user_parameters`` without the internal ones."""
        entry = self.get(name)
        return entry.parameters(skip=self.context_args + entry.internal())

    def build(self, spec: str | dict[str, Any] | T, **context: Any) -> T:
        """Build from a name, a ``{"name": ..., **params}`` mapping, or return an object as is."""
        if isinstance(spec, str):
            name, params = spec, {}
        elif isinstance(spec, dict):
            params = dict(spec)
            name = params.pop("name", None)
        else:
            return spec  # already an object (code path)
        entry = self.get(name)
        allowed = entry.parameters()
        unknown = sorted(set(params) - set(allowed))
        if unknown:
            valid = sorted(set(allowed) - set(self.context_args))
            raise TypeError(f"{self.kind} {name!r} has no parameter(s) {unknown}; accepted: {valid}")
        ctx = {k: v for k, v in context.items() if k in allowed}
        return entry.obj(**params, **ctx)
