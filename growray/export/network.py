"""Rebuild a run's final network from its spec and state dict, with its hooks' masks folded in.

Nothing here knows a kind: the network is ``build_model(spec)`` with the state dict loaded
strictly, so any registered model (a grown MLP or CNN, a retrained ``cell_network``, a
plug-in's model) exports the same way. Two things are decided here:

* a supernet (a model with ``discretized``: DARTS, ENAS and every NAS method built on the
  same guide) is refused: its function is a mixture of every operation, not the network the
  search found; the retrain run's network is what gets deployed;
* masks (``NetworkWeights.masks``) become zeros in the weights. A unit mask
  (``{site: 0/1 per unit}``, the Grow-vs-Prune arms) zeroes the masked units' fan-in, BatchNorm
  entries and fan-out, so a masked unit contributes exactly nothing, as under the mask
  (``growray.sparse.UnitMasks.zero_inactive``); a weight mask keyed by a state-dict key, or
  by a layer's name (its ``weight``), multiplies that tensor (dynamic sparse training keeps
  inactive weights at zero already: folding its masks changes nothing).
"""

from __future__ import annotations

import torch
from torch import nn

import growray.nas  # noqa: F401  (registers cell_network: retrain runs rebuild without plug-ins loaded)
from growray.models import GrowableModel, build_model
from growray.sparse import UnitMasks

from .errors import ExportError
from .weights import NetworkWeights

__all__ = ["fold_masks", "is_supernet", "rebuild"]


def is_supernet(model: nn.Module) -> bool:
    """A NAS supernet (it derives a discrete network, ``discretized(genotype)``)."""
    return callable(getattr(model, "discretized", None))


def rebuild(weights: NetworkWeights, source: str) -> nn.Module:
    """The network, in eval mode, on the CPU.

    Args:
        weights: spec, state dict and masks.
        source: where they came from, for the messages (``run 0a1b...``).

    Raises:
        ExportError: the spec names no registered model, the network is a supernet, or the
            state dict does not fit the spec.
    """
    spec = weights.spec
    try:
        model = build_model(spec)
    except (KeyError, TypeError, ValueError) as exc:
        raise ExportError(
            f"{source}: cannot build its architecture (model {spec.kind!r}): {exc}; a plug-in's model needs "
            "its package installed here"
        ) from None
    if is_supernet(model):
        raise ExportError(
            f"{source} holds a {spec.kind!r} supernet, which is not deployable as such (its output mixes every "
            "candidate operation); export the run that retrained its genotype instead: the search run's tag "
            "growray.retrain_run_id names it, or create one with `growray retrain RUN_ID`"
        )
    try:
        model.load_state_dict(weights.state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise ExportError(
            f"{source}: the weights do not fit the architecture {spec.kind!r}: {' '.join(first[:3])[:600]}"
        ) from None
    fold_masks(model, weights.masks, source)
    return model.eval()


def fold_masks(model: nn.Module, masks: dict[str, torch.Tensor], source: str) -> None:
    """Write ``masks`` into ``model``'s weights (see the module docstring).

    Raises:
        ExportError: a mask names neither a width site nor a tensor of the model, or its
            shape does not fit.
    """
    if not masks:
        return
    growable = model if isinstance(model, GrowableModel) else None
    sites = growable.widths() if growable is not None else {}
    tensors = model.state_dict(keep_vars=True)
    units: dict[str, torch.Tensor] = {}
    for key, mask in masks.items():
        if key in sites:
            units[key] = mask
            continue
        target = tensors.get(key)
        if target is None or tuple(target.shape) != tuple(mask.shape):  # a layer's name: its weight's mask
            target = tensors.get(f"{key}.weight", target)
        if target is None or tuple(target.shape) != tuple(mask.shape):
            have = f"shape {tuple(target.shape)}" if target is not None else "no such site or tensor"
            raise ExportError(
                f"{source}: mask {key!r} of shape {tuple(mask.shape)} fits nothing in the network ({have}); "
                f"unit masks are keyed by site ({sorted(sites)}), weight masks by state-dict key or layer name"
            )
        with torch.no_grad():
            target.mul_(mask.to(device=target.device, dtype=target.dtype))
    if units and growable is not None:
        try:
            folded = UnitMasks(units).attach(growable)
        except ValueError as exc:
            raise ExportError(f"{source}: {exc}") from None
        folded.zero_inactive()
        folded.detach()
