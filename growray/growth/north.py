"""NORTH* neurogenesis (Maile et al., AutoML-Conf 2022): grow a layer when the effective
dimension of its activations (or fan-in weights) rises above a baseline, and start new
units orthogonal to what the layer already represents, with zero fan-out.

Effective dimension of an ``M x n`` matrix ``H`` (units x samples):
``phi = (1/M) * #{sigma in SVD(H / sqrt(n)) : sigma > epsilon}``.

Triggers (``north_act``, ``north_weight``) compare the count with ``floor(gamma * phi0 * M)``
and add the difference: the corrected NORTH formula ``max(0, ...)``, as the authors' code
does (the paper prints ``min``). Placing the floor on the threshold (code) rather than on
``M * (phi - gamma * phi0)`` matters for narrow layers: with the latter a full-rank layer of
fewer than ``1 / (1 - gamma)`` units could never grow. Dense sites keep ``phi0`` from the first evaluation; conv
sites keep a running max of ``phi`` (late conv layers start near 0), updated after the
comparison, as in the reference code.

Initializers (``north_select``, ``north_pre``, ``north_weight``) set the new fan-out to 0, so
growth preserves the function; new BatchNorm entries are fresh (1, 0, 0, 1) and biases 0.
Conv sites are supported: a candidate filter is a vector of ``C_in * k * k`` values and
spatial positions count as samples.

Deviations from the reference code, on purpose: Select keeps the *most* orthogonal
candidates (the code's dense path keeps the least: a probable bug); Pre's orthogonal
complement starts at the rank of the pre-activations (the code starts one column early).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from growray.checks import check_int, check_number
from growray.growth.capture import capture_site, units_matrix
from growray.growth.initializers import (
    INITIALIZERS,
    Initializer,
    WidthProposal,
    _fresh_norm,
)
from growray.growth.limits import SiteLimits
from growray.growth.triggers import TRIGGERS, GrowthRequest, Trigger, TriggerContext
from growray.models.sites import GrowableModel

__all__ = [
    "NorthActTrigger",
    "NorthPreInitializer",
    "NorthSelectInitializer",
    "NorthWeightInitializer",
    "NorthWeightTrigger",
    "effective_dimension",
    "effective_rank",
    "north_weight_compatible",
]

_TOL = 1e-9  # floor() guard against 0.97 * 100 = 97.00000000000001


def effective_rank(h: Tensor, epsilon: float = 0.01) -> int:
    """``#{sigma in SVD(h / sqrt(n)) : sigma > epsilon}`` for ``h`` of shape ``(M, n)``."""
    if h.dim() != 2 or h.shape[1] == 0:
        raise ValueError(f"effective_rank needs a 2-D (units x samples) matrix with samples; got {tuple(h.shape)}")
    sigma = torch.linalg.svdvals(h.detach().double() / math.sqrt(h.shape[1]))
    return int((sigma > epsilon).sum().item())


def effective_dimension(h: Tensor, epsilon: float = 0.01) -> float:
    """NORTH's ``phi^ED``: ``effective_rank(h, epsilon) / M`` for ``h`` of shape ``(M, n)``."""
    return effective_rank(h, epsilon) / h.shape[0]


def _flat_rows(w: Tensor) -> Tensor:
    """Producer weight -> one fan-in vector per unit: ``(M, F)`` / ``(M, C_in*k*k)``."""
    return w.detach().reshape(w.shape[0], -1)


def _is_conv(mods: Any) -> bool:
    return mods.producer.weight.dim() > 2


# --------------------------------------------------------------------------- triggers


class _NorthTrigger(Trigger):
    """Shared NORTH trigger logic; subclasses measure ``(count, M, n)`` of one site."""

    kind = ""

    def __init__(self, check_every: int, gamma: float, epsilon: float, max_units_per_event: int | None):
        self.check_every = check_int("check_every", check_every, minimum=1)
        self.gamma = check_number("gamma", gamma, low=0, high=1, low_open=True)
        self.epsilon = check_number("epsilon", epsilon, low=0, low_open=True)
        self.max_units_per_event = check_int("max_units_per_event", max_units_per_event, minimum=1, optional=True)
        self.baseline: dict[str, float] = {}  # phi0 (dense) or running max of phi (conv)

    def _measure(self, ctx: TriggerContext, site: str) -> tuple[int, int, bool] | None:
        """``(count, width, conv)`` or None to skip this site now."""
        raise NotImplementedError

    def check(self, ctx: TriggerContext) -> list[GrowthRequest]:
        if ctx.phase != "step" or ctx.step <= 0 or ctx.step % self.check_every or ctx.model is None:
            return []
        model = ctx.model
        was_training = model.training
        model.eval()  # deterministic (no dropout draws) and no BatchNorm statistics updates
        try:
            measured = {site: self._measure(ctx, site) for site in ctx.widths}
        finally:
            model.train(was_training)
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

    def _measure(self, ctx: TriggerContext, site: str) -> tuple[int, int, bool] | None:
        if ctx.batch is None:
            return None
        cap = capture_site(ctx.model, site, ctx.batch[0])
        h = units_matrix(cap.post)
        if h.shape[1] <= h.shape[0]:
            return None
        return effective_rank(h, self.epsilon), h.shape[0], cap.post.dim() > 2

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
    matrix of the units' fan-in vectors (conv: ``F = C_in*k*k``). Needs no data: a site is
    skipped while ``F <= M`` (the analogue of NORTH's ``n > M``), not on ``ctx.batch``.

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

    def _measure(self, ctx: TriggerContext, site: str) -> tuple[int, int, bool] | None:
        mods = ctx.model.site_modules(site)
        w = _flat_rows(mods.producer.weight)
        if w.shape[1] <= w.shape[0]:
            return None
        return effective_rank(w, self.epsilon), w.shape[0], _is_conv(mods)


# --------------------------------------------------------------------------- initializers


def _glorot(n: int, w: Tensor, n_out_units: int) -> Tensor:
    """``n`` Glorot-uniform fan-in rows shaped like ``w[0]`` (fan_out = units of the layer)."""
    receptive = math.prod(w.shape[2:]) if w.dim() > 2 else 1
    fan_in, fan_out = math.prod(w.shape[1:]), n_out_units * receptive
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return torch.empty((n, *w.shape[1:]), dtype=w.dtype, device=w.device).uniform_(-bound, bound)


def _zero_fan_out(mods: Any, n: int) -> Tensor:
    """Zero consumer columns for ``n`` new units (a conv site flattened into a Linear owns
    ``spatial`` contiguous columns per unit)."""
    cw = mods.consumer.weight
    if cw.dim() == 2 and mods.spatial > 1:
        return torch.zeros((cw.shape[0], n * mods.spatial), dtype=cw.dtype, device=cw.device)
    return torch.zeros((cw.shape[0], n, *cw.shape[2:]), dtype=cw.dtype, device=cw.device)


def _proposal(mods: Any, rows: Tensor) -> WidthProposal:
    w = mods.producer.weight
    n = rows.shape[0]
    bias = None if mods.producer.bias is None else torch.zeros(n, dtype=w.dtype, device=w.device)
    return WidthProposal(rows.to(w.dtype).detach(), bias, _zero_fan_out(mods, n), None, _fresh_norm(mods.norm, n, w))


def _candidate_post(mods: Any, inputs: Tensor, rows: Tensor) -> Tensor:
    """Post-activations (candidates x samples) the candidate fan-in ``rows`` would have as new
    units: bias 0, fresh BatchNorm in eval mode (x / sqrt(1 + eps)), then the site's act."""
    p = mods.producer
    rows = rows.to(inputs.dtype)
    if rows.dim() > 2:
        pre = F.conv2d(inputs, rows, None, p.stride, p.padding, p.dilation, p.groups)
    else:
        pre = inputs.reshape(inputs.shape[0], -1) @ rows.t()
    if mods.norm is not None:
        pre = pre / math.sqrt(1.0 + float(getattr(mods.norm, "eps", 0.0)))
    post = mods.act(pre) if mods.act is not None else pre
    return units_matrix(post)


def _span_basis(h: Tensor, epsilon: float) -> Tensor:
    """Orthonormal basis (n x r) of the sample-space directions of ``h`` (M x n) whose
    singular values of ``h / sqrt(n)`` exceed ``epsilon`` (the effective span)."""
    if h.numel() == 0:
        return h.new_zeros((h.shape[1], 0))
    _, s, vh = torch.linalg.svd(h / math.sqrt(h.shape[1]), full_matrices=False)
    return vh[s > epsilon].t()


def _greedy_orthogonal(cand: Tensor, basis: Tensor, k: int) -> list[int]:
    """Greedily pick ``k`` rows of ``cand`` (C x n) with the largest residual norm after
    projecting onto ``basis`` (n x r), adding each pick's residual direction to the basis."""
    resid = cand - (cand @ basis) @ basis.t()
    chosen: list[int] = []
    for _ in range(min(k, cand.shape[0])):
        norms = resid.norm(dim=1)
        if chosen:
            norms[chosen] = -1.0
        i = int(torch.argmax(norms).item())
        chosen.append(i)
        if norms[i] > 1e-12:
            q = resid[i] / norms[i]
            resid = resid - torch.outer(resid @ q, q)
    return chosen


def orthogonality_scores(cand: Tensor, current: Tensor, epsilon: float = 0.01) -> Tensor:
    """Residual norm / sqrt(n) of each candidate activation row (C x n) after projecting it
    onto the effective span of the current activations (M x n): the size of the new
    singular direction it would add. Higher is more orthogonal."""
    basis = _span_basis(current.double(), epsilon)
    cand = cand.double()
    return (cand - (cand @ basis) @ basis.t()).norm(dim=1) / math.sqrt(cand.shape[1])


def _need_batch(name: str, batch: tuple[Tensor, Tensor] | None) -> Tensor:
    if batch is None:
        raise ValueError(
            f"{name} scores candidates on recent training samples and got batch=None; "
            "use it with a growth buffer (growth.buffer_size >= 1)"
        )
    return batch[0]


def _select(
    model: nn.Module, mods: Any, site: str, x: Tensor, candidates: Tensor, n_new: int, epsilon: float
) -> Tensor:
    """Keep the ``n_new`` candidates (greedy) whose post-activations are most orthogonal to
    the site's current post-activations on ``x``."""
    cap = capture_site(model, site, x)
    current = units_matrix(cap.post).double()
    cand = _candidate_post(mods, cap.inputs, candidates).double()
    keep = _greedy_orthogonal(cand, _span_basis(current, epsilon), n_new)
    return candidates[keep]


@INITIALIZERS.register("north_select")
class NorthSelectInitializer(Initializer):
    """NORTH-Select: the most orthogonal of many random fan-ins, zero fan-out.

    Draws ``n_candidates`` Glorot-uniform fan-in vectors (dense ones rescaled to the mean
    fan-in norm of the existing units), computes the post-activations each would have on the
    batch (recent training samples) and keeps ``n_new`` of them greedily: each pick has the
    largest residual after projecting onto the span of the current activations (singular
    directions above ``epsilon``) and the picks before it. The reference code's dense path
    keeps the *least* orthogonal candidates; we treat that as a bug.

    Args:
        n_candidates: candidates drawn per event; null: 1000 (dense) / 100 (conv). Always at
            least ``n_new``.
        epsilon: singular-value threshold defining the current activations' span, > 0.
    """

    def __init__(self, n_candidates: int | None = None, epsilon: float = 0.01):
        self.n_candidates = check_int("n_candidates", n_candidates, minimum=1, optional=True)
        self.epsilon = check_number("epsilon", epsilon, low=0, low_open=True)

    @property
    def preserves_function(self) -> bool:
        return True

    def _draw(self, mods: Any, n_new: int) -> Tensor:
        w = mods.producer.weight
        conv = _is_conv(mods)
        n = max(n_new, self.n_candidates or (100 if conv else 1000))
        cand = _glorot(n, w, w.shape[0] + n_new)
        if not conv:
            target = _flat_rows(w).norm(dim=1).mean()
            norms = cand.norm(dim=1, keepdim=True)
            if target > 0:
                cand = cand * (target / norms.clamp_min(1e-12))
        return cand

    def propose(
        self, model: nn.Module, site: str, n_new: int, batch: tuple[Tensor, Tensor] | None = None
    ) -> WidthProposal:
        check_int("n_new", n_new, minimum=1)
        x = _need_batch("north_select", batch)
        mods = model.site_modules(site)
        with torch.no_grad():
            rows = _select(model, mods, site, x, self._draw(mods, n_new), n_new, self.epsilon)
        return _proposal(mods, rows)


@INITIALIZERS.register("north_pre")
class NorthPreInitializer(Initializer):
    """NORTH-Pre: fan-ins whose pre-activations lie in the orthogonal complement of the
    current pre-activations, then Select on post-activations; zero fan-out.

    Dense sites: SVD of the current pre-activations ``P`` (M x n, over the batch); ``B`` =
    the sample-space directions beyond ``rank(P)`` (the reference slice starts one column
    early: fixed); candidate fan-ins ``pinv(X) @ B @ G`` with ``X`` the producer's inputs
    (n x F) and ``G`` a standard normal mix. If the complement is empty (``n <= rank``),
    Glorot candidates are used. Conv sites fall back to Select, as in the paper.

    Args:
        n_candidates: candidates per event; null: 1000 (dense) / 100 (conv Select).
        epsilon: singular-value threshold for the Select step, > 0.
    """

    def __init__(self, n_candidates: int | None = None, epsilon: float = 0.01):
        self._select = NorthSelectInitializer(n_candidates, epsilon)
        self.n_candidates, self.epsilon = n_candidates, self._select.epsilon

    @property
    def preserves_function(self) -> bool:
        return True

    def propose(
        self, model: nn.Module, site: str, n_new: int, batch: tuple[Tensor, Tensor] | None = None
    ) -> WidthProposal:
        check_int("n_new", n_new, minimum=1)
        mods = model.site_modules(site)
        if _is_conv(mods):
            return self._select.propose(model, site, n_new, batch)
        x = _need_batch("north_pre", batch)
        w = mods.producer.weight
        with torch.no_grad():
            cap = capture_site(model, site, x)
            inputs = cap.inputs.reshape(cap.inputs.shape[0], -1).double()
            pre = units_matrix(cap.pre).double()  # M x n
            _, s, vh = torch.linalg.svd(pre, full_matrices=True)
            rank = int((s > s.max() * max(pre.shape) * torch.finfo(s.dtype).eps).sum()) if s.numel() else 0
            complement = vh[rank:].t()  # n x (n - rank)
            n_cand = max(n_new, self.n_candidates or 1000)
            if complement.shape[1] == 0:
                cand = self._select._draw(mods, n_new)
            else:
                mix = torch.randn(complement.shape[1], n_cand, dtype=torch.float64).to(w.device)
                cand = (torch.linalg.pinv(inputs) @ complement @ mix).t().to(w.dtype)  # n_cand x F
            rows = _select(model, mods, site, x, cand, n_new, self.epsilon)
        return _proposal(mods, rows)


def north_weight_compatible(width: int, fan_in: int) -> str | None:
    """None when NORTH-weight initialisation can run at a site, else the reason: the new
    fan-in must leave the row space of the existing ``width x fan_in`` matrix, so
    ``width < fan_in`` is required."""
    if width < fan_in:
        return None
    return (
        f"north_weight needs fewer units than fan-in features (width < fan_in) to find a direction "
        f"orthogonal to the existing fan-ins; got width={width}, fan_in={fan_in}. Use a cap "
        f"max_width <= {fan_in - 1} or another initializer (north_select)"
    )


@INITIALIZERS.register("north_weight")
class NorthWeightInitializer(Initializer):
    """NORTH-Weight: Glorot fan-ins with their projection onto the existing fan-ins' row
    space removed, renormalised to the Glorot vector's length; zero fan-out.

    New units are made one at a time and each is also orthogonal to the new ones before it
    while that leaves a free direction. Needs no data. Raises ValueError when the site's
    width is not below its fan-in (``north_weight_compatible`` gives the reason).
    """

    @property
    def preserves_function(self) -> bool:
        return True

    def incompatibility(self, model: nn.Module, site: str) -> str | None:
        """Why this initializer cannot grow ``site`` of ``model`` now, or None."""
        w = model.site_modules(site).producer.weight
        return north_weight_compatible(int(w.shape[0]), math.prod(w.shape[1:]))

    def check_site(self, model: GrowableModel, site: str, limits: SiteLimits) -> str | None:
        """Validate-time check (``growray validate``): can growth under the cap ever fail here?

        Each event needs width < fan-in; growth up to ``limits.max_width`` keeps that only
        when ``max_width <= fan-in``.
        """
        max_width = limits.max_width
        w = model.site_modules(site).producer.weight
        fan_in = math.prod(w.shape[1:])
        if int(w.shape[0]) >= fan_in:
            return north_weight_compatible(int(w.shape[0]), fan_in)
        if max_width is None or max_width > fan_in:
            return (
                f"north_weight needs width < fan-in, and this site's fan-in is {fan_in}; "
                f"set growth.max_width <= {fan_in} (now {max_width}) or choose another initializer"
            )
        return None

    def propose(
        self, model: nn.Module, site: str, n_new: int, batch: tuple[Tensor, Tensor] | None = None
    ) -> WidthProposal:
        check_int("n_new", n_new, minimum=1)
        reason = self.incompatibility(model, site)
        if reason:
            raise ValueError(f"site {site!r}: {reason}")
        mods = model.site_modules(site)
        w = mods.producer.weight
        rows = _flat_rows(w).double()
        with torch.no_grad():
            _, s, vh = torch.linalg.svd(rows, full_matrices=False)
            tol = (s.max() * max(rows.shape) * torch.finfo(s.dtype).eps) if s.numel() else 0.0
            basis = vh[s > tol].t()  # F x r
            glorot = _glorot(n_new, w, w.shape[0] + n_new).reshape(n_new, -1).double()
            out = []
            for g in glorot:
                r = g - basis @ (basis.t() @ g)
                r = r * (g.norm() / r.norm().clamp_min(1e-30))
                out.append(r)
                if basis.shape[1] + 1 < rows.shape[1]:
                    q = r - basis @ (basis.t() @ r)
                    basis = torch.cat([basis, (q / q.norm().clamp_min(1e-30))[:, None]], dim=1)
            new = torch.stack(out).reshape(n_new, *w.shape[1:]).to(w.dtype)
        return _proposal(mods, new)
