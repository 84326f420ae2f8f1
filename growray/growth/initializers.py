"""Initializers decide how new units start: their fan-in, fan-out and BN entries."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from growray.checks import check_int, check_number
from growray.growth.limits import SiteLimits
from growray.models.sites import GrowableModel, SiteModules
from growray.registry import Registry

__all__ = [
    "INITIALIZERS",
    "Initializer",
    "Net2WiderInitializer",
    "RandomInitializer",
    "WidthProposal",
    "join_unit_columns",
    "net2wider_proposal",
    "split_unit_columns",
]


@dataclass
class WidthProposal:
    """New weights for ``n`` units at one site (``widen`` appends them).

    Shapes are given for Linear layers. For a Conv2d producer/consumer the trailing kernel
    dimensions follow (``fan_in`` is ``(n, in_ch, kh, kw)``, ``fan_out`` ``(out_ch, n, kh, kw)``).
    For a conv site read by a Linear through a flatten (``SiteModules.spatial`` = H*W = S
    > 1) each unit owns S consecutive consumer columns (channel-major, positions in
    row-major H, W order): ``fan_out`` is ``(out, n*S)`` with column ``j*S + s`` = new
    unit j at position s, and ``incumbent_fan_out`` is ``(out, width*S)``.
    ``split_unit_columns`` / ``join_unit_columns`` convert to and from ``(out, n, S)``.

    Attributes:
        fan_in: ``(n, fan_in_features)`` new producer rows.
        bias: ``(n,)`` new producer biases, or None when the producer has no bias.
        fan_out: ``(consumer_out, n)`` new consumer columns (``(consumer_out, n*S)`` through a flatten).
        incumbent_fan_out: replacement for the existing consumer columns, same shape as
            them (Net2Wider divides them), or None to keep them.
        norm: new BatchNorm entries ``weight``, ``bias``, ``running_mean``, ``running_var``,
            each ``(n,)``; None when the site has no norm.
    """

    fan_in: Tensor
    bias: Tensor | None
    fan_out: Tensor
    incumbent_fan_out: Tensor | None = None
    norm: dict[str, Tensor] | None = None

    @property
    def n_new(self) -> int:
        return int(self.fan_in.shape[0])


class Initializer(ABC):
    """How new units start. Random draws use torch's global RNG (checkpointed by the trainer).

    ``uses_hint``: when True, the strategy passes the trigger's ``GrowthRequest.payload`` as
    ``propose(..., hint=payload)`` (SENN's trigger hands over the fan-in it chose).
    """

    uses_hint: ClassVar[bool] = False

    @property
    def preserves_function(self) -> bool:
        """True when growing with this initializer leaves the model's outputs unchanged
        (in eval mode), up to float32 rounding: every output within 1e-6, absolutely or
        relatively (``growray.testing.initializers.assert_function_preserved`` checks it)."""
        return False

    def check_site(self, model: GrowableModel, site: str, limits: SiteLimits) -> str | None:
        """Why this initializer cannot grow ``site`` of ``model`` under ``limits`` (None: it can).

        ``growray validate`` calls it for every grown site before a run, on a model built
        on the meta device (shapes only, no values). The default accepts every site.
        """
        return None

    @abstractmethod
    def propose(
        self, model: GrowableModel, site: str, n_new: int, batch: tuple[Tensor, Tensor] | None = None
    ) -> WidthProposal:
        """Weights for ``n_new`` units at ``site`` of ``model`` (``model.site_modules``)."""


INITIALIZERS: Registry[Initializer] = Registry("initializer")


def _fresh_norm(norm: nn.Module | None, n: int, like: Tensor) -> dict[str, Tensor] | None:
    """BN entries of a freshly constructed BatchNorm: gamma 1, beta 0, mean 0, var 1."""
    if norm is None:
        return None
    return {
        "weight": torch.ones(n, dtype=like.dtype, device=like.device),
        "bias": torch.zeros(n, dtype=like.dtype, device=like.device),
        "running_mean": torch.zeros(n, dtype=like.dtype, device=like.device),
        "running_var": torch.ones(n, dtype=like.dtype, device=like.device),
    }


def split_unit_columns(consumer_weight: Tensor, spatial: int = 1) -> Tensor:
    """The consumer's input columns grouped per unit: ``(out, units, spatial, *kernel)``.

    ``(out, units*spatial)`` Linear weights after a flatten become ``(out, units, spatial)``;
    a Linear ``(out, units)`` becomes ``(out, units, 1)``, a conv ``(out, units, kh, kw)``
    becomes ``(out, units, 1, kh, kw)``. Returns a view when possible.
    """
    out, cols = consumer_weight.shape[:2]
    if spatial < 1 or cols % spatial:
        raise ValueError(f"spatial must be >= 1 and divide the consumer's {cols} input columns; got {spatial!r}")
    return consumer_weight.reshape(out, cols // spatial, spatial, *consumer_weight.shape[2:])


def join_unit_columns(blocks: Tensor) -> Tensor:
    """Inverse of ``split_unit_columns``: ``(out, units, spatial, *kernel)`` -> ``(out, units*spatial, *kernel)``."""
    return blocks.reshape(blocks.shape[0], blocks.shape[1] * blocks.shape[2], *blocks.shape[3:])


@INITIALIZERS.register("random")
class RandomInitializer(Initializer):
    """Fan-in drawn like torch's default Linear/Conv init times ``scale``, bias 0, fan-out 0.

    The zero fan-out makes growth exactly function-preserving; the new units first learn
    through their fan-out (their fan-in gets gradient once the fan-out is non-zero). For a
    conv site the fan-in is in_channels*kh*kw; BatchNorm entries start fresh (1, 0, 0, 1).

    Args:
        scale: multiplies the uniform bound ``1/sqrt(fan_in)``; > 0.
    """

    def __init__(self, scale: float = 1.0):
        self.scale = check_number("scale", scale, low=0, low_open=True)

    @property
    def preserves_function(self) -> bool:
        return True

    def propose(
        self, model: GrowableModel, site: str, n_new: int, batch: tuple[Tensor, Tensor] | None = None
    ) -> WidthProposal:
        check_int("n_new", n_new, minimum=1)
        mods = model.site_modules(site)
        w, cw = mods.producer.weight, mods.consumer.weight
        fan_in = math.prod(w.shape[1:])
        bound = self.scale / math.sqrt(fan_in)
        with torch.no_grad():
            rows = torch.empty((n_new, *w.shape[1:]), dtype=w.dtype, device=w.device).uniform_(-bound, bound)
        bias = None if mods.producer.bias is None else torch.zeros(n_new, dtype=w.dtype, device=w.device)
        cols = torch.zeros((cw.shape[0], n_new * mods.spatial, *cw.shape[2:]), dtype=cw.dtype, device=cw.device)
        return WidthProposal(rows, bias, cols, None, _fresh_norm(mods.norm, n_new, w))


@INITIALIZERS.register("net2wider")
class Net2WiderInitializer(Initializer):
    """Net2WiderNet (Chen et al. 2016): new units copy randomly chosen incumbents.

    A mapping g picks, uniformly with replacement, one existing unit per new unit. New
    units copy that unit's fan-in row, bias and BatchNorm entries (weight, bias, running
    mean and variance, all with the same g). Every copy's consumer column, the original's
    included, is divided by the number of units sharing that source, so the consumer's
    pre-activations are unchanged. Without noise the copies receive identical gradients
    and never separate (unless dropout or similar breaks the symmetry): measured under
    plain SGD, a noiseless copy stayed bit-identical to its source (distance 0.0).

    The paper adds "a small amount of noise" to break that symmetry without giving a value.
    The default ``noise=0.01`` (1% of each copied row's std) is our choice: small enough
    that the output moves by about 1% of a copied unit's contribution (the growth event's
    ``preservation_error`` reports it), large enough that the copies drift apart under plain
    SGD from the first steps (``tests/growth/test_random_expansion.py`` checks both). ``noise: 0`` keeps the function exactly, as the paper's equations do.

    At a conv site g maps output channels: whole filters are copied, and the consumer's
    input-channel slice (a conv's ``[:, c]`` kernels, or a Linear's block of H*W columns
    after a flatten) is divided the same way.

    Args:
        noise: relative std of Gaussian noise added to the new copies' fan-in rows (times
            the std of each copied row); >= 0. 0 keeps the function exactly; the default
            0.01 breaks the copies' symmetry (see above).
    """

    def __init__(self, noise: float = 0.01):
        self.noise = check_number("noise", noise, low=0)

    @property
    def preserves_function(self) -> bool:
        return self.noise == 0.0

    def propose(
        self, model: GrowableModel, site: str, n_new: int, batch: tuple[Tensor, Tensor] | None = None
    ) -> WidthProposal:
        check_int("n_new", n_new, minimum=1)
        mods = model.site_modules(site)
        w = mods.producer.weight
        g = torch.randint(0, w.shape[0], (n_new,), device=w.device)
        return net2wider_proposal(mods, g, self.noise)


@torch.no_grad()
def net2wider_proposal(mods: SiteModules, sources: Tensor, noise: float = 0.0) -> WidthProposal:
    """Net2Wider copies of the units ``sources`` of a site (``Net2WiderInitializer``).

    Copy i takes unit ``sources[i]``'s fan-in row (plus Gaussian noise of relative std
    ``noise`` times the row's std), bias and BatchNorm entries (running statistics
    included); every source's consumer columns are divided by its number of copies + 1,
    the copies' columns being the divided ones, so the consumer's pre-activations are
    unchanged (without noise). The growth library appends the copies (``widen``); the
    plasticity grow arm writes them into dormant units in place.

    Args:
        mods: the site's modules.
        sources: ``(n,)`` unit indices (repeats allowed), one per copy.
        noise: relative noise on the copies' fan-in rows; >= 0.

    Returns:
        The copies as a ``WidthProposal``: ``fan_in``, ``bias``, ``norm`` and ``fan_out`` of
        the ``n`` copies, and ``incumbent_fan_out``, the consumer weight with every source's
        columns divided (the other units' columns unchanged).
    """
    w, cw = mods.producer.weight, mods.consumer.weight
    width, n = w.shape[0], len(sources)
    g = sources.to(device=w.device, dtype=torch.long)
    rows = w.detach()[g].clone()
    if noise > 0:
        flat = rows.reshape(n, -1)
        std = flat.std(dim=1, unbiased=False, keepdim=True)
        flat = flat + noise * std * torch.randn_like(flat)
        rows = flat.reshape(rows.shape)
    bias = None if mods.producer.bias is None else mods.producer.bias.detach()[g].clone()
    counts = torch.bincount(g, minlength=width).to(cw.dtype) + 1  # replicas per source, original included
    blocks = split_unit_columns(cw.detach(), mods.spatial)  # (out, width, spatial, *kernel)
    blocks = blocks / counts.reshape((1, width) + (1,) * (blocks.dim() - 2))
    incumbent = join_unit_columns(blocks)
    cols = join_unit_columns(blocks[:, g])
    norm = None
    if mods.norm is not None:
        norm = {}
        for key in ("weight", "bias", "running_mean", "running_var"):
            t = getattr(mods.norm, key, None)
            if t is not None:
                norm[key] = t.detach()[g].clone()
    return WidthProposal(rows, bias, cols, incumbent, norm)
