"""What model surgery needs to know about a width site, and what a model offers for depth growth.

The protocols are what growth, sparse and the conformance suites rely on: the site
methods plus the few ``nn.Module`` members they call (a growray model is always an
``nn.Module``; the protocols only say which part of it the algorithms use).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from torch import Tensor, nn

if TYPE_CHECKING:
    from growray.models.dropin import DropInGate
    from growray.models.spec import ArchSpec

__all__ = [
    "DeepenableModel",
    "GrowableModel",
    "GrowthBlock",
    "Norm",
    "SiteModules",
    "UnitLayer",
    "as_module",
]

#: A layer whose units can be added: the producer (output units) or consumer (input units) of a site.
UnitLayer = nn.Linear | nn.Conv2d
#: The BatchNorm that may sit between a site's producer and its activation.
Norm = nn.BatchNorm1d | nn.BatchNorm2d


@dataclass(frozen=True)
class SiteModules:
    """The modules around one width site.

    Attributes:
        producer: computes the site's units (``nn.Linear`` or ``nn.Conv2d``). Its output
            dimension (dim 0 of ``weight``) is the site width.
        norm: a ``BatchNorm`` over the site's units, applied after the producer, or None.
        consumer: reads the site's units (dim 1 of its ``weight``).
        act: the activation module applied after ``norm``; its output is the site's
            post-activation (what NORTH* and the newborn diagnostics measure), or None.
        spatial: consumer input columns per unit: 1, or H*W when a conv site feeds a
            ``Linear`` through a flatten (each channel owns a contiguous block of columns).
    """

    producer: UnitLayer
    norm: Norm | None
    consumer: UnitLayer
    act: nn.Module | None = None
    spatial: int = 1


@runtime_checkable
class GrowableModel(Protocol):
    """What a model implements so growth is generic over it: its width sites, and the
    ``nn.Module`` members the growth and sparse algorithms call."""

    training: bool

    def __call__(self, x: Tensor, /) -> Tensor: ...

    def train(self, mode: bool = True) -> nn.Module: ...

    def eval(self) -> nn.Module: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, nn.Parameter]]: ...

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> Iterator[tuple[str, Tensor]]: ...

    def modules(self) -> Iterator[nn.Module]: ...

    def sites(self) -> list[str]: ...

    def widths(self) -> dict[str, int]: ...

    def site_modules(self, site: str) -> SiteModules: ...


class GrowthBlock(Protocol):
    """A block of a ``DeepenableModel`` (``block(site)``): one width site's layers."""

    @property
    def producer(self) -> UnitLayer:
        """The block's Linear or Conv2d."""
        ...

    @property
    def norm(self) -> Norm | None: ...

    @property
    def act(self) -> nn.Module: ...

    @property
    def activation(self) -> str:
        """The registered name of ``act``."""
        ...

    @property
    def gate(self) -> DropInGate | None: ...

    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...


@runtime_checkable
class DeepenableModel(GrowableModel, Protocol):
    """A growable model into which blocks can be inserted (``growray.growth.deepen``).

    ``block(site)`` returns the site's block (``GrowthBlock``). ``insert_block`` adds a
    block of the same width right after ``site`` and returns its (new, stable) site name;
    ``remove_dropin`` drops a block's gate; ``locked_sites`` names the sites whose width
    must not change now; ``spec`` is the current architecture (``build_model`` of it gives
    the same parameter shapes).
    """

    def block(self, site: str) -> GrowthBlock: ...

    def insert_block(self, site: str, activation: str | None = None, dropin: bool = False) -> str: ...

    def remove_dropin(self, site: str) -> None: ...

    def locked_sites(self) -> dict[str, str]: ...

    def spec(self) -> ArchSpec: ...


def as_module(model: GrowableModel) -> nn.Module:
    """``model`` as the ``nn.Module`` it is, for torch APIs that need one (``functional_call``).

    Raises:
        TypeError: ``model`` is not an ``nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"a growray model must be an nn.Module; got {type(model).__name__}")
    return model
