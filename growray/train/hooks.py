"""Hooks extend the one training loop: growth, Grow-vs-Prune, DARTS and ENAS are hooks.

A hook *returns* the metrics it adds (``on_epoch_end``, ``on_fit_end``); it never edits
another hook's or the trainer's. The trainer merges them and refuses a key that is
already taken (:class:`MetricConflictError`), so no hook can silently replace ``val/acc``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .trainer import Trainer

__all__ = ["Hook", "MetricConflictError", "merge_metrics"]


class MetricConflictError(ValueError):
    """A hook returned a metric that the trainer or another hook already reports."""


def merge_metrics(metrics: dict[str, float], added: Mapping[str, float], owner: str) -> None:
    """Add ``added`` (reported by ``owner``) to ``metrics`` in place; a key already there is an error."""
    taken = sorted(set(added) & set(metrics))
    if taken:
        raise MetricConflictError(
            f"hook {owner!r} reports {taken}, which the trainer or another hook already reports this epoch; "
            "a hook reports only its own metrics (under its own prefix)"
        )
    metrics.update({k: float(v) for k, v in added.items()})


class Hook:
    """Base class: override the callbacks you need. ``name`` keys the hook's checkpoint state."""

    name: str = "hook"

    def on_fit_start(self, trainer: Trainer) -> None:
        """Called once before the first step (also after a restore)."""

    def loss_penalty(self, trainer: Trainer) -> torch.Tensor | None:
        """A term added to each batch's training loss, after the forward pass (a regulariser
        such as EWC's); None adds nothing."""
        return None

    def on_batch_start(self, trainer: Trainer, xb: torch.Tensor, yb: torch.Tensor) -> None:
        """Called before each training forward with the batch about to be used (a DARTS
        architecture step, an ENAS architecture sample)."""

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        """Called after every optimizer step."""

    def before_validation(self, trainer: Trainer) -> None:
        """Called at the end of each epoch's training, before the trainer evaluates on the
        validation split: put the model in the state to be evaluated (ENAS sets its derived cell)."""

    def on_epoch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> dict[str, float]:
        """Called after validation with the epoch's metrics so far (read-only); returns the
        metrics this hook adds (logged and reported with the epoch's)."""
        return {}

    def on_checkpoint(self, trainer: Trainer) -> None:
        """Called before each epoch's report (Tune may end the trial there): keep small
        artifacts current here, so a trial stopped by a scheduler still has them."""

    def on_fit_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> dict[str, float]:
        """Called after the final evaluation; log artifacts here. Returns final metrics
        this hook adds (a winning ticket's accuracy); it may run again and must then
        return the same values without redoing the work."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """JSON-serialisable state saved in every checkpoint."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""

    def tensor_state(self) -> dict[str, Any]:
        """Tensor state (masks, an architecture optimizer, a controller) saved in the checkpoint's
        ``state.pt`` and loaded with ``weights_only=True``: tensors, numbers, strings, and
        dicts/lists of those."""
        return {}

    def load_tensor_state(self, state: dict[str, Any]) -> None:
        """Restore what ``tensor_state`` returned."""
