"""The task loop as a trainer hook: epochs ``t*E .. (t+1)*E - 1`` of the one trainer train task t.

``trainer.epochs`` = T tasks x E epochs. After the last epoch of task t (``on_epoch_end``) the
hook ends the task for the method (EWC's Fisher, DEN's unit removal) and evaluates every task
so far: row t of the accuracy matrix R, on the test split (and on validation, for searches).
Then task t+1 begins (task 0 at ``on_fit_start``): the hook switches ``trainer.data`` to its
view, lets the method add what it needs (a head, a column), rebuilds the optimizer (fresh
moments per task) and measures the zero-shot accuracy R[t][t+1] (GEM's FWT needs it); the
epoch's checkpoint, written after, holds the new task's network and index.

Logged at step = task index (DESIGN.md): ``cl/acc/task_<j>``, ``cl/avg_acc``, ``cl/forgetting``,
``cl/bwt``, ``cl/fwt`` (GEM's definitions, ``growray.continual.metrics``), ``cl/val_avg_acc``,
``cl/params`` (every parameter, frozen columns included; the core's ``cost/params`` counts the
trainable ones) and ``cl/train_flops`` (cumulative). Architecture changes are trainer events
(``continual/new_task``, ``continual/expand``, ...). Artifacts: ``accuracy_matrix.json`` and
``plots/accuracy_matrix.png``. The checkpoint carries the task index and the matrix, so a
restored trial continues at the right task; rows a restore kept out of MLflow are written by
the kind's ``after_fit``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch

from growray.continual import (
    AccuracyMatrix,
    ContinualEvent,
    ContinualMethod,
    ContinualMLP,
    TaskSequence,
    hides_forgetting,
)
from growray.data import TensorSplits
from growray.models import build_model
from growray.train import Hook, Trainer, evaluate, make_optimizer

__all__ = ["ContinualHook", "row_metrics"]


def row_metrics(matrix: AccuracyMatrix, val: AccuracyMatrix, t: int, params: float, flops: float) -> dict[str, float]:
    """What is logged at step t (finite values only)."""
    out = {f"cl/acc/task_{j}": matrix.get(t, j) for j in range(t + 1)}
    out.update(matrix.summary(t))
    out["cl/val_avg_acc"] = val.avg_acc(t)
    out["cl/params"] = params
    out["cl/train_flops"] = flops
    return {k: float(v) for k, v in out.items() if not math.isnan(v)}


class ContinualHook(Hook):
    """The task loop (module docstring).

    Args:
        seq: the task sequence.
        method: the continual method.
        splits: the dataset's full splits (every task, global labels).
        epochs_per_task: E.
        margin: ``continual.forgetting_margin``.
    """

    name = "continual"

    def __init__(
        self, seq: TaskSequence, method: ContinualMethod, splits: TensorSplits, epochs_per_task: int, margin: float
    ):
        self.seq, self.method, self.full, self.E, self.margin = seq, method, splits, epochs_per_task, margin
        self.task = -1  # the task prepared (trained now); -1 before the first
        self.matrix = AccuracyMatrix(seq.n_tasks)
        self.val = AccuracyMatrix(seq.n_tasks)
        self.params: list[float] = []
        self.flops: list[float] = []
        self._written = -1

    # ------------------------------------------------------------------ data
    def view(self, split: str, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = getattr(self.full, split)
        return self.seq.view(x, y, task)

    def splits(self, task: int) -> TensorSplits:
        return TensorSplits(
            train=self.view("train", task),
            val=self.view("val", task),
            test=self.view("test", task),
            input_shape=self.full.input_shape,
            n_classes=self.seq.head_size(task),
        )

    def accuracy(self, trainer: Trainer, model: ContinualMLP, split: str, task: int) -> float:
        current = model.task
        model.set_task(task)
        try:
            return evaluate(model, *self.view(split, task), trainer.cfg.eval_batch_size)[1]
        finally:
            model.task = current

    @staticmethod
    def model(trainer: Trainer) -> ContinualMLP:
        if not isinstance(trainer.model, ContinualMLP):
            raise TypeError(f"the continual kind trains a continual_mlp model; got {type(trainer.model).__name__}")
        return trainer.model

    # ------------------------------------------------------------------ loop
    def on_fit_start(self, trainer: Trainer) -> None:
        model = self.model(trainer)
        if self.task >= 0:  # restored: the checkpoint's network is this task's
            model.set_task(self.task)
            trainer.data = self.splits(self.task)
            self.method.on_restore(model)
            return
        target = self.method.initial_spec(model.spec(), self.seq)
        if target.to_json() != model.spec().to_json():  # the method's structure before the first task
            rebuilt = build_model(target).to(trainer.device)
            assert isinstance(rebuilt, ContinualMLP)
            trainer.model = trainer.arch = model = rebuilt
            trainer.initial_widths = dict(model.widths())
        self._baseline(trainer, model)
        self._begin(trainer, 0)

    def _baseline(self, trainer: Trainer, model: ContinualMLP) -> None:
        """b_j: accuracy on task j of the network at initialisation, grown for task j as the method
        grows it (fresh heads/columns drawn apart from the run's random stream)."""
        with torch.random.fork_rng(devices=[]):
            probe = build_model(model.spec()).to(trainer.device)
            assert isinstance(probe, ContinualMLP)
            probe.load_state_dict(model.state_dict())
            for j in range(self.seq.n_tasks):
                self.method.extend(probe, j, self.seq)
                self.matrix.baseline[j] = self.accuracy(trainer, probe, "test", j)
                self.val.baseline[j] = self.accuracy(trainer, probe, "val", j)

    @staticmethod
    def _rebuild_optimizer(trainer: Trainer) -> None:
        """A fresh optimizer over the trainable weights (the moments start at zero)."""
        trainer.optimizer = make_optimizer(trainer.model, trainer.cfg)

    def _apply(self, trainer: Trainer, events: list[ContinualEvent]) -> None:
        if events:
            for ev in events:
                ev.step = trainer.step
            self._rebuild_optimizer(trainer)
            trainer.record_events(events)

    def _begin(self, trainer: Trainer, t: int) -> None:
        """Task t's data, what the method adds for it, a fresh optimizer, its zero-shot accuracy."""
        model = self.model(trainer)
        self.task = t
        trainer.data = self.splits(t)
        events = self.method.begin_task(model, t, self.seq, trainer.data.train)
        self._rebuild_optimizer(trainer)  # fresh moments for every task
        self._apply(trainer, events)
        if t > 0:  # R[t-1][t], before training task t (GEM's FWT)
            self.matrix.set(t - 1, t, self.accuracy(trainer, model, "test", t))
            self.val.set(t - 1, t, self.accuracy(trainer, model, "val", t))

    def loss_penalty(self, trainer: Trainer) -> torch.Tensor | None:
        return self.method.penalty(self.model(trainer))

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        self.method.after_step(self.model(trainer), float(trainer.optimizer.param_groups[0]["lr"]))

    def on_epoch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> dict[str, float]:
        model = self.model(trainer)
        e = trainer.epoch - 1
        t, within = divmod(e, self.E)
        self._apply(trainer, self.method.end_epoch(model, t, within, self.E, trainer.data.train))
        if within == self.E - 1:
            self._apply(trainer, self.method.end_task(model, t, trainer.data.train))
            for j in range(t + 1):
                self.matrix.set(t, j, self.accuracy(trainer, model, "test", j))
                self.val.set(t, j, self.accuracy(trainer, model, "val", j))
            self.params.append(float(sum(p.numel() for p in model.parameters())))  # frozen included
            self.flops.append(float(trainer.costs.compute.total_flops))
            trainer.recorder.log_metrics(self.row(t), step=t)
            if t == self.seq.n_tasks - 1:
                hidden = hides_forgetting(self.matrix, t, self.margin)
                trainer.recorder.set_tags(
                    {"growray.cl.average_hides_forgetting": ",".join(map(str, hidden)) if hidden else "no"}
                )
            else:  # the next task starts now, so the checkpoint after this epoch holds its network
                self._begin(trainer, t + 1)
        return {"cl/task": float(t)}

    def row(self, t: int) -> dict[str, float]:
        return row_metrics(self.matrix, self.val, t, self.params[t], self.flops[t])

    @property
    def n_done(self) -> int:
        """Tasks trained and evaluated."""
        return len(self.params)

    def final_metrics(self) -> dict[str, float]:
        """The sequence's numbers for the searcher and the sweep report (reported, not logged):
        the last row's, ``cl/hides_forgetting`` (1/0) and every measured ``cl/R/<i>/<j>``."""
        if self.n_done == 0:
            return {}
        last = self.n_done - 1
        out = self.row(last)
        out["cl/hides_forgetting"] = float(bool(hides_forgetting(self.matrix, last, self.margin)))
        out["cl/tasks_done"] = float(self.n_done)
        for i, r in enumerate(self.matrix.rows):
            out.update({f"cl/R/{i}/{j}": float(v) for j, v in enumerate(r) if v is not None})
        out.update({f"cl/R/b/{j}": float(v) for j, v in enumerate(self.matrix.baseline) if v is not None})
        return out

    # ------------------------------------------------------------------ artifacts
    def matrix_artifact(self) -> dict[str, Any]:
        return {
            "definitions": "R[i][j]: test accuracy on task j after training task i; baseline[j]: at initialisation; "
            "BWT, FWT: Lopez-Paz & Ranzato 2017 (GEM); forgetting: Chaudhry et al. 2018",
            "method": self.method.name,
            "tasks": [list(t) for t in self.seq.tasks],
            "setting": self.seq.setting,
            "test": self.matrix.to_dict(),
            "val": self.val.to_dict(),
            "params": self.params,
            "train_flops": self.flops,
            "summary": self.matrix.summary(self.n_done - 1) if self.n_done else {},
            "hides_forgetting": hides_forgetting(self.matrix, self.n_done - 1, self.margin) if self.n_done else [],
            "method_history": self.method.state_dict().get("history", []),
        }

    def on_checkpoint(self, trainer: Trainer) -> None:
        if self.n_done != self._written:
            trainer.recorder.log_dict(self.matrix_artifact(), "accuracy_matrix.json")
            self._written = self.n_done

    def on_fit_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> dict[str, float]:
        from .plots import matrix_figure

        self.on_checkpoint(trainer)
        if self.n_done:
            trainer.recorder.log_figure(
                matrix_figure(self.matrix, f"{self.method.name}: accuracy matrix"), "plots/accuracy_matrix.png"
            )
        return {}

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "matrix": self.matrix.to_dict(),
            "val": self.val.to_dict(),
            "params": self.params,
            "flops": self.flops,
            "method": self.method.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.task = int(state["task"])
        self.matrix = AccuracyMatrix.from_dict(state["matrix"])
        self.val = AccuracyMatrix.from_dict(state["val"])
        self.params = [float(v) for v in state["params"]]
        self.flops = [float(v) for v in state["flops"]]
        self.method.load_state_dict(dict(state.get("method", {})))
        self._written = self.n_done

    def tensor_state(self) -> dict[str, Any]:
        return self.method.tensor_state()

    def load_tensor_state(self, state: dict[str, Any]) -> None:
        self.method.load_tensor_state(state)
