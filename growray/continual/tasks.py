"""Task sequences: which classes make each task, and each task's view of a split.

A task-sequence dataset (``growray.data.tasks``: split Fashion-MNIST, split MNIST, permuted
Fashion-MNIST, split digits) holds every task's samples with *global* labels and declares
its tasks as data (the ``tasks`` capability): the classes of each task, in order, and the
setting.

- ``task`` (task-incremental): the task id is given; one head per task, labels renumbered
  within the task (0..k-1, in the order the task lists its classes).
- ``class`` (class-incremental): one shared head over every class, global labels.

A task's view of a split is its samples (labels in the task's classes); a class may belong
to several tasks (a repeated task).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

__all__ = ["SETTINGS", "TaskSequence"]

SETTINGS = ("task", "class")


@dataclass(frozen=True)
class TaskSequence:
    """The tasks of a dataset.

    Attributes:
        tasks: the global classes of each task, in order.
        setting: ``task`` (task-incremental) or ``class`` (class-incremental).
        n_classes: the dataset's number of global classes.
    """

    tasks: tuple[tuple[int, ...], ...]
    setting: str
    n_classes: int

    def __post_init__(self) -> None:
        if self.setting not in SETTINGS:
            raise ValueError(f"a task sequence's setting is one of {', '.join(SETTINGS)}; got {self.setting!r}")
        if not self.tasks or any(len(t) < 2 for t in self.tasks):
            raise ValueError(f"a task sequence needs at least one task of two or more classes; got {self.tasks!r}")
        bad = [c for t in self.tasks for c in t if not 0 <= c < self.n_classes]
        if bad:
            raise ValueError(f"task classes must lie in [0, {self.n_classes}); got {sorted(set(bad))}")
        if any(len(set(t)) != len(t) for t in self.tasks):
            raise ValueError(f"a task lists each class once; got {self.tasks!r}")

    @classmethod
    def of(cls, tasks: Sequence[Sequence[int]], setting: str, n_classes: int) -> TaskSequence:
        return cls(tuple(tuple(int(c) for c in t) for t in tasks), setting, int(n_classes))

    @property
    def n_tasks(self) -> int:
        return len(self.tasks)

    @property
    def task_incremental(self) -> bool:
        return self.setting == "task"

    def head_size(self, task: int) -> int:
        """Logits of the head that answers ``task``."""
        return len(self.tasks[task]) if self.task_incremental else self.n_classes

    def view(self, x: torch.Tensor, y: torch.Tensor, task: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The samples of ``task`` in ``(x, y)``, labels renumbered within the task when task-incremental."""
        classes = torch.tensor(self.tasks[task], device=y.device)
        keep = torch.isin(y, classes)
        xs, ys = x[keep], y[keep]
        if self.task_incremental:
            lookup = torch.full((self.n_classes,), -1, dtype=torch.int64, device=y.device)
            lookup[classes] = torch.arange(len(classes), device=y.device)
            ys = lookup[ys]
        return xs, ys
