"""Hooks extend the one training loop (growth, later pruning and NAS, are hooks)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from .trainer import Trainer

__all__ = ["Hook"]


class Hook:
    """Base class: override the callbacks you need. ``name`` keys the hook's checkpoint state."""

    name: str = "hook"

    def on_fit_start(self, trainer: Trainer) -> None:
        """Called once before the first step (also after a restore)."""

    def on_batch_start(self, trainer: Trainer, xb: torch.Tensor, yb: torch.Tensor) -> None:
        """Called before each training forward with the batch about to be used (a DARTS
        architecture step, an ENAS architecture sample)."""

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        """Called after every optimizer step."""

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        """Called after validation; may add entries to ``metrics`` before they are logged."""

    def on_checkpoint(self, trainer: Trainer) -> None:
        """Called before each epoch's report (Tune may end the trial there): keep small
        artifacts current here, so a trial stopped by a scheduler still has them."""

    def on_fit_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        """Called after the final evaluation; log artifacts here."""

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
