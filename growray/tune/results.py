"""What a sweep returns: one :class:`TrialSummary` per trial, in a :class:`SweepResult`.

Summaries are built from Ray Tune's results (each trial's last reported result), so they
need no MLflow query; :meth:`SweepResult.table` prints them with the core columns plus the
columns an experiment kind adds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from growray.tracking.tables import Column, check_headers, format_config_long, format_widths, render_table

if TYPE_CHECKING:
    from ray.tune import Result

    from growray.tracking import ParetoReport

__all__ = ["SweepResult", "TrialSummary", "TuneResults", "stopped_early", "summaries", "summary_columns"]


_TRIAL_ID = re.compile(r"_([0-9a-f]{5}_\d{5})(?:_|$)")


class TuneResults(Protocol):
    """What :func:`summaries` reads: Tune's ``ResultGrid`` (indexed, not iterable), or a list of results."""

    def __len__(self) -> int: ...

    def __getitem__(self, i: int) -> Result: ...


@dataclass
class TrialSummary:
    """One trial as Tune left it (its last reported result).

    Attributes:
        trial_id: Tune's trial id.
        status: TERMINATED, ERROR, or DIVERGED (its loss became non-finite).
        config: the sampled values (dotted paths).
        metric: the first objective's last value.
        best_val_acc: ``best/val_acc``; test_acc: ``test/acc`` (only after the last epoch).
        params: ``cost/params``; widths: ``growth/width/<site>`` per growth site.
        epochs: the last reported ``epoch``.
        mlflow_run_id: the trial's MLflow run.
        error: the last line of the error, for errored trials.
        stopped_early: a scheduler ended the trial before its trainer finished.
        metrics: every metric of the last result (``section/name`` keys), for extra columns.
    """

    trial_id: str
    status: str
    config: dict[str, Any]
    metric: float | None
    best_val_acc: float | None
    test_acc: float | None
    params: int | None
    widths: dict[str, int]
    epochs: int
    mlflow_run_id: str | None
    error: str | None = None
    stopped_early: bool = False
    metrics: dict[str, float] = field(default_factory=dict)

    def values(self, metric: str) -> dict[str, Any]:
        """This trial's row for a table: its metrics, then its fields (``metric`` is the objective)."""
        return {
            **self.metrics,
            metric: self.metric,
            "best/val_acc": self.best_val_acc,
            "test/acc": self.test_acc,
            "trial": self.trial_id,
            "status": self.status,
            "epochs": self.epochs,
            "params": self.params,
            "widths": self.widths,
            "config": self.config,
            "mlflow_run_id": self.mlflow_run_id,
        }


def summary_columns(metric: str, extra_columns: Sequence[Column] = ()) -> list[Column]:
    """The final table's columns: trial, status, epochs, the objective, best val/acc, test/acc,
    params, widths, then ``extra_columns``, then config and the MLflow run."""
    columns = [
        Column("trial", "trial"),
        Column("status", "status"),
        Column("epochs", "epochs"),
        Column(metric, metric, digits=4),
        Column("best val/acc", "best/val_acc", digits=4),
        Column("test/acc", "test/acc", digits=4),
        Column("params", "params"),
        Column("widths", "widths", formatter=format_widths),
        *extra_columns,
        Column("config", "config", formatter=format_config_long),
        Column("mlflow run", "mlflow_run_id"),
    ]
    check_headers(columns)
    return columns


@dataclass
class SweepResult:
    """A finished (or interrupted) sweep: where it is recorded and how each trial ended."""

    name: str
    output_dir: str
    storage_path: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    metric: str
    mode: str
    trials: list[TrialSummary] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    pareto: ParetoReport | None = None  # after a multi-objective sweep
    extra_columns: tuple[Column, ...] = ()  # the experiment kind's columns in :meth:`table`

    @property
    def best(self) -> TrialSummary | None:
        """The trial with the best objective value (NaN and missing values excluded)."""
        scored = [(t.metric, t) for t in self.trials if t.metric is not None and t.metric == t.metric]  # NaN: diverged
        if not scored:
            return None
        pick = max if self.mode == "max" else min
        return pick(scored, key=lambda pair: pair[0])[1]

    @property
    def n_errors(self) -> int:
        return sum(t.status in ("ERROR", "DIVERGED") for t in self.trials)

    def columns(self) -> list[Column]:
        """The columns of :meth:`table` (core, then :attr:`extra_columns`)."""
        return summary_columns(self.metric, self.extra_columns)

    def table(self) -> str:
        """The trials as a plain fixed-width table."""
        return render_table([t.values(self.metric) for t in self.trials], self.columns())


def stopped_early(last: Mapping[str, Any], epochs: int) -> bool:
    """Whether a scheduler ended a trial before its trainer finished, from its last result.

    The trainer evaluates the test split for the report of its last epoch (also when it ends
    itself before ``trainer.epochs``), so a last result before ``epochs`` without ``test/acc``
    is a trial Tune stopped. Whether its MLflow run is still open says nothing: Tune ends
    finished trials inside ``report`` too, and may tear the actor down before the trial's
    own ``close`` reaches MLflow.
    """
    epoch = last.get("epoch")
    reached = int(epoch) if isinstance(epoch, (int, float)) and epoch == epoch else 0
    return reached < epochs and "test/acc" not in last


def _trial_id_from_path(path: str) -> str:
    """``trial_main_3c5e1_00002_2_lr=0.01`` -> ``3c5e1_00002`` (Tune's ``<trainable>_<trial id>_<tag>``);
    for a trial that errored before its first result, which carries the id itself."""
    name = Path(path).name
    found = _TRIAL_ID.search(name)
    return found.group(1) if found else name


def summaries(results: TuneResults, metric: str, epochs: int) -> list[TrialSummary]:
    """One summary per Tune result; ``epochs`` is ``trainer.epochs`` (what a finished trial reached)."""
    out = []
    for r in (results[i] for i in range(len(results))):
        m = r.metrics or {}
        widths = {k.removeprefix("growth/width/"): int(v) for k, v in m.items() if k.startswith("growth/width/")}
        trial_id = m.get("trial_id") or _trial_id_from_path(r.path)
        status = "ERROR" if r.error else ("DIVERGED" if m.get("growray/diverged") else "TERMINATED")
        out.append(
            TrialSummary(
                trial_id=trial_id,
                status=status,
                config=dict(r.config or {}),
                metric=m.get(metric),
                best_val_acc=m.get("best/val_acc"),
                test_acc=m.get("test/acc"),
                params=int(m["cost/params"]) if "cost/params" in m else None,
                widths=widths,
                epochs=int(m.get("epoch", 0)),
                mlflow_run_id=m.get("mlflow_run_id"),
                error=str(r.error).strip().splitlines()[-1][:300] if r.error else None,
                stopped_early=status == "TERMINATED" and stopped_early(m, epochs),
                metrics={
                    k: float(v)
                    for k, v in m.items()
                    if "/" in k and isinstance(v, (int, float)) and not isinstance(v, bool)
                },
            )
        )
    return out
