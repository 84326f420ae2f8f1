"""What the trainer needs of the objects it is handed, as protocols (checked, not probed)."""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from torch import nn

from growray.models import ArchSpec

__all__ = ["ArchitectureEvent", "SpecModel", "spec_model"]


@runtime_checkable
class SpecModel(Protocol):
    """What the trainer needs of a model besides ``nn.Module``: its architecture as data
    (``spec``, rebuilt by ``build_model`` from checkpoints) and its width sites (none for a
    supernet or a cell network). Every registered growray model has them."""

    def spec(self) -> ArchSpec: ...

    def sites(self) -> list[str]: ...

    def widths(self) -> dict[str, int]: ...


class ArchitectureEvent(Protocol):
    """An event that changed the architecture (a growth event), as checkpoints store it."""

    def to_dict(self) -> dict[str, Any]: ...


def spec_model(model: nn.Module) -> SpecModel:
    if not isinstance(model, SpecModel):
        raise TypeError(
            f"the trainer needs a growray model (spec(), sites(), widths()); got {type(model).__name__}: "
            "build models from the MODELS registry"
        )
    return model
