"""Mask updaters for dynamic sparse training: ``static``, ``set``, ``rigl`` (ALGORITHMS.md §10).

An updater is one small class registered in ``UPDATERS``: ``init_mask`` draws a layer's
first mask, ``update`` decides a layer's next mask at an update step. The schedule
(:class:`UpdateSchedule`) is shared by every updater, as in the RigL paper: an update every
ΔT optimizer steps while t < T_end, dropping the fraction f(t) = (α/2)(1 + cos(π t / T_end))
of each layer's active connections.

``rigl`` (Evci et al. 2020; google-research/rigl ``SparseRigLOptimizer``): per layer, drop the
k = ⌊f · active⌋ active connections of smallest |w| (N(0, ``drop_noise``) noise added to the
magnitudes breaks ties, as in the code), then grow the k connections of largest
|dense gradient| among those inactive after the drop — a connection just dropped may be
grown again and then keeps its weight and optimizer state (the code's
``reinit_when_same=False``). New connections start at zero with reset optimizer slots
(``WeightMasks.replace``). ``regrow: random`` replaces the gradient by uniform random
scores: the guide's ablation, which *is* ``set`` (same draws, same order, bit for bit).

``set`` (Mocanu et al. 2018) as the RigL paper re-implements it: the same drop and
schedule with random regrowth, new weights at zero. The SET paper itself removes ζ = 0.3 of
the weights after every epoch and gives new ones random values; that variant is the
schedule ``delta_t`` = steps per epoch, ``alpha`` = 2ζ with ``t_end`` 1, except for the
cosine decay and the zero initialisation (departures kept so that SET and RigL differ only
in the regrowth criterion, as in the RigL paper's comparison).

One departure from the RigL code: its drop ranks *all* positions by |w · mask| + noise, so
an inactive position (score ≈ noise) can outrank a tiny active weight and be "kept" while
that weight is dropped, changing the layer's count by chance. Here the drop ranks active
connections only, which is the paper's definition; every layer keeps exactly its count.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import Tensor

from growray.checks import check_choice, check_int, check_number
from growray.registry import Registry

__all__ = [
    "UPDATERS",
    "LayerInfo",
    "MagnitudeUpdater",
    "MaskUpdate",
    "MaskUpdater",
    "RigLUpdater",
    "SETUpdater",
    "StaticUpdater",
    "UpdateSchedule",
    "random_mask",
    "top_indices",
]

UPDATERS: Registry[MaskUpdater] = Registry("mask updater")

Regrow = Literal["gradient", "random"]


@dataclass(frozen=True)
class UpdateSchedule:
    """When masks are updated and how much is dropped (the RigL paper's schedule).

    Attributes:
        delta_t: steps between updates (ΔT >= 1).
        alpha: initial drop fraction (α in (0, 1]).
        end_step: no update at or after this step (T_end >= 1).
    """

    delta_t: int
    alpha: float
    end_step: int

    def __post_init__(self) -> None:
        check_int("delta_t", self.delta_t, minimum=1)
        check_number("alpha", self.alpha, low=0, high=1, low_open=True)
        check_int("end_step", self.end_step, minimum=1)

    def is_update(self, step: int) -> bool:
        """Whether the masks are updated after optimizer step ``step`` (1-based)."""
        return 0 < step < self.end_step and step % self.delta_t == 0

    def drop_fraction(self, step: int) -> float:
        """f(t) = (α/2)(1 + cos(π t / T_end)), 0 from T_end on."""
        if step >= self.end_step:
            return 0.0
        return self.alpha / 2 * (1 + math.cos(math.pi * step / self.end_step))

    def n_updates(self) -> int:
        """How many update steps the schedule has."""
        return (self.end_step - 1) // self.delta_t


@dataclass(frozen=True)
class LayerInfo:
    """Where a layer sits among the masked layers (structured updaters keep the output
    layer's neurons: ablating one would remove a class)."""

    name: str
    index: int
    n_layers: int

    @property
    def is_last(self) -> bool:
        return self.index == self.n_layers - 1


@dataclass(frozen=True)
class MaskUpdate:
    """One layer's update.

    Attributes:
        mask: the new bool mask.
        n_dropped: connections the drop criterion took out (k; with structured ablation,
            also the ablated neurons' remaining connections).
        n_grown: connections the regrowth criterion put in (k; some may be connections
            dropped at this same update, which then stay as they were).
        n_ablated: neurons removed at this update (structured updaters).
    """

    mask: Tensor
    n_dropped: int
    n_grown: int
    n_ablated: int = 0


def random_mask(shape: Sequence[int], n_active: int, generator: torch.Generator) -> Tensor:
    """A bool mask of ``shape`` with exactly ``n_active`` entries True, uniformly at random."""
    total = math.prod(shape)
    n_active = check_int("n_active", n_active, minimum=0, maximum=total)
    idx = torch.randperm(total, generator=generator)[:n_active]
    mask = torch.zeros(total, dtype=torch.bool)
    mask[idx] = True
    return mask.view(*shape)


class MaskUpdater(ABC):
    """Decides a layer's mask. Subclasses set ``dynamic`` (False: the mask never changes)
    and implement ``update``; ``needs_gradient`` says whether ``update`` reads the dense
    gradient (then the trainer's backward pass keeps it at update steps)."""

    dynamic: ClassVar[bool] = True

    @property
    def needs_gradient(self) -> bool:
        return False

    def init_mask(self, shape: Sequence[int], n_active: int, generator: torch.Generator) -> Tensor:
        """The layer's first mask, with ``n_active`` connections (uniformly random)."""
        return random_mask(shape, n_active, generator)

    @abstractmethod
    def update(
        self,
        layer: LayerInfo,
        mask: Tensor,
        weight: Tensor,
        grad: Tensor | None,
        drop_fraction: float,
        generator: torch.Generator,
    ) -> MaskUpdate:
        """The layer's next mask.

        Args:
            layer: the layer's place among the masked layers.
            mask: its current bool mask.
            weight: its weight (inactive entries are 0).
            grad: the dense gradient of the update step's batch (``needs_gradient``), else None.
            drop_fraction: f(t) of the schedule.
            generator: the source of every random draw (a CPU generator), so a run is
                reproducible and resumable.
        """

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state (none: the built-in updaters keep everything in the masks)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned (the built-in updaters are stateless)."""
        if state:
            raise ValueError(f"{type(self).__name__} is stateless; got state keys {sorted(state)}")


@UPDATERS.register("static")
class StaticUpdater(MaskUpdater):
    """Static sparse baseline: the random mask drawn at initialisation, never updated."""

    dynamic = False

    def update(
        self,
        layer: LayerInfo,
        mask: Tensor,
        weight: Tensor,
        grad: Tensor | None,
        drop_fraction: float,
        generator: torch.Generator,
    ) -> MaskUpdate:
        return MaskUpdate(mask.clone(), 0, 0)


def top_indices(score: Tensor, k: int, largest: bool = True) -> Tensor:
    """Indices of the ``k`` largest (or smallest) entries of the 1-D ``score``, in no order.

    On the CPU a linear-time partition (``numpy.argpartition``): a mask update ranks every
    entry of a layer, and a sorted top-k of a 784x300 layer costs several training steps."""
    if k <= 0:
        return torch.zeros(0, dtype=torch.long, device=score.device)
    if score.device.type != "cpu" or k >= score.numel():
        return torch.topk(score, k, largest=largest, sorted=False).indices
    values = score.detach().numpy()
    part = np.argpartition(-values if largest else values, k - 1)[:k]
    return torch.from_numpy(part).to(torch.long)


def drop_smallest(mask: Tensor, weight: Tensor, k: int, noise: float, generator: torch.Generator) -> Tensor:
    """``mask`` without its ``k`` active entries of smallest |weight| + N(0, noise) noise (only
    active entries are ranked, and only they draw noise)."""
    flat = mask.reshape(-1)
    out = flat.clone()
    if k <= 0:
        return out.view_as(mask)
    active = flat.nonzero().squeeze(1)
    score = weight.detach().reshape(-1)[active].abs().float()
    if noise > 0:
        score = score + torch.randn(score.shape, generator=generator).to(score.device) * noise
    out[active[top_indices(score, k, largest=False)]] = False
    return out.view_as(mask)


def grow_scores(kind: str, grad: Tensor | None, shape: torch.Size, generator: torch.Generator) -> Tensor:
    """Regrowth scores (higher grows first): |dense gradient| or uniform random draws."""
    if kind == "gradient":
        if grad is None:
            raise ValueError("gradient regrowth needs the dense gradient of the update step; got none")
        return grad.detach().abs().float()
    return torch.rand(shape, generator=generator)


class MagnitudeUpdater(MaskUpdater):
    """Drop by magnitude, regrow by ``regrow``: the shared core of ``set`` and ``rigl``.

    Args:
        regrow: ``gradient`` (largest |dense gradient|) or ``random``.
        drop_noise: std of the noise added to |w| before the drop ranking (ties).
    """

    def __init__(self, regrow: Regrow = "gradient", drop_noise: float = 1e-5):
        self.regrow = check_choice("regrow", regrow, ["gradient", "random"])
        self.drop_noise = check_number("drop_noise", drop_noise, low=0)

    @property
    def needs_gradient(self) -> bool:
        return self.regrow == "gradient"

    def update(
        self,
        layer: LayerInfo,
        mask: Tensor,
        weight: Tensor,
        grad: Tensor | None,
        drop_fraction: float,
        generator: torch.Generator,
    ) -> MaskUpdate:
        drop_fraction = check_number("drop_fraction", drop_fraction, low=0, high=1)
        k = int(int(torch.count_nonzero(mask)) * drop_fraction)
        kept = drop_smallest(mask, weight, k, self.drop_noise, generator)
        score = grow_scores(self.regrow, grad, mask.shape, generator).to(mask.device).reshape(-1)
        score = score.masked_fill(kept.reshape(-1), -math.inf)  # grow among the inactive after the drop
        new = kept.reshape(-1).clone()
        if k > 0:
            new[top_indices(score, k)] = True
        return MaskUpdate(new.view_as(mask), k, k)


@UPDATERS.register("set")
class SETUpdater(MagnitudeUpdater):
    """SET: drop the smallest magnitudes, regrow at random (as the RigL paper runs it)."""

    def __init__(self, drop_noise: float = 1e-5):
        super().__init__("random", drop_noise)


@UPDATERS.register("rigl")
class RigLUpdater(MagnitudeUpdater):
    """RigL: drop the smallest magnitudes, regrow the largest |dense gradient|.

    ``regrow: random`` is the guide's ablation, bit for bit ``set``."""
