"""Firefly (Wu, Liu, Stone, Liu, NeurIPS 2020): grow the best of many small candidates."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from growray.checks import check_bool, check_int, check_number
from growray.growth.capture import capture_site
from growray.growth.gradmax import columns_to_fan_out, existing_fan_out_columns
from growray.growth.initializers import INITIALIZERS, Initializer, WidthProposal, _fresh_norm
from growray.growth.surgery import widen
from growray.models.sites import GrowableModel, SiteModules, as_module

__all__ = ["FireflyInitializer"]

_NORM_KEYS = ("weight", "bias", "running_mean", "running_var")


def _unit_rows(t: Tensor) -> Tensor:
    return t / t.norm(dim=1, keepdim=True).clamp_min(1e-12)


def _param_name(model: GrowableModel, param: Tensor) -> str:
    return next(name for name, p in model.named_parameters() if p is param)


def _layer(module: nn.Module, inputs: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``module`` (Linear or Conv2d) applied to ``inputs`` with another weight and bias."""
    if isinstance(module, nn.Conv2d):
        return module._conv_forward(inputs, weight, bias)
    return F.linear(inputs, weight, bias)


def _unit_slice(t: Tensor, start: int, end: int, spatial: int) -> Tensor:
    """Units ``[start, end)`` of a consumer input (channels of a conv input; ``spatial``
    consecutive columns per unit of a Linear input)."""
    return t[:, start:end] if t.dim() > 2 else t[:, start * spatial : end * spatial]


@contextmanager
def _forward_replaced(module: nn.Module, fn: Callable[[Tensor], Tensor]) -> Iterator[None]:
    """Within the block, calling ``module`` runs ``fn`` on its input instead (hooks still run)."""
    saved = module.__dict__.get("forward")
    module.forward = fn  # an instance attribute shadows the method
    try:
        yield
    finally:
        if saved is None:
            del module.forward
        else:
            module.forward = saved


@INITIALIZERS.register("firefly")
class FireflyInitializer(Initializer):
    """Firefly: score split and new-neuron candidates by a first-order gate, keep the best.

    Candidates (on ``batch``, recent training samples):

    - **splits** (``grow_splits``): one per existing unit i, a copy with fan-in
      ``theta_i + eps * delta_i`` (``||delta_i|| = 1``), the same bias and BatchNorm entries;
    - **new neurons**: ``max(n_candidates, n_new - splits)`` units with fan-in drawn like
      torch's default init (uniform +-1/sqrt(fan_in)), bias 0, fresh BatchNorm entries and
      fan-out ``eps * v`` (``||v|| = 1``).

    All candidates are appended to a scratch copy of the model at once; ``delta`` and ``v``
    are optimised for ``opt_steps`` Adam steps (``lr``) on the batch loss with the
    incumbents frozen, renormalised to unit norm after each step. Each candidate then gets a
    gate g (scaling ``eps * delta`` for a split, the fan-out for a new neuron); the score is
    ``-dL/dg`` at g = 0 (where no candidate changes the function), a first-order Taylor
    estimate of the loss decrease it brings; the ``n_new`` best are kept.

    **Splits as appends.** Surgery only appends units, and the incumbent's fan-in cannot be
    moved by ``-eps * delta`` (a proposal has no incumbent fan-in). A chosen split is the
    pair (incumbent ``theta_i``, copy ``theta_i + eps*delta_i``), each with half the
    incumbent's fan-out (``incumbent_fan_out`` halves column i): the symmetric split of
    ``theta_i + eps*delta_i/2``, i.e. a first-order move of the neuron by ``eps*delta_i/2``
    plus the split. Its effect is therefore O(eps) (scored as such), not the paper's
    O(eps^2) second-order split; the split half of the paper's method is approximated.

    Not function preserving: a new neuron shifts the consumer's pre-activation by at most
    ``eps * |act(u.h)|`` (unit ``v``), a split by at most ``|w_out_i|/2 * eps * ||h||``
    (1-Lipschitz activation, unit ``delta``), BatchNorm gains aside.

    Args:
        n_candidates: new-neuron candidates; >= 0 (0 with ``grow_splits`` false is rejected).
        eps: candidate step size; > 0.
        opt_steps: Adam steps on ``delta`` and ``v``; >= 0.
        lr: Adam learning rate; > 0.
        grow_splits: include split candidates.
    """

    def __init__(
        self, n_candidates: int = 70, eps: float = 1e-2, opt_steps: int = 10, lr: float = 1e-2, grow_splits: bool = True
    ):
        self.n_candidates = check_int("n_candidates", n_candidates, minimum=0)
        self.opt_steps = check_int("opt_steps", opt_steps, minimum=0)
        self.grow_splits = check_bool("grow_splits", grow_splits)
        if n_candidates == 0 and not grow_splits:
            raise ValueError("n_candidates must be >= 1 when grow_splits is false (no candidates at all); got 0")
        self.eps = check_number("eps", eps, low=0, low_open=True)
        self.lr = check_number("lr", lr, low=0, low_open=True)

    @property
    def preserves_function(self) -> bool:
        return False

    def propose(
        self, model: GrowableModel, site: str, n_new: int, batch: tuple[Tensor, Tensor] | None = None
    ) -> WidthProposal:
        check_int("n_new", n_new, minimum=1)
        if batch is None:
            raise ValueError("firefly needs batch=(x, y) of recent training samples; got None")
        x, y = batch
        mods = model.site_modules(site)
        w, cw = mods.producer.weight.detach(), mods.consumer.weight.detach()
        width, spatial = w.shape[0], mods.spatial
        theta = w.reshape(width, -1)
        cols = existing_fan_out_columns(cw, spatial)  # (width, D_out)
        n_split = width if self.grow_splits else 0
        n_fresh = max(self.n_candidates, n_new - n_split)
        bound = 1.0 / math.sqrt(theta.shape[1])
        u = torch.empty(n_fresh, theta.shape[1], dtype=w.dtype, device=w.device).uniform_(-bound, bound)
        v = _unit_rows(torch.randn(n_fresh, cols.shape[1], dtype=w.dtype, device=w.device))
        delta = _unit_rows(torch.randn(n_split, theta.shape[1], dtype=w.dtype, device=w.device))
        split_src = torch.arange(n_split, device=w.device)
        bias = self._bias(mods, split_src, n_fresh)
        norm = self._norm(mods, split_src, n_fresh, w)
        inc_cols = cols / 2 if n_split else cols

        def assemble(delta: Tensor, v: Tensor, g_split: Tensor, g_fresh: Tensor) -> tuple[Tensor, Tensor]:
            rows = torch.cat([theta[split_src] + self.eps * g_split[:, None] * delta, u])
            new_cols = torch.cat([cols[split_src] / 2, self.eps * g_fresh[:, None] * v])
            return rows, new_cols

        scratch = copy.deepcopy(model)
        ones_s = torch.ones(n_split, dtype=w.dtype, device=w.device)
        ones_f = torch.ones(n_fresh, dtype=w.dtype, device=w.device)
        rows, new_cols = assemble(delta, v, ones_s, ones_f)
        widen(
            scratch,
            site,
            WidthProposal(
                rows.reshape(-1, *w.shape[1:]),
                bias,
                columns_to_fan_out(new_cols, cw, spatial),
                None if not n_split else columns_to_fan_out(inc_cols, cw, spatial),
                norm,
            ),
        )
        loss_of: Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]
        if model.training:  # batch statistics, dropout: the whole widened copy, every step
            smods = scratch.site_modules(site)
            p_name, c_name = _param_name(scratch, smods.producer.weight), _param_name(scratch, smods.consumer.weight)
            for p in scratch.parameters():
                p.requires_grad_(False)

            def loss_of(delta: Tensor, v: Tensor, g_split: Tensor, g_fresh: Tensor) -> Tensor:
                rows, new_cols = assemble(delta, v, g_split, g_fresh)
                pw = torch.cat([theta, rows]).reshape(-1, *w.shape[1:])
                pc = columns_to_fan_out(torch.cat([inc_cols, new_cols]), cw, spatial)
                return F.cross_entropy(functional_call(as_module(scratch), {p_name: pw, c_name: pc}, (x,)), y)

        else:
            loss_of = self._cached_loss(model, site, x, y, scratch, assemble, n_split, n_fresh)

        with torch.enable_grad():
            delta, v = delta.clone().requires_grad_(True), v.clone().requires_grad_(True)
            opt = torch.optim.Adam([delta, v], lr=self.lr)
            for _ in range(self.opt_steps):
                # autograd.grad: the model's own parameters never get a .grad
                loss = loss_of(delta, v, ones_s, ones_f)
                delta.grad, v.grad = torch.autograd.grad(loss, [delta, v], allow_unused=True)  # None: Adam skips
                opt.step()
                with torch.no_grad():
                    delta.copy_(_unit_rows(delta))
                    v.copy_(_unit_rows(v))
            delta, v = delta.detach(), v.detach()
            g_split = torch.zeros_like(ones_s, requires_grad=True)
            g_fresh = torch.zeros_like(ones_f, requires_grad=True)
            gs, gf = torch.autograd.grad(loss_of(delta, v, g_split, g_fresh), [g_split, g_fresh], allow_unused=True)
        scores = -torch.cat([gs if gs is not None else torch.zeros_like(ones_s), gf])
        chosen = torch.argsort(scores, descending=True, stable=True)[:n_new]
        with torch.no_grad():
            rows, new_cols = assemble(delta, v, ones_s, ones_f)
            is_split = chosen < n_split
            inc = cols.clone()
            inc[chosen[is_split]] /= 2
            out_norm = None if norm is None else {k: t[chosen].clone() for k, t in norm.items()}
            return WidthProposal(
                rows[chosen].reshape(n_new, *w.shape[1:]).clone(),
                None if bias is None else bias[chosen].clone(),
                columns_to_fan_out(new_cols[chosen], cw, spatial),
                columns_to_fan_out(inc, cw, spatial) if bool(is_split.any()) else None,
                out_norm,
            )

    @staticmethod
    def _cached_loss(
        model: GrowableModel,
        site: str,
        x: Tensor,
        y: Tensor,
        scratch: GrowableModel,
        assemble: Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]],
        n_split: int,
        n_fresh: int,
    ) -> Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]:
        """The batch loss of the widened model as a function of ``(delta, v, g_split,
        g_fresh)``, in eval mode, from activations computed once.

        The incumbents' and the new neurons' consumer inputs do not depend on the optimised
        tensors, so they are captured once (the new neurons' from ``scratch``, the widened
        copy); each call recomputes only the split copies' pre-activations on the cached
        producer input, runs them through ``model``'s own norm, activation and pooling (a
        split copy uses its incumbent's entries), and runs the consumer on the concatenated
        inputs (incumbents, splits, new neurons: the widened copy's own layout, so the sums
        are the same) and the layers after it. It relies, as surgery does, on each unit's
        consumer inputs depending on its own pre-activation only.
        """
        mods = model.site_modules(site)
        producer, consumer, spatial = mods.producer, mods.consumer, mods.spatial
        w, cw = producer.weight.detach(), consumer.weight.detach()
        width = w.shape[0]
        with torch.no_grad():
            cap = capture_site(model, site, x)
            new_inputs = capture_site(scratch, site, x).consumer_inputs
        fresh_inputs = _unit_slice(new_inputs, width + n_split, width + n_split + n_fresh, spatial)
        cw_inc = cw / 2 if n_split else cw  # a split halves its incumbent's fan-out (both halves)
        c_bias = None if consumer.bias is None else consumer.bias.detach()
        p_bias = None if producer.bias is None else producer.bias.detach()

        def loss_of(delta: Tensor, v: Tensor, g_split: Tensor, g_fresh: Tensor) -> Tensor:
            rows, new_cols = assemble(delta, v, g_split, g_fresh)
            new_w = columns_to_fan_out(new_cols, cw, spatial)  # (splits, new neurons)
            if n_split:  # split copy j of incumbent j: the incumbent's bias, norm entries and halved fan-out
                pre = _layer(producer, cap.inputs, rows[:n_split].reshape(-1, *w.shape[1:]), p_bias)

                def consume(split_inputs: Tensor) -> Tensor:
                    inputs = torch.cat([cap.consumer_inputs, split_inputs, fresh_inputs], 1)
                    return _layer(consumer, inputs, torch.cat([cw_inc, new_w], 1), c_bias)

            else:
                pre = cap.pre

                def consume(split_inputs: Tensor) -> Tensor:
                    inputs = torch.cat([cap.consumer_inputs, fresh_inputs], 1)
                    return _layer(consumer, inputs, torch.cat([cw_inc, new_w], 1), c_bias)

            with _forward_replaced(producer, lambda _: pre), _forward_replaced(consumer, consume):
                return F.cross_entropy(model(x), y)

        return loss_of

    @staticmethod
    def _bias(mods: SiteModules, split_src: Tensor, n_fresh: int) -> Tensor | None:
        b = mods.producer.bias
        if b is None:
            return None
        b = b.detach()
        return torch.cat([b[split_src], torch.zeros(n_fresh, dtype=b.dtype, device=b.device)])

    @staticmethod
    def _norm(mods: SiteModules, split_src: Tensor, n_fresh: int, like: Tensor) -> dict[str, Tensor] | None:
        fresh = _fresh_norm(mods.norm, n_fresh, like)
        if fresh is None:
            return None
        out = {}
        for k in _NORM_KEYS:
            t = getattr(mods.norm, k, None)
            if t is not None:
                out[k] = torch.cat([t.detach()[split_src], fresh[k]])
        return out
