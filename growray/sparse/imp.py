"""Iterative magnitude pruning with rewinding (ALGORITHMS.md §12), at the level of units.

Frankle et al. rewind the surviving weights to their values at an early step k (k = 0 is
the original lottery ticket) after each pruning round and retrain from there. Here a
:class:`RewindSnapshot` keeps every parameter of the model at step k; :func:`imp_prune_step`
removes the lowest-scoring units of each site, rewinds all parameters to the snapshot and
zeroes every masked unit's slices, so the network restarts from step k with the mask
applied. The optimizer state is cleared (:func:`clear_optimizer_state`), as a retraining
run from the rewind point starts a fresh optimizer; the optimizer object itself, and so
its parameter groups and any LR scheduler, is kept. BatchNorm running statistics are not
rewound (they are estimates, not weights; they re-adapt within a few steps).
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor

from growray.checks import check_int
from growray.models.sites import GrowableModel
from growray.sparse.masks import UnitMasks
from growray.sparse.prune import UnitScorer, edit_count, select_lowest

__all__ = ["RewindSnapshot", "apply_prune", "clear_optimizer_state", "imp_prune_step", "select_prune"]


class RewindSnapshot:
    """The parameters of a model at one training step.

    Args:
        params: ``{parameter name: tensor}`` as ``model.named_parameters()`` names them.
        step: the optimizer step they were taken at.
    """

    def __init__(self, params: Mapping[str, Tensor], step: int):
        self.step = check_int("step", step, minimum=0)
        self.params = {k: v.detach().clone() for k, v in params.items()}

    @classmethod
    def capture(cls, model: GrowableModel, step: int) -> RewindSnapshot:
        return cls(dict(model.named_parameters()), step)

    @torch.no_grad()
    def rewind(self, model: GrowableModel, masks: UnitMasks | None = None) -> None:
        """Copy the snapshot into ``model``'s parameters; with ``masks`` (attached to
        ``model``) zero every masked unit's slices afterwards."""
        current = dict(model.named_parameters())
        missing = sorted(set(current) - set(self.params))
        if missing:
            raise ValueError(f"the rewind snapshot has no values for {missing}; was it taken from another model?")
        for name, p in current.items():
            saved = self.params[name]
            if saved.shape != p.shape:
                raise ValueError(
                    f"rewind snapshot {name!r} has shape {tuple(saved.shape)}; the model's is {tuple(p.shape)}"
                )
            p.copy_(saved.to(p.device, p.dtype))
        if masks is not None:
            masks.zero_inactive()

    def state_dict(self) -> dict[str, object]:
        return {"step": self.step, "params": {k: v.cpu() for k, v in self.params.items()}}

    @classmethod
    def from_state_dict(cls, state: Mapping[str, object]) -> RewindSnapshot:
        params, step = state.get("params"), state.get("step")
        if not isinstance(params, Mapping) or not isinstance(step, int):
            raise ValueError(
                "a rewind snapshot state needs 'params' (a mapping of tensors) and 'step' (an int); "
                f"got {type(params).__name__} and {step!r}"
            )
        return cls(params, step)


def clear_optimizer_state(optimizer: torch.optim.Optimizer) -> None:
    """Forget every per-parameter state (momentum, Adam moments and step counts) in place."""
    optimizer.state.clear()


def select_prune(
    model: GrowableModel,
    masks: UnitMasks,
    scorer: UnitScorer,
    targets: Mapping[str, int],
    cycle: int,
    n_cycles: int,
    x: Tensor,
) -> dict[str, Tensor]:
    """Which units the boundary after ``cycle`` removes: per site in ``targets``, the
    ``edit_count`` active units with the lowest ``scorer`` scores on ``x`` (all scores are
    taken on the network as it is, before any unit is removed)."""
    pruned: dict[str, Tensor] = {}
    for site, target in targets.items():
        active = masks.active(site)
        k = edit_count(max(0, len(active) - int(target)), cycle, n_cycles, len(active))
        pruned[site] = select_lowest(scorer.score(model, site, masks, x), active, k)
    return pruned


def apply_prune(
    model: GrowableModel,
    masks: UnitMasks,
    pruned: Mapping[str, Tensor],
    snapshot: RewindSnapshot | None,
    optimizer: torch.optim.Optimizer | None = None,
) -> None:
    """Mask ``pruned``, then rewind ``model`` to ``snapshot`` (all parameters, then every
    masked slice zeroed) and clear ``optimizer``'s state. Without a snapshot the pruned
    slices are zeroed and the survivors keep their weights (and the optimizer its state)."""
    for site, idx in pruned.items():
        masks.set_units(site, idx, False)
    if snapshot is not None:
        snapshot.rewind(model, masks)
        if optimizer is not None:
            clear_optimizer_state(optimizer)
    else:
        masks.zero_inactive()


def imp_prune_step(
    model: GrowableModel,
    masks: UnitMasks,
    scorer: UnitScorer,
    targets: Mapping[str, int],
    cycle: int,
    n_cycles: int,
    x: Tensor,
    snapshot: RewindSnapshot | None,
    optimizer: torch.optim.Optimizer | None = None,
) -> dict[str, Tensor]:
    """One IMP round at the boundary after ``cycle``: ``select_prune``, then ``apply_prune``.

    Returns:
        ``{site: indices of the units pruned now}``.
    """
    pruned = select_prune(model, masks, scorer, targets, cycle, n_cycles, x)
    apply_prune(model, masks, pruned, snapshot, optimizer)
    return pruned
