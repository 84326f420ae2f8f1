"""Newborn diagnostics: are new units integrated, or "forward-active but backward-starved"?

Following the structural-plasticity study (ALGORITHMS.md §7), per unit j on one batch:
``act(j)`` = fraction of post-activations above ``tau`` (samples and positions), and
``grad(j)`` = mean |dL/dz_j| at its pre-activation. Log-parity compares the newborn cohort
with the incumbents: log(mean_new + eps) - log(mean_old + eps); 0 means parity, strongly
negative grad parity means the newborns receive almost no learning signal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from growray.growth.capture import capture_site, units_matrix
from growray.models.sites import GrowableModel

__all__ = ["NewbornParity", "log_parity", "log_ratio", "newborn_parity", "unit_act_grad"]

_EPS = 1e-12


@dataclass(frozen=True)
class NewbornParity:
    site: str
    act: float
    grad: float


def log_ratio(per_unit: Tensor, new: Tensor, old: Tensor) -> float:
    """log(mean over units ``new`` + eps) - log(mean over units ``old`` + eps); an empty
    cohort counts as mean 0."""
    a = float(per_unit[new].mean()) if len(new) else 0.0
    b = float(per_unit[old].mean()) if len(old) else 0.0
    return math.log(a + _EPS) - math.log(b + _EPS)


def log_parity(per_unit: Tensor, start: int, end: int) -> float:
    """log(mean over units [start, end) / mean over units [0, start)) (``log_ratio`` of the ranges)."""
    return log_ratio(per_unit, torch.arange(start, max(start, end)), torch.arange(start))


def unit_act_grad(
    model: GrowableModel, site: str, batch: tuple[Tensor, Tensor], tau: float = 0.05
) -> tuple[Tensor, Tensor]:
    """Per unit of ``site`` on ``batch``, in the model's current mode: ``act(j)`` (fraction of
    post-activations above ``tau``) and ``grad(j)`` (mean |dL/dz_j|). The model is left untouched."""
    cap = capture_site(model, site, batch[0], batch[1], with_grad=True)
    pre_grad, _, _ = cap.gradients()
    act = (units_matrix(cap.post) > tau).float().mean(dim=1)
    grad = units_matrix(pre_grad).abs().mean(dim=1)
    return act, grad


def newborn_parity(
    model: GrowableModel, site: str, start: int, end: int, batch: tuple[Tensor, Tensor], tau: float = 0.05
) -> NewbornParity:
    """Activation and gradient log-parity of units ``[start, end)`` against units ``[0, start)``.

    Uses one forward/backward on ``batch`` in the model's current mode; the model (weights,
    ``.grad``, BatchNorm statistics) is left untouched.
    """
    act, grad = unit_act_grad(model, site, batch, tau)
    return NewbornParity(site, log_parity(act, start, end), log_parity(grad, start, end))
