"""The ``senn`` trigger: grow where a new unit (or layer) would most raise SENN's natural
expansion score (see ``growray.growth.senn``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from growray.checks import check_bool, check_int, check_number
from growray.growth._senn_site import measure_sites, senn_supported
from growray.growth.senn_score import LayerStats, optimize_proposals, sample_winner
from growray.growth.triggers import TRIGGERS, GrowthRequest, Trigger, TriggerContext

__all__ = ["SENNTrigger"]


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
        self.check_every = check_int("check_every", check_every, minimum=1)
        self.cooldown_epochs = check_int("cooldown_epochs", cooldown_epochs, minimum=0)
        self.tau = check_number("tau", tau, low=0)
        self.alpha = check_number("alpha", alpha, low=0)
        self.tikhonov = check_number("tikhonov", tikhonov, low=0)
        self.n_proposals = check_int("n_proposals", n_proposals, minimum=1)
        self.n_steps = check_int("n_steps", n_steps, minimum=0)
        self.step_size = check_number("step_size", step_size, low=0, low_open=True)
        self.temperature = check_number("temperature", temperature, low=0, low_open=True)
        self.depth = check_bool("depth", depth)
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

    def _best(
        self,
        feats: Tensor,
        act: Callable[[Tensor], Tensor],
        stats: LayerStats,
        gen: torch.Generator,
        slope: Callable[[Tensor], Tensor] | None = None,
    ) -> tuple[Tensor, float]:
        fan_ins, gains = optimize_proposals(
            feats,
            act,
            stats,
            n_proposals=self.n_proposals,
            n_steps=self.n_steps,
            step_size=self.step_size,
            tikhonov=self.tikhonov,
            generator=gen,
            slope=slope,
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
        measured = measure_sites(model, sites, ctx.batch, self.tikhonov)  # one capture for all sites
        self.last_eta = {s: d.stats.eta for s, (d, _, _) in measured.items()}
        self.last_scores, self.last_depth_scores = {}, {}
        depth_ok = self.depth and self.layer_cooldown_left == 0
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
                    width_best[site] = self._best(data.inputs, data.activation, data.stats, gen, data.slope)
                u, gain = width_best[site]
                self.last_scores.setdefault(site, gain)
                if self._passes(gain, eta, gsq) and (best is None or 1 + gain / max(eta, 1e-30) > best[0]):
                    best = (1 + gain / max(eta, 1e-30), "widen", site, gain, u)
                if depth_ok and round_ == 0:
                    gen = self._generator(ctx.step, i, round_, 1)
                    _, dgain = self._best(
                        data.consumer_inputs, data.depth_activation, data.stats, gen, data.depth_slope
                    )
                    dgain /= self.layer_cost
                    self.last_depth_scores[site] = dgain
                    if self._passes(dgain, eta, gsq) and (best is None or 1 + dgain / max(eta, 1e-30) > best[0]):
                        best = (1 + dgain / max(eta, 1e-30), "deepen", site, dgain, None)
            if best is None:
                break
            _, kind, site, gain, fan_in_u = best
            data, g, g_hat = measured[site]
            eta, gsq = data.stats.eta, data.stats.grad_sq
            tests = (
                f"eta={eta:.4g}, d_eta'={gain:.4g}: d_eta'/eta={gain / max(eta, 1e-30):.4g} > tau={self.tau:g}, "
                f"d_eta'/|g_y|^2={gain / max(gsq, 1e-30):.4g} > alpha={self.alpha:g}"
            )
            if kind == "deepen" or fan_in_u is None:  # width proposals always carry their fan-in
                reason = f"senn: new identity layer after {site} (gain / layer_cost {self.layer_cost:g}); {tests}"
                out.append(GrowthRequest(site, 1, gain, reason, kind="deepen", payload={"activation": "rational"}))
                self.layer_cooldown_left = self.layer_cooldown
                break
            chosen.setdefault(site, []).append((fan_in_u, gain, tests))
            if round_ + 1 < self.max_per_check:
                a_p = data.activation((fan_in_u @ data.inputs.t())[None])[0]
                data.add_input(a_p.detach(), g, g_hat, self.tikhonov)
                del width_best[site]
        for site, units in chosen.items():
            fan_in = [[float(v) for v in (u[:-1] if measured[site][0].has_offset else u)] for u, _, _ in units]
            bias = [float(u[-1]) if measured[site][0].has_offset else 0.0 for u, _, _ in units]
            score = float(sum(gain for _, gain, _ in units))
            reason = f"senn: {len(units)} unit(s) at {site}; {units[0][2]}"
            out.insert(0, GrowthRequest(site, len(units), score, reason, payload={"fan_in": fan_in, "bias": bias}))
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
