"""BatchNorm statistics of networks that share or inherit weights (supernets, their children).

The running statistics a supernet accumulated describe the mixture of all ops (DARTS) or
of every architecture trained so far (ENAS), not the chosen one. Either evaluate with the
batch's own statistics (:func:`batch_statistics`), or re-estimate the running ones on a few
training batches before evaluating the discrete network (:func:`recalibrate_batchnorm`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
from torch import nn

__all__ = ["batch_statistics", "recalibrate_batchnorm"]


@contextmanager
def batch_statistics(model: nn.Module) -> Iterator[None]:
    """Every BatchNorm of ``model`` normalises with the batch's own statistics, buffers untouched.

    A BatchNorm in training mode that does not track running statistics normalises with the
    batch's mean and (biased) variance and neither reads nor updates ``running_mean``,
    ``running_var`` or ``num_batches_tracked``; each one's ``training`` and
    ``track_running_stats`` are restored on exit. Nothing else changes mode.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.track_running_stats) for m in norms]
    try:
        for m in norms:
            m.training, m.track_running_stats = True, False
        yield
    finally:
        for m, (training, tracking) in zip(norms, saved):
            m.training, m.track_running_stats = training, tracking


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
    momenta = {bn: bn.momentum for bn in norms}
    try:
        for bn in norms:
            bn.reset_running_stats()
            bn.momentum = None
        model.train()
        with torch.no_grad():
            model(first)
            for batch in it:
                model(_inputs(batch))
    finally:
        for bn, momentum in momenta.items():
            bn.momentum = momentum
        for m, mode in modes.items():
            m.training = mode
