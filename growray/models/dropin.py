"""DropInGate: the Gradual DropIn mixing of an inserted block with its input (pure torch)."""

from __future__ import annotations

import torch
from torch import nn

from growray.checks import check_int

__all__ = ["DropInGate"]


class DropInGate(nn.Module):
    """Gradual DropIn mixing of a block's output with its input (Smith et al. 2016).

    ``y = (1 - m) * x + m * z`` where ``x`` is the block's input, ``z`` its output and ``m`` a
    Bernoulli mask per sample and unit (per channel for feature maps, broadcast over H, W)
    with P(m = 1) = ``value()``. In eval mode the expectation ``(1 - g) * x + g * z`` is used.
    At ``g = 0`` the output is exactly ``x``; at ``g = 1`` exactly ``z``.

    The state is two integer buffers (so it is checkpointed with ``state_dict`` and kept by
    ``.to(dtype)``): ``progress`` and ``steps``; ``g = progress / steps``, or 1 (open) when
    ``steps`` is 0. A gate built from a spec starts open (a network rebuilt from its spec
    alone has nothing to preserve); ``load_state_dict`` restores a ramping gate.
    """

    progress: torch.Tensor
    steps: torch.Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("progress", torch.zeros((), dtype=torch.long))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))

    def start(self, steps: int) -> None:
        """Close the gate (value 0); ``advance`` opens it linearly over ``steps`` calls."""
        self.progress.fill_(0)
        self.steps.fill_(check_int("steps", steps, minimum=1))

    def advance(self) -> None:
        """One optimizer step: ``progress += 1``, never beyond ``steps`` (no host sync)."""
        self.progress.add_(1).clamp_(max=self.steps)

    def value(self) -> torch.Tensor:
        """The gate g in [0, 1] as a 0-d float tensor: P(use the new block)."""
        steps = self.steps.to(torch.float32)
        return torch.where(steps > 0, self.progress.to(torch.float32) / steps.clamp(min=1.0), torch.ones_like(steps))

    def is_open(self) -> bool:
        """True once the gate has reached 1 (syncs with the device)."""
        return bool(self.progress >= self.steps)

    def forward(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        if x.shape != z.shape:
            raise ValueError(
                f"a DropIn block needs its input and output to have the same shape; got {tuple(x.shape)} -> {tuple(z.shape)}"
            )
        g = self.value().to(z.dtype)
        if not self.training:
            return (1 - g) * x + g * z
        probs = g.expand(z.shape[:2] + (1,) * (z.dim() - 2))
        m = torch.bernoulli(probs)
        return (1 - m) * x + m * z
