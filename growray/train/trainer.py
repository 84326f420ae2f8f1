"""The one training loop. Growth (and later pruning and NAS) extend it through hooks.

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
import torch.nn.functional as F
from torch import nn

import growray.nas  # noqa: F401  registers the NAS models, so checkpoints of supernets rebuild
from growray.config import CostsConfig, TrainerConfig
from growray.cost import LatencyProtocol, TrainingCompute, count_params, forward_flops, measure_latency
from growray.data import TensorSplits
from growray.metrics import width_metric
from growray.models import build_model

from .checkpoint import CheckpointData, load_checkpoint, save_checkpoint
from .hooks import Hook

__all__ = ["ReportFn", "Trainer", "TrainingDivergedError", "make_optimizer", "scheduled_lr", "weight_parameters"]

#: ``report(metrics, checkpoint_dir)``; the checkpoint dir may be deleted after the call returns.
ReportFn = Callable[[dict[str, Any], "str | None"], None]


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


def weight_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters the weight optimizer trains: ``model.weight_parameters()`` where the
    model defines it (a DARTS supernet keeps its architecture α out), else all of them."""
    params = model.weight_parameters() if hasattr(model, "weight_parameters") else model.parameters()
    return [p for p in params if p.requires_grad]


def scheduled_lr(cfg: TrainerConfig, epoch: int) -> float:
    """The learning rate of ``epoch`` (0-based) under ``trainer.lr_schedule``.

    ``cosine`` anneals from ``lr`` to ``lr_min`` over ``epochs`` (per epoch, as DARTS does). It
    is a pure function of the epoch, so it survives growth (new parameter groups), restores and
    PBT exploits without scheduler state.
    """
    if cfg.lr_schedule == "constant":
        return cfg.lr
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * epoch / cfg.epochs))


def make_optimizer(model: nn.Module, cfg: TrainerConfig) -> torch.optim.Optimizer:
    params = weight_parameters(model)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"trainer.optimizer must be one of sgd, adam, adamw; got {cfg.optimizer!r}")


class Trainer:
    """Trains a (possibly growing) model on in-memory tensors.

    Args:
        model: a growray model (``spec()``, ``widths()``), already on ``device``.
        data: train/val/test tensors, already on ``device``.
        cfg: the ``trainer`` section.
        hooks: callbacks; growth is one.
        recorder: where metrics and artifacts go (tracking.Recorder); None records nothing.
        report: called once per epoch with metrics and a checkpoint folder (Ray Tune).
        seed: seeds the data order and the global torch RNG (initializers draw from it).
        checkpoint_every: write a checkpoint every N epochs (and always at the last one).
        costs: the ``costs`` section (latency protocol and interval); None measures no latency.
        gpu_fraction: the trial's GPU share, for ``cost/gpu_seconds`` on CUDA.
    """

    def __init__(
        self,
        model: nn.Module,
        data: TensorSplits,
        cfg: TrainerConfig,
        *,
        hooks: Sequence[Hook] = (),
        recorder: Any = None,
        report: ReportFn | None = None,
        seed: int = 0,
        checkpoint_every: int = 1,
        device: str | torch.device = "cpu",
        costs: CostsConfig | None = None,
        gpu_fraction: float = 0.0,
    ) -> None:
        from growray.tracking import NullRecorder

        self.model = model
        self.data = data
        self.cfg = cfg
        self.hooks = list(hooks)
        self.recorder = recorder if recorder is not None else NullRecorder()
        self.report = report
        self.device = torch.device(device)
        self.checkpoint_every = checkpoint_every
        self.optimizer = make_optimizer(model, cfg)
        self.step = 0
        self.epoch = 0
        self.events: list[dict[str, Any]] = []
        self.best_val_acc = -math.inf
        self.train_seconds = 0.0
        self.initial_widths: dict[str, int] = dict(model.widths())
        self.meta_extra: dict[str, Any] = {}
        torch.manual_seed(seed)
        self._data_gen = torch.Generator().manual_seed(seed)
        self._cost_cache: tuple[tuple[int, ...], int, int] | None = None
        self._finalized = False
        self._written_arch: str | None = None
        self.last_batch: tuple[torch.Tensor, torch.Tensor] | None = None  # for hooks
        self.costs_cfg = costs
        self.gpu_fraction = gpu_fraction
        self.compute = TrainingCompute()
        self.stop_reason: str | None = None  # set by request_stop: the loop ends after this epoch
        self.latency: dict[str, float] = {}  # latest cost/latency_* values
        self._latency_arch: str | None = None  # architecture they were measured on
        names = [h.name for h in self.hooks]
        if len(set(names)) != len(names):
            raise ValueError(f"hook names must be unique (they key checkpoint state); got {names}")

    def request_stop(self, reason: str) -> None:
        """End training after the current epoch (its evaluation, checkpoint and report run as
        for the last epoch). The reason is tagged ``growray.stop_reason`` on the run."""
        if self.stop_reason is None:
            self.stop_reason = reason
            self.recorder.set_tags({"growray.stop_reason": reason})

    @property
    def finished(self) -> bool:
        return self.epoch >= self.cfg.epochs or self.stop_reason is not None

    # ------------------------------------------------------------------ restore
    @classmethod
    def from_checkpoint(cls, directory: str, data: TensorSplits, cfg: TrainerConfig, **kwargs: Any) -> Trainer:
        """Rebuild model and optimizer from a checkpoint's spec and state (not from any config)."""
        device = torch.device(kwargs.get("device", "cpu"))
        ckpt = load_checkpoint(directory, map_location=device)
        model = build_model(ckpt.spec).to(device)
        model.load_state_dict(ckpt.model_state)
        trainer = cls(model, data, cfg, **kwargs)
        trainer.load_state(ckpt)
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
        if "compute" in meta:
            self.compute.load_state_dict(meta["compute"])
        self.latency = dict(meta.get("latency", {}))
        self._latency_arch = meta.get("latency_arch")
        self.stop_reason = meta.get("stop_reason")
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
            "mlflow_run_id": getattr(self.recorder, "run_id", None),
            "compute": self.compute.state_dict(),
            "latency": self.latency,
            "latency_arch": self._latency_arch,
            "stop_reason": self.stop_reason,
            **self.meta_extra,
        }
        return CheckpointData(
            spec=self.model.spec(),
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
    def costs(self) -> dict[str, float]:
        """Parameter count and forward FLOPs per sample (recomputed only when widths change)."""
        key = tuple(self.model.widths().values())
        if self._cost_cache is None or self._cost_cache[0] != key:
            self._cost_cache = (key, count_params(self.model), forward_flops(self.model, self.data.input_shape))
        _, params, flops = self._cost_cache
        return {"cost/params": float(params), "cost/flops": float(flops)}

    def latency_protocol(self) -> LatencyProtocol | None:
        lat = self.costs_cfg.latency if self.costs_cfg is not None else None
        if lat is None or not lat.enabled:
            return None
        return LatencyProtocol(
            batch_sizes=tuple(lat.batch_sizes),
            dtype=lat.dtype,
            threads=lat.threads if lat.threads is not None else torch.get_num_threads(),
            warmup=lat.warmup,
            min_run_time=lat.min_run_time,
        )

    def measure_latency_if_due(self, last: bool) -> None:
        """Re-measure latency every ``costs.every_epochs`` epochs (and at the last one), only
        when the architecture changed since the last measurement."""
        protocol = self.latency_protocol()
        if protocol is None or self.costs_cfg is None:
            return
        arch = self.model.spec().to_json()
        due = last or self.epoch % self.costs_cfg.every_epochs == 0 or not self.latency
        if not due or arch == self._latency_arch:
            return
        results = measure_latency(self.model, self.data.input_shape, protocol, self.device)
        head = results[0]
        self.latency = {"cost/latency_ms": head.median_ms, "cost/latency_p95_ms": head.p95_ms}
        for r in results[1:]:
            self.latency[f"cost/latency_ms/bs{r.batch_size}"] = r.median_ms
        self._latency_arch = arch

    def architecture_metrics(self) -> dict[str, float]:
        if not self.model.sites():  # a supernet or a fixed cell network: no width sites
            return {}
        widths = self.model.widths()
        out = {width_metric(site): float(w) for site, w in widths.items()}
        out["growth/depth"] = float(len(widths))
        out["growth/events"] = float(len(self.events))
        return out

    def record_events(self, events: Sequence[Any]) -> None:
        """Store growth events (dataclasses with ``to_dict``) and log them at the current step."""
        if not events:
            return
        for ev in events:
            self.events.append(ev.to_dict() if hasattr(ev, "to_dict") else dict(ev))
        metrics = {**self.architecture_metrics(), **self.costs()}
        metrics["growth/preservation_error"] = float(max(e["preservation_error"] for e in self.events[-len(events) :]))
        self.recorder.log_metrics(metrics, step=self.step)

    @torch.no_grad()
    def evaluate(self, split: str) -> tuple[float, float]:
        """(mean loss, accuracy) on ``train``, ``val`` or ``test``, in eval mode."""
        x, y = getattr(self.data, split)
        was_training = self.model.training
        self.model.eval()
        total_loss, correct = 0.0, 0
        bs = self.cfg.eval_batch_size
        for i in range(0, len(x), bs):
            logits = self.model(x[i : i + bs])
            total_loss += F.cross_entropy(logits, y[i : i + bs], reduction="sum").item()
            correct += (logits.argmax(1) == y[i : i + bs]).sum().item()
        self.model.train(was_training)
        n = max(len(x), 1)
        return total_loss / n, correct / n

    # ------------------------------------------------------------------ loop
    def fit(self) -> dict[str, float]:
        """Train from the current state to ``cfg.epochs``; returns the final metrics."""
        for hook in self.hooks:
            hook.on_fit_start(self)
        protocol = self.latency_protocol()
        if protocol is not None:
            self.recorder.log_params(protocol.as_params(device=str(self.device)))
        if self.step == 0:
            self.recorder.log_metrics({**self.architecture_metrics(), **self.costs()}, step=0)
        x_train, y_train = self.data.train
        n = len(x_train)
        bs = self.cfg.batch_size
        metrics: dict[str, float] = {}
        while not self.finished:
            self.model.train()
            for group in self.optimizer.param_groups:
                group["lr"] = scheduled_lr(self.cfg, self.epoch)
            t0 = time.perf_counter()
            perm = torch.randperm(n, generator=self._data_gen).to(x_train.device)
            loss_sum, correct, seen, window = 0.0, 0, 0, []
            for i in range(0, n, bs):
                idx = perm[i : i + bs]
                xb, yb = x_train[idx], y_train[idx]
                if len(idx) < 2 and n >= 2:
                    continue  # a single-sample batch breaks BatchNorm; dropped like drop_last
                for hook in self.hooks:
                    hook.on_batch_start(self, xb, yb)
                logits = self.model(xb)
                loss = F.cross_entropy(logits, yb)
                if not torch.isfinite(loss):
                    raise TrainingDivergedError(
                        f"training loss became {loss.item()} at step {self.step} (epoch {self.epoch}); "
                        "lower trainer.lr or check the data"
                    )
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if self.cfg.grad_clip is not None:
                    nn.utils.clip_grad_norm_(weight_parameters(self.model), self.cfg.grad_clip)
                self.optimizer.step()
                self.step += 1
                self.compute.add_step(self.model, self.data.input_shape, len(idx))
                lv = loss.item()
                loss_sum += lv * len(idx)
                correct += (logits.argmax(1) == yb).sum().item()
                seen += len(idx)
                window.append(lv)
                self.last_batch = (xb, yb)
                if self.step % self.cfg.log_every_steps == 0:
                    self.recorder.log_metrics({"train/loss": sum(window) / len(window)}, step=self.step)
                    window = []
                for hook in self.hooks:
                    hook.on_step_end(self, lv)
            self.epoch += 1
            self.train_seconds += time.perf_counter() - t0
            metrics = self._end_epoch(loss_sum / max(seen, 1), correct / max(seen, 1))
        self.finalize(metrics)
        return metrics

    def _write_architecture(self) -> None:
        """``architecture.json`` whenever it changed, so a trial stopped early still has its network."""
        spec = self.model.spec().to_json()
        if spec != self._written_arch:
            self.recorder.log_text(spec, "architecture.json")
            self._written_arch = spec

    def finalize(self, metrics: dict[str, float] | None = None) -> dict[str, float]:
        """Final artifacts of the network as it stands: test metrics, architecture, hook outputs.

        Idempotent. Runs before the last report (Tune may end a trial inside ``report``), and
        again harmlessly after ``fit``; a trial stopped early by a scheduler calls it itself.
        """
        metrics = dict(metrics or {})
        if self._finalized:
            return metrics
        self._finalized = True
        if "test/acc" not in metrics:
            test_loss, test_acc = self.evaluate("test")
            metrics.update({"test/loss": test_loss, "test/acc": test_acc})
            self.recorder.log_metrics({"test/loss": test_loss, "test/acc": test_acc}, step=self.step)
        self._write_architecture()
        for hook in self.hooks:
            hook.on_fit_end(self, metrics)
        self.recorder.flush()
        return metrics

    def _end_epoch(self, train_loss: float, train_acc: float) -> dict[str, float]:
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
            hook.on_epoch_end(self, metrics)
        metrics.update(self.architecture_metrics())
        metrics.update(self.costs())
        last = self.finished
        self.measure_latency_if_due(last)
        metrics.update(self.latency)  # the latest measurement, so every report carries the current cost
        metrics["cost/train_flops"] = float(self.compute.total_flops)
        if self.device.type == "cuda" and self.gpu_fraction > 0:
            metrics["cost/gpu_seconds"] = self.train_seconds * self.gpu_fraction
        if last:
            test_loss, test_acc = self.evaluate("test")
            metrics.update({"test/loss": test_loss, "test/acc": test_acc})
        self.recorder.log_metrics(metrics, step=self.step)
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
