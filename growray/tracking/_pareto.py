"""The Pareto front of a sweep, from MLflow alone: objectives from the parent run's
``growray.objectives`` tag, values from the trial runs' final metrics (what Optuna was told:
the last reported result). Used after a multi-objective sweep and by ``growray pareto``."""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass, field
from typing import Any

from ._reader import reader
from ._recorder import Recorder
from ._runs import set_run_tags
from .tables import format_table, short_params

__all__ = ["CONSTRAINTS_TAG", "LATENCY_SPREAD_LIMIT", "OBJECTIVES_TAG", "ParetoReport", "record_front", "sweep_front"]

OBJECTIVES_TAG = "growray.objectives"
CONSTRAINTS_TAG = "growray.constraints"
#: a trial's ``cost/latency_spread`` (max - min over min of its repeated latency measurements)
#: above which its latency is called noise (trials sharing cores vary 2-5x, STACK_NOTES)
LATENCY_SPREAD_LIMIT = 0.25


@dataclass
class ParetoReport:
    metrics: list[str]
    modes: list[str]
    rows: list[dict[str, Any]] = field(default_factory=list)  # one per trial with every objective finite
    """Trials stopped early by a scheduler are listed (``stopped_early``) but not ranked: their
    values are from an earlier epoch than the finished trials' and are not comparable.
    Trials violating a ``search.constraints`` entry are listed (``feasible`` false) but not
    ranked either, as Optuna's ``study.best_trials`` does."""
    skipped: int = 0  # trials missing an objective (failed early)
    uses_latency: bool = False  # an objective or a constraint is measured latency

    @property
    def front(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r["pareto"]]

    @property
    def ranked(self) -> list[dict[str, Any]]:
        """The trials the front is computed from: finished, and feasible."""
        return [r for r in self.rows if not r["stopped_early"] and r["feasible"]]

    def marks(self) -> dict[str, str]:
        """Each trial's mark by run id: ``yes`` (on the front), ``stopped`` (not ranked),
        ``infeasible``, or ``""`` (ranked, dominated)."""
        return {r["run_id"]: _mark(r) for r in self.rows}

    def warnings(self) -> list[str]:
        """Why this front may mislead: too few ranked trials (fewer than objectives + 1), or
        latency that varied between repeated measurements (trials sharing CPU cores)."""
        out = []
        need = len(self.metrics) + 1
        if len(self.ranked) < need:
            stopped = sum(r["stopped_early"] for r in self.rows)
            infeasible = sum(not r["feasible"] and not r["stopped_early"] for r in self.rows)
            out.append(
                f"the front comes from {len(self.ranked)} ranked trial(s), fewer than objectives + 1 = {need} "
                f"({stopped} stopped early, {infeasible} infeasible, {self.skipped} without every objective): "
                "it says little; run more trials (search.num_samples) or stop fewer early (search.scheduler)"
            )
        if self.uses_latency:
            spreads = [r["latency_spread"] for r in self.rows if r.get("latency_spread") is not None]
            noisy = [s for s in spreads if s > LATENCY_SPREAD_LIMIT]
            if noisy:
                out.append(
                    f"latency is noisy: {len(noisy)} of {len(spreads)} trials measured a spread above "
                    f"{LATENCY_SPREAD_LIMIT:.0%} between repeats (up to {max(noisy):.0%}, cost/latency_spread), "
                    "likely trials sharing CPU cores; measure with search.max_concurrent: 1, or give each trial "
                    "whole cores of its own (resources.cpu)"
                )
        return out

    def csv(self) -> str:
        buf = io.StringIO()
        cols = ["trial", "run_id", "pareto", "stopped_early", "feasible", *self.metrics, "config"]
        writer = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        for r in sorted(self.rows, key=lambda r: (not r["pareto"], r["trial"])):
            writer.writerow(r)
        return buf.getvalue()

    def table(self, only_front: bool = True) -> str:

        rows = self.front if only_front else self.rows
        key, mode = self.metrics[0], self.modes[0]
        rows = sorted(rows, key=lambda r: r[key], reverse=mode == "max")
        shown = [
            {
                **r,
                **{m: f"{r[m]:.4g}" for m in self.metrics},
                "pareto": _mark(r),
                "config": short_params(json.loads(r["config"]) if r["config"] else {}, limit=90),
            }
            for r in rows
        ]
        return format_table(shown, ["trial", *self.metrics, "pareto", "config", "run_id"])


def sweep_front(tracking_uri: str, parent_run_id: str) -> ParetoReport:
    """Compute the front of one sweep from the store (nothing is written)."""
    from growray.search.pareto import pareto_front

    store = reader(tracking_uri)
    parent = store.get_run(parent_run_id)
    raw = parent.data.tags.get(OBJECTIVES_TAG)
    if raw is None:
        raise ValueError(f"run {parent_run_id} is not a growray sweep with objectives (tag {OBJECTIVES_TAG} missing)")
    objectives = json.loads(raw)
    constraints = json.loads(parent.data.tags.get(CONSTRAINTS_TAG, "[]"))
    metrics = [o["metric"] for o in objectives]
    modes = [o["mode"] for o in objectives]
    report = ParetoReport(metrics, modes)
    children = store.runs_tagged([parent.info.experiment_id], "mlflow.parentRunId", parent_run_id, newest_first=False)
    for run in children:
        values = [run.data.metrics.get(m) for m in metrics]
        if any(v is None or not math.isfinite(v) for v in values):
            report.skipped += 1
            continue
        report.rows.append(
            {
                "trial": run.data.tags.get("growray.trial", run.info.run_name),
                "run_id": run.info.run_id,
                "config": run.data.tags.get("growray.searched", ""),
                "stopped_early": run.data.tags.get("growray.stopped_early") == "true",
                "feasible": all(_holds(c, run.data.metrics.get(c["metric"])) for c in constraints),
                "latency_spread": run.data.metrics.get("cost/latency_spread"),
                **dict(zip(metrics, values)),
            }
        )
    ranked = [r for r in report.rows if not r["stopped_early"] and r["feasible"]]
    report.uses_latency = any(m.startswith("cost/latency") for m in [*metrics, *(c["metric"] for c in constraints)])
    on_front = set(pareto_front([[r[m] for m in metrics] for r in ranked], modes)) if ranked else set()
    front_ids = {ranked[i]["run_id"] for i in on_front}
    for r in report.rows:
        r["pareto"] = r["run_id"] in front_ids
    return report


def _mark(row: dict[str, Any]) -> str:
    if row["pareto"]:
        return "yes"
    return "stopped" if row["stopped_early"] else ("" if row["feasible"] else "infeasible")


def _holds(constraint: dict[str, Any], value: float | None) -> bool:
    if value is None or not math.isfinite(value):
        return False
    return value <= constraint["value"] if constraint["op"] == "<=" else value >= constraint["value"]


def record_front(tracking_uri: str, parent_run_id: str, parent_recorder: Recorder) -> ParetoReport:
    """Tag every trial run ``growray.pareto=true|false``; log ``pareto.csv`` and the plot on the parent."""
    from .plots import pareto_figure

    report = sweep_front(tracking_uri, parent_run_id)
    for r in report.rows:
        set_run_tags(tracking_uri, r["run_id"], {"growray.pareto": "true" if r["pareto"] else "false"})
    parent_recorder.log_text(report.csv(), "pareto.csv")
    if report.rows:
        points = [[r[m] for m in report.metrics] for r in report.rows]
        fig = pareto_figure(points, report.metrics, report.modes, [r["pareto"] for r in report.rows])
        parent_recorder.log_figure(fig, "plots/pareto.png")
    parent_recorder.log_metrics(
        {"sweep/pareto_size": float(len(report.front)), "sweep/n_ranked": float(len(report.ranked))}, step=0
    )
    if report.warnings():
        parent_recorder.set_tags({"growray.warnings": "\n".join(report.warnings())[:5000]})
    return report
