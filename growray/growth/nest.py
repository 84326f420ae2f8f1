"""NeST neuron growth (Dai, Yin, Jha, IEEE TC 2019, Policy 2): bridge gradient-rich pairs."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from growray.checks import check_int, check_number
from growray.growth.gradmax import (
    auxiliary_gradient,
    columns_to_fan_out,
    existing_fan_out_columns,
)
from growray.growth.initializers import INITIALIZERS, Initializer, WidthProposal, _fresh_norm
from growray.models.sites import GrowableModel

__all__ = ["NeSTInitializer"]


@INITIALIZERS.register("nest")
class NeSTInitializer(Initializer):
    """NeST: each new neuron bridges the input/output pairs with the largest loss gradient.

    The bridging matrix ``B = (1/N) H^{(l-1)T} G^{(l+1)}`` (G = minus the loss gradient at the
    consumer's pre-activation, per sample) is minus the transposed auxiliary gradient of
    ``growray.growth.gradmax.auxiliary_gradient`` (mean loss), computed on ``batch``. Pairs
    with ``|B_ij| >= tau`` are kept, tau being the ``ceil(beta * D_in * D_out)``-th largest
    ``|B|``. Each new neuron draws, per kept pair, a random sign s shared by both ends and
    adds ``s * sign(B_ij) * sqrt|B_ij|`` to its fan-in psi_i and ``s * sqrt|B_ij|`` to its
    fan-out omega_j, so the new path i -> j carries ``psi_i * omega_j = B_ij``, a step
    down the loss. psi and omega are then rescaled so the mean |.| of their non-zero entries
    is ``birth_strength`` x the mean |w| of the producer's / consumer's weights.

    For conv sites D_in = in_ch*kh*kw and D_out = the consumer's per-unit entries
    (out_ch*kh*kw, or out*H*W through a flatten), B being the unfolded grow matrix: a
    gradient-driven stand-in for the paper's conv Policy 3 (random kernels selected by
    loss). Bias 0, fresh BatchNorm entries. Not function preserving (the new unit's
    fan-out is non-zero).

    Args:
        birth_strength: alpha, new weights relative to the layer's mean |w|; > 0 (the
            paper advises > 0.3 so that new weights survive pruning).
        beta: fraction of (input, output) pairs kept; in (0, 1].
    """

    def __init__(self, birth_strength: float = 0.3, beta: float = 0.1):
        self.birth_strength = check_number("birth_strength", birth_strength, low=0, low_open=True)
        self.beta = check_number("beta", beta, low=0, high=1, low_open=True)

    @property
    def preserves_function(self) -> bool:
        return False

    def propose(
        self, model: GrowableModel, site: str, n_new: int, batch: tuple[Tensor, Tensor] | None = None
    ) -> WidthProposal:
        check_int("n_new", n_new, minimum=1)
        if batch is None:
            raise ValueError("nest needs batch=(x, y) of recent training samples; got None")
        mods = model.site_modules(site)
        w, cw = mods.producer.weight.detach(), mods.consumer.weight.detach()
        bridge = -auxiliary_gradient(model, site, batch).matrix.t().to(w.dtype)  # (D_in, D_out)
        d_in, d_out = bridge.shape
        k = min(bridge.numel(), math.ceil(self.beta * d_in * d_out))
        tau = torch.topk(bridge.abs().flatten(), k).values[-1]
        ii, jj = torch.nonzero(bridge.abs() >= tau, as_tuple=True)
        mag = bridge[ii, jj].abs().sqrt()
        sgn = torch.sign(bridge[ii, jj])
        s = torch.randint(0, 2, (n_new, ii.numel()), device=w.device).to(w.dtype) * 2 - 1
        psi = torch.zeros(n_new, d_in, dtype=w.dtype, device=w.device)
        omega = torch.zeros(n_new, d_out, dtype=w.dtype, device=w.device)
        psi.index_add_(1, ii, s * sgn * mag)
        omega.index_add_(1, jj, s * mag)
        psi = self._rescale(psi, w.abs().mean())
        omega = self._rescale(omega, existing_fan_out_columns(cw, mods.spatial).abs().mean())
        bias = None if mods.producer.bias is None else torch.zeros(n_new, dtype=w.dtype, device=w.device)
        return WidthProposal(
            psi.reshape(n_new, *w.shape[1:]),
            bias,
            columns_to_fan_out(omega, cw, mods.spatial),
            None,
            _fresh_norm(mods.norm, n_new, w),
        )

    def _rescale(self, t: Tensor, layer_mean_abs: Tensor) -> Tensor:
        """Per row: mean |non-zero entry| := birth_strength * layer_mean_abs."""
        nz = (t != 0).sum(dim=1, keepdim=True).clamp_min(1)
        mean_abs = t.abs().sum(dim=1, keepdim=True) / nz
        return t * (self.birth_strength * layer_mean_abs / mean_abs.clamp_min(1e-30))
