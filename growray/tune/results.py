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

from growray.tracking.tables import Column, check_headers, format_config_long, format_table, format_widths, render_rows

if TYPE_CHECKING:
    from ray.tune import Result

    from growray.tracking import ParetoReport

__all__ = [
    "STATUSES",
    "SweepResult",
    "TrialSummary",
    "TuneResults",
    "paired_test_metric",
    "stopped_early",
    "summaries",
    "summary_columns",
    "trial_statuses",
]

#: what a trial's status says, after the sweep (the tables, the parent run, ``trials.json``)
STATUSES = {
    "TERMINATED": "trained to its end",
    "STOPPED": "a scheduler ended it before its last epoch (ASHA, Pareto halving)",
    "INTERRUPTED": "still running or pending when the sweep was interrupted (growray resume continues it)",
    "ERROR": "failed (the growray.failure tag of its run says why)",
    "DIVERGED": "its training loss became non-finite",
}


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
        status: TERMINATED, STOPPED, INTERRUPTED, ERROR or DIVERGED (``STATUSES``).
        config: the sampled values (dotted paths).
        metric: the first objective's last value.
        best_val_acc: ``best/val_acc``; test_acc: the test accuracy of the network the first
            objective measures (:func:`paired_test_metric`: ``test/acc``, or a NAS trial's
            retrained ``nas/retrain_test_acc``), only after the last epoch.
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
            paired_test_metric(metric): self.test_acc,
            "trial": self.trial_id,
            "status": self.status,
            "epochs": self.epochs,
            "params": self.params,
            "widths": self.widths,
            "config": self.config,
            "mlflow_run_id": self.mlflow_run_id,
        }


def paired_test_metric(metric: str) -> str:
    """The test accuracy of the network that objective ``metric`` measures: ``test/acc`` for
    ``val/acc`` (and any other objective), ``nas/retrain_test_acc`` for ``nas/retrain_val_acc``
    (the retrained network, not the supernet)."""
    head, sep, _ = metric.rpartition("val_acc")
    return f"{head}test_acc" if sep and metric.endswith("val_acc") else "test/acc"


def summary_columns(
    metric: str | Sequence[str], extra_columns: Sequence[Column] = (), front: bool = False
) -> list[Column]:
    """The final table's columns: trial, status, epochs, the objectives, best val/acc (when
    ``val/acc`` is the first objective), the matching test accuracy (:func:`paired_test_metric`),
    params, widths, then ``extra_columns`` (those not repeating an objective), the Pareto
    front's mark (``front``), config and the MLflow run."""
    metrics = [metric] if isinstance(metric, str) else list(metric)
    columns = [
        Column("trial", "trial"),
        Column("status", "status"),
        Column("epochs", "epochs"),
        *(Column(m, m, digits=4) for m in metrics),
    ]
    if metrics[0] == "val/acc":
        columns.append(Column("best val/acc", "best/val_acc", digits=4))
    columns.append(Column(paired_test_metric(metrics[0]), paired_test_metric(metrics[0]), digits=4))
    if "cost/params" not in metrics:
        columns.append(Column("params", "params"))
    columns.append(Column("widths", "widths", formatter=format_widths))
    keys = {c.key for c in columns}
    columns += [c for c in extra_columns if c.key not in keys]
    if front:
        columns.append(Column("front", "front"))
    columns += [Column("config", "config", formatter=format_config_long), Column("mlflow run", "mlflow_run_id")]
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
    objectives: tuple[tuple[str, str], ...] = ()  # (metric, mode) of every objective; () -> (metric, mode)

    @property
    def metrics(self) -> list[str]:
        """Every objective's metric (the first is :attr:`metric`)."""
        return [m for m, _ in self.objectives] or [self.metric]

    @property
    def multi_objective(self) -> bool:
        return len(self.metrics) > 1

    @property
    def test_metric(self) -> str:
        """The test accuracy shown beside the first objective (:func:`paired_test_metric`)."""
        return paired_test_metric(self.metric)

    @property
    def best(self) -> TrialSummary | None:
        """The trial with the best objective value (NaN and missing values excluded); None for a
        multi-objective sweep, whose answer is its Pareto front (:attr:`pareto`), not one trial."""
        if self.multi_objective:
            return None
        scored = [
            (t.metric, t)
            for t in self.trials
            if t.metric is not None and t.metric == t.metric and t.status not in ("ERROR", "INTERRUPTED")
        ]  # NaN: diverged, or not reported yet
        if not scored:
            return None
        pick = max if self.mode == "max" else min
        return pick(scored, key=lambda pair: pair[0])[1]

    @property
    def n_errors(self) -> int:
        return sum(t.status in ("ERROR", "DIVERGED") for t in self.trials)

    def count(self, status: str) -> int:
        """How many trials ended with ``status`` (``STATUSES``)."""
        return sum(t.status == status for t in self.trials)

    def columns(self) -> list[Column]:
        """The columns of :meth:`table` (core, then :attr:`extra_columns`)."""
        return summary_columns(self.metrics, self.extra_columns, front=self.pareto is not None)

    def warnings(self) -> list[str]:
        """What makes the result less trustworthy than it looks (a small front, noisy latency)."""
        return self.pareto.warnings() if self.pareto is not None else []

    def table(self) -> str:
        """The trials as a plain fixed-width table (columns no trial has a value in are left out)."""
        marks = self.pareto.marks() if self.pareto is not None else {}
        rows = []
        for t in self.trials:
            values = t.values(self.metric)
            for m in self.metrics:
                values.setdefault(m, t.metrics.get(m))
            values["front"] = marks.get(t.mlflow_run_id or "", "")
            rows.append(values)
        columns = self.columns()
        core = {"trial", "status", "epochs", "config", "mlflow run", *self.metrics}
        return format_table(
            render_rows(rows, columns),
            [c.header for c in columns],
            hide_empty=[c.header for c in columns if c.header not in core],
        )


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


def trial_statuses(results: Any) -> list[str | None]:
    """Ray's status of each trial of a ``ResultGrid`` (RUNNING, PENDING, TERMINATED, ...), in
    its order; None where unknown. Read from the grid's private experiment analysis (Ray 2.60
    builds the grid's results from its trials in order); a grid without it gives Nones."""
    trials = getattr(getattr(results, "_experiment_analysis", None), "trials", None)
    if not isinstance(trials, list) or len(trials) != len(results):
        return [None] * len(results)
    return [getattr(t, "status", None) for t in trials]


def _status(error: bool, m: Mapping[str, Any], ray_status: str | None, epochs: int) -> str:
    if error:
        return "ERROR"
    if m.get("growray/diverged"):
        return "DIVERGED"
    if ray_status in ("RUNNING", "PENDING", "PAUSED"):
        return "INTERRUPTED"
    return "STOPPED" if stopped_early(m, epochs) else "TERMINATED"


def summaries(
    results: TuneResults, metric: str, epochs: int, statuses: Sequence[str | None] | None = None
) -> list[TrialSummary]:
    """One summary per Tune result; ``epochs`` is ``trainer.epochs`` (what a finished trial
    reached); ``statuses``: Ray's status of each trial (:func:`trial_statuses`), which tells
    the trials an interrupted sweep left unfinished."""
    out = []
    ray_statuses = list(statuses) if statuses is not None else [None] * len(results)
    for r, ray_status in zip((results[i] for i in range(len(results))), ray_statuses, strict=True):
        m = r.metrics or {}
        widths = {k.removeprefix("growth/width/"): int(v) for k, v in m.items() if k.startswith("growth/width/")}
        trial_id = m.get("trial_id") or _trial_id_from_path(r.path)
        status = _status(bool(r.error), m, ray_status, epochs)
        out.append(
            TrialSummary(
                trial_id=trial_id,
                status=status,
                config=dict(r.config or {}),
                metric=m.get(metric),
                best_val_acc=m.get("best/val_acc"),
                test_acc=m.get(paired_test_metric(metric)),
                params=int(m["cost/params"]) if "cost/params" in m else None,
                widths=widths,
                epochs=int(m.get("epoch", 0)),
                mlflow_run_id=m.get("mlflow_run_id"),
                error=str(r.error).strip().splitlines()[-1][:300] if r.error else None,
                stopped_early=status == "STOPPED",
                metrics={
                    k: float(v)
                    for k, v in m.items()
                    if "/" in k and isinstance(v, (int, float)) and not isinstance(v, bool)
                },
            )
        )
    return out
