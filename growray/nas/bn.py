"""BatchNorm recalibration for networks that inherit weights (a discretized supernet, an ENAS child).

The running statistics a supernet accumulated describe the mixture of all ops, not the
chosen ones; before evaluating the discrete network they are re-estimated on a few
training batches.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

__all__ = ["recalibrate_batchnorm"]


def _inputs(batch: object) -> torch.Tensor:
    if isinstance(batch, torch.Tensor):
        return batch
    if isinstance(batch, (tuple, list)) and batch and isinstance(batch[0], torch.Tensor):
        return batch[0]  # an (inputs, targets) pair
    raise TypeError(f"batches must yield input tensors or (inputs, targets) pairs; got {type(batch).__name__}")


def recalibrate_batchnorm(model: nn.Module, batches: Iterable[torch.Tensor]) -> None:
    """Re-estimate every BatchNorm's running mean/var as the plain average over ``batches``.

    Resets the running statistics, sets ``momentum=None`` (cumulative average), forwards
    the batches in training mode under ``no_grad``, then restores each BatchNorm's
    momentum and the model's train/eval mode (of every submodule). Weights are untouched.

    Args:
        model: any module; BatchNorm layers without running statistics are skipped.
        batches: input tensors, or ``(inputs, targets)`` pairs; at least one.

    Raises:
        ValueError: when ``batches`` is empty (the statistics would be left reset).
    """
    it = iter(batches)
    try:
        first = _inputs(next(it))
    except StopIteration:
        raise ValueError("recalibrate_batchnorm needs at least one batch; got an empty iterable") from None
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    modes = {m: m.training for m in model.modules()}
    momenta = {m: m.momentum for m in norms}
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        with torch.no_grad():
            model(first)
            for batch in it:
                model(_inputs(batch))
    finally:
        for m, momentum in momenta.items():
            m.momentum = momentum
        for m, mode in modes.items():
            m.training = mode
