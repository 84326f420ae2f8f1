"""SENN: Self-Expanding Neural Networks (Mitchell, Menzenbach, Kersting, Mundt; arXiv 2307.04526).

The ``senn`` trigger grows where a new unit would most raise the natural expansion score
(``senn_score``); the ``senn`` initializer gives the new unit the fan-in the trigger chose
and a zero fan-out, so growth preserves the function.

**Sites.** A width site ``s`` (Linear producer -> optional BatchNorm -> activation -> Linear
consumer) is scored on its *consumer*: a new unit of ``s`` is a new input of the consumer
with zero fan-out. ``eta_l`` is the consumer's K-FAC score; a width candidate is a fan-in
``u`` over ``[x_{l-1}, 1]`` (the producer's input plus a bias entry) with activations
``a_p = act(u . [x, 1] / sqrt(1 + bn_eps))`` (the division only at BatchNorm sites: the new
unit's BatchNorm entries are fresh and identity-like, gamma 1, beta 0, running mean 0 and
running var 1, so in eval mode it divides by ``sqrt(1 + eps)``; in train mode the batch
statistics rescale the newborn, which the score ignores). Conv sites (and conv -> Linear
through a flatten) are not scored: the trigger skips them and the initializer gives them a
random fan-in with zero fan-out, as ``random`` does.

**Depth.** A depth proposal at ``s`` inserts, between ``s`` and its consumer, a layer with
identity weights and the rational activation (identity at init; ``net2deeper`` with
``activation: rational``). At init its linear part only reaches directions the consumer
already has (``W_c dV``), so its potential gain is what a *nonlinear* unit reading the
site's output could add: its ``d_eta'`` is the best candidate over ``[h_s, 1]`` (``h_s`` the
consumer's input) with the site's activation, on the same consumer statistics. It is divided
by ``layer_cost`` before the tau/alpha tests, and after an accepted depth proposal the
trigger proposes no depth for ``layer_cooldown`` checks. (Our reading of the reference's
layer proposals; documented, not verified against the paper's text.)
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from growray.checks import check_int, check_number
from growray.growth.capture import capture_site
from growray.growth.initializers import (
    INITIALIZERS,
    Initializer,
    RandomInitializer,
    WidthProposal,
    _fresh_norm,
)
from growray.growth.senn_score import (
    LayerStats,
    layer_stats,
    optimize_proposals,
    sample_winner,
    with_bias_column,
)
from growray.growth.triggers import TRIGGERS, GrowthRequest, Trigger, TriggerContext

__all__ = ["SENNInitializer", "SENNTrigger", "SiteData", "measure_site", "senn_supported"]


def senn_supported(model: nn.Module, site: str) -> bool:
    """True for dense sites (Linear producer and Linear consumer, no flatten in between)."""
    mods = model.site_modules(site)
    return isinstance(mods.producer, nn.Linear) and isinstance(mods.consumer, nn.Linear) and mods.spatial == 1


@dataclass
class SiteData:
    """One site measured on one batch.

    Attributes:
        stats: the consumer's K-FAC statistics (``layer_stats``).
        inputs: ``(N, F[+1])`` producer inputs, with a bias column when the unit has an offset.
        consumer_inputs: ``(N, W + 1)`` consumer inputs with their bias column.
        activation: maps pre-activations ``(P, N)`` of width candidates to activations.
        depth_activation: the same for depth candidates (the site's activation, no norm).
        has_offset: whether ``inputs`` carries the bias column.
    """

    stats: LayerStats
    inputs: Tensor
    consumer_inputs: Tensor
    activation: Callable[[Tensor], Tensor]
    depth_activation: Callable[[Tensor], Tensor]
    has_offset: bool

    def add_input(self, a_p: Tensor, g: Tensor, g_hat: Tensor, tikhonov: float) -> None:
        """Rescore as if the unit with activations ``a_p`` ``(N,)`` had been added (zero fan-out:
        the gradients are unchanged, the consumer gains an input)."""
        a = torch.cat(
            [self.consumer_inputs[:, :-1], a_p[:, None].to(self.consumer_inputs), self.consumer_inputs[:, -1:]], 1
        )
        self.consumer_inputs = a
        self.stats = layer_stats(a, g, g_hat, self.stats.grad_sq, tikhonov)


def _site_activation(mods: Any) -> Callable[[Tensor], Tensor]:
    act = mods.act if mods.act is not None else (lambda t: t)
    return act


def measure_site(
    model: nn.Module, site: str, batch: tuple[Tensor, Tensor], tikhonov: float = 0.1
) -> tuple[SiteData, Tensor, Tensor]:
    """Capture ``site`` on ``batch`` in eval mode and build its SENN statistics.

    Returns:
        ``(data, g, g_hat)``: the per-sample consumer gradients and their normalised version
        (kept for rescoring). The model is left unchanged.
    """
    mods = model.site_modules(site)
    x, y = batch
    was_training = model.training
    model.eval()
    try:
        cap = capture_site(model, site, x, y, with_grad=True)
        with torch.no_grad():
            logits = model(x)
    finally:
        model.train(was_training)
    n = x.shape[0]
    g = cap.out_grad.reshape(n, -1).double() * n  # per-sample gradients of each sample's own loss
    g_y = torch.softmax(logits.double(), dim=1) - F.one_hot(y, logits.shape[1]).double()
    g_y_norm = g_y.norm(dim=1)
    g_hat = g / g_y_norm.clamp_min(1e-12)[:, None]
    grad_sq = float((g_y_norm**2).mean())
    consumer_inputs = cap.consumer_inputs.reshape(n, -1).double()
    if mods.consumer.bias is not None:
        consumer_inputs = with_bias_column(consumer_inputs)
    else:  # keep the "last column is the bias" layout; a zero column adds nothing
        consumer_inputs = torch.cat([consumer_inputs, torch.zeros(n, 1, dtype=torch.float64)], 1)
    stats = layer_stats(consumer_inputs, g, g_hat, grad_sq, tikhonov)
    has_offset = mods.producer.bias is not None or mods.norm is not None
    inputs = cap.inputs.reshape(n, -1).double()
    if has_offset:
        inputs = with_bias_column(inputs)
    act = _site_activation(mods)
    scale = 1.0 / math.sqrt(1.0 + float(getattr(mods.norm, "eps", 0.0))) if mods.norm is not None else 1.0

    def width_act(z: Tensor) -> Tensor:
        return act((z * scale).to(torch.float64))

    data = SiteData(stats, inputs, consumer_inputs, width_act, lambda z: act(z), has_offset)
    return data, g, g_hat


def _request(site: str, n: int, score: float, reason: str, kind: str, payload: Any) -> GrowthRequest:
    """A GrowthRequest; ``kind`` and ``payload`` only where the growth library has them."""
    names = {f.name for f in dataclasses.fields(GrowthRequest)}
    extra = {k: v for k, v in (("kind", kind), ("payload", payload)) if k in names}
    return GrowthRequest(site, n, score, reason, **extra)


def _depth_available() -> bool:
    return "kind" in {f.name for f in dataclasses.fields(GrowthRequest)}


@TRIGGERS.register("senn")
class SENNTrigger(Trigger):
    """SENN: grow where a new unit (or layer) raises the natural expansion score enough.

    Every ``check_every`` optimizer steps (phase "step"; not within ``cooldown_epochs``
    epochs of the last accepted growth), on ``ctx.batch`` in eval mode: for each dense site
    (``senn_supported``) the consumer's ``eta_l``, then ``n_proposals`` width candidates
    optimised for ``n_steps`` (``optimize_proposals``), the winner drawn from the softmax
    with ``temperature`` (``sample_winner``); if ``depth``, the same for a depth proposal (see
    the module docstring), its gain divided by ``layer_cost``.

    A proposal passes if ``d_eta'/eta_l > tau`` (relative test) and ``d_eta'/||g_y||^2 > alpha``
    (absolute test; ``||g_y||^2`` = mean squared logit gradient). Among passing proposals the
    one with the largest ``1 + d_eta'/eta_l`` is accepted: a width proposal adds one unit
    whose fan-in goes in the request's ``payload`` (``{"fan_in": [[...]], "bias": [...]}``,
    plain floats); a depth proposal emits a ``kind="deepen"`` request
    (``payload={"activation": "rational"}``). With ``max_per_check > 1`` an accepted width
    proposal is added virtually (the consumer gains its activations as an input, gradients are
    unchanged because the fan-out is zero), the site is rescored and the choice repeats, up to
    ``max_per_check`` units; units for the same site are merged into one request. A depth
    acceptance ends the check. Other sites are not rescored (a zero-fan-out unit does not
    change their inputs or gradients).

    Randomness comes from a generator seeded by ``(seed, step, site, round)``: two triggers with
    the same state decide the same on the same model and batch. ``diagnostics()`` reports the
    last check's eta and best width d_eta' per site (kept internally in ``last_eta`` and
    ``last_scores``; ``last_depth_scores`` holds the depth d_eta' after the layer cost).

    Args:
        check_every: steps between checks; >= 1.
        cooldown_epochs: epochs without checks after an accepted growth (reference: 10); >= 0.
        tau: relative threshold; >= 0.
        alpha: absolute threshold; >= 0.
        tikhonov: relative damping of S, A and A_p; >= 0.
        n_proposals: candidates per site and kind; >= 1.
        n_steps: gradient-ascent steps per candidate; >= 0.
        step_size: initial relative step; > 0.
        temperature: sharpness of the softmax over normalised gains; > 0.
        depth: also propose new layers.
        layer_cost: divides a depth proposal's gain; >= 1.
        layer_cooldown: checks without depth proposals after one is accepted; >= 0.
        max_per_check: width units accepted per check, with rescoring; >= 1.
        seed: seeds the proposal generators.
    """

    def __init__(
        self,
        check_every: int = 200,
        cooldown_epochs: int = 10,
        tau: float = 0.03,
        alpha: float = 2.5e-3,
        tikhonov: float = 0.1,
        n_proposals: int = 100,
        n_steps: int = 10,
        step_size: float = 0.3,
        temperature: float = 10.0,
        depth: bool = True,
        layer_cost: float = 20.0,
        layer_cooldown: int = 3,
        max_per_check: int = 1,
        seed: int = 0,
    ):
        if not isinstance(depth, bool):
            raise ValueError(f"depth must be true or false; got {depth!r}")
        self.check_every = check_int("check_every", check_every, minimum=1)
        self.cooldown_epochs = check_int("cooldown_epochs", cooldown_epochs, minimum=0)
        self.tau = check_number("tau", tau, low=0)
        self.alpha = check_number("alpha", alpha, low=0)
        self.tikhonov = check_number("tikhonov", tikhonov, low=0)
        self.n_proposals = check_int("n_proposals", n_proposals, minimum=1)
        self.n_steps = check_int("n_steps", n_steps, minimum=0)
        self.step_size = check_number("step_size", step_size, low=0, low_open=True)
        self.temperature = check_number("temperature", temperature, low=0, low_open=True)
        self.depth = depth
        self.layer_cost = check_number("layer_cost", layer_cost, low=1)
        self.layer_cooldown = check_int("layer_cooldown", layer_cooldown, minimum=0)
        self.max_per_check = check_int("max_per_check", max_per_check, minimum=1)
        self.seed = check_int("seed", seed, minimum=0)
        self.last_growth_epoch: int | None = None
        self.layer_cooldown_left = 0
        self.last_eta: dict[str, float] = {}
        self.last_scores: dict[str, float] = {}
        self.last_depth_scores: dict[str, float] = {}

    def _generator(self, step: int, site_index: int, round_: int, kind: int) -> torch.Generator:
        key = ((self.seed * 1_000_003 + step) * 1009 + site_index) * 64 + round_ * 2 + kind
        return torch.Generator().manual_seed(key % (2**63 - 1))

    def _best(self, feats: Tensor, act: Callable[[Tensor], Tensor], stats: LayerStats, gen: torch.Generator):
        fan_ins, gains = optimize_proposals(
            feats,
            act,
            stats,
            n_proposals=self.n_proposals,
            n_steps=self.n_steps,
            step_size=self.step_size,
            tikhonov=self.tikhonov,
            generator=gen,
        )
        i = sample_winner(gains, self.temperature, gen)
        return fan_ins[i], float(gains[i])

    def _passes(self, gain: float, eta: float, grad_sq: float) -> bool:
        return gain / max(eta, 1e-30) > self.tau and gain / max(grad_sq, 1e-30) > self.alpha

    def check(self, ctx: TriggerContext) -> list[GrowthRequest]:
        if ctx.phase != "step" or ctx.step <= 0 or ctx.step % self.check_every:
            return []
        if ctx.model is None or ctx.batch is None:
            return []
        if self.last_growth_epoch is not None and ctx.epoch - self.last_growth_epoch < self.cooldown_epochs:
            return []
        model = ctx.model
        sites = [s for s in ctx.widths if senn_supported(model, s)]
        measured = {s: measure_site(model, s, ctx.batch, self.tikhonov) for s in sites}
        self.last_eta = {s: d.stats.eta for s, (d, _, _) in measured.items()}
        self.last_scores, self.last_depth_scores = {}, {}
        depth_ok = self.depth and _depth_available() and self.layer_cooldown_left == 0
        if self.layer_cooldown_left > 0:
            self.layer_cooldown_left -= 1
        chosen: dict[str, list[tuple[Tensor, float, str]]] = {}
        width_best: dict[str, tuple[Tensor, float]] = {}  # recomputed only for a rescored site
        out: list[GrowthRequest] = []
        for round_ in range(self.max_per_check):
            best: tuple[float, str, str, float, Tensor | None] | None = None  # ratio, kind, site, gain, fan-in
            for i, site in enumerate(sites):
                data, _, _ = measured[site]
                eta, gsq = data.stats.eta, data.stats.grad_sq
                if site not in width_best:
                    gen = self._generator(ctx.step, i, round_, 0)
                    width_best[site] = self._best(data.inputs, data.activation, data.stats, gen)
                u, gain = width_best[site]
                self.last_scores.setdefault(site, gain)
                if self._passes(gain, eta, gsq) and (best is None or 1 + gain / max(eta, 1e-30) > best[0]):
                    best = (1 + gain / max(eta, 1e-30), "widen", site, gain, u)
                if depth_ok and round_ == 0:
                    gen = self._generator(ctx.step, i, round_, 1)
                    _, dgain = self._best(data.consumer_inputs, data.depth_activation, data.stats, gen)
                    dgain /= self.layer_cost
                    self.last_depth_scores[site] = dgain
                    if self._passes(dgain, eta, gsq) and (best is None or 1 + dgain / max(eta, 1e-30) > best[0]):
                        best = (1 + dgain / max(eta, 1e-30), "deepen", site, dgain, None)
            if best is None:
                break
            _, kind, site, gain, u = best
            data, g, g_hat = measured[site]
            eta, gsq = data.stats.eta, data.stats.grad_sq
            tests = (
                f"eta={eta:.4g}, d_eta'={gain:.4g}: d_eta'/eta={gain / max(eta, 1e-30):.4g} > tau={self.tau:g}, "
                f"d_eta'/|g_y|^2={gain / max(gsq, 1e-30):.4g} > alpha={self.alpha:g}"
            )
            if kind == "deepen":
                reason = f"senn: new identity layer after {site} (gain / layer_cost {self.layer_cost:g}); {tests}"
                out.append(_request(site, 1, gain, reason, "deepen", {"activation": "rational"}))
                self.layer_cooldown_left = self.layer_cooldown
                break
            chosen.setdefault(site, []).append((u, gain, tests))
            if round_ + 1 < self.max_per_check:
                a_p = data.activation((u @ data.inputs.t())[None])[0]
                data.add_input(a_p.detach(), g, g_hat, self.tikhonov)
                del width_best[site]
        for site, units in chosen.items():
            fan_in = [[float(v) for v in (u[:-1] if measured[site][0].has_offset else u)] for u, _, _ in units]
            bias = [float(u[-1]) if measured[site][0].has_offset else 0.0 for u, _, _ in units]
            score = float(sum(gain for _, gain, _ in units))
            reason = f"senn: {len(units)} unit(s) at {site}; {units[0][2]}"
            out.insert(0, _request(site, len(units), score, reason, "widen", {"fan_in": fan_in, "bias": bias}))
        if out:
            self.last_growth_epoch = ctx.epoch
        return out

    def diagnostics(self) -> dict[str, float]:
        """At the last check: ``senn_eta`` (eta summed over the scored sites), and per site
        ``senn_eta/<site>`` (eta) and ``senn_delta_eta/<site>`` (the best width proposal's
        d_eta'); empty before the first check."""
        if not self.last_eta:
            return {}
        out = {"senn_eta": float(sum(self.last_eta.values()))}
        out.update({f"senn_eta/{site}": float(eta) for site, eta in self.last_eta.items()})
        out.update({f"senn_delta_eta/{site}": float(gain) for site, gain in self.last_scores.items()})
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"last_growth_epoch": self.last_growth_epoch, "layer_cooldown_left": self.layer_cooldown_left}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        expected = {"last_growth_epoch", "layer_cooldown_left"}
        if set(state) != expected:
            raise ValueError(f"SENNTrigger state needs keys {sorted(expected)}; got {sorted(state)}")
        self.last_growth_epoch = None if state["last_growth_epoch"] is None else int(state["last_growth_epoch"])
        self.layer_cooldown_left = int(state["layer_cooldown_left"])


@INITIALIZERS.register("senn")
class SENNInitializer(Initializer):
    """SENN initializer: the chosen fan-in, a zero fan-out (function preserved exactly).

    With ``hint`` (the ``senn`` trigger's request payload, ``{"fan_in": [[...]], "bias": [...]}``)
    the first ``n_new`` hinted units are used; missing ones (or all, when ``hint`` is None) come
    from running the proposal optimisation on ``batch`` here, one unit at a time with virtual
    rescoring (see ``SENNTrigger``); its random draws come from torch's global RNG. BatchNorm
    entries of new units are fresh (gamma 1, beta 0, running mean 0, var 1: identity-like, the
    candidate activations were computed that way); without a producer bias the offset goes to
    beta. Sites that are not dense (``senn_supported``) get the ``random`` initializer's
    fan-in (zero fan-out).

    Args:
        n_proposals, n_steps, step_size, temperature, tikhonov: as for ``SENNTrigger``.
    """

    uses_hint: ClassVar[bool] = True

    def __init__(
        self,
        n_proposals: int = 100,
        n_steps: int = 10,
        step_size: float = 0.3,
        temperature: float = 10.0,
        tikhonov: float = 0.1,
    ):
        self.n_proposals = check_int("n_proposals", n_proposals, minimum=1)
        self.n_steps = check_int("n_steps", n_steps, minimum=0)
        self.step_size = check_number("step_size", step_size, low=0, low_open=True)
        self.temperature = check_number("temperature", temperature, low=0, low_open=True)
        self.tikhonov = check_number("tikhonov", tikhonov, low=0)

    @property
    def preserves_function(self) -> bool:
        return True

    def _hinted(self, hint: Any, n_in: int, n_new: int) -> list[tuple[list[float], float]]:
        if hint is None:
            return []
        if (
            not isinstance(hint, dict)
            or not isinstance(hint.get("fan_in"), list)
            or not isinstance(hint.get("bias"), list)
        ):
            raise ValueError(
                f"senn hint must be {{'fan_in': [[...]], 'bias': [...]}} (a senn trigger payload); got {hint!r}"
            )
        rows = [(list(r), float(b)) for r, b in zip(hint["fan_in"], hint["bias"])]
        for r, _ in rows:
            if len(r) != n_in:
                raise ValueError(f"senn hint: fan-in rows need {n_in} entries (the producer's inputs); got {len(r)}")
        return rows[:n_new]

    def propose(
        self,
        model: nn.Module,
        site: str,
        n_new: int,
        batch: tuple[Tensor, Tensor] | None = None,
        hint: Any = None,
    ) -> WidthProposal:
        check_int("n_new", n_new, minimum=1)
        if not senn_supported(model, site):
            return RandomInitializer().propose(model, site, n_new, batch)
        mods = model.site_modules(site)
        w, cw = mods.producer.weight, mods.consumer.weight
        units = self._hinted(hint, w.shape[1], n_new)
        if len(units) < n_new:
            if batch is None:
                raise ValueError("senn needs batch=(x, y) of recent training samples (or a trigger hint); got None")
            data, g, g_hat = measure_site(model, site, batch, self.tikhonov)
            for _ in range(n_new - len(units)):
                gen = torch.Generator().manual_seed(int(torch.randint(0, 2**62, (1,)).item()))
                fan_ins, gains = optimize_proposals(
                    data.inputs,
                    data.activation,
                    data.stats,
                    n_proposals=self.n_proposals,
                    n_steps=self.n_steps,
                    step_size=self.step_size,
                    tikhonov=self.tikhonov,
                    generator=gen,
                )
                u = fan_ins[sample_winner(gains, self.temperature, gen)]
                data.add_input(data.activation((u @ data.inputs.t())[None])[0], g, g_hat, self.tikhonov)
                row = u[:-1] if data.has_offset else u
                units.append(([float(v) for v in row], float(u[-1]) if data.has_offset else 0.0))
        with torch.no_grad():
            fan_in = torch.tensor([r for r, _ in units], dtype=w.dtype, device=w.device)
            offsets = torch.tensor([b for _, b in units], dtype=w.dtype, device=w.device)
            fan_out = torch.zeros((cw.shape[0], n_new), dtype=cw.dtype, device=cw.device)
        norm = _fresh_norm(mods.norm, n_new, w)
        bias = None
        if mods.producer.bias is not None:
            bias = offsets
        elif norm is not None:  # the candidate was act(z / sqrt(1 + eps)): beta carries the scaled offset
            norm["bias"] = offsets / math.sqrt(1.0 + float(mods.norm.eps))
        return WidthProposal(fan_in, bias, fan_out, None, norm)
