"""Continual-learning methods as registered plug-ins (``CL_METHODS``): finetune, progressive, ewc, den.

A method acts on a :class:`~growray.continual.net.ContinualMLP` at the task loop's points
(pure torch; the ``continual`` kind's hook calls it and applies what it returns):

- ``initial_spec``: the network's structure before the first task (task heads, laterals, ...);
- ``extend(model, task, seq)``: the structure a new task needs (its head; a column);
- ``begin_task`` / ``end_epoch`` / ``end_task``: method state over a task; ``begin_task`` and
  ``end_epoch`` return :class:`ContinualEvent` s when they changed the architecture (the hook
  then rebuilds the optimizer over the trainable parameters);
- ``penalty(model)``: a term added to each training loss (EWC); ``after_step(model, lr)``:
  after every optimizer step (DEN's proximal steps and frozen entries).

State: ``state_dict`` (JSON) and ``tensor_state`` (tensors, loaded with ``weights_only=True``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.nn.functional as F

from growray.models import ArchSpec
from growray.registry import Registry

from .net import ContinualMLP
from .tasks import TaskSequence

__all__ = ["CL_METHODS", "ContinualEvent", "ContinualMethod", "EWCMethod", "FinetuneMethod", "ProgressiveMethod"]

CL_METHODS: Registry[Any] = Registry("continual-learning method")


@dataclass
class ContinualEvent:
    """An architecture change of a continual method (a column, a head, DEN units)."""

    kind: str
    task: int
    step: int = 0
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"event": f"continual/{self.kind}", "task": self.task, "step": self.step, **self.detail}


class ContinualMethod:
    """Base: naive sequential training (override what the method needs)."""

    name: ClassVar[str] = "finetune"
    #: needs the task id at test time (one head per task): rejected in the class-incremental setting
    task_incremental_only: ClassVar[bool] = False
    #: smallest number of epochs per task
    min_epochs: ClassVar[int] = 1

    def initial_spec(self, spec: ArchSpec, seq: TaskSequence) -> ArchSpec:
        params = copy.deepcopy(spec.params)
        params.update(
            task_heads=seq.task_incremental,
            heads=[[0, seq.head_size(0)]],
            laterals=False,
            frozen_columns=0,
            columns=[list(params["columns"][0])],
        )
        return ArchSpec(spec.kind, params)

    def extend(self, model: ContinualMLP, task: int, seq: TaskSequence) -> bool:
        """Add what task ``task`` needs to the structure; True when something was added."""
        if task == 0 or not seq.task_incremental:
            return False
        model.add_head(0, seq.head_size(task))
        return True

    def begin_task(
        self, model: ContinualMLP, task: int, seq: TaskSequence, train: tuple[torch.Tensor, torch.Tensor]
    ) -> list[ContinualEvent]:
        changed = self.extend(model, task, seq)
        model.set_task(task)
        return [ContinualEvent("new_task", task, detail={"widths": model.widths()})] if changed else []

    def penalty(self, model: ContinualMLP) -> torch.Tensor | None:
        return None

    def after_step(self, model: ContinualMLP, lr: float) -> None:
        pass

    def end_epoch(
        self, model: ContinualMLP, task: int, epoch: int, epochs: int, train: tuple[torch.Tensor, torch.Tensor]
    ) -> list[ContinualEvent]:
        """After epoch ``epoch`` (0-based) of ``epochs`` of ``task``."""
        return []

    def end_task(
        self, model: ContinualMLP, task: int, train: tuple[torch.Tensor, torch.Tensor]
    ) -> list[ContinualEvent]:
        """After the last epoch of ``task``, before every task is evaluated."""
        return []

    def on_restore(self, model: ContinualMLP) -> None:
        """Called once after the method's state was loaded from a checkpoint."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass

    def tensor_state(self) -> dict[str, Any]:
        return {}

    def load_tensor_state(self, state: dict[str, Any]) -> None:
        pass


@CL_METHODS.register("finetune", description="naive sequential training of one network (the baseline)")
class FinetuneMethod(ContinualMethod):
    """Train one network on each task in turn, nothing protected: the lower baseline."""

    name = "finetune"


@CL_METHODS.register("progressive", description="Progressive Neural Networks: a frozen column per task")
class ProgressiveMethod(ContinualMethod):
    """Progressive Neural Networks (Rusu et al. 2016): a new column per task, every earlier
    column frozen; with ``laterals`` each new column reads the earlier ones through lateral
    adapters (``laterals: false``: independent columns, the ablation). Departures: linear
    adapters (``growray.continual.net``).

    Args:
        column_width: width of every hidden layer of every column (None: the model's ``hidden``).
        laterals: lateral adapters from every earlier column.
    """

    name = "progressive"
    task_incremental_only = True

    def __init__(self, column_width: int | None = None, laterals: bool = True):
        if column_width is not None and column_width < 1:
            raise ValueError(f"progressive.column_width must be >= 1 or null; got {column_width}")
        self.column_width = column_width
        self.laterals = bool(laterals)

    def initial_spec(self, spec: ArchSpec, seq: TaskSequence) -> ArchSpec:
        out = super().initial_spec(spec, seq)
        out.params["laterals"] = self.laterals
        if self.column_width is not None:
            out.params["columns"] = [[self.column_width] * len(out.params["columns"][0])]
        return out

    def extend(self, model: ContinualMLP, task: int, seq: TaskSequence) -> bool:
        if task == 0:
            return False
        column = model.add_column(list(model.col_widths[0]))
        model.add_head(column, seq.head_size(task))
        model.freeze_columns(column)
        return True


@CL_METHODS.register("ewc", description="elastic weight consolidation (Kirkpatrick et al. 2017)")
class EWCMethod(ContinualMethod):
    """Elastic weight consolidation (Kirkpatrick et al., PNAS 2017): after each task, the
    diagonal Fisher F at the task's solution θ*; later tasks add (λ/2) Σ_i F_i (θ_i − θ*_i)²,
    one penalty per earlier task (the paper's multi-task form, not "online" EWC). F is the
    true Fisher: mean squared per-sample gradients of log p(y|x) with y drawn from the model's
    prediction, over ``fisher_samples`` training samples of the task. A parameter created
    later (a later head) has no penalty.

    Args:
        lam: λ.
        fisher_samples: samples of each task the Fisher is estimated on.
        seed: seeds the draw of samples and labels.
    """

    name = "ewc"

    def __init__(self, lam: float = 100.0, fisher_samples: int = 256, seed: int = 0):
        if lam < 0 or fisher_samples < 1:
            raise ValueError(f"ewc needs lam >= 0 and fisher_samples >= 1; got {lam}, {fisher_samples}")
        self.lam = float(lam)
        self.fisher_samples = int(fisher_samples)
        self.seed = int(seed)
        self.anchors: list[dict[str, tuple[torch.Tensor, torch.Tensor]]] = []  # per task: name -> (F, θ*)

    def fisher(self, model: ContinualMLP, task: int, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """Diagonal Fisher of the model answering ``task`` on samples ``x``."""
        from torch.func import functional_call, grad, vmap

        gen = torch.Generator().manual_seed(self.seed * 1000 + task)
        idx = torch.randperm(len(x), generator=gen)[: self.fisher_samples].to(x.device)
        xs = x[idx]
        with torch.no_grad():
            probs = F.softmax(model(xs), dim=1)
        ys = torch.multinomial(probs.cpu(), 1, generator=gen).flatten().to(x.device)
        onehot = F.one_hot(ys, probs.shape[1]).to(probs.dtype)
        params = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
        buffers = {k: b.detach() for k, b in model.named_buffers()}

        def log_lik(p: dict[str, torch.Tensor], xi: torch.Tensor, yi: torch.Tensor) -> torch.Tensor:
            out = functional_call(model, (p, buffers), (xi[None],))
            return (F.log_softmax(out, dim=1)[0] * yi).sum()

        grads = vmap(grad(log_lik), in_dims=(None, 0, 0))(params, xs, onehot)
        return {k: (g**2).mean(dim=0) for k, g in grads.items()}

    def end_task(
        self, model: ContinualMLP, task: int, train: tuple[torch.Tensor, torch.Tensor]
    ) -> list[ContinualEvent]:
        fisher = self.fisher(model, task, train[0])
        named = dict(model.named_parameters())
        self.anchors.append({k: (f, named[k].detach().clone()) for k, f in fisher.items()})
        return []

    def penalty(self, model: ContinualMLP) -> torch.Tensor | None:
        if not self.anchors or self.lam == 0:
            return None
        named = dict(model.named_parameters())
        total = torch.zeros((), device=next(model.parameters()).device)
        for anchor in self.anchors:
            for k, (f, star) in anchor.items():
                p = named.get(k)
                if p is not None and p.shape == star.shape:
                    total = total + (f * (p - star) ** 2).sum()
        return 0.5 * self.lam * total

    def tensor_state(self) -> dict[str, Any]:
        return {
            f"{t}/{kind}/{k}": v[i]
            for t, anchor in enumerate(self.anchors)
            for k, v in anchor.items()
            for i, kind in enumerate(("fisher", "star"))
        }

    def load_tensor_state(self, state: dict[str, Any]) -> None:
        n = 1 + max((int(key.split("/", 1)[0]) for key in state), default=-1)
        self.anchors = [{} for _ in range(n)]
        for key in state:
            t, kind, name = key.split("/", 2)
            if kind == "fisher":
                self.anchors[int(t)][name] = (state[key], state[f"{t}/star/{name}"])
