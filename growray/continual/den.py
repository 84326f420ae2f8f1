"""Dynamically Expandable Networks (Yoon, Yang, Lee, Hwang, ICLR 2018): the operations.

On a ``ContinualMLP`` of one column with unit birth tasks (``births``). For task t > 0:

1. **Selective retraining.** Train only the new head with an L1-sparse objective; then a
   breadth-first search from the head's non-zero weights down through non-zero weights picks
   the subnetwork S, units and input features (:func:`select_subnetwork`), and only the
   weights inside S (and the head) are retrained.
2. **Dynamic expansion.** If the task loss stays above ``tau`` after that, add k units to every
   hidden layer (born at t) and train them with group sparsity (a group = a unit's fan-in);
   units whose group reached zero are removed at the end of the task (:func:`dead_new_units`).
3. **Split/duplicate.** A unit born before t whose fan-in drifted by an l2 distance above
   ``sigma`` from its value after task t-1 (:func:`drifted_units`) is duplicated: the copy
   (born at t) takes the drifted weights, the original gets its old weights back, so earlier
   tasks see it unchanged.

The sparsity terms are optimised by proximal steps after each optimizer step (soft
thresholding for L1, block soft thresholding for the group lasso), so zeros are exact and the
search and removal need no tolerance. Departures from the paper, stated: the copy's fan-out
into the next *shared* layer is the original's (the paper retrains the network once more
after splitting; here the remaining epochs of the task train the units born at t and the
head, the copies included); the head of task t stops reading an original that was split
(its column is zeroed), so task t reads the copy; the L2 term of the selective retraining is
left to the trainer's weight decay.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from growray.models import ArchSpec

from .methods import CL_METHODS, ContinualEvent, ContinualMethod
from .net import ContinualMLP
from .tasks import TaskSequence

__all__ = ["DENMethod", "dead_new_units", "drifted_units", "group_prox_rows", "select_subnetwork", "soft_threshold"]


@torch.no_grad()
def soft_threshold(w: torch.Tensor, amount: float, mask: torch.Tensor | None = None) -> None:
    """Proximal step of ``amount * |w|_1`` in place (only where ``mask`` is true)."""
    shrunk = torch.sign(w) * torch.clamp(w.abs() - amount, min=0.0)
    w.copy_(shrunk if mask is None else torch.where(mask, shrunk, w))


@torch.no_grad()
def group_prox_rows(w: torch.Tensor, rows: torch.Tensor, amount: float) -> None:
    """Proximal step of ``amount * sum_g |w_g|_2`` over the rows ``rows`` of ``w`` (in place)."""
    if len(rows) == 0:
        return
    block = w[rows]
    norms = block.norm(dim=1, keepdim=True)
    scale = torch.clamp(1.0 - amount / norms.clamp_min(1e-12), min=0.0)
    w[rows] = block * scale


@torch.no_grad()
def select_subnetwork(model: ContinualMLP, head: int) -> list[torch.Tensor]:
    """Breadth-first search from head ``head``'s non-zero weights down through non-zero weights:
    boolean vectors of the input features reached, then of the units of every hidden layer of
    column 0 reached (units born after the model's task are never reached)."""
    depth = model.depth
    reached: list[torch.Tensor] = [torch.zeros(0, dtype=torch.bool)] * (depth + 1)  # [inputs, layer 0, ...]
    w_head = model.head(head).weight
    reached[depth] = (w_head != 0).any(dim=0)
    for layer in range(depth - 1, -1, -1):
        if model.births is not None:
            born = torch.tensor(model.births[layer], device=w_head.device) <= model.task
            reached[layer + 1] = reached[layer + 1] & born
        w = model.linear(0, layer).weight  # (units of layer, its inputs)
        reached[layer] = (w[reached[layer + 1]] != 0).any(dim=0)
    return reached


@torch.no_grad()
def drifted_units(model: ContinualMLP, before: list[torch.Tensor], sigma: float, task: int) -> list[torch.Tensor]:
    """Per hidden layer, indices of units born before ``task`` whose fan-in row (weights and bias)
    moved by an l2 distance above ``sigma`` from ``before`` (the layer's ``[W | b]`` after task-1)."""
    out = []
    for layer, lin in enumerate(model.layers0()):
        old = before[layer]
        n = len(old)
        now = torch.cat([lin.weight[:n], lin.bias[:n, None]], dim=1)
        drift = (now - old).norm(dim=1)
        births = torch.tensor(model.births[layer][:n] if model.births else [0] * n, device=drift.device)
        out.append(torch.nonzero((drift > sigma) & (births < task)).flatten())
    return out


@torch.no_grad()
def dead_new_units(model: ContinualMLP, task: int) -> list[torch.Tensor]:
    """Per hidden layer, boolean vector of the units to keep: every unit but those born at
    ``task`` whose fan-in weights are all exactly zero (the group lasso removed them)."""
    keep = []
    for layer, lin in enumerate(model.layers0()):
        births = torch.tensor(model.births[layer] if model.births else [0] * lin.out_features)
        dead = (births == task) & (lin.weight.detach().cpu() == 0).all(dim=1)
        keep.append(~dead)
    return keep


@CL_METHODS.register("den", description="Dynamically Expandable Networks (Yoon et al. 2018)")
class DENMethod(ContinualMethod):
    """Dynamically Expandable Networks (module docstring). Each task t > 0 is split into
    phases by epochs: epoch 0 trains the new head alone (L1); then ``max(1, (E-1)//2)`` epochs
    retrain the selected subnetwork (L1); then, after expansion and split decided on the task
    loss and the drift, the remaining epochs train the units born at t and the head (L1, group
    lasso on the expansion units). Task 0 trains the whole network with L1.

    Args:
        l1: λ1 of the L1 terms.
        loss_threshold: τ: expand when the task's training loss after selective retraining exceeds it.
        expand_units: k units added to every hidden layer on expansion.
        group_lambda: γ of the group lasso on the expansion units' fan-in.
        drift_threshold: σ: duplicate units whose fan-in moved by more (l2).
    """

    name = "den"
    task_incremental_only = True
    min_epochs = 3

    def __init__(
        self,
        l1: float = 1e-4,
        loss_threshold: float = 0.1,
        expand_units: int = 16,
        group_lambda: float = 1e-3,
        drift_threshold: float = 0.5,
    ):
        if min(l1, loss_threshold, group_lambda, drift_threshold) < 0 or expand_units < 1:
            raise ValueError("den needs l1, loss_threshold, group_lambda, drift_threshold >= 0 and expand_units >= 1")
        self.l1, self.tau, self.k = float(l1), float(loss_threshold), int(expand_units)
        self.gamma, self.sigma = float(group_lambda), float(drift_threshold)
        self.phase = "all"
        self.masks: dict[str, torch.Tensor] = {}  # trainable entries (absent: the whole parameter)
        self.group_rows: list[list[int]] = []  # per layer, the expansion units of this task
        self.before: list[torch.Tensor] = []  # per layer, [W | b] after the previous task
        self.history: list[dict[str, Any]] = []
        self._saved: dict[str, torch.Tensor] = {}

    def initial_spec(self, spec: ArchSpec, seq: TaskSequence) -> ArchSpec:
        out = super().initial_spec(spec, seq)
        out.params["births"] = [[0] * w for w in out.params["columns"][0]]
        return out

    @staticmethod
    def retrain_epochs(epochs: int) -> int:
        return max(1, (epochs - 1) // 2)

    # ------------------------------------------------------------------ masks
    def _set_masks(self, model: ContinualMLP, masks: dict[str, torch.Tensor]) -> None:
        named = dict(model.named_parameters())
        self.masks = {k: m.to(torch.bool) for k, m in masks.items()}
        for k, p in named.items():  # fully frozen: mask of zeros
            if k not in self.masks and self.phase != "all":
                self.masks[k] = torch.zeros_like(p, dtype=torch.bool)
        self._saved = {k: named[k].detach().clone() for k in self.masks}

    def _head_masks(self, model: ContinualMLP, task: int) -> dict[str, torch.Tensor]:
        h = model.head_of(task)
        return {
            f"heads.{h}.weight": torch.ones_like(model.head(h).weight),
            f"heads.{h}.bias": torch.ones_like(model.head(h).bias),
        }

    def _subnetwork_masks(self, model: ContinualMLP, reached: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        """The weights between reached inputs/units (``select_subnetwork``'s vectors) and their biases."""
        out = {}
        for layer, lin in enumerate(model.layers0()):
            rows, cols = reached[layer + 1].to(lin.weight.device), reached[layer].to(lin.weight.device)
            out[f"columns.0.{layer}.weight"] = rows[:, None] & cols[None, :]
            out[f"columns.0.{layer}.bias"] = rows.clone()
        return out

    # ------------------------------------------------------------------ the loop
    def begin_task(
        self, model: ContinualMLP, task: int, seq: TaskSequence, train: tuple[torch.Tensor, torch.Tensor]
    ) -> list[ContinualEvent]:
        events = super().begin_task(model, task, seq, train)
        self.group_rows = [[] for _ in range(model.depth)]
        self.phase = "all" if task == 0 else "select"
        self._set_masks(model, {} if task == 0 else self._head_masks(model, task))
        return events

    def after_step(self, model: ContinualMLP, lr: float) -> None:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name.endswith("weight") and self.l1 > 0:
                    soft_threshold(p, lr * self.l1, self.masks.get(name))
            if self.phase == "new" and self.gamma > 0:
                for layer, rows in enumerate(self.group_rows):
                    group_prox_rows(
                        model.linear(0, layer).weight, torch.tensor(rows, dtype=torch.long), lr * self.gamma
                    )
            named = dict(model.named_parameters())
            for name, mask in self.masks.items():
                p = named[name]
                p.copy_(torch.where(mask.to(p.device), p, self._saved[name]))

    def end_epoch(
        self, model: ContinualMLP, task: int, epoch: int, epochs: int, train: tuple[torch.Tensor, torch.Tensor]
    ) -> list[ContinualEvent]:
        if task == 0:
            return []
        if epoch == 0:  # the new head was trained alone: select the subnetwork it reaches
            reached = select_subnetwork(model, model.head_of(task))
            self.phase = "retrain"
            self._set_masks(model, {**self._subnetwork_masks(model, reached), **self._head_masks(model, task)})
            self.history.append({"task": task, "selected": [int(u.sum()) for u in reached]})
            return []
        if epoch != self.retrain_epochs(epochs):
            return []
        return self._expand_and_split(model, task, train)

    def task_loss(self, model: ContinualMLP, train: tuple[torch.Tensor, torch.Tensor]) -> float:
        was = model.training
        model.eval()
        with torch.no_grad():
            loss = float(F.cross_entropy(model(train[0]), train[1]).item())
        model.train(was)
        return loss

    def _expand_and_split(
        self, model: ContinualMLP, task: int, train: tuple[torch.Tensor, torch.Tensor]
    ) -> list[ContinualEvent]:
        loss = self.task_loss(model, train)
        expand = loss > self.tau
        drifted = drifted_units(model, self.before, self.sigma, task)
        head = model.head_of(task)
        added = []
        for layer in range(model.depth):
            lin = model.linear(0, layer)
            n_old = lin.out_features
            dup = drifted[layer]
            rows_in: list[torch.Tensor] = []
            bias_in: list[torch.Tensor] = []
            outs: list[list[torch.Tensor]] = [[] for _ in model.consumers(layer)]
            if len(dup):
                rows_in.append(lin.weight.detach()[dup].clone())
                bias_in.append(lin.bias.detach()[dup].clone())
                for c, cons in enumerate(model.consumers(layer)):
                    outs[c].append(cons.weight.detach()[:, dup].clone())
                with torch.no_grad():  # the original gets its weights after task-1 back
                    lin.weight[dup] = self.before[layer][dup, :-1]
                    lin.bias[dup] = self.before[layer][dup, -1]
                    if layer + 1 == model.depth:
                        model.head(head).weight[:, dup] = 0.0
            if expand:
                fresh = torch.nn.Linear(lin.in_features, self.k).to(lin.weight.device)
                rows_in.append(fresh.weight.detach())
                bias_in.append(fresh.bias.detach())
                for c, cons in enumerate(model.consumers(layer)):
                    scale = 1.0 / max(1, cons.in_features) ** 0.5
                    is_new_head = layer + 1 == model.depth and cons is model.head(head)
                    fan_out = torch.randn(cons.out_features, self.k) * scale
                    outs[c].append(fan_out if layer + 1 < model.depth or is_new_head else torch.zeros_like(fan_out))
            n_new = sum(len(r) for r in rows_in)
            if n_new == 0:
                added.append(0)
                continue
            model.resize_units(
                layer,
                torch.arange(n_old),
                torch.cat(rows_in),
                torch.cat(bias_in),
                [torch.cat(o, dim=1) for o in outs],
                birth=task,
            )
            self.group_rows[layer] = list(range(n_old + len(dup), n_old + n_new)) if expand else []
            added.append(n_new)
        self.phase = "new"
        self._set_masks(model, self._new_unit_masks(model, task))
        entry = {
            "task": task,
            "loss": loss,
            "expanded": expand,
            "split": [len(d) for d in drifted],
            "added": added,
        }
        self.history.append(entry)
        kind = "expand" if expand else ("split" if any(added) else "none")
        return [ContinualEvent(kind, task, detail=entry)] if any(added) else []

    def _new_unit_masks(self, model: ContinualMLP, task: int) -> dict[str, torch.Tensor]:
        out = self._head_masks(model, task)
        births = [torch.tensor(b) == task for b in (model.births or [])]
        for layer, lin in enumerate(model.layers0()):
            new = births[layer].to(lin.weight.device)
            out[f"columns.0.{layer}.weight"] = new[:, None].expand_as(lin.weight).clone()
            out[f"columns.0.{layer}.bias"] = new.clone()
            if layer + 1 < model.depth:  # the next layer's fan-in from the new units
                nxt = f"columns.0.{layer + 1}.weight"
                out[nxt] = out.get(nxt, torch.zeros_like(model.linear(0, layer + 1).weight, dtype=torch.bool))
        for layer in range(1, model.depth):
            prev_new = births[layer - 1].to(model.linear(0, layer).weight.device)
            key = f"columns.0.{layer}.weight"
            out[key] = out[key] | prev_new[None, :]
        return out

    def end_task(
        self, model: ContinualMLP, task: int, train: tuple[torch.Tensor, torch.Tensor]
    ) -> list[ContinualEvent]:
        events = []
        if task > 0 and model.births is not None:
            keep = dead_new_units(model, task)
            removed = [int((~k).sum()) for k in keep]
            for layer in range(model.depth - 1, -1, -1):
                if removed[layer]:
                    idx = torch.nonzero(keep[layer]).flatten()
                    empty = [torch.zeros(c.out_features, 0) for c in model.consumers(layer)]
                    lin = model.linear(0, layer)
                    model.resize_units(layer, idx, torch.zeros(0, lin.in_features), torch.zeros(0), empty, birth=task)
            if self.history and self.history[-1].get("task") == task:
                self.history[-1]["removed"] = removed
            if any(removed):
                events.append(ContinualEvent("remove", task, detail={"removed": removed}))
        self.before = [
            torch.cat([lin.weight.detach(), lin.bias.detach()[:, None]], dim=1).clone() for lin in model.layers0()
        ]
        self.phase = "all"
        self.masks, self._saved = {}, {}
        return events

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {"phase": self.phase, "group_rows": self.group_rows, "history": self.history}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.phase = str(state.get("phase", "all"))
        self.group_rows = [list(r) for r in state.get("group_rows", [])]
        self.history = list(state.get("history", []))

    def tensor_state(self) -> dict[str, Any]:
        return {
            **{f"mask/{k}": m for k, m in self.masks.items()},
            **{f"before/{i}": b for i, b in enumerate(self.before)},
        }

    def load_tensor_state(self, state: dict[str, Any]) -> None:
        self.masks = {k[5:]: v.to(torch.bool) for k, v in state.items() if k.startswith("mask/")}
        n = sum(1 for k in state if k.startswith("before/"))
        self.before = [state[f"before/{i}"] for i in range(n)]
        self._saved = {}

    def on_restore(self, model: ContinualMLP) -> None:
        """Frozen entries hold their saved values, so the restored weights are the saved ones."""
        named = dict(model.named_parameters())
        self._saved = {k: named[k].detach().clone() for k in self.masks}
