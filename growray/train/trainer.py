"""The one training loop. Growth, Grow-vs-Prune and the NAS methods extend it through hooks.

The trainer sees narrow handles only: a ``Recorder`` (tracking) and a ``report`` callable
(Ray Tune, or nothing). Each epoch it evaluates, logs, flushes the recorder, writes a
checkpoint and reports — in that order, so a reported checkpoint always contains every
metric that was logged before it.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from growray.config import CostsConfig, TrainerConfig
from growray.data import TensorSplits
from growray.export import NETWORK_ARTIFACT, final_network
from growray.metrics import width_metric
from growray.models import GrowableModel
from growray.tracking import NullRecorder, Recorder

from .augment import BatchAugment
from .checkpoint import CheckpointData, load_checkpoint, model_from_checkpoint, save_checkpoint
from .costs import CostMeter
from .evaluate import evaluate
from .hooks import Hook, merge_metrics
from .optim import make_optimizer, scheduled_lr, weight_parameters
from .precision import Precision, epoch_progress, training_loss
from .protocols import ArchitectureEvent, SpecModel, spec_model

__all__ = ["ReportFn", "Trainer", "TrainingDivergedError"]

#: ``report(metrics, checkpoint_dir)``; the checkpoint dir may be deleted after the call returns.
ReportFn = Callable[[dict[str, Any], "str | None"], None]


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


class Trainer:
    """Trains a (possibly growing) model on in-memory tensors.

    Args:
        model: a growray model (``spec()``, ``widths()``, ``sites()``), already on ``device``.
        data: train/val/test tensors, already on ``device``.
        cfg: the ``trainer`` section.
        hooks: callbacks; growth is one.
        recorder: where metrics and artifacts go; None records nothing.
        report: called once per epoch with metrics and a checkpoint folder (Ray Tune).
        seed: seeds the data order and the global torch RNG (initializers draw from it).
        checkpoint_every: write a checkpoint every N epochs (and always at the last one).
        costs: the ``costs`` section (latency protocol and interval); None measures no latency.
        gpu_fraction: the trial's GPU share, for ``cost/gpu_seconds`` on CUDA.
        augment: augments training batches (``data.augment``); None: none.
    """

    def __init__(
        self,
        model: nn.Module,
        data: TensorSplits,
        cfg: TrainerConfig,
        *,
        hooks: Sequence[Hook] = (),
        recorder: Recorder | None = None,
        report: ReportFn | None = None,
        seed: int = 0,
        checkpoint_every: int = 1,
        device: str | torch.device = "cpu",
        costs: CostsConfig | None = None,
        gpu_fraction: float = 0.0,
        augment: BatchAugment | None = None,
    ) -> None:
        names = [h.name for h in hooks]
        if len(set(names)) != len(names):
            raise ValueError(f"hook names must be unique (they key checkpoint state); got {names}")
        self.model = model
        self.arch: SpecModel = spec_model(model)  # the same object, seen through what the trainer uses
        self.data = data
        self.cfg = cfg
        self.hooks = list(hooks)
        self.recorder: Recorder = recorder if recorder is not None else NullRecorder()
        self.report = report
        self.device = torch.device(device)
        self.precision = Precision(cfg.amp, self.device, cfg.channels_last)  # trainer.amp, channels_last
        self.precision.prepare_model(model)
        self.augment = augment if augment is not None else BatchAugment(seed=seed)
        self.checkpoint_every = checkpoint_every
        self.optimizer = make_optimizer(model, cfg)
        self.step = 0
        self.epoch = 0
        self.events: list[dict[str, Any]] = []
        self.best_val_acc = -math.inf
        self.train_seconds = 0.0
        self.initial_widths: dict[str, int] = dict(self.widths())
        self.meta_extra: dict[str, Any] = {}
        torch.manual_seed(seed)
        self._data_gen = torch.Generator().manual_seed(seed)
        self._finalized = False
        self._final_metrics: dict[str, float] = {}
        self._written_arch: str | None = None
        self.last_batch: tuple[torch.Tensor, torch.Tensor] | None = None  # for hooks
        # what record_events logged at the current step: the epoch's own log leaves out the same
        # values at the same step, so each (metric, step) is recorded once
        self._logged_at_step: tuple[int, dict[str, float]] = (-1, {})
        self.costs = CostMeter(costs, data.input_shape, self.device)
        self.gpu_fraction = gpu_fraction
        self.stop_reason: str | None = None  # set by request_stop: the loop ends after this epoch
        self._stop_now = False  # request_stop(now=True): ... or after this step

    # ------------------------------------------------------------------ the model's architecture
    def widths(self) -> dict[str, int]:
        return dict(self.arch.widths())

    def arch_json(self) -> str:
        """The model's current ArchSpec as JSON (what checkpoints and ``architecture.json`` hold)."""
        return self.arch.spec().to_json()

    def growable_model(self) -> GrowableModel:
        """The model as a ``GrowableModel`` (width sites and their modules), for hooks that edit
        units (growth, Grow-vs-Prune).

        Raises:
            TypeError: the model has no width sites API (a supernet, a cell network).
        """
        if not isinstance(self.model, GrowableModel):
            raise TypeError(f"this hook edits width sites (mlp, cnn models); got a {type(self.model).__name__}")
        return self.model

    def request_stop(self, reason: str, now: bool = False) -> None:
        """End training after the current epoch (its evaluation, checkpoint and report run as
        for the last epoch); ``now``: after the current step (the epoch ends there). The
        reason is tagged ``growray.stop_reason`` on the run."""
        self._stop_now = self._stop_now or now
        if self.stop_reason is None:
            self.stop_reason = reason
            self.recorder.set_tags({"growray.stop_reason": reason})

    @property
    def finished(self) -> bool:
        return self.epoch >= self.cfg.epochs or self.stop_reason is not None

    # ------------------------------------------------------------------ restore
    model_from_checkpoint = staticmethod(model_from_checkpoint)

    @classmethod
    def from_checkpoint(cls, directory: str, data: TensorSplits, cfg: TrainerConfig, **kwargs: Any) -> Trainer:
        """Rebuild model and optimizer from a checkpoint's spec and state (not from any config)."""
        device = torch.device(kwargs.get("device", "cpu"))
        trainer = cls(cls.model_from_checkpoint(directory, device), data, cfg, **kwargs)
        trainer.load_state(load_checkpoint(directory, map_location=device))
        return trainer

    def load_state(self, ckpt: CheckpointData) -> None:
        self.optimizer.load_state_dict(ckpt.optimizer_state)
        # The checkpoint may come from another trial (PBT exploit) with other hyperparameters:
        # this trial's config decides them; the moments are kept.
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.lr
            group["weight_decay"] = self.cfg.weight_decay
            if "momentum" in group and self.cfg.optimizer == "sgd":
                group["momentum"] = self.cfg.momentum
        torch.set_rng_state(ckpt.rng_state)
        self._data_gen.set_state(ckpt.data_rng_state)
        meta = ckpt.meta
        self.step, self.epoch = int(meta["step"]), int(meta["epoch"])
        self.events = list(meta.get("events", []))
        self.best_val_acc = float(meta.get("best_val_acc", -math.inf))
        self.train_seconds = float(meta.get("train_seconds", 0.0))
        self.initial_widths = dict(meta.get("initial_widths", self.initial_widths))
        self.costs.load_state_dict(meta)
        self.stop_reason = meta.get("stop_reason")
        self.precision.load_state_dict(meta.get("grad_scaler", {}))
        hook_states = meta.get("hooks", {})
        for hook in self.hooks:
            if hook.name in hook_states:
                hook.load_state_dict(hook_states[hook.name])
            if hook.name in ckpt.hook_tensors:
                hook.load_tensor_state(ckpt.hook_tensors[hook.name])

    def checkpoint_data(self) -> CheckpointData:
        meta = {
            "step": self.step,
            "epoch": self.epoch,
            "events": self.events,
            "best_val_acc": self.best_val_acc,
            "train_seconds": self.train_seconds,
            "initial_widths": self.initial_widths,
            "hooks": {h.name: h.state_dict() for h in self.hooks},
            "mlflow_run_id": self.recorder.run_id,
            **self.costs.state_dict(),
            "stop_reason": self.stop_reason,
            **({"grad_scaler": self.precision.state_dict()} if self.precision.scaler is not None else {}),
            **self.meta_extra,
        }
        return CheckpointData(
            spec=self.arch.spec(),
            model_state={k: v.detach().clone() for k, v in self.model.state_dict().items()},
            optimizer_state=self.optimizer.state_dict(),
            rng_state=torch.get_rng_state(),
            data_rng_state=self._data_gen.get_state(),
            meta=meta,
            hook_tensors={h.name: state for h in self.hooks if (state := h.tensor_state())},
        )

    def save(self, directory: str) -> None:
        save_checkpoint(directory, self.checkpoint_data())

    # ------------------------------------------------------------------ metrics
    def cost_metrics(self) -> dict[str, float]:
        """Parameter count and forward FLOPs per sample (recomputed only when widths change)."""
        return self.costs.static(self.model, self.widths())

    def architecture_metrics(self) -> dict[str, float]:
        """``growth/width/<site>``, ``growth/depth`` and ``growth/events`` of a model with width
        sites (none for a supernet or a fixed cell network)."""
        widths = self.widths()
        if not widths:
            return {}
        out = {width_metric(site): float(w) for site, w in widths.items()}
        out["growth/depth"] = float(len(widths))
        out["growth/events"] = float(len(self.events))
        return out

    def record_events(self, events: Sequence[ArchitectureEvent]) -> None:
        """Store architecture events (``growray.growth.GrowthEvent``: anything with ``to_dict``)
        and log the architecture and costs they led to at the current step."""
        if not events:
            return
        self.events += [ev.to_dict() for ev in events]
        logged = {**self.architecture_metrics(), **self.cost_metrics()}
        self.recorder.log_metrics(logged, step=self.step)
        previous = self._logged_at_step[1] if self._logged_at_step[0] == self.step else {}
        self._logged_at_step = (self.step, {**previous, **logged})

    def evaluate(self, split: str) -> tuple[float, float]:
        """(mean loss, accuracy) on ``train``, ``val`` or ``test``, in eval mode."""
        x, y = getattr(self.data, split)
        self.costs.add_eval(self.model, len(x))
        return evaluate(self.model, x, y, self.cfg.eval_batch_size, precision=self.precision)

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict[str, float]:
        """Train from the current state to ``cfg.epochs``; returns the final metrics."""
        for hook in self.hooks:
            hook.on_fit_start(self)
        protocol = self.costs.protocol()
        if protocol is not None:
            self.recorder.log_params(protocol.as_params(device=str(self.device)))
        if self.step == 0:
            self.recorder.log_metrics({**self.architecture_metrics(), **self.cost_metrics()}, step=0)
        metrics: dict[str, float] = {}
        while not self.finished:
            train_loss, train_acc = self._train_epoch()
            metrics = self._end_epoch(train_loss, train_acc)
        return self.finalize(metrics)

    def _train_epoch(self) -> tuple[float, float]:
        """One pass over the training split; returns its mean loss and accuracy."""
        self.model.train()
        epoch_progress(self.model, self.epoch, self.cfg.epochs)  # e.g. a drop-path ramp
        for group in self.optimizer.param_groups:
            group["lr"] = scheduled_lr(self.cfg, self.epoch)
        x_train, y_train = self.data.train
        n, bs = len(x_train), self.cfg.batch_size
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=self._data_gen).to(x_train.device)
        loss_sum, correct, seen, window = 0.0, 0, 0, []
        for i in range(0, n, bs):
            idx = perm[i : i + bs]
            if len(idx) < 2 and n >= 2:
                continue  # a single-sample batch breaks BatchNorm; dropped like drop_last
            xb, yb = self.precision.batch(self.augment(x_train[idx], self.step)), y_train[idx]
            for hook in self.hooks:
                hook.on_batch_start(self, xb, yb)
            with self.precision.autocast():
                logits = self.model(xb)
            loss = training_loss(self.model, logits, yb)  # + an auxiliary head's, if any
            loss = sum((p for h in self.hooks if (p := h.loss_penalty(self)) is not None), loss)  # e.g. EWC
            if not torch.isfinite(loss):
                raise TrainingDivergedError(
                    f"training loss became {loss.item()} at step {self.step} (epoch {self.epoch}); "
                    "lower trainer.lr or check the data"
                )
            self.optimizer.zero_grad(set_to_none=True)
            self.precision.step(loss, self.optimizer, self.cfg.grad_clip, lambda: weight_parameters(self.model))
            self.step += 1
            self.costs.compute.add_step(self.model, self.data.input_shape, len(idx))
            lv = loss.item()
            loss_sum += lv * len(idx)
            correct += int((logits.argmax(1) == yb).sum().item())
            seen += len(idx)
            window.append(lv)
            self.last_batch = (xb, yb)
            if self.step % self.cfg.log_every_steps == 0:
                self.recorder.log_metrics({"train/loss": sum(window) / len(window)}, step=self.step)
                window = []
            for hook in self.hooks:
                hook.on_step_end(self, lv)
            if self._stop_now:
                break
        self.epoch += 1
        self.train_seconds += time.perf_counter() - t0
        return loss_sum / max(seen, 1), correct / max(seen, 1)

    def _write_architecture(self) -> None:
        """``architecture.json`` whenever it changed, so a trial stopped early still has its network."""
        spec = self.arch_json()
        if spec != self._written_arch:
            self.recorder.log_text(spec, "architecture.json")
            self._written_arch = spec

    def finalize(self, metrics: dict[str, float] | None = None) -> dict[str, float]:
        """Final artifacts of the network as it stands: test metrics, architecture, hook outputs.

        Idempotent (a second call returns the first call's hook metrics). Runs before the last
        report (Tune may end a trial inside ``report``), and again harmlessly after ``fit``; a
        trial stopped early by a scheduler calls it itself.
        """
        metrics = dict(metrics or {})
        if self._finalized:
            metrics.update(self._final_metrics)
            return metrics
        self._finalized = True
        if "test/acc" not in metrics:
            test_loss, test_acc = self.evaluate("test")
            metrics.update({"test/loss": test_loss, "test/acc": test_acc})
            self.recorder.log_metrics({"test/loss": test_loss, "test/acc": test_acc}, step=self.step)
        self._write_architecture()
        if self.recorder.run_id is not None:  # the final network, for `growray export RUN_ID`
            network = final_network(self.arch.spec(), self.model, (h.tensor_state() for h in self.hooks))
            if network is not None:  # None: a supernet (its retrain run is exported)
                self.recorder.log_dict(network, NETWORK_ARTIFACT)
        for hook in self.hooks:
            added = hook.on_fit_end(self, metrics)
            merge_metrics(metrics, added, hook.name)
            self._final_metrics.update(added)
        spent = self.costs.compute_changes(metrics)  # e.g. a winning ticket's retraining, in on_fit_end
        metrics.update(spent)
        self._final_metrics.update(spent)
        if self._final_metrics:
            self.recorder.log_metrics(self._final_metrics, step=self.step)
        self.recorder.flush()
        return metrics

    def _end_epoch(self, train_loss: float, train_acc: float) -> dict[str, float]:
        for hook in self.hooks:
            hook.before_validation(self)
        val_loss, val_acc = self.evaluate("val")
        self.best_val_acc = max(self.best_val_acc, val_acc)
        metrics: dict[str, float] = {
            "epoch": float(self.epoch),
            "train/acc": train_acc,
            "train/lr": float(self.optimizer.param_groups[0]["lr"]),
            "val/loss": val_loss,
            "val/acc": val_acc,
            "best/val_acc": self.best_val_acc,
            "cost/train_seconds": self.train_seconds,
        }
        for hook in self.hooks:
            merge_metrics(metrics, hook.on_epoch_end(self, dict(metrics)), hook.name)
        metrics.update(self.architecture_metrics())
        metrics.update(self.cost_metrics())
        last = self.finished
        self.costs.measure_latency_if_due(self.model, self.arch_json(), self.epoch, last)
        metrics.update(self.costs.latency)  # the latest measurement, so every report carries the current cost
        metrics.update(self.costs.compute_metrics())  # cost/train_flops (+ per kind), cost/eval_flops
        if self.device.type == "cuda" and self.gpu_fraction > 0:
            metrics["cost/gpu_seconds"] = self.train_seconds * self.gpu_fraction
        if last:
            test_loss, test_acc = self.evaluate("test")
            metrics.update({"test/loss": test_loss, "test/acc": test_acc})
            metrics["cost/eval_flops"] = float(self.costs.eval_flops)  # with the test pass
        at_step, logged = self._logged_at_step
        already = logged if at_step == self.step else {}
        self.recorder.log_metrics({k: v for k, v in metrics.items() if already.get(k) != v}, step=self.step)
        if last:
            metrics = self.finalize(metrics)  # hooks' final metrics (a winning ticket's accuracy) reach the report
        else:
            self._write_architecture()
            for hook in self.hooks:
                hook.on_checkpoint(self)
        self.recorder.flush()
        # train/loss in MLflow is the step series; Tune gets the epoch mean under the same name.
        metrics = {**metrics, "train/loss": train_loss}
        if self.report is not None:
            reported = {**metrics, "step": self.step}
            if last or self.epoch % self.checkpoint_every == 0:
                with tempfile.TemporaryDirectory(prefix="growray-ckpt-") as d:
                    self.save(d)
                    self.report(reported, d)
            else:
                self.report(reported, None)
        return metrics
