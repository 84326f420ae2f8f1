"""NORTH* triggers: ``north_act`` and ``north_weight`` (see ``growray.growth.north``).

Effective dimension of an ``M x n`` matrix ``H`` (units x samples):
``phi = (1/M) * #{sigma in SVD(H / sqrt(n)) : sigma > epsilon}``. A trigger requests
``count - floor(gamma * phi0 * M)`` units when positive. ``phi0`` is measured at
initialisation (``Trigger.start``, called by the growth hook before the first optimizer
step, as the authors' code does with ``svdinit``); dense sites keep it, conv sites keep a
running max of ``phi`` updated after each comparison. A site that ``start`` could not
measure (no call, or too few samples) takes ``phi0`` from its first check instead.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from growray.checks import check_int, check_number
from growray.growth.capture import capture_site, capture_sites, units_matrix
from growray.growth.limits import SiteLimits
from growray.growth.triggers import TRIGGERS, GrowthRequest, Trigger, TriggerContext
from growray.models.sites import GrowableModel, SiteModules

__all__ = [
    "NorthActTrigger",
    "NorthWeightTrigger",
    "effective_dimension",
    "effective_rank",
    "fan_in_matrix",
    "flat_rows",
    "is_conv_site",
    "singular_values",
]

_TOL = 1e-9  # floor() guard against 0.97 * 100 = 97.00000000000001


_GRAM_ASPECT = 4  # the Gram route needs the long side >= 4 x the short one (else the SVD is as cheap)
_GRAM_RANGE = 1e-8  # ... and epsilon^2 >= 1e-8 * sigma_max^2, so float64 eigenvalues resolve epsilon


def singular_values(h: Tensor, epsilon: float, with_basis: bool = False) -> tuple[Tensor, Tensor | None]:
    """Singular values of ``h`` (``(M, n)``, float64), descending, and with ``with_basis`` an
    orthonormal basis ``(n, r)`` of the right singular vectors whose values exceed ``epsilon``.

    A wide or tall matrix (conv activations: ``M`` channels x ``N*H*W`` positions) goes
    through the eigendecomposition of its small Gram matrix instead of an SVD: the same
    values up to float64 rounding (an eigenvalue error of ~1e-16 * sigma_max^2, far below
    ``epsilon^2`` under the ``_GRAM_RANGE`` condition, which otherwise sends it to the SVD).
    """
    m, n = h.shape
    if min(m, n) > 0 and max(m, n) >= _GRAM_ASPECT * min(m, n):
        wide = m <= n
        gram = h @ h.t() if wide else h.t() @ h
        if with_basis:
            lam, vec = torch.linalg.eigh(gram)
            lam, vec = lam.flip(0), vec.flip(1)
        else:
            lam, vec = torch.linalg.eigvalsh(gram).flip(0), None
        lam = lam.clamp_min(0)
        if float(lam[0]) * _GRAM_RANGE <= epsilon**2:
            sigma = lam.sqrt()
            if vec is None:
                return sigma, None
            keep = sigma > epsilon
            return sigma, (h.t() @ vec[:, keep]) / sigma[keep] if wide else vec[:, keep]
    if with_basis:
        _, s, vh = torch.linalg.svd(h, full_matrices=False)
        return s, vh[s > epsilon].t()
    return torch.linalg.svdvals(h), None


def effective_rank(h: Tensor, epsilon: float = 0.01) -> int:
    """``#{sigma in SVD(h / sqrt(n)) : sigma > epsilon}`` for ``h`` of shape ``(M, n)``."""
    if h.dim() != 2 or h.shape[1] == 0:
        raise ValueError(f"effective_rank needs a 2-D (units x samples) matrix with samples; got {tuple(h.shape)}")
    sigma, _ = singular_values(h.detach().double() / math.sqrt(h.shape[1]), epsilon)
    return int((sigma > epsilon).sum().item())


def effective_dimension(h: Tensor, epsilon: float = 0.01) -> float:
    """NORTH's ``phi^ED``: ``effective_rank(h, epsilon) / M`` for ``h`` of shape ``(M, n)``."""
    return effective_rank(h, epsilon) / h.shape[0]


def flat_rows(w: Tensor) -> Tensor:
    """Producer weight -> one fan-in vector per unit: ``(M, F)`` / ``(M, C_in*k*k)``."""
    return w.detach().reshape(w.shape[0], -1)


def fan_in_matrix(mods: SiteModules) -> Tensor:
    """The NORTH-weight matrix of a site: one row per unit, its fan-in weights followed by
    its bias (``(M, F + 1)``; ``(M, F)`` when the producer has no bias)."""
    w = flat_rows(mods.producer.weight)
    bias = mods.producer.bias
    return w if bias is None else torch.cat([w, bias.detach().reshape(-1, 1).to(w.dtype)], dim=1)


def is_conv_site(mods: SiteModules) -> bool:
    """True when the site's producer is a convolution (its weight has kernel dimensions)."""
    return mods.producer.weight.dim() > 2


class _NorthTrigger(Trigger):
    """Shared NORTH trigger logic; subclasses measure ``(count, M, n)`` of one site."""

    kind = ""

    def __init__(self, check_every: int, gamma: float, epsilon: float, max_units_per_event: int | None):
        self.check_every = check_int("check_every", check_every, minimum=1)
        self.gamma = check_number("gamma", gamma, low=0, high=1, low_open=True)
        self.epsilon = check_number("epsilon", epsilon, low=0, low_open=True)
        self.max_units_per_event = check_int("max_units_per_event", max_units_per_event, minimum=1, optional=True)
        self.baseline: dict[str, float] = {}  # phi0 (dense) or running max of phi (conv)

    def _measure(self, model: GrowableModel, ctx: TriggerContext, site: str) -> tuple[int, int, bool] | None:
        """``(count, width, conv)`` of ``site`` of ``model`` (``ctx.model``), or None to skip it now."""
        raise NotImplementedError

    def _measure_all(self, model: GrowableModel, ctx: TriggerContext) -> dict[str, tuple[int, int, bool] | None]:
        was_training = model.training
        model.eval()  # deterministic (no dropout draws) and no BatchNorm statistics updates
        try:
            return {site: self._measure(model, ctx, site) for site in ctx.widths}
        finally:
            model.train(was_training)

    def start(self, ctx: TriggerContext) -> None:
        """``phi0`` of every site at initialisation (the paper's ``phi(f_0, l)``)."""
        if ctx.model is None:
            return
        for site, m in self._measure_all(ctx.model, ctx).items():
            if m is not None and site not in self.baseline:
                self.baseline[site] = m[0] / m[1]

    def check(self, ctx: TriggerContext) -> list[GrowthRequest]:
        if ctx.phase != "step" or ctx.step <= 0 or ctx.step % self.check_every or ctx.model is None:
            return []
        measured = self._measure_all(ctx.model, ctx)
        requests = []
        for site, m in measured.items():
            if m is None:
                continue
            count, width, conv = m
            phi = count / width
            if site not in self.baseline:
                self.baseline[site] = phi
            thr = math.floor(self.gamma * self.baseline[site] * width + _TOL)
            if conv:  # running max, updated after the comparison (reference code)
                self.baseline[site] = max(self.baseline[site], phi)
            n_units = count - thr
            if n_units <= 0:
                continue
            if self.max_units_per_event is not None:
                n_units = min(n_units, self.max_units_per_event)
            reason = (
                f"{self.kind}: {count} singular values > {self.epsilon:g} exceed "
                f"floor(gamma={self.gamma:g} * phi0 * {width}) = {thr}"
            )
            requests.append(GrowthRequest(site, int(n_units), float(phi), reason))
        return requests

    def state_dict(self) -> dict[str, Any]:
        return {"baseline": dict(self.baseline)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if set(state) != {"baseline"} or not isinstance(state["baseline"], dict):
            raise ValueError(f"{type(self).__name__} state needs the key 'baseline' (a dict); got {sorted(state)}")
        self.baseline = {str(k): float(v) for k, v in state["baseline"].items()}


@TRIGGERS.register("north_act")
class NorthActTrigger(_NorthTrigger):
    """NORTH-act: grow when the effective dimension of a site's post-activations rises.

    Every ``check_every`` optimizer steps (phase "step"), for each site: ``H`` = the
    post-activations on ``ctx.batch`` (recent training samples; eval mode), ``M`` units x
    ``n`` samples (conv: positions count as samples); ``count`` = #singular values of
    ``H/sqrt(n)`` above ``epsilon``; ``thr = floor(gamma * phi0 * M)``; request
    ``count - thr`` units when positive (at most ``max_units_per_event``). A site is
    skipped while ``ctx.batch`` is None or ``n <= M`` (NORTH needs more samples than units).

    Args:
        check_every: evaluate every this many optimizer steps; >= 1.
        gamma: fraction of the baseline that must be exceeded, in (0, 1].
        epsilon: singular-value threshold, > 0.
        max_units_per_event: cap on one request; null for no cap.
    """

    kind = "north_act"

    def __init__(
        self, check_every: int = 200, gamma: float = 0.97, epsilon: float = 0.01, max_units_per_event: int | None = None
    ):
        super().__init__(check_every, gamma, epsilon, max_units_per_event)

    def _measure(self, model: GrowableModel, ctx: TriggerContext, site: str) -> tuple[int, int, bool] | None:
        if ctx.batch is None:
            return None
        return self._from_post(capture_site(model, site, ctx.batch[0]).post)

    def _from_post(self, post: Tensor) -> tuple[int, int, bool] | None:
        h = units_matrix(post)
        if h.shape[1] <= h.shape[0]:
            return None
        return effective_rank(h, self.epsilon), h.shape[0], post.dim() > 2

    def _measure_all(self, model: GrowableModel, ctx: TriggerContext) -> dict[str, tuple[int, int, bool] | None]:
        """Every site from one forward (``capture_sites``), in eval mode."""
        if ctx.batch is None:
            return {site: None for site in ctx.widths}
        was_training = model.training
        model.eval()
        try:
            caps = capture_sites(model, list(ctx.widths), ctx.batch[0])
        finally:
            model.train(was_training)
        return {site: self._from_post(cap.post) for site, cap in caps.items()}

    def check_site(self, model: GrowableModel, site: str, limits: SiteLimits) -> str | None:
        """Validate-time check: dense sites need more buffered samples than units (n > M)."""
        if isinstance(model.site_modules(site).producer, nn.Conv2d):
            return None  # positions count as samples
        max_width, buffer_size = limits.max_width, limits.buffer_size
        if max_width is None or max_width >= buffer_size:
            return (
                f"north_act measures {buffer_size} buffered samples and needs more samples than units; "
                f"set growth.max_width < growth.buffer_size (now {max_width} and {buffer_size})"
            )
        return None


@TRIGGERS.register("north_weight")
class NorthWeightTrigger(_NorthTrigger):
    """NORTH-weight: the NORTH-act rule on each site's fan-in matrix.

    ``count`` = #singular values above ``epsilon`` of ``W / sqrt(F)``, ``W`` the ``M x F``
    matrix of the units' fan-in vectors with the bias as its last column
    (``fan_in_matrix``; conv: ``C_in*k*k`` weights + bias), ``F`` its number of columns.
    Needs no data: a site is skipped while ``F <= M`` (the analogue of NORTH's ``n > M``).

    Args:
        check_every: evaluate every this many optimizer steps; >= 1.
        gamma: fraction of the baseline that must be exceeded, in (0, 1].
        epsilon: singular-value threshold, > 0.
        max_units_per_event: cap on one request; null for no cap.
    """

    kind = "north_weight"

    def __init__(
        self, check_every: int = 200, gamma: float = 0.99, epsilon: float = 0.01, max_units_per_event: int | None = None
    ):
        super().__init__(check_every, gamma, epsilon, max_units_per_event)

    def _measure(self, model: GrowableModel, ctx: TriggerContext, site: str) -> tuple[int, int, bool] | None:
        mods = model.site_modules(site)
        w = fan_in_matrix(mods)
        if w.shape[1] <= w.shape[0]:
            return None
        return effective_rank(w, self.epsilon), w.shape[0], is_conv_site(mods)
