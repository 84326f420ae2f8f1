"""Mixed precision and memory format for the one trainer (``trainer.amp``, ``trainer.channels_last``).

* ``amp: bf16``: forward passes under ``torch.autocast(device, bfloat16)`` (CPU and CUDA); the
  weights, their gradients and the optimizer stay float32; losses are computed on float32 logits.
* ``amp: fp16``: the same with float16 and a gradient scaler (``torch.amp.GradScaler``), CUDA only.
* ``channels_last``: the model and every 4-d image batch in ``torch.channels_last`` memory format
  (faster convolutions on recent GPUs); values are unchanged.

With ``amp: none`` and ``channels_last: false`` (the defaults) nothing here changes a single
operation of the loop: the trainer's numbers are bit-identical to a trainer without this module.
Also here: the losses the trainer adds to the cross-entropy (an auxiliary head's, DARTS'
retraining recipe) and the epoch progress a model may want (a drop-path ramp).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["Precision", "epoch_progress", "training_loss"]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


class Precision:
    """Autocast, gradient scaling and memory format of one trainer.

    Args:
        amp: ``none``, ``bf16`` or ``fp16``.
        device: the trial's device (fp16 needs CUDA).
        channels_last: channels-last model and image batches.
    """

    def __init__(self, amp: str = "none", device: torch.device | str = "cpu", channels_last: bool = False):
        if amp not in ("none", *_DTYPES):
            raise ValueError(f"trainer.amp must be one of none, bf16, fp16; got {amp!r}")
        self.device = torch.device(device)
        if amp == "fp16" and self.device.type != "cuda":
            raise ValueError(
                f"trainer.amp: fp16 needs a CUDA device (this trial runs on {self.device.type}); use bf16 or none"
            )
        self.amp = amp
        self.dtype = _DTYPES.get(amp)
        self.channels_last = bool(channels_last)
        self.scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None

    @property
    def active(self) -> bool:
        return self.dtype is not None or self.channels_last

    @contextlib.contextmanager
    def autocast(self) -> Iterator[None]:
        """Forward passes inside run in the configured precision (nothing changes with ``none``)."""
        if self.dtype is None:
            yield
            return
        with torch.autocast(self.device.type, dtype=self.dtype):
            yield

    def prepare_model(self, model: nn.Module) -> nn.Module:
        """``model`` in channels-last format (in place) when configured."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def batch(self, x: torch.Tensor) -> torch.Tensor:
        """An image batch in channels-last format when configured; anything else unchanged."""
        if self.channels_last and x.dim() == 4:
            return x.contiguous(memory_format=torch.channels_last)
        return x

    def step(
        self,
        loss: torch.Tensor,
        optimizer: torch.optim.Optimizer,
        max_norm: float | None = None,
        params: Callable[[], list[nn.Parameter]] = list,
    ) -> None:
        """Backward, gradient-norm clipping of ``params()`` to ``max_norm`` (on unscaled
        gradients; none when None), optimizer step."""

        def clip() -> None:
            if max_norm is not None:
                nn.utils.clip_grad_norm_(params(), max_norm)

        if self.scaler is None:
            loss.backward()
            clip()
            optimizer.step()
            return
        self.scaler.scale(loss).backward()
        self.scaler.unscale_(optimizer)
        clip()
        self.scaler.step(optimizer)
        self.scaler.update()

    def state_dict(self) -> dict[str, Any]:
        """The gradient scaler's state (JSON types), empty without one."""
        return {} if self.scaler is None else {k: v for k, v in self.scaler.state_dict().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)


def training_loss(model: nn.Module, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on float32 logits, plus ``weight * cross-entropy`` of an auxiliary head when
    the model has one (``auxiliary_output()`` returning ``(logits, weight)``, e.g. a
    ``cell_network`` with ``auxiliary_weight``)."""
    loss = F.cross_entropy(logits.float(), targets)
    aux = getattr(model, "auxiliary_output", None)
    out = aux() if callable(aux) else None
    if out is not None:
        aux_logits, weight = out
        loss = loss + weight * F.cross_entropy(aux_logits.float(), targets)
    return loss


def epoch_progress(model: nn.Module, epoch: int, epochs: int) -> None:
    """Tell a model that schedules something over training (``set_epoch_progress``) where it is."""
    fn = getattr(model, "set_epoch_progress", None)
    if callable(fn):
        fn(epoch / max(epochs, 1))
