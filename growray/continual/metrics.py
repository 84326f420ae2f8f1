"""The accuracy matrix of a task sequence and the metrics read from it.

``R[i][j]`` is the accuracy on task j after training tasks 0..i. Definitions (ALGORITHMS.md §17):

- ACC (average accuracy) = mean_j R[T-1][j] over every task j (Lopez-Paz & Ranzato 2017, GEM);
- BWT (backward transfer) = mean_{j<T-1} (R[T-1][j] - R[j][j]) (GEM, eq. 2 of the paper);
- FWT (forward transfer) = mean_{j>0} (R[j-1][j] - b_j), with b_j the accuracy on task j of the
  model at initialisation (GEM, eq. 3);
- forgetting = mean_{j<T-1} (max_{l<T-1} R[l][j] - R[T-1][j]) (Chaudhry et al. 2018: the drop from
  each earlier task's best accuracy).

Metrics over a *partial* sequence (after task i < T-1) use row i as the last one, so they are
logged after every task. Entries not measured are ``None`` (the upper triangle but the
superdiagonal, which FWT needs: R[j-1][j] is measured on task j's fresh head before training it).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["AccuracyMatrix", "hides_forgetting"]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else math.nan


@dataclass
class AccuracyMatrix:
    """``R`` of a sequence of ``n_tasks`` tasks, filled as the tasks are trained.

    Attributes:
        n_tasks: T.
        rows: ``rows[i][j]`` = R[i][j] (None where not measured).
        baseline: ``baseline[j]`` = b_j, accuracy of the model at initialisation (None: not measured).
    """

    n_tasks: int
    rows: list[list[float | None]] = field(default_factory=list)
    baseline: list[float | None] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.n_tasks < 1:
            raise ValueError(f"an accuracy matrix needs n_tasks >= 1; got {self.n_tasks}")
        if not self.rows:
            self.rows = [[None] * self.n_tasks for _ in range(self.n_tasks)]
        if not self.baseline:
            self.baseline = [None] * self.n_tasks
        if len(self.rows) != self.n_tasks or any(len(r) != self.n_tasks for r in self.rows):
            raise ValueError(f"rows must be {self.n_tasks} x {self.n_tasks}")

    @classmethod
    def from_rows(cls, rows: Sequence[Sequence[float | None]], baseline: Sequence[float | None] = ()) -> AccuracyMatrix:
        """A matrix from a hand-built (square) list of rows."""
        n = len(rows)
        return cls(n, [list(r) for r in rows], list(baseline) if baseline else [None] * n)

    def set(self, i: int, j: int, acc: float) -> None:
        self.rows[i][j] = float(acc)

    def get(self, i: int, j: int) -> float:
        v = self.rows[i][j]
        if v is None:
            raise ValueError(f"R[{i}][{j}] was not measured")
        return v

    # ------------------------------------------------------------------ metrics after task `last`
    def avg_acc(self, last: int) -> float:
        """Mean accuracy over tasks 0..last after training task ``last``."""
        return _mean([self.get(last, j) for j in range(last + 1)])

    def bwt(self, last: int) -> float:
        """GEM's backward transfer after task ``last`` (NaN for the first task)."""
        return _mean([self.get(last, j) - self.get(j, j) for j in range(last)])

    def forgetting(self, last: int) -> float:
        """Mean drop of each earlier task from its best accuracy before ``last`` (NaN for the first task)."""
        return _mean([max(self.get(k, j) for k in range(j, last)) - self.get(last, j) for j in range(last)])

    def drops(self, last: int) -> list[float]:
        """Per earlier task j < last: its best accuracy before ``last`` minus its accuracy now."""
        return [max(self.get(k, j) for k in range(j, last)) - self.get(last, j) for j in range(last)]

    def fwt(self, last: int) -> float:
        """GEM's forward transfer over tasks 1..last (NaN when a term was not measured)."""
        terms = []
        for j in range(1, last + 1):
            zero_shot, base = self.rows[j - 1][j], self.baseline[j]
            if zero_shot is None or base is None:
                return math.nan
            terms.append(zero_shot - base)
        return _mean(terms)

    def summary(self, last: int | None = None) -> dict[str, float]:
        """``cl/avg_acc``, ``cl/forgetting``, ``cl/bwt``, ``cl/fwt`` after task ``last`` (default T-1)."""
        last = self.n_tasks - 1 if last is None else last
        return {
            "cl/avg_acc": self.avg_acc(last),
            "cl/forgetting": self.forgetting(last),
            "cl/bwt": self.bwt(last),
            "cl/fwt": self.fwt(last),
        }

    def to_dict(self) -> dict[str, Any]:
        return {"n_tasks": self.n_tasks, "rows": self.rows, "baseline": self.baseline}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AccuracyMatrix:
        return cls(int(d["n_tasks"]), [list(r) for r in d["rows"]], list(d["baseline"]))


def hides_forgetting(matrix: AccuracyMatrix, last: int, margin: float) -> list[int]:
    """Earlier tasks whose accuracy after task ``last`` is more than ``margin`` below their best,
    when the average accuracy stayed within ``margin`` of its best over the sequence so far
    (the average hides their loss); empty otherwise."""
    if last < 1:
        return []
    best_avg = max(matrix.avg_acc(i) for i in range(last + 1))
    if best_avg - matrix.avg_acc(last) > margin:
        return []  # the average shows the loss
    return [j for j, d in enumerate(matrix.drops(last)) if d > margin]
