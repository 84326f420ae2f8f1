"""GradMax (Evci et al., ICLR 2022) and the NORTH* gradient trigger T_grad.

Both rest on the *auxiliary gradient* of a site: the gradient of the loss with respect to a
zero layer that connects the producer's input h_{l-1} directly to the consumer's output
z_{l+1}. With a new unit of zero fan-in whose activation has slope 1 at birth, the gradient
of its fan-in w_in is ``M^T w_out``; ``auxiliary_gradient`` builds M (rows: the consumer
side of one unit, columns: the producer side of one unit).

Layer pairs (flattened "grow matrix", as in the reference's conv path):

- Linear -> Linear: ``M = sum_n delta_n h_n^T`` (delta = dL/dz_{l+1} of the mean loss).
- Conv2d -> Conv2d: the composition of the two convolutions is the auxiliary conv with
  kernel k1+k2-1; M is its gradient unfolded to ``(C_out*k2h*k2w) x (C_in*k1h*k1w)``:
  ``M = sum_{n,p} D[n,:,p] P[n,:,p]^T`` with P the producer's input patches (``unfold``) and
  D the consumer's output gradient scattered back to producer-output positions; computed
  in one pass as the consumer's weight gradient with P as its input
  (``torch.nn.grad.conv2d_weight``). Exact for stride, padding and dilation.
- Conv2d -> Linear through a flatten (``spatial`` = S columns per channel):
  ``M[(c, p), :] = sum_n delta[n, c] P[n, :, p]``, i.e. every spatial column of the new
  channel is a separate consumer input.
- Pooling between the activation and the consumer (output size differs from the producer's):
  the patches are average-pooled to the consumer's input grid, the exact linearisation
  of average pooling and a documented approximation for max pooling.
- Unsupported pairs (grouped convs, a spatial size that cannot be matched) raise
  ``NotImplementedError``; callers fall back as they document.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.grad import conv2d_weight

from growray.checks import check_int, check_number
from growray.growth.capture import SiteCapture, capture_site, capture_sites
from growray.growth.initializers import INITIALIZERS, Initializer, WidthProposal, _fresh_norm
from growray.growth.triggers import TRIGGERS, GrowthRequest, Trigger, TriggerContext
from growray.models.sites import GrowableModel

__all__ = [
    "AuxiliaryGradient",
    "GradMaxInitializer",
    "GradientTrigger",
    "auxiliary_gradient",
    "columns_to_fan_out",
    "existing_fan_out_columns",
    "kinked_at_zero",
]

# Activations whose torch gradient at exactly 0 is 0 (or ~0): zero-fan-in units die there.
_KINKED = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.Hardtanh)


def kinked_at_zero(act: nn.Module | None) -> bool:
    """True when ``act``'s autograd slope at 0 is not its right-hand slope (ReLU family)."""
    return isinstance(act, _KINKED)


@dataclass
class AuxiliaryGradient:
    """The grow matrix of one site on one batch.

    Attributes:
        matrix: ``(D_out, D_in)``: D_out = one unit's consumer entries (C_out, C_out*S or
            C_out*k2h*k2w), D_in = one unit's fan-in entries (F_in or C_in*k1h*k1w).
        capture: the site capture (with gradients) it was computed from.
    """

    matrix: Tensor
    capture: SiteCapture


def existing_fan_out_columns(consumer_weight: Tensor, spatial: int = 1) -> Tensor:
    """The consumer weights of each existing unit, ``(W, D_out)``, ordered like M's rows."""
    cw = consumer_weight.detach()
    if cw.dim() == 4:  # conv consumer (C_out, W, kh, kw)
        return cw.transpose(0, 1).reshape(cw.shape[1], -1)
    c_out = cw.shape[0]
    width = cw.shape[1] // spatial
    return cw.reshape(c_out, width, spatial).permute(1, 0, 2).reshape(width, c_out * spatial)


def columns_to_fan_out(cols: Tensor, consumer_weight: Tensor, spatial: int = 1) -> Tensor:
    """Inverse of ``existing_fan_out_columns`` for ``n`` new units: ``(n, D_out)`` to the
    ``fan_out`` tensor of a ``WidthProposal``."""
    cw = consumer_weight
    n = cols.shape[0]
    if cw.dim() == 4:
        return cols.reshape(n, cw.shape[0], *cw.shape[2:]).transpose(0, 1).contiguous()
    return cols.reshape(n, cw.shape[0], spatial).permute(1, 0, 2).reshape(cw.shape[0], n * spatial).contiguous()


def _conv_padding(conv: nn.Conv2d) -> tuple[int, int]:
    if isinstance(conv.padding, str):
        if conv.padding == "valid":
            return (0, 0)
        pad = [(conv.dilation[i] * (conv.kernel_size[i] - 1)) // 2 for i in range(2)]  # 'same'
    else:
        pad = [int(p) for p in conv.padding]
    return pad[0], pad[1]


def _producer_patches(producer: nn.Module, inputs: Tensor, pre: Tensor) -> Tensor:
    """``(N, D_in, H1, W1)`` patches of the producer's input (``(N, F_in, 1, 1)`` for Linear)."""
    if isinstance(producer, nn.Linear):
        return inputs.reshape(inputs.shape[0], -1, 1, 1)
    if isinstance(producer, nn.Conv2d) and producer.groups == 1:
        p = F.unfold(inputs, producer.kernel_size, producer.dilation, _conv_padding(producer), producer.stride)
        return p.reshape(inputs.shape[0], p.shape[1], *pre.shape[2:])
    raise NotImplementedError(f"auxiliary gradient: unsupported producer {producer!r}")


def _flatten_grid(site: str, spatial: int, hw: tuple[int, int]) -> tuple[int, int]:
    """The grid of the ``spatial`` consumer columns per channel that a producer output of size
    ``hw`` is pooled to (itself, one global cell, or a square grid)."""
    h1, w1 = hw
    if spatial == h1 * w1:
        return (h1, w1)
    if spatial == 1:
        return (1, 1)
    if math.isqrt(spatial) ** 2 == spatial:
        return (math.isqrt(spatial), math.isqrt(spatial))
    raise NotImplementedError(f"site {site!r}: cannot map {h1}x{w1} positions onto {spatial} consumer columns")


def _conv_flatten_matrix(
    producer: nn.Conv2d, inputs: Tensor, pre: Tensor, delta: Tensor, grid: tuple[int, int], center: bool
) -> Tensor:
    """M of a conv producer feeding a Linear consumer through a flatten, ``(C * S, D_in)``:
    ``M[(c, p), :] = sum_n delta[n, c] pool(P_n)[:, p]`` (P_n sample n's input patches,
    ``pool`` the average pooling to ``grid``, both after centring when ``center``).

    Unfolding and average pooling are linear, so the sample sum is taken first: ``T_c = sum_n
    delta[n, c] h_n`` is one ``(C x N) @ (N x C_in*H*W)`` product, and only the C maps ``T_c``
    are unfolded and pooled, not every sample's patches (at N = 256 on the benchmark CNN's last
    conv site that was about 40% of a GradMax event). The values are the per-sample formula's up to
    float rounding (pinned in the tests). Centring subtracts the patches' mean over samples and
    positions, ``mu``, from every patch: ``M[(c, p), :] -= (sum_n delta[n, c]) mu``.
    """
    n, c = delta.shape
    h1, w1 = int(pre.shape[2]), int(pre.shape[3])
    args = (producer.kernel_size, producer.dilation, _conv_padding(producer), producer.stride)
    maps = (delta.t() @ inputs.reshape(n, -1)).reshape(c, *inputs.shape[1:])  # (C, C_in, H, W)
    patches = F.unfold(maps, *args).reshape(c, -1, h1, w1)  # (C, D_in, H1, W1)
    if grid != (h1, w1):
        patches = F.adaptive_avg_pool2d(patches, grid)
    m = patches.reshape(c, patches.shape[1], -1).transpose(1, 2)  # (C, S, D_in)
    if center:
        mu = F.unfold(inputs.mean(dim=0, keepdim=True), *args).mean(dim=2)  # (1, D_in)
        m = m - delta.sum(dim=0)[:, None, None] * mu[None]
    return m.reshape(-1, m.shape[2])


def auxiliary_gradient(
    model: GrowableModel,
    site: str,
    batch: tuple[Tensor, Tensor],
    *,
    center: bool = False,
    capture: SiteCapture | None = None,
) -> AuxiliaryGradient:
    """The auxiliary (grow) gradient M of ``site`` on ``batch`` (mean cross-entropy), in
    the model's current mode; the model is left unchanged (see module docstring).

    With ``center`` the producer-side patches are centred over samples (and positions), as
    a train-mode BatchNorm centres a new unit's pre-activation: M is then the direction of
    a zero-fan-in unit's gradient behind a BatchNorm in train mode. ``capture`` (with
    gradients, of ``site`` on ``batch``, e.g. from ``capture_sites``) saves the capture pass.
    """
    x, y = batch
    mods = model.site_modules(site)
    cap = capture if capture is not None else capture_site(model, site, x, y, with_grad=True)
    consumer = mods.consumer
    _, _, delta = cap.gradients()
    producer = mods.producer
    if isinstance(consumer, nn.Linear) and isinstance(producer, nn.Conv2d) and producer.groups == 1:
        grid = _flatten_grid(site, mods.spatial, (int(cap.pre.shape[2]), int(cap.pre.shape[3])))
        return AuxiliaryGradient(_conv_flatten_matrix(producer, cap.inputs, cap.pre, delta, grid, center), cap)
    patches = _producer_patches(producer, cap.inputs, cap.pre)  # (N, D_in, H1, W1)
    if center:
        mean = patches.mean(dim=(0, 2, 3), keepdim=True)
        # unfolded conv patches are a fresh tensor: centre them in place (the same values),
        # never the captured inputs themselves (a Linear producer's patches are a view)
        fresh = patches.untyped_storage().data_ptr() != cap.inputs.untyped_storage().data_ptr()
        patches = patches.sub_(mean) if fresh else patches - mean
    n_samples, d_in = patches.shape[:2]
    if isinstance(consumer, nn.Linear):  # a Linear producer (conv ones returned above): one column per unit
        return AuxiliaryGradient(delta.t() @ patches.reshape(n_samples, d_in), cap)
    if isinstance(consumer, nn.Conv2d) and consumer.groups == 1:
        h2, w2 = cap.consumer_inputs.shape[2:]
        grid = (int(h2), int(w2))
        if tuple(patches.shape[2:]) != grid:
            patches = F.adaptive_avg_pool2d(patches, grid)
        c_out = consumer.out_channels
        kh, kw = consumer.kernel_size
        # M[(c, tap), i] = sum_{n,q} delta[n, c, q] * P[n, i, position tap reads for output q]:
        # the consumer's weight gradient with the patches as its input (one pass, no scatter),
        # accumulated in float64: sums over N*H*W terms, as accurate as the chunked float32 sum
        wg = conv2d_weight(
            patches.double(),
            (c_out, d_in, kh, kw),
            delta.double(),
            stride=consumer.stride,
            padding=_conv_padding(consumer),
            dilation=consumer.dilation,
        )
        m = wg.permute(0, 2, 3, 1).reshape(c_out * kh * kw, d_in).to(delta.dtype)
        return AuxiliaryGradient(m, cap)
    raise NotImplementedError(f"auxiliary gradient: unsupported consumer {consumer!r}")


def _top_left_singular(m: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Top-``k`` left singular vectors ``(k, D_out)`` (sign: largest entry positive) and the
    singular values; directions beyond the rank are filled with random unit vectors."""
    u, s, _ = torch.linalg.svd(m, full_matrices=False)
    u = u[:, :k].t()
    if u.shape[0] < k:  # more units than min(D_out, D_in): random extra directions
        extra = torch.randn(k - u.shape[0], m.shape[0], dtype=m.dtype, device=m.device)
        u = torch.cat([u, extra / extra.norm(dim=1, keepdim=True).clamp_min(1e-12)])
    idx = u.abs().argmax(dim=1)
    sign = torch.sign(u.gather(1, idx[:, None])).clamp_min(0) * 2 - 1
    return u * sign, s


@INITIALIZERS.register("gradmax")
class GradMaxInitializer(Initializer):
    """GradMax: zero fan-in; fan-out along the top singular vectors of the auxiliary gradient.

    The fan-out maximises the gradient norm of the new fan-in: for unit-norm columns,
    ``||dL/dW_in||_F^2 = sum_i sigma_i^2`` over the chosen singular values. Each column is
    normalised, then multiplied by ``scale`` x the mean norm of the existing units' fan-out
    columns. Needs ``batch`` (recent training samples); the site's model must support
    ``auxiliary_gradient`` (Linear/Conv2d pairs, see the module docstring).

    **ReLU trap.** ``torch.relu``'s gradient at 0 is 0: a unit with zero fan-in and zero
    pre-activation would never learn. The reference uses a "relu1" whose slope at 0 is 1;
    here the unit is put just on the active side instead: when the site's activation is in
    the ReLU family, the new unit's pre-activation offset is ``birth_offset`` (the producer
    bias, or the BatchNorm beta when a BatchNorm sits between producer and activation; the
    producer bias is then 0). With zero fan-in the pre-activation equals the offset on every
    sample, in train mode (batch statistics: x_hat = 0, output beta) and in eval mode (fresh
    running stats), so the slope is 1 for the whole birth batch. The price: each new unit
    outputs the constant ``birth_offset``, shifting the consumer's pre-activation by
    ``birth_offset * w_out`` (<= birth_offset * max|w_out| per new unit and consumer output;
    ~1e-7 on the test MLPs). With BatchNorm in train mode the gradient of a zero fan-in also
    passes BN's zero-variance normalisation, which multiplies it by gamma/sqrt(bn.eps) and
    centres it over the batch: large but pointing along the centred GradMax direction;
    BN's scale invariance makes the magnitude harmless after the first step. Smooth
    activations (tanh, GELU, SiLU) get no offset: zero fan-in is then exactly function
    preserving (their slope at 0 is 1 or 0.5). Producers without bias and without norm
    cannot hold an offset: the trap is then left as is (documented limitation).

    Args:
        scale: new fan-out column norm relative to the mean existing column norm; > 0.
        birth_offset: pre-activation offset of new ReLU-family units; >= 0 (0: exact
            function preservation, but newborn ReLU units do not learn).
    """

    def __init__(self, scale: float = 0.5, birth_offset: float = 1e-6):
        self.scale = check_number("scale", scale, low=0, low_open=True)
        self.birth_offset = check_number("birth_offset", birth_offset, low=0)

    @property
    def preserves_function(self) -> bool:
        # The offset changes the outputs by ~birth_offset * |w_out| (not exactly zero).
        return self.birth_offset == 0.0

    def propose(
        self, model: GrowableModel, site: str, n_new: int, batch: tuple[Tensor, Tensor] | None = None
    ) -> WidthProposal:
        check_int("n_new", n_new, minimum=1)
        if batch is None:
            raise ValueError("gradmax needs batch=(x, y) of recent training samples; got None")
        mods = model.site_modules(site)
        w, cw = mods.producer.weight, mods.consumer.weight
        # Behind a BatchNorm the newborn's gradient (train mode) sees centred inputs.
        was_training = model.training
        model.train(mods.norm is not None or was_training)  # batch statistics, as the newborn will see
        try:
            aux = auxiliary_gradient(model, site, batch, center=mods.norm is not None)
        finally:
            model.train(was_training)
        with torch.no_grad():
            dirs, _ = _top_left_singular(aux.matrix.to(cw.dtype), n_new)
            existing = existing_fan_out_columns(cw, mods.spatial)
            mean_norm = float(existing.norm(dim=1).mean()) if existing.numel() else 1.0
            if not math.isfinite(mean_norm) or mean_norm <= 0:
                mean_norm = 1.0
            cols = dirs / dirs.norm(dim=1, keepdim=True).clamp_min(1e-12) * (self.scale * mean_norm)
            fan_out = columns_to_fan_out(cols, cw, mods.spatial)
            fan_in = torch.zeros((n_new, *w.shape[1:]), dtype=w.dtype, device=w.device)
        offset = self.birth_offset if kinked_at_zero(mods.act) else 0.0
        norm = _fresh_norm(mods.norm, n_new, w)
        bias = None
        if mods.producer.bias is not None:
            bias = torch.full((n_new,), 0.0 if norm is not None else offset, dtype=w.dtype, device=w.device)
        if norm is not None:
            norm["bias"] = norm["bias"] + offset
        return WidthProposal(fan_in, bias, fan_out, None, norm)


def _per_unit_grad_norms(model: GrowableModel, sites: list[str], batch: tuple[Tensor, Tensor]) -> dict[str, Tensor]:
    """Per site, ``||dL/dw_in_i|| + ||dL/dw_out_i||`` for each existing unit i (mean
    cross-entropy); one forward and backward for all ``sites``."""
    x, y = batch
    mods = {site: model.site_modules(site) for site in sites}
    params: list[Tensor] = []
    for m in mods.values():  # a layer is one site's consumer and the next one's producer
        params += [p for p in (m.producer.weight, m.consumer.weight) if not any(p is q for q in params)]
    with torch.enable_grad():
        loss = F.cross_entropy(model(x), y)
        grads = torch.autograd.grad(loss, params)
    grad_of = {id(p): g for p, g in zip(params, grads)}
    out = {}
    for site, m in mods.items():
        g_in, g_out = grad_of[id(m.producer.weight)], grad_of[id(m.consumer.weight)]
        n_in = g_in.reshape(g_in.shape[0], -1).norm(dim=1)
        out[site] = n_in + existing_fan_out_columns(g_out, m.spatial).norm(dim=1)
    return out


@TRIGGERS.register("gradient")
class GradientTrigger(Trigger):
    """NORTH* T_grad: grow where new units would learn faster than the existing ones.

    Every ``check_every`` optimizer steps (phase "step"), for each site: the singular values
    sigma_j of the auxiliary gradient M (``auxiliary_gradient`` on ``ctx.batch``; sigma_j is
    the fan-in gradient norm of a newborn with a unit fan-out along the j-th direction) are
    compared with ``threshold_scale`` x the **sum** over the existing units i of
    ``||dL/dw_in_i|| + ||dL/dw_out_i||`` (Maile et al. 2022, T_grad; the authors' code,
    ``exp/runneurogenesis.jl``, uses ``sum(gradnorms) / 2``, hence the default 0.5). The sum
    makes the trigger harder to pass as the layer grows, which is what stops it. The number
    of sigma_j above the threshold is requested (capped by ``max_units_per_event``).
    Measured in eval mode (no BatchNorm/dropout side effects), the model is left unchanged.
    Skips when ``ctx.model`` or ``ctx.batch`` is None. Stateless, hence deterministic on the
    same model and batch.

    Args:
        check_every: steps between checks; >= 1.
        max_units_per_event: cap per site and event; >= 1 or None (no cap).
        threshold_scale: multiplies the summed existing-unit gradient norms; > 0.
    """

    def __init__(self, check_every: int = 200, max_units_per_event: int | None = None, threshold_scale: float = 0.5):
        self.check_every = check_int("check_every", check_every, minimum=1)
        self.max_units_per_event = check_int("max_units_per_event", max_units_per_event, minimum=1, optional=True)
        self.threshold_scale = check_number("threshold_scale", threshold_scale, low=0, low_open=True)

    def count(self, model: GrowableModel, site: str, batch: tuple[Tensor, Tensor]) -> tuple[int, float, float]:
        """``(count, top singular value, threshold)`` for ``site``."""
        return self._counts(model, [site], batch)[site]

    def _counts(
        self, model: GrowableModel, sites: list[str], batch: tuple[Tensor, Tensor]
    ) -> dict[str, tuple[int, float, float]]:
        was_training = model.training
        model.eval()
        try:
            norms = _per_unit_grad_norms(model, sites, batch)
            caps = capture_sites(model, sites, batch[0], batch[1], with_grad=True)
            out = {}
            for site in sites:
                sv = torch.linalg.svdvals(auxiliary_gradient(model, site, batch, capture=caps[site]).matrix)
                thr = self.threshold_scale * float(norms[site].sum())
                out[site] = (int((sv > thr).sum()), float(sv[0]) if sv.numel() else 0.0, thr)
        finally:
            model.train(was_training)
        return out

    def check(self, ctx: TriggerContext) -> list[GrowthRequest]:
        if ctx.phase != "step" or ctx.step <= 0 or ctx.step % self.check_every:
            return []
        if ctx.model is None or ctx.batch is None:
            return []
        out = []
        for site, (k, top, thr) in self._counts(ctx.model, list(ctx.widths), ctx.batch).items():
            if self.max_units_per_event is not None:
                k = min(k, self.max_units_per_event)
            if k > 0:
                reason = f"gradient: {k} singular values of the auxiliary gradient above {thr:.4g} (top {top:.4g})"
                out.append(GrowthRequest(site, k, top / thr if thr > 0 else top, reason))
        return out

    def state_dict(self) -> dict[str, Any]:
        return {}
