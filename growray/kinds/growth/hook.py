"""Growth as a trainer hook: ask the strategy after each step and each epoch, record events."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import torch

from growray.growth import GrowthStrategy, TriggerContext, advance_dropin
from growray.growth.diagnostics import newborn_parity
from growray.train import Hook, Trainer, scheduled_lr

from .config import NewbornDiagnosticsConfig

__all__ = ["GrowthHook"]


class GrowthHook(Hook):
    """Runs a GrowthStrategy inside the loop.

    After every optimizer step it advances the model's DropIn gates (``advance_dropin``;
    a gate that reaches 1 is removed), then asks the strategy. Site names are stable (an
    inserted block gets a new name, existing sites keep theirs), so the per-site metrics
    ``growth/width/<site>`` and the newborn cohorts keep referring to the same layers; a
    deepen event starts a new site and has no newborn cohort (every unit of the new block
    is new, there are no incumbents to compare with), so it is not diagnosed.

    Args:
        strategy: trigger x initializer x caps (pure torch; returns events).
        probe: a held-out batch (validation samples) on which every event measures how much
            the network's output changed.
        buffer_size: recent training samples kept for data-driven triggers and initializers.
        diagnostics: the newborn diagnostics settings; None measures none.
        sites: the sites allowed to grow (checked against the model at the start).
        lr_factor_after_growth: multiply the learning rate by this at every step with a growth
            event (compounding over events), on top of ``trainer.lr_schedule``: every batch's
            rate is the schedule's times the product of the factors so far, in every parameter
            group (new units' groups included); the product is checkpointed. None: unchanged.
    """

    name = "growth"

    def __init__(
        self,
        strategy: GrowthStrategy,
        probe: tuple[torch.Tensor, torch.Tensor],
        buffer_size: int = 256,
        diagnostics: NewbornDiagnosticsConfig | None = None,
        sites: list[str] | None = None,
        lr_factor_after_growth: float | None = None,
    ):
        self.strategy = strategy
        self.probe = probe
        self.buffer_size = buffer_size
        self.diagnostics = diagnostics
        self.sites = sites
        self._cohorts: dict[str, list[int]] = {}  # site -> [start, end, birth step] of the latest newborns
        self._recent: list[tuple[torch.Tensor, torch.Tensor]] = []
        self._n_recent = 0
        self._written_events = -1
        # the growth timeline's curves: val/acc and the epoch's mean train loss at each epoch end
        self._curves: dict[str, list[tuple[int, float]]] = {"val/acc": [], "train/loss": []}
        self._loss_sum, self._loss_n = 0.0, 0
        self.lr_factor_after_growth = lr_factor_after_growth
        self.lr_scale = 1.0  # product of lr_factor_after_growth over the events so far

    def _remember(self, batch: tuple[torch.Tensor, torch.Tensor] | None) -> None:
        """Keep the most recent ``buffer_size`` training samples (views, no copies)."""
        if batch is None:
            return
        self._recent.append(batch)
        self._n_recent += len(batch[0])
        while self._recent and self._n_recent - len(self._recent[0][0]) >= self.buffer_size:
            self._n_recent -= len(self._recent.pop(0)[0])

    def recent_batch(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if not self._recent:
            return None
        x = torch.cat([b[0] for b in self._recent])[-self.buffer_size :]
        y = torch.cat([b[1] for b in self._recent])[-self.buffer_size :]
        return x, y

    def on_fit_start(self, trainer: Trainer) -> None:
        model_sites = trainer.growable_model().sites()
        unknown = sorted(set(self.sites or []) - set(model_sites))
        if unknown:
            raise ValueError(f"growth.sites: {unknown} are not sites of this model; its sites are {model_sites}")
        if trainer.step == 0:  # a fresh run: what the trigger compares against at initialisation
            x, y = trainer.data.train
            model = trainer.growable_model()
            first = (x[: self.buffer_size], y[: self.buffer_size])
            self.strategy.start(TriggerContext(0, 0, "step", dict(model.widths()), model=model, batch=first))
            trainer.costs.compute.add_flops(self.strategy.take_overhead_flops(), "growth")

    def _grow(self, trainer: Trainer, phase: Literal["step", "epoch"], **losses: float | None) -> None:
        model = trainer.growable_model()
        ctx = TriggerContext(
            step=trainer.step,
            epoch=trainer.epoch,
            phase=phase,
            widths=dict(model.widths()),
            model=model,
            batch=self.recent_batch(),
            **losses,
        )
        events = self.strategy.step(model, trainer.optimizer, ctx, self.probe)
        trainer.costs.compute.add_flops(self.strategy.take_overhead_flops(), "growth")  # checks, proposals
        widened = [ev for ev in events if ev.kind == "widen"]
        if widened and self._diagnosing():
            for ev in widened:
                self._cohorts[ev.site] = [ev.width_before, ev.width_after, trainer.step]
            parities = self._measure(trainer, [ev.site for ev in widened])
            for ev in events:
                if ev.site in parities:
                    ev.newborn_act_parity, ev.newborn_grad_parity = parities[ev.site]
        trainer.record_events(events)
        if events and self.lr_factor_after_growth is not None:
            self.lr_scale *= self.lr_factor_after_growth
            self._scale_lr(trainer)
        if events:
            error = max(ev.preservation_error for ev in events)
            trainer.recorder.log_metrics({"growth/preservation_error": float(error)}, step=trainer.step)

    def _diagnosing(self) -> bool:
        return self.diagnostics is not None and self.diagnostics.enabled and bool(self._recent)

    def _measure(self, trainer: Trainer, sites: list[str]) -> dict[str, tuple[float, float]]:
        """Newborn log-parity at ``sites`` on the recent training samples; logged at this step."""
        batch = self.recent_batch()
        if batch is None or not sites or self.diagnostics is None:
            return {}
        model = trainer.growable_model()
        out: dict[str, tuple[float, float]] = {}
        metrics: dict[str, float] = {}
        for site in sites:
            start, end, _ = self._cohorts[site]
            p = newborn_parity(model, site, start, end, batch, tau=self.diagnostics.tau)
            out[site] = (p.act, p.grad)
            metrics[f"growth/newborn_act_parity/{site}"] = p.act
            metrics[f"growth/newborn_grad_parity/{site}"] = p.grad
        metrics["growth/newborn_act_parity"] = sum(a for a, _ in out.values()) / len(out)
        metrics["growth/newborn_grad_parity"] = sum(g for _, g in out.values()) / len(out)
        trainer.recorder.log_metrics(metrics, step=trainer.step)
        return out

    def _follow_up(self, trainer: Trainer) -> None:
        """Every ``every_steps`` after birth, until ``horizon_steps``: is the cohort integrating?"""
        d = self.diagnostics
        if d is None or not self._diagnosing() or d.every_steps == 0:
            return
        due = [
            site
            for site, (_, _, born) in self._cohorts.items()
            if 0 < trainer.step - born <= d.horizon_steps and (trainer.step - born) % d.every_steps == 0
        ]
        self._measure(trainer, due)

    def _scale_lr(self, trainer: Trainer) -> None:
        lr = scheduled_lr(trainer.cfg, trainer.epoch) * self.lr_scale
        for group in trainer.optimizer.param_groups:
            group["lr"] = lr

    def on_batch_start(self, trainer: Trainer, xb: torch.Tensor, yb: torch.Tensor) -> None:
        if self.lr_scale != 1.0:  # the trainer sets the schedule's rate at each epoch's start
            self._scale_lr(trainer)

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        self._loss_sum, self._loss_n = self._loss_sum + float(loss), self._loss_n + 1
        self._remember(trainer.last_batch)
        advance_dropin(trainer.model)
        self._follow_up(trainer)
        self._grow(trainer, "step", train_loss=loss)

    def on_epoch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> dict[str, float]:
        self._grow(trainer, "epoch", train_loss=None, val_loss=metrics["val/loss"])
        self._curves["val/acc"].append((trainer.step, float(metrics["val/acc"])))
        if self._loss_n:
            self._curves["train/loss"].append((trainer.step, self._loss_sum / self._loss_n))
        self._loss_sum, self._loss_n = 0.0, 0
        # what the trigger measured at its last check (SENN: eta per site, the best proposal's bound)
        return {f"growth/{key}": float(value) for key, value in self.strategy.trigger.diagnostics().items()}

    def on_checkpoint(self, trainer: Trainer) -> None:
        if len(trainer.events) != self._written_events:
            trainer.recorder.log_dict(trainer.events, "growth_events.json")
            self._written_events = len(trainer.events)

    def on_fit_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> dict[str, float]:
        from growray.tracking import growth_timeline_figure

        self.on_checkpoint(trainer)
        fig = growth_timeline_figure(
            trainer.initial_widths,
            trainer.events,
            trainer.step,
            max_width=self.strategy.max_width,
            curves=self._curves,
        )
        trainer.recorder.log_figure(fig, "plots/growth_timeline.png")
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy.state_dict(),
            "cohorts": self._cohorts,
            "curves": self._curves,
            "lr_scale": self.lr_scale,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.strategy.load_state_dict(state.get("strategy", {}))
        self._cohorts = {k: list(v) for k, v in state.get("cohorts", {}).items()}
        curves = state.get("curves", {})  # older checkpoints: the curves start at the restore
        self._curves = {k: [(int(a), float(b)) for a, b in curves.get(k, [])] for k in self._curves}
        self.lr_scale = float(state.get("lr_scale", 1.0))
