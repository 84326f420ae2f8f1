"""SENN's natural expansion score (Mitchell et al., arXiv 2307.04526), pure torch.

Notation for one dense consumer layer ``z = W a`` (``a`` its input with a bias column):

- ``A = E[a a^T]`` over the layer inputs, ``S = E[g_hat g_hat^T]`` over the normalised
  pre-activation gradients, ``dW = E[g a^T]``.
- ``eta = Tr[S^-1 dW A^-1 dW^T]``: the natural-gradient length of the layer under the
  Kronecker-factored Fisher ``S (x) A``.
- A candidate new input ``a_p`` (a new unit of the layer below, zero fan-out) has the lower
  bound ``d_eta' = Tr[S^-1 E[g_r a_p^T] A_p^-1 E[a_p g_r^T]]`` on its exact gain, where
  ``g_r = g - dW A^-1 a`` is the gradient the existing inputs cannot explain. The exact gain
  uses the Schur complement ``A_p - E[a_p a^T] A^-1 E[a a_p^T] <= A_p`` instead of ``A_p``,
  hence the bound.

**Scaling (documented choice).** ``g_n = dl_n/dz_n`` is the per-sample gradient of sample
n's own loss (``N`` times the gradient of the batch-mean loss), so ``dW`` is the gradient of
the mean loss. ``S`` is built from ``g_hat_n = g_n / ||dl_n/dy_n||`` (``y`` the logits): each
sample's output gradient is normalised to unit length, as the reference code's Fisher under
a Euclidean output metric does. ``eta`` and ``d_eta'`` then have the units of a squared
output gradient and are compared with ``grad_sq = E_n ||dl_n/dy_n||^2`` (SENN's absolute
test ``d_eta' / ||g_y||^2 > alpha``); their ratio ``d_eta' / eta`` is SENN's relative test.

**Damping.** Tikhonov, relative to the matrix scale: ``M + tikhonov * mean(diag M) * I`` for
``S``, ``A`` and ``A_p`` (a fixed fraction of the average eigenvalue, so it does not depend on
the units of activations or gradients). The bound holds with this damping: with ``A`` and
``A_p`` damped blockwise the damped Schur complement is still below the damped ``A_p``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "LayerStats",
    "ReluSlope",
    "candidate_gain",
    "damp",
    "layer_stats",
    "optimize_proposals",
    "sample_winner",
    "with_bias_column",
]

_TINY = 1e-30


def damp(m: Tensor, tikhonov: float) -> Tensor:
    """``m + tikhonov * mean(diag m) * I`` (a tiny floor keeps an all-zero ``m`` invertible)."""
    n = m.shape[0]
    lam = tikhonov * float(torch.diagonal(m).mean().clamp_min(0)) + _TINY
    return m + lam * torch.eye(n, dtype=m.dtype, device=m.device)


def with_bias_column(a: Tensor) -> Tensor:
    """``(N, F)`` -> ``(N, F + 1)`` with a trailing column of ones."""
    return torch.cat([a, torch.ones(a.shape[0], 1, dtype=a.dtype, device=a.device)], dim=1)


@dataclass
class LayerStats:
    """What every candidate of one consumer layer reuses.

    Attributes:
        s_inv: ``(C, C)`` inverse of the damped ``S``.
        residual: ``(N, C)`` residual gradients ``g_r``.
        eta: the layer's natural expansion score ``eta_l``.
        grad_sq: ``E_n ||dl_n/dy_n||^2``, the squared output-gradient norm of the absolute test.
    """

    s_inv: Tensor
    residual: Tensor
    eta: float
    grad_sq: float


def layer_stats(a: Tensor, g: Tensor, g_hat: Tensor, grad_sq: float, tikhonov: float = 0.1) -> LayerStats:
    """K-FAC statistics of a dense layer.

    Args:
        a: ``(N, D)`` layer inputs, bias column included (``with_bias_column``).
        g: ``(N, C)`` per-sample pre-activation gradients ``dl_n/dz_n``.
        g_hat: ``(N, C)`` the same gradients with each sample's output gradient normalised
            (see the module docstring); ``S = E[g_hat g_hat^T]``.
        grad_sq: ``E_n ||dl_n/dy_n||^2``.
        tikhonov: relative damping (>= 0).
    """
    a, g, g_hat = a.double(), g.double(), g_hat.double()
    n = a.shape[0]
    a_mat = damp(a.t() @ a / n, tikhonov)
    s_inv = torch.linalg.inv(damp(g_hat.t() @ g_hat / n, tikhonov))
    dw = g.t() @ a / n  # (C, D)
    coef = torch.linalg.solve(a_mat, dw.t())  # A^-1 dW^T, (D, C)
    eta = float(torch.sum((s_inv @ dw) * coef.t()))
    residual = g - a @ coef
    return LayerStats(s_inv=s_inv, residual=residual, eta=eta, grad_sq=float(grad_sq))


def candidate_gain(a_p: Tensor, stats: LayerStats, tikhonov: float = 0.1) -> Tensor:
    """Lower bound ``d_eta'`` for each single-unit candidate.

    Args:
        a_p: ``(P, N)`` candidate activations, one row per proposal.
        stats: from ``layer_stats`` on the same N samples.
        tikhonov: relative damping of the scalar ``A_p = E[a_p^2]``.

    Returns:
        ``(P,)`` gains (differentiable with respect to ``a_p``).
    """
    r = stats.residual.to(a_p.dtype)
    n = a_p.shape[1]
    m = a_p @ r / n  # (P, C): E[a_p g_r^T]
    a_sq = (a_p * a_p).mean(dim=1) * (1.0 + tikhonov) + _TINY
    quad = ((m @ stats.s_inv.to(a_p.dtype)) * m).sum(dim=1)
    return quad / a_sq


class ReluSlope:
    """The derivative of ``relu(z * scale)``: ``scale`` where ``z > 0``, else 0 (``scale > 0``).

    ``chain(grad, z)`` is ``grad * self(z)`` in one pass (ReLU's backward: zero where
    ``z <= 0``, then times ``scale``): the product's values (up to the sign of a zero), without the
    three passes that build the slope. ``optimize_proposals`` uses it for ReLU sites.
    """

    def __init__(self, scale: float = 1.0):
        self.scale = float(scale)

    def __call__(self, z: Tensor) -> Tensor:
        if self.scale == 1.0:
            return torch.sign(torch.relu(z))
        return torch.sign(torch.relu((z * self.scale).to(torch.float64))) * self.scale

    def chain(self, grad: Tensor, z: Tensor) -> Tensor:
        out = torch.ops.aten.threshold_backward(grad, z, 0)
        return out if self.scale == 1.0 else out.mul_(self.scale)


def _gains_and_ascent(
    v: Tensor,
    feats: Tensor,
    activation: Callable[[Tensor], Tensor],
    stats: LayerStats,
    tikhonov: float,
    with_grad: bool,
    slope_of: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor | None]:
    """``candidate_gain(activation(v @ feats.T))`` per row of ``v`` and, with ``with_grad``,
    its gradient with respect to ``v``, in closed form (what autograd of ``candidate_gain``
    gives, up to the order of floating-point operations; one forward, no graph over the
    matmuls). The activation must be elementwise; its slope is ``slope_of(z)`` (a
    ``ReluSlope`` is applied with ``chain``, without building the slope), or from autograd on
    the activation alone when ``slope_of`` is None."""
    z = v @ feats.t()  # (P, N)
    slope: Tensor | None = None
    if with_grad and isinstance(slope_of, ReluSlope):
        a = activation(z)  # the slope is applied in the backward (ReluSlope.chain)
    elif with_grad and slope_of is not None:
        a, slope = activation(z), slope_of(z)
    elif with_grad:
        with torch.enable_grad():
            zz = z.detach().requires_grad_(True)
            a = activation(zz)
            (slope,) = torch.autograd.grad(a, zz, torch.ones_like(a))
        a = a.detach()
    else:
        a = activation(z)
    r = stats.residual.to(a.dtype)
    s_inv = stats.s_inv.to(a.dtype)
    n = a.shape[1]
    m = a @ r / n  # (P, C): E[a_p g_r^T]
    ms = m @ s_inv
    quad = (ms * m).sum(dim=1)
    a_sq = (a * a).mean(dim=1) * (1.0 + tikhonov) + _TINY
    gains = quad / a_sq
    if not with_grad:
        return gains, None
    # d gain / d a = (d quad / d m) r^T / (n a_sq) - quad / a_sq^2 * 2 (1 + tikhonov) a / n
    grad_m = ms + m @ s_inv.t()
    grad_a = (grad_m @ r.t()) / (n * a_sq)[:, None] - (quad / (a_sq * a_sq) * (2.0 * (1.0 + tikhonov) / n))[:, None] * a
    if isinstance(slope_of, ReluSlope):
        grad_z = slope_of.chain(grad_a, z)
    else:
        assert slope is not None
        grad_z = grad_a * slope
    return gains, grad_z @ feats


def optimize_proposals(
    features: Tensor,
    activation: Callable[[Tensor], Tensor],
    stats: LayerStats,
    *,
    n_proposals: int = 100,
    n_steps: int = 10,
    step_size: float = 0.3,
    tikhonov: float = 0.1,
    generator: torch.Generator | None = None,
    slope: Callable[[Tensor], Tensor] | None = None,
) -> tuple[Tensor, Tensor]:
    """Random fan-ins improved by a few steps of gradient ascent on ``d_eta'``.

    A proposal is a fan-in ``u`` over ``features`` (``(N, F)``, bias column included); its
    activations are ``activation(features @ u)`` (``activation`` elementwise). Starts:
    ``N(0, 1/F)`` entries. Each step moves every proposal by ``step * ||u||`` along its
    normalised gradient (a scale-free step); a step that does not raise that proposal's gain
    is undone and its step divided by 3 (per proposal; starts at ``step_size``).

    Each step evaluates the trial fan-ins once: their gains and (except in the last step)
    their closed-form gradients, kept for the proposals that move (a proposal that stays
    keeps its gain and gradient). ``slope`` (optional) is the activation's derivative,
    elementwise; without it the derivative comes from autograd.

    Returns:
        ``(fan_ins (P, F), gains (P,))``, both detached, in float64.
    """
    feats = features.detach().double()
    f = feats.shape[1]
    u = torch.randn(n_proposals, f, generator=generator, dtype=torch.float64) / math.sqrt(f)
    u = u.to(feats.device)
    step = torch.full((n_proposals,), float(step_size), dtype=torch.float64, device=feats.device)
    with torch.no_grad():
        gains, grad = _gains_and_ascent(u, feats, activation, stats, tikhonov, n_steps > 0, slope)
        for i in range(n_steps):
            assert grad is not None  # computed for every step but the last
            direction = grad / grad.norm(dim=1, keepdim=True).clamp_min(_TINY)
            trial = u + (step * u.norm(dim=1))[:, None] * direction
            last = i + 1 == n_steps
            t_gains, t_grad = _gains_and_ascent(trial, feats, activation, stats, tikhonov, not last, slope)
            better = t_gains > gains
            u = torch.where(better[:, None], trial, u)
            gains = torch.where(better, t_gains, gains)
            step = torch.where(better, step, step / 3.0)
            if t_grad is not None:
                grad = torch.where(better[:, None], t_grad, grad)
    return u.detach(), gains.detach()


def sample_winner(gains: Tensor, temperature: float, generator: torch.Generator | None = None) -> int:
    """Index drawn from ``softmax(temperature * gains / max(gains))``.

    Our reading of the reference's "softmax with temperature 10": the gains are first divided
    by the best one (they carry the units of a squared gradient), then multiplied by
    ``temperature``: a proposal at 90% of the best is ``e^-1`` times as likely with 10.
    ``temperature = inf`` picks the argmax.
    """
    g = gains.detach().double().clamp_min(0)
    best = float(g.max())
    if best <= 0 or math.isinf(temperature):
        return int(torch.argmax(g))
    probs = torch.softmax(temperature * g / best, dim=0)
    return int(torch.multinomial(probs.cpu(), 1, generator=generator))
