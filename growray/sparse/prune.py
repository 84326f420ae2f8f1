"""Structured (unit) pruning: unit scorers, the per-cycle edit count and the unit budgets.

Scorers rate every unit of a site (higher = more worth keeping). The structural-plasticity
protocol (ALGORITHMS.md §7) removes, at each cycle boundary, the lowest-scoring active
units, k = min(q, ceil(q / max(1, T - t)), a) of them, where q units still have to go,
t is the cycle that just ended (1-based), T the number of cycles and a the active count:
the remaining removals are spread evenly over the remaining boundaries, so the budget is
met before the last cycle trains. Growth uses the same count for additions.

Budgets: ``unit_targets`` keeps a fraction c (the compactness) of every site's units;
``weight_budget_targets`` finds the per-site unit counts whose weights (``count_weights``)
fit a fraction of the dense weights, keeping the same fraction of units at every site.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping

import torch
from torch import Tensor

from growray.checks import check_int, check_number
from growray.growth.capture import units_matrix
from growray.models.sites import GrowableModel
from growray.registry import Registry
from growray.sparse.masks import UnitMasks, count_weights, raw_activations

__all__ = [
    "UNIT_SCORERS",
    "ActivityScorer",
    "MagnitudeScorer",
    "UnitScorer",
    "edit_count",
    "select_highest",
    "select_lowest",
    "unit_targets",
    "weight_budget_targets",
]

UNIT_SCORERS: Registry[UnitScorer] = Registry("unit scorer")


class UnitScorer(ABC):
    """Rates the units of one site; higher means more worth keeping."""

    @abstractmethod
    def score(self, model: GrowableModel, site: str, masks: UnitMasks, x: Tensor) -> Tensor:
        """One float per unit of ``site`` (all units, active or not), on ``x`` where data is needed."""


@UNIT_SCORERS.register("magnitude")
class MagnitudeScorer(UnitScorer):
    """Mean |fan-in| of each unit (its producer row, kernels included): the study's score."""

    def score(self, model: GrowableModel, site: str, masks: UnitMasks, x: Tensor) -> Tensor:
        w = model.site_modules(site).producer.weight.detach()
        return w.abs().flatten(1).mean(dim=1).float().cpu()


@UNIT_SCORERS.register("activity")
class ActivityScorer(UnitScorer):
    """Fraction of inputs (and positions) on which a unit's unmasked post-activation exceeds ``tau``.

    Args:
        tau: activity threshold, >= 0.
    """

    def __init__(self, tau: float = 0.05):
        self.tau = check_number("tau", tau, low=0)

    def score(self, model: GrowableModel, site: str, masks: UnitMasks, x: Tensor) -> Tensor:
        return unit_activity(raw_activations(model, masks, x)[site], self.tau)


def unit_activity(post: Tensor, tau: float) -> Tensor:
    """act(j): fraction of samples (and positions) with post-activation above ``tau``."""
    return (units_matrix(post) > tau).float().mean(dim=1).cpu()


def edit_count(remaining: int, cycle: int, n_cycles: int, available: int) -> int:
    """Units to remove (or add) at the boundary after ``cycle`` (1-based) of ``n_cycles``:
    min(q, ceil(q / max(1, T - t)), a) with q = ``remaining`` and a = ``available``."""
    remaining = check_int("remaining", remaining, minimum=0)
    cycle = check_int("cycle", cycle, minimum=0)
    n_cycles = check_int("n_cycles", n_cycles, minimum=0)
    available = check_int("available", available, minimum=0)
    if remaining == 0:
        return 0
    return min(remaining, math.ceil(remaining / max(1, n_cycles - cycle)), available)


def unit_targets(widths: Mapping[str, int], compactness: float) -> dict[str, int]:
    """Units kept per site at the end: round(c * width), at least 1."""
    compactness = check_number("compactness", compactness, low=0, high=1, low_open=True)
    return {s: max(1, min(w, round(compactness * w))) for s, w in widths.items()}


def weight_budget_targets(
    model: GrowableModel, weight_fraction: float, sites: list[str] | None = None
) -> dict[str, int]:
    """Per-site unit targets whose weights fit ``weight_fraction`` of the dense weights.

    The same fraction f of units is kept at every site in ``sites`` (default: all), and f
    is the largest for which ``count_weights(model, targets) <= weight_fraction *
    count_weights(model)``; at least one unit per site is kept.
    """
    weight_fraction = check_number("weight_fraction", weight_fraction, low=0, high=1, low_open=True)
    widths = {s: w for s, w in model.widths().items() if sites is None or s in sites}
    budget = weight_fraction * count_weights(model)

    def targets(f: float) -> dict[str, int]:
        return {s: max(1, min(w, math.floor(f * w + 1e-9))) for s, w in widths.items()}

    lo, hi = 0.0, 1.0
    if count_weights(model, targets(hi)) <= budget:
        return targets(hi)
    for _ in range(60):  # the count is monotone in f
        mid = (lo + hi) / 2
        if count_weights(model, targets(mid)) <= budget:
            lo = mid
        else:
            hi = mid
    return targets(lo)


def select_lowest(scores: Tensor, candidates: Tensor, k: int) -> Tensor:
    """The ``k`` candidates (unit indices) with the lowest scores, ties broken by index."""
    return _select(scores, candidates, k, largest=False)


def select_highest(scores: Tensor, candidates: Tensor, k: int) -> Tensor:
    """The ``k`` candidates (unit indices) with the highest scores, ties broken by index."""
    return _select(scores, candidates, k, largest=True)


def _select(scores: Tensor, candidates: Tensor, k: int, largest: bool) -> Tensor:
    candidates = torch.as_tensor(candidates, dtype=torch.long).cpu()
    if not 0 <= k <= len(candidates):
        raise ValueError(f"cannot select {k} of {len(candidates)} candidates")
    s = scores.detach().float().cpu()[candidates]
    order = torch.sort(-s if largest else s, stable=True).indices  # stable: ties by index
    return torch.sort(candidates[order[:k]]).values
