"""Dynamic sparse training as a trainer hook: masks at the start, updates on the schedule.

At the first ``on_fit_start`` the hook draws every sparse layer's mask (the distribution's
densities, the updater's ``init_mask``, draws from a generator seeded by the experiment's
seed) and attaches it (``growray.sparse.WeightMasks``: inactive weights and their gradients
stay exactly zero). After every optimizer step t with t % ΔT == 0 and t < T_end the updater
replaces each layer's mask; RigL-style updaters get the dense gradient of that step's own
backward pass, kept by the gradient hook only at those steps. Logged (MLflow keys):

``sparse/sparsity`` (``/<layer>``)
    share of zero-masked weights over every Linear/Conv2d weight (layers kept dense count
    as dense), at step 0 and every epoch.
``sparse/mask_churn`` (``/<layer>``), ``sparse/drop_fraction``
    at each update: connections that are new after it / connections active before it; f(t).
``sparse/loss_before_update``, ``sparse/loss_after_update``
    cross-entropy on the held-out probe batch (eval mode) just before and just after each
    update: the "unstable near update steps" signal.
``sparse/updates``; ``cost/params_dense``, ``cost/flops_dense``
    updates so far; the dense model's parameters and forward FLOPs beside the core's
    ``cost/params`` and ``cost/flops``, which count active weights only (``growray.cost``).

RigL's dense weight gradient at its update steps is added to ``cost/train_flops``
(``TrainingCompute.add_flops``). Artifacts: ``sparse_history.json`` (every update, with a
digest of the masks after it) and ``plots/sparse_masks.png``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from growray.cost import count_params, dense_gradient_extra_flops, forward_flops, mask_signature
from growray.sparse import (
    DISTRIBUTIONS,
    UPDATERS,
    LayerInfo,
    MaskUpdater,
    UpdateSchedule,
    WeightMasks,
    active_counts,
    maskable_layers,
)
from growray.train import Hook, Trainer

from .config import SparseConfig

__all__ = ["SparseHook", "sparse_layers", "steps_per_epoch"]

_P = "sparse/"


def steps_per_epoch(n_train: int, batch_size: int) -> int:
    """Optimizer steps of one epoch: the trainer skips a last batch of one sample (BatchNorm)."""
    full, rest = divmod(n_train, batch_size)
    return full + (1 if rest >= 2 or (rest == 1 and n_train < 2) else 0)


def sparse_layers(model: nn.Module, cfg: SparseConfig) -> dict[str, tuple[int, ...]]:
    """Weight shapes of the layers that get a mask: every Linear/Conv2d but those the section
    keeps dense (``dense_first``, ``dense_last``)."""
    layers = list(maskable_layers(model).items())
    keep = set()
    if cfg.dense_first and layers:
        keep.add(layers[0][0])
    if cfg.dense_last and layers:
        keep.add(layers[-1][0])
    return {name: tuple(m.weight.shape) for name, m in layers if name not in keep}


class SparseHook(Hook):
    """Dynamic sparse training over the trainer's steps (module docstring).

    Args:
        cfg: the ``sparse`` section.
        probe_batch: held-out samples for the loss just before and after each update.
        seed: seeds the generator of every mask draw (initial masks, tie noise, random regrowth).
    """

    name = "sparse"

    def __init__(self, cfg: SparseConfig, probe_batch: tuple[Tensor, Tensor], seed: int = 0):
        if len(probe_batch) != 2 or len(probe_batch[0]) < 1:
            raise ValueError("probe_batch must be a non-empty (inputs, labels) pair")
        self.cfg = cfg
        self.probe = probe_batch
        self.updater: MaskUpdater | None = None if cfg.dense else UPDATERS.build(cfg.updater)
        self.generator = torch.Generator().manual_seed(int(seed))
        self.masks: WeightMasks | None = None
        self.schedule: UpdateSchedule | None = None
        self.history: list[dict[str, Any]] = []
        self._dense_costs: tuple[int, int] | None = None  # params, forward FLOPs of the dense model
        self._extra: tuple[Any, int] | None = None  # (mask signature, dense-gradient FLOPs per sample)
        self._written = -1

    # ------------------------------------------------------------------ setup
    def _schedule(self, trainer: Trainer) -> UpdateSchedule:
        cfg = self.cfg
        total = trainer.cfg.epochs * steps_per_epoch(len(trainer.data.train[0]), trainer.cfg.batch_size)
        end = max(1, math.floor(cfg.t_end * total))
        schedule = UpdateSchedule(cfg.delta_t, cfg.alpha, end)
        if self.updater is not None and self.updater.dynamic and schedule.n_updates() == 0:
            raise ValueError(
                f"sparse.delta_t={cfg.delta_t} leaves no mask update before T_end = step {end} "
                f"(sparse.t_end={cfg.t_end} of {total} training steps): use sparse.delta_t < {end}, "
                "a later sparse.t_end, or more trainer.epochs"
            )
        return schedule

    def initial_masks(self, model: nn.Module) -> WeightMasks:
        """Every sparse layer's first mask (the distribution's densities, the updater's draw)."""
        assert self.updater is not None
        shapes = sparse_layers(model, self.cfg)
        if not shapes:
            raise ValueError(
                "sparse.dense_first and sparse.dense_last keep every Linear/Conv2d layer of this model dense; "
                "set one of them to false"
            )
        densities = DISTRIBUTIONS.build(self.cfg.distribution).densities(shapes, self.cfg.sparsity)
        counts = active_counts(shapes, densities)
        return WeightMasks({k: self.updater.init_mask(s, counts[k], self.generator) for k, s in shapes.items()})

    def on_fit_start(self, trainer: Trainer) -> None:
        self.schedule = self._schedule(trainer)
        if self.updater is None:
            return
        if self.masks is None:
            self.masks = self.initial_masks(trainer.model)
        if self.masks.model is not trainer.model:
            self.masks.attach(trainer.model)
        if trainer.step == 0 and not self.history:
            self.history.append(self._entry(trainer, {}, kind="init"))
            trainer.recorder.log_metrics(self._sparsity(trainer.model), step=0)

    # ------------------------------------------------------------------ loop
    def on_batch_start(self, trainer: Trainer, xb: Tensor, yb: Tensor) -> None:
        if self.masks is None or self.updater is None or not self.updater.needs_gradient:
            return
        assert self.schedule is not None
        if self.schedule.is_update(trainer.step + 1):
            self.masks.capture_next()

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        if self.masks is None or self.updater is None or not self.updater.dynamic:
            return
        assert self.schedule is not None
        if self.schedule.is_update(trainer.step):
            self._update(trainer)

    def _probe_loss(self, model: nn.Module) -> float:
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                return float(F.cross_entropy(model(self.probe[0]), self.probe[1]).item())
        finally:
            model.train(was_training)

    def _update(self, trainer: Trainer) -> None:
        assert self.masks is not None and self.updater is not None and self.schedule is not None
        masks, model, step = self.masks, trainer.model, trainer.step
        grads = masks.release() if self.updater.needs_gradient else {}
        missing = [k for k in masks if self.updater.needs_gradient and k not in grads]
        if missing:
            raise RuntimeError(f"no dense gradient was kept for {missing} at update step {step}")
        if self.updater.needs_gradient and trainer.last_batch is not None:
            trainer.costs.compute.add_flops(self._dense_gradient_flops(trainer) * len(trainer.last_batch[0]), "sparse")
        before = self._probe_loss(model)
        fraction = self.schedule.drop_fraction(step)
        layers: dict[str, dict[str, int]] = {}
        for i, name in enumerate(masks.layers):
            active = masks.n_active(name)
            result = self.updater.update(
                LayerInfo(name, i, len(masks.layers)),
                masks.mask(name),
                masks.weight(name).detach(),
                grads.get(name),
                fraction,
                self.generator,
            )
            removed, added = masks.replace(name, result.mask, trainer.optimizer)
            layers[name] = {
                "active_before": active,
                "active": masks.n_active(name),
                "dropped": result.n_dropped,
                "grown": result.n_grown,
                "removed": removed,
                "added": added,
                "ablated": result.n_ablated,
            }
        after = self._probe_loss(model)
        churn = sum(v["added"] for v in layers.values()) / max(1, sum(v["active_before"] for v in layers.values()))
        logged = {
            _P + "drop_fraction": fraction,
            _P + "mask_churn": churn,
            _P + "loss_before_update": before,
            _P + "loss_after_update": after,
            **{f"{_P}mask_churn/{k}": v["added"] / max(1, v["active_before"]) for k, v in layers.items()},
        }
        trainer.recorder.log_metrics(logged, step=step)
        extra = {"drop_fraction": fraction, "churn": churn, "loss_before": before, "loss_after": after}
        self.history.append(self._entry(trainer, layers, kind="update", **extra))

    def _dense_gradient_flops(self, trainer: Trainer) -> int:
        key = mask_signature(trainer.model)
        if self._extra is None or self._extra[0] != key:
            self._extra = (key, dense_gradient_extra_flops(trainer.model, trainer.data.input_shape))
        return self._extra[1]

    def _entry(self, trainer: Trainer, layers: dict[str, dict[str, int]], kind: str, **extra: float) -> dict[str, Any]:
        assert self.masks is not None
        return {
            "step": trainer.step,
            "kind": kind,
            **extra,
            "sparsity": {k: self.masks.sparsity(k) for k in self.masks},
            "layers": layers,
            "digest": self.masks.digest(),
        }

    # ------------------------------------------------------------------ metrics
    def _sparsity(self, model: nn.Module) -> dict[str, float]:
        out: dict[str, float] = {}
        zeros = total = 0
        for name, module in maskable_layers(model).items():
            n = module.weight.numel()
            off = 0 if self.masks is None or name not in self.masks.layers else n - self.masks.n_active(name)
            out[f"{_P}sparsity/{name}"] = off / n
            zeros, total = zeros + off, total + n
        out[_P + "sparsity"] = zeros / max(1, total)
        return out

    def on_epoch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> dict[str, float]:
        if self._dense_costs is None:
            self._dense_costs = (
                count_params(trainer.model, dense=True),
                forward_flops(trainer.model, trainer.data.input_shape, dense=True),
            )
        params, flops = self._dense_costs
        n_updates = sum(1 for e in self.history if e["kind"] == "update")
        return {
            **self._sparsity(trainer.model),
            _P + "updates": float(n_updates),
            "cost/params_dense": float(params),
            "cost/flops_dense": float(flops),
        }

    def on_checkpoint(self, trainer: Trainer) -> None:
        if self.masks is not None and len(self.history) != self._written:
            trainer.recorder.log_dict(self.history, "sparse_history.json")
            self._written = len(self.history)

    def on_fit_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> dict[str, float]:
        if self.masks is None:
            return {}
        from .plots import sparse_masks_figure

        self.on_checkpoint(trainer)
        trainer.recorder.log_figure(sparse_masks_figure(self.history, trainer.step), "plots/sparse_masks.png")
        return {}

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "updater": self.updater.state_dict() if self.updater is not None else {}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state.get("history", []))
        if self.updater is not None:
            self.updater.load_state_dict(dict(state.get("updater", {})))

    def tensor_state(self) -> dict[str, Any]:
        if self.masks is None:
            return {}
        return {"masks": self.masks.state_dict()["masks"], "generator": self.generator.get_state()}

    def load_tensor_state(self, state: dict[str, Any]) -> None:
        if self.masks is not None:
            self.masks.detach()
        self.masks = WeightMasks.from_state_dict({"masks": state["masks"]}) if "masks" in state else None
        if "generator" in state:
            self.generator.set_state(state["generator"])
