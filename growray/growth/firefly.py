"""Firefly (Wu, Liu, Stone, Liu, NeurIPS 2020): grow the best of many small candidates."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from contextlib import ExitStack, suppress

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from growray.checks import check_bool, check_int, check_number
from growray.growth._firefly_replay import (
    _Adam,
    _cached,
    _forward_replaced,
    _layer,
    _norm_fn,
    _param_name,
    _record,
    _Recording,
    _Stop,
    _unit_rows,
    _unit_slice,
)
from growray.growth.gradmax import columns_to_fan_out, existing_fan_out_columns
from growray.growth.initializers import INITIALIZERS, Initializer, WidthProposal, _fresh_norm
from growray.growth.surgery import widen
from growray.models.sites import GrowableModel, SiteModules, as_module

__all__ = ["FireflyInitializer"]

_NORM_KEYS = ("weight", "bias", "running_mean", "running_var")


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
    estimate of the loss decrease it brings; the ``n_new`` best are kept. In train mode this
    runs on a widened copy of the model; in eval mode the same losses and gradients come
    from one recorded pass of the model itself, recomputing only what depends on ``delta``
    and ``v`` (``_optimise_cached``).

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

        def assemble(delta: Tensor, v: Tensor, g_split: Tensor, g_fresh: Tensor) -> tuple[Tensor, Tensor]:
            rows = torch.cat([theta[split_src] + self.eps * g_split[:, None] * delta, u])
            new_cols = torch.cat([cols[split_src] / 2, self.eps * g_fresh[:, None] * v])
            return rows, new_cols

        if model.training:
            delta, v, scores = self._optimise_widened(model, site, x, y, assemble, bias, norm, delta, v)
        else:
            delta, v, scores = self._optimise_cached(model, mods, x, y, theta, u, bias, norm, delta, v)
        chosen = torch.argsort(scores, descending=True, stable=True)[:n_new]
        with torch.no_grad():
            ones = torch.ones(n_split + n_fresh, dtype=w.dtype, device=w.device)
            rows, new_cols = assemble(delta, v, ones[:n_split], ones[n_split:])
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

    def _optimise_widened(
        self,
        model: GrowableModel,
        site: str,
        x: Tensor,
        y: Tensor,
        assemble: Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor]],
        bias: Tensor | None,
        norm: dict[str, Tensor] | None,
        delta: Tensor,
        v: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Train mode (batch statistics, dropout): optimise ``delta`` and ``v`` and score every
        candidate on the whole widened copy, every step. Returns ``(delta, v, scores)``."""
        mods = model.site_modules(site)
        w, cw, spatial = mods.producer.weight.detach(), mods.consumer.weight.detach(), mods.spatial
        theta = w.reshape(w.shape[0], -1)
        cols = existing_fan_out_columns(cw, spatial)
        n_split, n_fresh = delta.shape[0], v.shape[0]
        inc_cols = cols / 2 if n_split else cols
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
        smods = scratch.site_modules(site)
        p_name, c_name = _param_name(scratch, smods.producer.weight), _param_name(scratch, smods.consumer.weight)
        for p in scratch.parameters():
            p.requires_grad_(False)

        def loss_of(delta: Tensor, v: Tensor, g_split: Tensor, g_fresh: Tensor) -> Tensor:
            rows, new_cols = assemble(delta, v, g_split, g_fresh)
            pw = torch.cat([theta, rows]).reshape(-1, *w.shape[1:])
            pc = columns_to_fan_out(torch.cat([inc_cols, new_cols]), cw, spatial)
            return F.cross_entropy(functional_call(as_module(scratch), {p_name: pw, c_name: pc}, (x,)), y)

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
        scores = -torch.cat(
            [gs if gs is not None else torch.zeros_like(ones_s), gf if gf is not None else torch.zeros_like(ones_f)]
        )
        return delta, v, scores

    def _optimise_cached(
        self,
        model: GrowableModel,
        mods: SiteModules,
        x: Tensor,
        y: Tensor,
        theta: Tensor,
        u: Tensor,
        bias: Tensor | None,
        norm: dict[str, Tensor] | None,
        delta: Tensor,
        v: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Eval mode: the same optimisation and scores as ``_optimise_widened``, from one
        recorded forward and backward of ``model`` (no widened copy). Returns ``(delta, v, scores)``.

        In eval mode the widened copy's loss depends on ``delta`` and ``v`` only through the
        split copies' pre-activations and the new neurons' fan-out; everything else is fixed:

        - the layers before the producer (before the consumer when there are no splits) are
          recorded once and replayed as constants (each returns its recorded output);
        - the new neurons' consumer inputs are computed once (their pre-activations through
          the site's own norm with their fresh entries, its activation and whatever leads to
          the consumer);
        - the consumer's output is the recorded incumbents' term (fan-out halved when there
          are splits) plus the split copies' term (their consumer inputs, recomputed every step
          through the site's own norm, activation and pooling, times the halved fan-out) plus
          the new neurons' term (fixed inputs times ``eps * v``); the layers after it run as usual.

        Each Adam step (``torch.optim.Adam``'s update, applied to ``delta`` and ``v`` as one
        flat tensor) is one such partial forward and backward. The gate gradients at g = 0
        are closed form, since at g = 0 the widened copy computes the model's own function:
        a split gate's is ``eps/2 * <dL/dpre_i, (delta_i * h)>`` (the copy and the incumbent
        each carry half the fan-out, so each gets half the incumbent's pre-activation
        gradient), a new neuron's ``eps * <dL/dW_k, v_k>`` (``dL/dW_k`` the consumer-weight
        gradient of its inputs). Sums are regrouped relative to the widened copy, so results
        agree with it to rounding. It relies, as surgery does, on each unit's consumer inputs
        depending on its own pre-activation only, and on the model's forward not editing
        module outputs in place.
        """
        producer, consumer, spatial = mods.producer, mods.consumer, mods.spatial
        w, cw = producer.weight.detach(), consumer.weight.detach()
        n_split, n_fresh = delta.shape[0], v.shape[0]
        p_bias = None if producer.bias is None else producer.bias.detach()
        c_bias = None if consumer.bias is None else consumer.bias.detach()
        rec = _record(model, mods, x, y)
        with torch.no_grad():
            if n_fresh:
                fresh_pre = _layer(
                    producer, rec.inputs, u.reshape(-1, *w.shape[1:]), None if bias is None else bias[n_split:]
                )
                fresh_norm = None if norm is None else {k: t[n_split:] for k, t in norm.items()}
                fresh_inputs = self._consumer_inputs(model, mods, x, rec, fresh_pre, fresh_norm)
            else:
                fresh_inputs = _unit_slice(rec.consumer_inputs, 0, 0, spatial)
            cw_half = cw / 2 if n_split else cw  # a split halves its incumbent's fan-out (both halves)
            z_base = _layer(consumer, rec.consumer_inputs, cw_half, c_bias)
        state: dict[str, Tensor] = {}

        def consume(split_inputs: Tensor) -> Tensor:
            z = z_base
            if n_fresh:
                z = z + _layer(consumer, fresh_inputs, state["fan_out"], None)
            if n_split:
                z = z + _layer(consumer, split_inputs, cw_half, None)
            return z

        nd = delta.numel()
        flat = torch.cat([delta.reshape(-1), v.reshape(-1)]).requires_grad_(True)
        adam = _Adam(flat, self.lr)
        with ExitStack() as stack:
            if n_split:
                _cached(stack, rec.before_producer)
                stack.enter_context(_forward_replaced(producer, lambda _: state["pre"]))
            else:
                _cached(stack, rec.before_consumer)
            stack.enter_context(_forward_replaced(consumer, consume))
            for _ in range(self.opt_steps):
                with torch.enable_grad():
                    d, vv = flat[:nd].view(delta.shape), flat[nd:].view(v.shape)
                    if n_split:
                        rows = (theta + self.eps * d).reshape(-1, *w.shape[1:])
                        state["pre"] = _layer(producer, rec.inputs, rows, p_bias)
                    state["fan_out"] = columns_to_fan_out(self.eps * vv, cw, spatial)
                    # autograd.grad: the model's own parameters never get a .grad
                    (grad,) = torch.autograd.grad(F.cross_entropy(model(x), y), flat)
                adam.step(grad)
                with torch.no_grad():
                    d, vv = flat[:nd].view(delta.shape), flat[nd:].view(v.shape)
                    d.copy_(_unit_rows(d))
                    vv.copy_(_unit_rows(vv))
            state.clear()
        delta, v = flat[:nd].detach().view(delta.shape).clone(), flat[nd:].detach().view(v.shape).clone()
        with torch.no_grad():
            gs = torch.zeros(n_split, dtype=w.dtype, device=w.device)
            if n_split:
                moved = _layer(producer, rec.inputs, delta.reshape(-1, *w.shape[1:]), None)  # delta_i . h
                gs = (self.eps / 2) * (moved * rec.pre_grad).sum([0, *range(2, moved.dim())])
            gf = torch.zeros(n_fresh, dtype=w.dtype, device=w.device)
            if n_fresh:
                if isinstance(consumer, nn.Conv2d):
                    with torch.enable_grad():
                        wf = torch.zeros(cw.shape[0], n_fresh, *cw.shape[2:], dtype=w.dtype, device=w.device)
                        wf.requires_grad_(True)
                        (dw,) = torch.autograd.grad((_layer(consumer, fresh_inputs, wf, None) * rec.out_grad).sum(), wf)
                else:
                    dw = rec.out_grad.t() @ fresh_inputs
                gf = self.eps * (existing_fan_out_columns(dw, spatial) * v).sum(1)
        return delta, v, -torch.cat([gs, gf])

    @staticmethod
    def _consumer_inputs(
        model: GrowableModel,
        mods: SiteModules,
        x: Tensor,
        rec: _Recording,
        pre: Tensor,
        norm: dict[str, Tensor] | None,
    ) -> Tensor:
        """The consumer inputs of units with pre-activations ``pre`` and norm entries ``norm``:
        ``model`` replayed from the recorded producer input to the consumer's input (the
        site's own norm, activation and pooling), where the forward stops."""
        got: list[Tensor] = []

        def grab(inputs: Tensor) -> Tensor:
            got.append(inputs)
            raise _Stop

        with ExitStack() as stack:
            _cached(stack, rec.before_producer)
            stack.enter_context(_forward_replaced(mods.producer, lambda _: pre))
            if mods.norm is not None and norm is not None:
                stack.enter_context(_forward_replaced(mods.norm, _norm_fn(mods.norm, norm)))
            stack.enter_context(_forward_replaced(mods.consumer, grab))
            with suppress(_Stop):
                model(x)
        if not got:
            raise RuntimeError("firefly: the model's forward never reached the site's consumer")
        return got[0]

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
