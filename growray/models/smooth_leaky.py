"""Randomized Smooth-Leaky, the activation intervention of the structural-plasticity study.

Lillo & Cheney (arXiv 2509.22562, "Activation function design sustains plasticity in
continual learning") define Smooth-Leaky as

    f(x) = a x + (1 - a) x sigmoid(c x / p),

a leaky ReLU whose kink at 0 is replaced by a sigmoid gate (c and p set the steepness and
width of the transition; f ~ a x for x << 0 and ~ x for x >> 0), and the randomized
variant draws the leak a ~ U(l, u) during training, using the mean (l + u) / 2 in
evaluation. Their structural-plasticity paper (arXiv 2605.15435, ALGORITHMS.md §7) uses it
with c = 3, p = 5 and bounds (0.125, 0.333); we take those as the defaults. What we
implemented where the sources are not explicit:

* the leak is drawn per element and per forward pass, like ``torch.nn.RReLU`` (whose
  default bounds are exactly 1/8 and 1/3), and is not differentiated;
* eval mode uses the fixed leak (l + u) / 2, so evaluation is deterministic;
* the slope at 0 is a + (1 - a)/2 > 0 and the slope never falls below a > 0, so units
  with zero fan-in still learn (unlike ReLU, see the GradMax pitfall in §3).

Registered as the activation ``smooth_leaky`` when this module is imported.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from growray.checks import check_number
from growray.models.activations import ACTIVATIONS

__all__ = ["RandSmoothLeaky", "smooth_leaky"]


def smooth_leaky(x: Tensor, leak: Tensor | float, c: float = 3.0, p: float = 5.0) -> Tensor:
    """a x + (1 - a) x sigmoid(c x / p) with a = ``leak`` (a number or a tensor broadcast to ``x``)."""
    return leak * x + (1 - leak) * x * torch.sigmoid(x * (c / p))


@ACTIVATIONS.register(
    "smooth_leaky", description="randomized smooth leaky: a x + (1-a) x sigmoid(c x / p), a ~ U(l, u)"
)
class RandSmoothLeaky(nn.Module):
    """Randomized Smooth-Leaky (module docstring).

    Args:
        lower: smallest leak l, in [0, 1).
        upper: largest leak u, in [lower, 1); ``lower == upper`` is the plain Smooth-Leaky.
        c: steepness of the gate, > 0.
        p: width of the gate, > 0.
    """

    def __init__(self, lower: float = 0.125, upper: float = 1.0 / 3.0, c: float = 3.0, p: float = 5.0):
        super().__init__()
        self.lower = check_number("lower", lower, low=0, high=1, high_open=True)
        self.upper = check_number("upper", upper, low=0, high=1, high_open=True)
        if self.upper < self.lower:
            raise ValueError(f"upper ({upper}) must not be below lower ({lower})")
        self.c = check_number("c", c, low=0, low_open=True)
        self.p = check_number("p", p, low=0, low_open=True)

    def forward(self, x: Tensor) -> Tensor:
        leak: Tensor | float
        if self.training and self.upper > self.lower:
            leak = torch.empty_like(x).uniform_(self.lower, self.upper)
        else:
            leak = (self.lower + self.upper) / 2
        return smooth_leaky(x, leak, self.c, self.p)

    def extra_repr(self) -> str:
        return f"lower={self.lower}, upper={self.upper:.4g}, c={self.c}, p={self.p}"
