"""Trial tables: a live one while the sweep runs, and the summary printed after it."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import Any, TextIO

from ray import tune

from growray.tracking.tables import format_table, short_params

__all__ = ["LiveTrialTable"]


def _widths(metrics: dict[str, Any]) -> str:
    ws = [(k.removeprefix("growth/width/"), v) for k, v in metrics.items() if k.startswith("growth/width/")]
    return "[" + ",".join(str(int(v)) for _, v in sorted(ws)) + "]" if ws else ""


def _where(result: dict[str, Any]) -> str:
    """host:pid, plus the GPUs Ray assigned (``gpu0,1``) when the trial has any."""
    if not result:
        return ""
    where = f"{result.get('hostname', '')}:{result.get('pid', '')}"
    return where + (f":gpu{result['gpu_ids']}" if result.get("gpu_ids") else "")


def _fmt(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if isinstance(value, float) else ("" if value is None else str(value))


class LiveTrialTable(tune.Callback):
    """Prints the trial table when trials start or end, and every ``interval_s`` while running.

    Shows where each trial runs (host and pid), so cluster and GPU placement is visible.
    """

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "stream": None}

    def __init__(self, metric: str, interval_s: float = 15.0, stream: TextIO | None = None):
        self.metric = metric
        self.interval_s = interval_s
        self.stream = stream  # None: sys.stdout at print time (the Tuner pickles its callbacks)
        self._last: dict[str, dict[str, Any]] = {}
        self._printed = 0.0
        self._dirty = False

    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._dirty = True

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        self._last[trial.trial_id] = result

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._dirty = True

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self._dirty = True

    def on_step_begin(self, iteration: int, trials: list, **info: Any) -> None:
        now = time.monotonic()
        if trials and (self._dirty or now - self._printed >= self.interval_s):
            self.print_table(trials)
            self._printed, self._dirty = now, False

    def on_experiment_end(self, trials: list, **info: Any) -> None:
        self.print_table(trials)

    def rows(self, trials: Iterable[Any]) -> list[dict[str, Any]]:
        rows = []
        for t in trials:
            r = self._last.get(t.trial_id, {})
            rows.append(
                {
                    "trial": t.trial_id,
                    "status": t.status,
                    "epoch": _fmt(r.get("epoch"), 0),
                    self.metric: _fmt(r.get(self.metric)),
                    "params": _fmt(r.get("cost/params"), 0),
                    "widths": _widths(r),
                    "where": _where(r),
                    "config": short_params(t.config or {}),
                }
            )
        return rows

    def print_table(self, trials: list) -> None:
        cols = ["trial", "status", "epoch", self.metric, "params", "widths", "where", "config"]
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.status] = counts.get(t.status, 0) + 1
        head = "trials: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(counts.items()))
        print(f"\n{head}\n{format_table(self.rows(trials), cols)}", file=self.stream or sys.stdout, flush=True)
