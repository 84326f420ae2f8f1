"""The Grow-vs-Prune protocol of the structural-plasticity study as a trainer hook.

Training (``trainer.epochs``) is split into ``cycles`` equal cycles. Units of a fixed-shape
model are switched by :class:`~growray.sparse.UnitMasks`; at each boundary between two
cycles the prune arm removes units and IMP-rewinds the survivors, the grow arm activates
dormant units (ALGORITHMS.md §7, §12). Logged (MLflow keys):

``plasticity/cycle_acc``
    val accuracy at the end of each cycle (the network as edited so far).
``plasticity/taa``
    time-averaged val accuracy over every epoch so far.
``plasticity/active_units`` (``/<site>``), ``plasticity/active_weights``
    the mask from this step on (after an edit made at this step).
``plasticity/{post,exit,end}_{act,grad}_parity`` (``/<site>``)
    log-parity (``growray.sparse.cohort_parity``) of a cohort against the units kept at its
    edit, on the probe batch in eval mode. Grow: the newborns at Post (right after the
    edit), Exit (end of their cycle) and End (end of training, averaged over cohorts;
    ``/cycle<k>`` per cohort). Prune: the units removed against the units kept, measured at
    Post on the network just before the removal (pruned units have no activity afterwards,
    so Exit and End are grow-only).
``plasticity/wt_acc``, ``plasticity/wt_val_acc``
    the winning ticket: the final mask frozen, the weights set by ``wt_init`` — ``fresh``
    (the model's own init scheme, a new draw), ``original`` (the run's initial weights,
    Frankle & Carbin's reset) or ``rewind`` (the prune arm's IMP rewind weights at
    ``rewind_step``) — and trained from scratch for ``wt_epochs`` by a second Trainer, its
    data order and fresh draw seeded from the experiment seed (or ``wt_seed``); ``wt_acc`` is
    its *test* accuracy and ``wt_val_acc`` its final val accuracy.
``cost/train_flops/winning_ticket``
    the ticket's retraining compute (effective FLOPs: masked units count nothing), part of
    the run's ``cost/train_flops``; its val and test passes join ``cost/eval_flops``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor

import growray.models.smooth_leaky  # noqa: F401  (registers the "smooth_leaky" activation)
from growray.sparse import (
    UNIT_SCORERS,
    RewindSnapshot,
    UnitMasks,
    apply_prune,
    cohort_parity,
    grow_step,
    select_prune,
    unit_targets,
    weight_budget_targets,
)
from growray.train import Hook, Trainer

from .config import PlasticityConfig

__all__ = ["FrozenMaskHook", "PlasticityHook"]

_P = "plasticity/"
#: added to the seed of a fresh winning-ticket draw (the run's own init used the seed itself)
_FRESH_OFFSET = 1_000_003


class FrozenMaskHook(Hook):
    """Trains a model under a fixed unit mask (the winning-ticket retraining): masked units
    are zeroed at the start and held at zero after every step."""

    name = "frozen_mask"

    def __init__(self, masks: UnitMasks):
        self.masks = masks

    def on_fit_start(self, trainer: Trainer) -> None:
        if self.masks.model is not trainer.growable_model():
            self.masks.attach(trainer.growable_model())
            self.masks.zero_inactive()

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        self.masks.restore_inactive()

    def tensor_state(self) -> dict[str, Any]:
        return {"masks": self.masks.state_dict()}


class PlasticityHook(Hook):
    """Runs the Grow or Prune arm over the trainer's epochs.

    Args:
        cfg: the ``plasticity`` section.
        probe_batch: held-out samples (validation) for the parity diagnostics; selection
            and activity scores use the latest training batch (the probe before the first).
    """

    name = "plasticity"

    def __init__(self, cfg: PlasticityConfig, probe_batch: tuple[Tensor, Tensor], seed: int = 0):
        if len(probe_batch) != 2 or len(probe_batch[0]) < 1:
            raise ValueError("probe_batch must be a non-empty (inputs, labels) pair")
        self.cfg = cfg
        self.seed = seed  # the experiment's: the winning ticket's seeds derive from it
        self.initial: RewindSnapshot | None = None  # wt_init=original: the weights at step 0
        self.probe = probe_batch
        self.masks: UnitMasks | None = None
        self.snapshot: RewindSnapshot | None = None
        self.targets: dict[str, int] = {}
        self.val_history: list[float] = []
        self.cohorts: list[dict[str, Any]] = []  # grow: {"cycle", "new": {site: [..]}, "old": {site: [..]}}
        self.epochs_per_cycle = 0
        self.wt_metrics: dict[str, float] = {}

    # ------------------------------------------------------------------ setup
    def _check_schedule(self, trainer: Trainer) -> None:
        epochs, cycles = trainer.cfg.epochs, self.cfg.cycles
        if epochs % cycles != 0:
            lo = max(cycles, epochs - epochs % cycles)
            raise ValueError(
                f"plasticity.cycles={cycles} must divide trainer.epochs={epochs} (cycles x epochs per cycle = "
                f"trainer.epochs); use trainer.epochs={lo} or {lo + cycles}, or another number of cycles"
            )
        self.epochs_per_cycle = epochs // cycles
        if self.cfg.arm == "prune" and cycles > 1:
            n, bs = len(trainer.data.train[0]), trainer.cfg.batch_size
            steps_per_epoch = n // bs + (1 if n % bs >= 2 or (n < 2 and n % bs) else 0)
            first_edit = steps_per_epoch * self.epochs_per_cycle
            if self.cfg.rewind_step > first_edit:
                raise ValueError(
                    f"plasticity.rewind_step={self.cfg.rewind_step} is after the first pruning edit (step {first_edit}, "
                    f"the end of cycle 1): rewind to a step in [0, {first_edit}]"
                )

    def _initial_masks(self, trainer: Trainer) -> UnitMasks:
        model, cfg = trainer.growable_model(), self.cfg
        sites = cfg.sites if cfg.sites is not None else model.sites()
        unknown = sorted(set(sites) - set(model.sites()))
        if unknown:
            raise ValueError(f"plasticity.sites: {unknown} are not sites of this model; its sites are {model.sites()}")
        widths = {s: w for s, w in model.widths().items() if s in sites}
        if cfg.budget == "units":
            self.targets = unit_targets(widths, cfg.compactness)
        else:
            self.targets = weight_budget_targets(model, cfg.compactness, list(sites))
        if cfg.arm == "prune":
            return UnitMasks.dense(model, list(sites))
        start = {s: min(self.targets[s], max(1, round(cfg.initial_fraction * w))) for s, w in widths.items()}
        return UnitMasks.random(model, start)

    def on_fit_start(self, trainer: Trainer) -> None:
        self._check_schedule(trainer)
        if self.masks is None:
            self.masks = self._initial_masks(trainer)
        if self.masks.model is not trainer.growable_model():
            self.masks.attach(trainer.growable_model())
            self.masks.snapshot_inactive()
        if self.cfg.arm == "prune" and self.snapshot is None and trainer.step == self.cfg.rewind_step:
            self.snapshot = RewindSnapshot.capture(trainer.growable_model(), trainer.step)
        if self._wants_initial and self.initial is None and trainer.step == 0:
            self.initial = RewindSnapshot.capture(trainer.growable_model(), 0)
        if trainer.step == 0:  # the series start at the initial mask
            trainer.recorder.log_metrics(self._unit_metrics(trainer), step=0)

    # ------------------------------------------------------------------ loop
    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        assert self.masks is not None  # set in on_fit_start
        self.masks.restore_inactive()
        if self.cfg.arm == "prune" and self.snapshot is None and trainer.step == self.cfg.rewind_step:
            self.snapshot = RewindSnapshot.capture(trainer.growable_model(), trainer.step)

    def on_epoch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> dict[str, float]:
        assert self.masks is not None
        out: dict[str, float] = {}
        val = float(metrics["val/acc"])
        self.val_history.append(val)
        out[_P + "taa"] = sum(self.val_history) / len(self.val_history)
        if trainer.epoch % self.epochs_per_cycle == 0:
            cycle = trainer.epoch // self.epochs_per_cycle
            out[_P + "cycle_acc"] = val
            out[_P + "cycle"] = float(cycle)
            if self.cohorts and self.cohorts[-1]["cycle"] == cycle - 1:
                out.update(self._parity("exit", [self.cohorts[-1]], trainer))
            if cycle >= self.cfg.cycles:
                out.update(self._parity("end", self.cohorts, trainer, per_cohort=True))
            else:
                out.update(self._edit(trainer, cycle))
        out.update(self._unit_metrics(trainer))
        return out

    def _unit_metrics(self, trainer: Trainer) -> dict[str, float]:
        assert self.masks is not None
        counts = self.masks.counts()
        out = {f"{_P}active_units/{site}": float(n) for site, n in counts.items()}
        out[_P + "active_units"] = float(sum(counts.values()))
        out[_P + "active_weights"] = float(self.masks.active_weights(trainer.growable_model()))
        return out

    def _batch(self, trainer: Trainer) -> tuple[Tensor, Tensor]:
        return trainer.last_batch if trainer.last_batch is not None else self.probe

    def _edit(self, trainer: Trainer, cycle: int) -> dict[str, float]:
        """The edit at the boundary after ``cycle``; returns the Post diagnostics."""
        assert self.masks is not None
        cfg, model = self.cfg, trainer.growable_model()
        if cfg.arm == "prune":
            if self.snapshot is None:
                raise RuntimeError(
                    f"no rewind snapshot at step {trainer.step}: plasticity.rewind_step={cfg.rewind_step} was never reached"
                )
            scorer = UNIT_SCORERS.build({"name": cfg.score, **({"tau": cfg.tau} if cfg.score == "activity" else {})})
            pruned = select_prune(model, self.masks, scorer, self.targets, cycle, cfg.cycles, self._batch(trainer)[0])
            cohort = {
                "cycle": cycle,
                "new": {s: idx.tolist() for s, idx in pruned.items()},
                "old": {
                    s: [j for j in self.masks.active(s).tolist() if j not in set(idx.tolist())]
                    for s, idx in pruned.items()
                },
            }
            out = self._parity("post", [cohort], trainer)  # before the removal: pruned vs kept
            apply_prune(model, self.masks, pruned, self.snapshot, trainer.optimizer)
            return out
        plan = grow_step(
            model,
            self.masks,
            self.targets,
            cycle,
            cfg.cycles,
            self._batch(trainer),
            selection=cfg.selection,
            insertion=cfg.insertion,
            optimizer_state=cfg.optimizer_state,
            optimizer=trainer.optimizer,
            tau=cfg.tau,
            noise=cfg.net2wider_noise,
        )
        cohort = {
            "cycle": cycle,
            "new": {s: r.newborns.tolist() for s, r in plan.items() if len(r.newborns)},
            "old": {s: r.incumbents.tolist() for s, r in plan.items() if len(r.newborns)},
        }
        if not cohort["new"]:
            return {}
        self.cohorts.append(cohort)
        return self._parity("post", [cohort], trainer)

    def _parity(
        self, when: str, cohorts: list[dict[str, Any]], trainer: Trainer, per_cohort: bool = False
    ) -> dict[str, float]:
        """``plasticity/<when>_{act,grad}_parity`` (mean over cohorts and sites) and per site."""
        out: dict[str, float] = {}
        per_site: dict[str, list[tuple[float, float]]] = {}
        for cohort in cohorts:
            pairs = []
            for site, new in cohort["new"].items():
                if not new:
                    continue
                a, g = cohort_parity(
                    trainer.growable_model(),
                    site,
                    torch.tensor(new),
                    torch.tensor(cohort["old"][site]),
                    self.probe,
                    self.cfg.tau,
                )
                per_site.setdefault(site, []).append((a, g))
                pairs.append((a, g))
            if per_cohort and pairs:
                out[f"{_P}{when}_act_parity/cycle{cohort['cycle']}"] = _mean(a for a, _ in pairs)
                out[f"{_P}{when}_grad_parity/cycle{cohort['cycle']}"] = _mean(g for _, g in pairs)
        if not per_site:
            return out
        for site, vals in per_site.items():
            out[f"{_P}{when}_act_parity/{site}"] = _mean(a for a, _ in vals)
            out[f"{_P}{when}_grad_parity/{site}"] = _mean(g for _, g in vals)
        everything = [v for vals in per_site.values() for v in vals]
        out[f"{_P}{when}_act_parity"] = _mean(a for a, _ in everything)
        out[f"{_P}{when}_grad_parity"] = _mean(g for _, g in everything)
        return out

    # ------------------------------------------------------------------ end
    def _masks_artifact(self) -> dict[str, Any]:
        assert self.masks is not None
        return {
            "arm": self.cfg.arm,
            "targets": self.targets,
            "active": {s: self.masks.active(s).tolist() for s in self.masks.sites},
        }

    def on_checkpoint(self, trainer: Trainer) -> None:
        if self.masks is not None:
            trainer.recorder.log_dict(self._masks_artifact(), "plasticity_masks.json")

    def on_fit_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> dict[str, float]:
        self.on_checkpoint(trainer)
        if not self.cfg.winning_ticket or self.masks is None:
            return {}
        if not self.wt_metrics:  # finalize may run twice; retrain once
            self.wt_metrics = self._winning_ticket(trainer)
        return dict(self.wt_metrics)

    @property
    def _wants_initial(self) -> bool:
        return self.cfg.winning_ticket and self.cfg.wt_init == "original"

    def _ticket_weights(self) -> RewindSnapshot | None:
        """The snapshot ``wt_init`` starts the ticket from (None: a fresh draw)."""
        if self.cfg.wt_init == "fresh":
            return None
        weights = self.initial if self.cfg.wt_init == "original" else self.snapshot
        if weights is None:
            raise RuntimeError(
                f"plasticity.wt_init={self.cfg.wt_init}: no such weights were captured in this run "
                "(a run restored from a checkpoint taken before this setting existed?)"
            )
        return weights

    @property
    def ticket_seed(self) -> int:
        """The winning ticket's seed: ``wt_seed``, or the experiment seed."""
        return self.cfg.wt_seed if self.cfg.wt_seed is not None else self.seed

    def ticket_start(self, trainer: Trainer) -> torch.nn.Module:
        """The ticket's network before its training (the mask is applied by its trainer):
        a fresh draw under ``ticket_seed + 1000003`` (the run's own initialisation was drawn
        under the experiment seed, so a fresh draw must not repeat it), then, for ``original``
        and ``rewind``, the stored weights. Draws from the global RNG: call it inside a fork."""
        from growray.models import build_model

        torch.manual_seed(self.ticket_seed + _FRESH_OFFSET)
        model = build_model(trainer.arch.spec()).to(trainer.device)
        weights = self._ticket_weights()
        if weights is not None:
            weights.rewind(model)  # type: ignore[arg-type]
        return model

    def _winning_ticket(self, trainer: Trainer) -> dict[str, float]:
        """Freeze the mask, set the weights by ``wt_init`` and train from scratch (no report);
        the ticket's training and evaluation compute is added to the run's."""
        assert self.masks is not None
        epochs = self.cfg.wt_epochs or trainer.cfg.epochs
        seed = self.ticket_seed
        devices = [trainer.device] if trainer.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # the outer run's RNG streams are left alone
            model = self.ticket_start(trainer)
            masks = UnitMasks.from_state_dict(self.masks.state_dict())
            wt = Trainer(
                model,
                trainer.data,
                trainer.cfg.model_copy(update={"epochs": epochs}),
                hooks=[FrozenMaskHook(masks)],
                seed=seed,
                device=trainer.device,
            )
            final = wt.fit()
        # the ticket's compute is the run's: its training (effective FLOPs under the frozen
        # mask) as cost/train_flops/winning_ticket, its val/test passes in cost/eval_flops
        trainer.costs.compute.add_flops(wt.costs.compute.total_flops, "winning_ticket")
        trainer.costs.eval_flops += wt.costs.eval_flops
        return {_P + "wt_acc": float(final["test/acc"]), _P + "wt_val_acc": float(final["val/acc"])}

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "targets": self.targets,
            "val_history": self.val_history,
            "cohorts": self.cohorts,
            "wt_metrics": self.wt_metrics,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.targets = {k: int(v) for k, v in state.get("targets", {}).items()}
        self.val_history = [float(v) for v in state.get("val_history", [])]
        self.cohorts = list(state.get("cohorts", []))
        self.wt_metrics = dict(state.get("wt_metrics", {}))

    def tensor_state(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.masks is not None:
            out["masks"] = self.masks.state_dict()
        if self.snapshot is not None:
            out["rewind"] = self.snapshot.state_dict()
        if self.initial is not None:
            out["initial"] = self.initial.state_dict()
        return out

    def load_tensor_state(self, state: dict[str, Any]) -> None:
        if self.masks is not None:
            self.masks.detach()
        self.masks = UnitMasks.from_state_dict(state["masks"]) if "masks" in state else None
        self.snapshot = RewindSnapshot.from_state_dict(state["rewind"]) if "rewind" in state else None
        self.initial = RewindSnapshot.from_state_dict(state["initial"]) if "initial" in state else None


def _mean(values: Any) -> float:
    vals = list(values)
    return sum(vals) / len(vals) if vals else math.nan
