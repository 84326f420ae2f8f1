"""The one evaluation: mean cross-entropy and accuracy of a model on tensors, in eval mode.

The trainer's ``val/*`` and ``test/*`` metrics, the discretized networks of a NAS search and
a winning ticket are all measured with this function, so their numbers are comparable.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .precision import Precision

__all__ = ["evaluate"]


@torch.no_grad()
def evaluate(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024, *, precision: Precision | None = None
) -> tuple[float, float]:
    """``(mean loss, accuracy)`` of ``model`` on ``(x, y)`` in eval mode, in batches of
    ``batch_size``; the model's train/eval mode is restored afterwards. Empty data gives (0, 0).
    ``precision``: the trainer's autocast and memory format (``trainer.amp``, ``channels_last``);
    the loss is computed on float32 logits."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    try:
        for i in range(0, len(x), batch_size):
            if precision is None:
                logits = model(x[i : i + batch_size])
            else:
                with precision.autocast():
                    logits = model(precision.batch(x[i : i + batch_size])).float()
            total_loss += F.cross_entropy(logits, y[i : i + batch_size], reduction="sum").item()
            correct += int((logits.argmax(1) == y[i : i + batch_size]).sum().item())
    finally:
        model.train(was_training)
    n = max(len(x), 1)
    return total_loss / n, correct / n
