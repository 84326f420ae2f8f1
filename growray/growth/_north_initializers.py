"""NORTH* initializers: ``north_select``, ``north_pre``, ``north_weight`` (see ``growray.growth.north``).

New units start with zero fan-out (growth preserves the function), fresh BatchNorm entries
(1, 0, 0, 1) and zero bias; their fan-in is chosen orthogonal to what the layer already
represents. Conv sites: a candidate filter is a vector of ``C_in * k * k`` values and
spatial positions count as samples.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from growray.checks import check_int, check_number
from growray.growth._north_triggers import flat_rows, is_conv_site, singular_values
from growray.growth.capture import SiteCapture, capture_site, units_matrix
from growray.growth.initializers import INITIALIZERS, Initializer, WidthProposal, _fresh_norm
from growray.growth.limits import SiteLimits
from growray.models.sites import GrowableModel, SiteModules

__all__ = [
    "NorthPreInitializer",
    "NorthSelectInitializer",
    "NorthWeightInitializer",
    "north_weight_compatible",
    "orthogonality_scores",
]


def _glorot(n: int, w: Tensor, n_out_units: int) -> Tensor:
    """``n`` Glorot-uniform fan-in rows shaped like ``w[0]`` (fan_out = units of the layer)."""
    receptive = math.prod(w.shape[2:]) if w.dim() > 2 else 1
    fan_in, fan_out = math.prod(w.shape[1:]), n_out_units * receptive
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    return torch.empty((n, *w.shape[1:]), dtype=w.dtype, device=w.device).uniform_(-bound, bound)


def _to_incumbent_norm(rows: Tensor, w: Tensor) -> Tensor:
    """``rows`` (n x ...) rescaled so each has the mean fan-in norm of the existing units of
    ``w`` (unchanged when the layer has no non-zero unit to take the norm from)."""
    target = flat_rows(w).norm(dim=1).mean().to(rows.dtype) if w.shape[0] else rows.new_zeros(())
    if not torch.isfinite(target) or target <= 0:
        return rows
    norms = rows.reshape(rows.shape[0], -1).norm(dim=1).clamp_min(1e-30)
    return rows * (target / norms).reshape(-1, *([1] * (rows.dim() - 1)))


def _zero_fan_out(mods: SiteModules, n: int) -> Tensor:
    """Zero consumer columns for ``n`` new units (a conv site flattened into a Linear owns
    ``spatial`` contiguous columns per unit)."""
    cw = mods.consumer.weight
    if cw.dim() == 2 and mods.spatial > 1:
        return torch.zeros((cw.shape[0], n * mods.spatial), dtype=cw.dtype, device=cw.device)
    return torch.zeros((cw.shape[0], n, *cw.shape[2:]), dtype=cw.dtype, device=cw.device)


def _proposal(mods: SiteModules, rows: Tensor) -> WidthProposal:
    w = mods.producer.weight
    n = rows.shape[0]
    bias = None if mods.producer.bias is None else torch.zeros(n, dtype=w.dtype, device=w.device)
    return WidthProposal(rows.to(w.dtype).detach(), bias, _zero_fan_out(mods, n), None, _fresh_norm(mods.norm, n, w))


def _candidate_post(mods: SiteModules, inputs: Tensor, rows: Tensor) -> Tensor:
    """Post-activations (candidates x samples, float64) the candidate fan-in ``rows`` would
    have as new units: bias 0, fresh BatchNorm in eval mode (x / sqrt(1 + eps)), then the
    site's act."""
    p = mods.producer
    rows = rows.to(inputs.dtype)
    if isinstance(p, nn.Conv2d):
        pre = F.conv2d(inputs, rows, None, p.stride, p.padding, p.dilation, p.groups)
    else:
        pre = inputs.reshape(inputs.shape[0], -1) @ rows.t()
    if mods.norm is not None:
        pre = pre.div_(math.sqrt(1.0 + float(mods.norm.eps)))  # a fresh tensor: in place is the same division
    post = mods.act(pre) if mods.act is not None else pre
    return _units_double(post)


def _units_double(t: Tensor) -> Tensor:
    """``units_matrix(t).double()``; a conv tensor is transposed and widened in one copy."""
    if t.dim() == 2:
        return units_matrix(t).double()
    out = torch.empty((t.shape[1], t.shape[0], math.prod(t.shape[2:])), dtype=torch.float64, device=t.device)
    out.copy_(t.reshape(t.shape[0], t.shape[1], -1).transpose(0, 1))
    return out.reshape(t.shape[1], -1)


def _span_basis(h: Tensor, epsilon: float) -> Tensor:
    """Orthonormal basis (n x r) of the sample-space directions of ``h`` (M x n) whose
    singular values of ``h / sqrt(n)`` exceed ``epsilon`` (the effective span)."""
    if h.numel() == 0:
        return h.new_zeros((h.shape[1], 0))
    _, basis = singular_values(h / math.sqrt(h.shape[1]), epsilon, with_basis=True)
    assert basis is not None  # with_basis
    return basis


def _greedy_explicit(cand: Tensor, basis: Tensor, k: int) -> list[int]:
    """``_greedy_orthogonal`` on the explicit C x n residual matrix."""
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


def _greedy_orthogonal(cand: Tensor, basis: Tensor, k: int) -> list[int]:
    """Greedily pick ``k`` rows of ``cand`` (C x n) with the largest residual norm after
    projecting onto ``basis`` (n x r), adding each pick's residual direction to the basis.

    The residual norms are tracked without the C x n residual matrix: ``||c - B p||^2 =
    ||c||^2 - 2 ||p||^2 + p^T B^T B p`` with ``p = B^T c``, then minus ``(resid @ q)^2`` for
    each pick's direction ``q``, which costs one product ``cand @ q``. Their rounding grows
    with ``||c||^2``, so a pick is taken only when its lead over the runner-up exceeds that
    bound on both sides, its residual is clearly on one side of the 1e-12 threshold and not
    tiny against its candidate (whose direction would then be inaccurate); otherwise every
    pick is redone on the explicit residuals (``_greedy_explicit``). The picks are those of
    the explicit computation either way.
    """
    n_pick = min(k, cand.shape[0])
    if n_pick == 0:
        return []
    # products in the orientation of cand's storage (a transposed view is samples x candidates)
    samples_major = cand.stride(0) == 1 and cand.stride(1) != 1
    store = cand.t() if samples_major else cand
    if samples_major:
        pt = basis.t() @ store  # p for every candidate: r x C
        c2 = torch.linalg.vecdot(store, store, dim=0)
    else:
        pt = (cand @ basis).t()
        c2 = torch.linalg.vector_norm(cand, dim=1).square()  # no C x n temporary
    sq = c2 - (pt * (2 * pt - (basis.t() @ basis) @ pt)).sum(0)
    if not bool(torch.isfinite(sq).all()):
        return _greedy_explicit(cand, basis, k)
    tol = (1e-10 + 16 * cand.shape[1] * torch.finfo(cand.dtype).eps) * c2
    qs: list[Tensor] = []
    ss: list[Tensor] = []
    chosen: list[int] = []
    avail = sq
    for _ in range(n_pick):
        i = int(torch.argmax(avail).item())
        lo, hi = float(avail[i] - tol[i]), float(avail[i] + tol[i])
        avail[i] = -math.inf
        if lo <= 1e-24 < hi or float((avail + tol).max()) >= lo or 1e-24 < lo < 1e-6 * float(c2[i]):
            return _greedy_explicit(cand, basis, k)
        chosen.append(i)
        if lo > 1e-24:
            r = cand[i] - basis @ pt[:, i]  # pick i's residual row, as the explicit matrix holds it
            for q_u, s_u in zip(qs, ss):
                r = r - s_u[i] * q_u
            q = r / torch.linalg.vector_norm(r)
            s = (q @ store if samples_major else cand @ q) - (basis.t() @ q) @ pt  # resid @ q, every candidate
            for q_u, s_u in zip(qs, ss):
                s = s - s_u * (q_u @ q)
            avail -= s.square()
            qs.append(q)
            ss.append(s)
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
    model: GrowableModel,
    mods: SiteModules,
    site: str,
    x: Tensor,
    candidates: Tensor,
    n_new: int,
    epsilon: float,
    cap: SiteCapture | None = None,
) -> Tensor:
    """Keep the ``n_new`` candidates (greedy) whose post-activations are most orthogonal to
    the site's current post-activations on ``x`` (``cap``: a capture of ``site`` on ``x``
    to reuse)."""
    if cap is None:
        cap = capture_site(model, site, x)
    current = _units_double(cap.post)
    cand = _candidate_post(mods, cap.inputs, candidates)
    keep = _greedy_orthogonal(cand, _span_basis(current, epsilon), n_new)
    return candidates[keep]


def _rng_states(device: torch.device) -> list[Tensor] | None:
    """The random-number states a forward on ``device`` can draw from (None: unknown device)."""
    if device.type == "cpu":
        return [torch.get_rng_state()]
    if device.type == "cuda":
        return [torch.get_rng_state(), torch.cuda.get_rng_state(device)]
    return None


def _same_states(a: list[Tensor] | None, b: list[Tensor] | None) -> bool:
    return a is not None and b is not None and all(torch.equal(u, v) for u, v in zip(a, b))


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

    def _draw(self, mods: SiteModules, n_new: int) -> Tensor:
        w = mods.producer.weight
        conv = is_conv_site(mods)
        n = max(n_new, self.n_candidates or (100 if conv else 1000))
        cand = _glorot(n, w, w.shape[0] + n_new)
        return cand if conv else _to_incumbent_norm(cand, w)

    def propose(
        self, model: GrowableModel, site: str, n_new: int, batch: tuple[Tensor, Tensor] | None = None
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
    (n x F) and ``G`` a standard normal mix, each rescaled to the mean fan-in norm of the
    existing units (the paper's newborn norm; the candidates' own scale is arbitrary). If the
    complement is empty (``n <= rank``), Select's candidates are used. Conv sites fall back
    to Select, as in the paper.

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
        self, model: GrowableModel, site: str, n_new: int, batch: tuple[Tensor, Tensor] | None = None
    ) -> WidthProposal:
        check_int("n_new", n_new, minimum=1)
        mods = model.site_modules(site)
        if is_conv_site(mods):
            return self._select.propose(model, site, n_new, batch)
        x = _need_batch("north_pre", batch)
        w = mods.producer.weight
        with torch.no_grad():
            before = _rng_states(x.device)
            cap = capture_site(model, site, x)
            # a forward that drew no random numbers is deterministic: Select reuses its capture
            reuse = cap if _same_states(before, _rng_states(x.device)) else None
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
                cand = _to_incumbent_norm(cand, w)  # as the paper rescales every NORTH newborn
            rows = _select(model, mods, site, x, cand, n_new, self.epsilon, reuse)
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
    space removed, rescaled to the mean fan-in norm of the existing units (the paper's
    newborn norm; a layer without a non-zero unit keeps the Glorot length); zero fan-out.

    New units are made one at a time and each is also orthogonal to the new ones before it
    while that leaves a free direction. Needs no data. Raises ValueError when the site's
    width is not below its fan-in (``north_weight_compatible`` gives the reason).
    """

    @property
    def preserves_function(self) -> bool:
        return True

    def incompatibility(self, model: GrowableModel, site: str) -> str | None:
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
        self, model: GrowableModel, site: str, n_new: int, batch: tuple[Tensor, Tensor] | None = None
    ) -> WidthProposal:
        check_int("n_new", n_new, minimum=1)
        reason = self.incompatibility(model, site)
        if reason:
            raise ValueError(f"site {site!r}: {reason}")
        mods = model.site_modules(site)
        w = mods.producer.weight
        rows = flat_rows(w).double()
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
            new = _to_incumbent_norm(torch.stack(out).reshape(n_new, *w.shape[1:]), w.double()).to(w.dtype)
        return _proposal(mods, new)
