"""What model surgery needs to know about a width site, and what a model offers for depth growth."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from torch import nn

__all__ = ["DeepenableModel", "GrowableModel", "SiteModules"]


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

    producer: nn.Module
    norm: nn.Module | None
    consumer: nn.Module
    act: nn.Module | None = None
    spatial: int = 1


@runtime_checkable
class GrowableModel(Protocol):
    """What a model implements so growth is generic over it."""

    def sites(self) -> list[str]: ...

    def widths(self) -> dict[str, int]: ...

    def site_modules(self, site: str) -> SiteModules: ...


@runtime_checkable
class DeepenableModel(GrowableModel, Protocol):
    """A growable model into which blocks can be inserted (``growray.growth.deepen``).

    ``block(site)`` returns the site's block, with attributes ``linear`` or ``conv`` (the
    producer), ``norm`` (BatchNorm or None), ``act``, ``activation`` (its registered name)
    and ``gate`` (a ``DropInGate`` or None). ``insert_block`` adds a block of the same width
    right after ``site`` and returns its (new, stable) site name; ``remove_dropin`` drops a
    block's gate; ``locked_sites`` names the sites whose width must not change now.
    """

    def block(self, site: str) -> nn.Module: ...

    def insert_block(self, site: str, activation: str | None = None, dropin: bool = False) -> str: ...

    def remove_dropin(self, site: str) -> None: ...

    def locked_sites(self) -> dict[str, str]: ...
