"""The live trial table, printed while the sweep runs (the summary after it is ``SweepResult.table``).

Plain text only, no terminal control codes, so logs stay readable. Its columns are data
(:class:`~growray.tracking.tables.Column`): the core ones plus those an experiment kind adds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ray import tune

from growray.tracking.tables import Column, check_headers, format_config, format_table, format_widths, render_rows

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

__all__ = ["LiveTrialTable", "live_columns"]


def _widths(metrics: dict[str, Any]) -> dict[str, Any]:
    """``growth/width/<site>`` values by site, sorted by site."""
    return dict(
        sorted((k.removeprefix("growth/width/"), v) for k, v in metrics.items() if k.startswith("growth/width/"))
    )


def _where(result: dict[str, Any]) -> str:
    """host:pid, plus the GPUs Ray assigned (``gpu0,1``) when the trial has any."""
    if not result:
        return ""
    where = f"{result.get('hostname', '')}:{result.get('pid', '')}"
    return where + (f":gpu{result['gpu_ids']}" if result.get("gpu_ids") else "")


def live_columns(metric: str, extra_columns: Sequence[Column] = ()) -> list[Column]:
    """The live table's columns: trial, status, epoch, the objective, params, widths, then
    ``extra_columns``, then where the trial runs and its config."""
    columns = [
        Column("trial", "trial"),
        Column("status", "status"),
        Column("epoch", "epoch", digits=0),
        Column(metric, metric, digits=4),
        Column("params", "cost/params", digits=0),
        Column("widths", "widths", formatter=format_widths),
        *extra_columns,
        Column("where", "where"),
        Column("config", "config", formatter=format_config),
    ]
    check_headers(columns)
    return columns


class LiveTrialTable(tune.Callback):
    """Prints the trial table when trials start or end, and every ``interval_s`` while running.

    Shows where each trial runs (host and pid), so cluster and GPU placement is visible.

    Args:
        metric: the objective shown (the first of ``search.metrics``).
        interval_s: the longest pause between two tables while trials run.
        stream: where to print (None: ``sys.stdout`` at print time).
        extra_columns: the experiment kind's columns (their formatters must pickle: the Tuner
            pickles its callbacks).
    """

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "stream": None}

    def __init__(
        self,
        metric: str,
        interval_s: float = 15.0,
        stream: TextIO | None = None,
        extra_columns: Sequence[Column] = (),
    ) -> None:
        self.metric = metric
        self.interval_s = interval_s
        self.stream = stream  # None: sys.stdout at print time (the Tuner pickles its callbacks)
        self.columns = live_columns(metric, extra_columns)
        self._last: dict[str, dict[str, Any]] = {}
        self._printed = 0.0
        self._dirty = False

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._dirty = True

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict[str, Any], **info: Any
    ) -> None:
        self._last[trial.trial_id] = result

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._dirty = True

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._dirty = True

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        now = time.monotonic()
        if trials and (self._dirty or now - self._printed >= self.interval_s):
            self.print_table(trials)
            self._printed, self._dirty = now, False

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        self.print_table(trials)

    def values(self, trial: Trial) -> dict[str, Any]:
        """One trial's row: its last result, then the trial's own fields."""
        r = self._last.get(trial.trial_id, {})
        return {
            **r,
            "trial": trial.trial_id,
            "status": trial.status,
            "widths": _widths(r),
            "where": _where(r),
            "config": trial.config or {},
        }

    def rows(self, trials: Iterable[Trial]) -> list[dict[str, str]]:
        """The cells of each trial's row, by header."""
        return render_rows([self.values(t) for t in trials], self.columns)

    def print_table(self, trials: list[Trial]) -> None:
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.status] = counts.get(t.status, 0) + 1
        head = "trials: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        table = format_table(self.rows(trials), [c.header for c in self.columns])
        print(f"\n{head}\n{table}", file=self.stream or sys.stdout, flush=True)
