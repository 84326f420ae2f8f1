"""ArchSpec: the JSON description of a network, and ``build_model`` from it."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from torch import nn

from growray.registry import Registry

__all__ = ["MODELS", "ArchSpec", "build_model"]

MODELS: Registry[nn.Module] = Registry("model", context_args=("input_shape", "n_classes"))


@dataclass(frozen=True)
class ArchSpec:
    """A registered model name plus ALL of its constructor arguments (JSON types only).

    A grown model reports its current spec via ``model.spec()``; ``build_model`` of that
    spec gives a module with the same parameter shapes, so ``load_state_dict`` restores it.
    """

    kind: str
    params: dict[str, Any]

    def __post_init__(self) -> None:
        if not isinstance(self.kind, str) or not self.kind:
            raise ValueError(f"ArchSpec.kind must be a registered model name; got {self.kind!r}")
        if not isinstance(self.params, dict):
            raise TypeError(f"ArchSpec.params must be a dict; got {type(self.params).__name__}")
        if "kind" in self.params or "name" in self.params:
            raise ValueError("ArchSpec.params must not contain the keys 'kind' or 'name'")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **copy.deepcopy(self.params)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ArchSpec:
        if "kind" not in d:
            raise ValueError(f"an architecture dict needs a 'kind' key (a model name); got keys {sorted(d)}")
        params = copy.deepcopy(dict(d))
        return cls(kind=params.pop("kind"), params=params)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, s: str) -> ArchSpec:
        return cls.from_dict(json.loads(s))


def build_model(spec: ArchSpec) -> nn.Module:
    """Construct the registered model ``spec.kind`` with ``spec.params``."""
    return MODELS.build({"name": spec.kind, **copy.deepcopy(spec.params)})
