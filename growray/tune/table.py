"""The live view of a sweep, while it runs (the summary after it is ``SweepResult.table``).

On a terminal it is one screen redrawn in place (ANSI cursor-up and clear-to-end, no curses):
a head line with the trials done, elapsed time and an ETA, then one row per trial with its
epoch (``3/12``), the sweep's objectives (every one of ``search.objectives``), params, widths,
the experiment kind's columns, where it runs and its config, fitted to the terminal's width
and height (``shutil.get_terminal_size``). Anywhere else (a pipe, a log file, CI) it appends
one plain line per trial update (started, a result, ended) and never redraws.

Its columns are data (:class:`~growray.tracking.tables.Column`): the core ones plus those an
experiment kind adds (``Kind.columns``); a kind's column showing an objective already shown is
left out.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ray import tune

from growray.tracking.tables import (
    Column,
    check_headers,
    format_config,
    format_metric,
    format_table,
    format_widths,
    metric_header,
    render_rows,
)

from .results import stopped_early

if TYPE_CHECKING:
    from ray.tune.experiment import Trial

    from growray.config import Experiment

__all__ = ["LiveTrialTable", "format_seconds", "live_columns"]

_ACTIVE = ("RUNNING", "PENDING", "PAUSED")
_ENDED = ("TERMINATED", "ERROR")


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


def format_seconds(seconds: float) -> str:
    """``75.4`` -> ``1:15``; ``3725`` -> ``1:02:05``."""
    s = max(0, round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def live_columns(metrics: str | Sequence[str], extra_columns: Sequence[Column] = ()) -> list[Column]:
    """The live view's columns: trial, status, epoch, the objectives, val/acc and params
    (unless objectives), widths, then ``extra_columns`` (those not showing an objective
    already shown), then where the trial runs and its config."""
    objectives = [metrics] if isinstance(metrics, str) else list(metrics)
    columns = [
        Column("trial", "trial"),
        Column("status", "status"),
        Column("epoch", "epoch_of"),
        *(Column(metric_header(m), m, formatter=format_metric) for m in objectives),
    ]
    if "val/acc" not in objectives:
        columns.append(Column("val/acc", "val/acc", formatter=format_metric))
    if "cost/params" not in objectives:
        columns.append(Column("params", "cost/params", digits=0))
    columns.append(Column("widths", "widths", formatter=format_widths))
    keys = {c.key for c in columns}
    columns += [c for c in extra_columns if c.key not in keys]
    columns += [Column("where", "where"), Column("config", "config", formatter=format_config)]
    check_headers(columns)
    return columns


class LiveTrialTable(tune.Callback):
    """Shows the sweep's progress while it runs: redrawn in place on a terminal, one plain
    line per trial update elsewhere (module docstring).

    Args:
        metrics: the sweep's objectives (``search.metrics``); one name is accepted.
        epochs: ``trainer.epochs`` (for ``epoch 3/12`` and telling stopped trials); None: unknown.
        num_samples: the trials the sweep asks for (for the ETA); None: from Tune at start.
        interval_s: on a terminal, the longest pause between two redraws is
            ``min(interval_s, 1)`` (the clock ticks); ignored elsewhere.
        stream: where to print (None: ``sys.stdout`` at print time).
        extra_columns: the experiment kind's columns (their formatters must pickle: the Tuner
            pickles its callbacks).
        tty: redraw in place (True) or append lines (False); None: whether ``stream`` is a terminal.
        size: (columns, lines) of the screen; None: ``shutil.get_terminal_size`` at each redraw.
    """

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "stream": None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        # a sweep started by an older growray pickled a table without these (tuner.pkl)
        defaults = {"epochs": None, "num_samples": None, "tty": None, "size": None, "_drawn": 0}
        self.__dict__.update({**defaults, **state, "_t0": time.monotonic()})
        if "metrics" not in state:
            self.metrics = [state.get("metric", "val/acc")]

    def __init__(
        self,
        metrics: str | Sequence[str],
        *,
        epochs: int | None = None,
        num_samples: int | None = None,
        interval_s: float = 15.0,
        stream: TextIO | None = None,
        extra_columns: Sequence[Column] = (),
        tty: bool | None = None,
        size: tuple[int, int] | None = None,
    ) -> None:
        self.metrics = [metrics] if isinstance(metrics, str) else list(metrics)
        self.epochs = epochs
        self.num_samples = num_samples
        self.interval_s = interval_s
        self.stream = stream  # None: sys.stdout at print time (the Tuner pickles its callbacks)
        self.tty = tty
        self.size = size
        self.columns = live_columns(self.metrics, extra_columns)
        self._last: dict[str, dict[str, Any]] = {}
        self._t0 = time.monotonic()
        self._printed = 0.0
        self._dirty = False
        self._drawn = 0  # lines of the frame on screen (a terminal only)

    @classmethod
    def for_experiment(
        cls, exp: Experiment, interval_s: float = 15.0, extra_columns: Sequence[Column] = ()
    ) -> LiveTrialTable:
        """The live view of ``exp``'s sweep: its objectives, epochs and trial count."""
        return cls(
            exp.search.metrics,
            epochs=exp.trainer.epochs,
            num_samples=exp.search.num_samples,
            interval_s=interval_s,
            extra_columns=extra_columns,
        )

    # -- Tune's callback hooks -------------------------------------------------------------

    def setup(
        self, stop: Any = None, num_samples: int | None = None, total_num_samples: int | None = None, **info: Any
    ) -> None:
        self._t0 = time.monotonic()
        self._drawn = 0
        if self.num_samples is None and isinstance(total_num_samples, int):
            self.num_samples = total_num_samples

    def on_trial_start(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._update(trials, trial, "RUNNING")

    def on_trial_result(
        self, iteration: int, trials: list[Trial], trial: Trial, result: dict[str, Any], **info: Any
    ) -> None:
        self._last[trial.trial_id] = result
        self._update(trials, trial, None)

    def on_trial_complete(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._update(trials, trial, self._status(trial, ended="TERMINATED"))

    def on_trial_error(self, iteration: int, trials: list[Trial], trial: Trial, **info: Any) -> None:
        self._update(trials, trial, "ERROR")

    def on_step_begin(self, iteration: int, trials: list[Trial], **info: Any) -> None:
        if not self._is_tty() or not trials:
            return
        now = time.monotonic()
        if (self._dirty and now - self._printed >= 0.2) or now - self._printed >= min(self.interval_s, 1.0):
            self.print_table(trials)

    def on_experiment_end(self, trials: list[Trial], **info: Any) -> None:
        if self._is_tty():
            self.print_table(trials)  # the last frame stays; the summary table follows it

    # -- rows ------------------------------------------------------------------------------

    def _status(self, trial: Trial, ended: str | None = None) -> str:
        """Ray's status, with STOPPED for a trial a scheduler ended before its last epoch."""
        status = ended or trial.status
        last = self._last.get(trial.trial_id, {})
        if status == "TERMINATED" and self.epochs is not None and last and stopped_early(last, self.epochs):
            return "STOPPED"
        return status

    def values(self, trial: Trial) -> dict[str, Any]:
        """One trial's row: its last result, then the trial's own fields."""
        r = self._last.get(trial.trial_id, {})
        epoch = r.get("epoch")
        epoch_of = ""
        if isinstance(epoch, (int, float)) and epoch == epoch:
            epoch_of = f"{int(epoch)}/{self.epochs}" if self.epochs else str(int(epoch))
        return {
            **r,
            "trial": trial.trial_id,
            "status": self._status(trial),
            "epoch_of": epoch_of,
            "widths": _widths(r),
            "where": _where(r),
            "config": trial.config or {},
        }

    def rows(self, trials: Iterable[Trial]) -> list[dict[str, str]]:
        """The cells of each trial's row, by header (``-``: a value not reported yet)."""
        rows = render_rows([self.values(t) for t in trials], self.columns)
        return [{h: "-" if v == "nan" else v for h, v in row.items()} for row in rows]

    # -- the head line ---------------------------------------------------------------------

    def progress(self, trials: Sequence[Trial]) -> str:
        """``3/8 done, 2 running, 1 stopped | 1:23 | ETA 2:10``."""
        counts: dict[str, int] = {}
        for t in trials:
            s = self._status(t)
            counts[s] = counts.get(s, 0) + 1
        ended = sum(n for s, n in counts.items() if s not in _ACTIVE)
        total = max(self.num_samples or 0, len(trials))
        parts = [f"{ended}/{total} done"] + [
            f"{n} {s.lower()}" for s, n in sorted(counts.items()) if s not in ("TERMINATED",)
        ]
        elapsed = time.monotonic() - self._t0
        text = ", ".join(parts) + f" | {format_seconds(elapsed)}"
        # progress in trials: ended ones count 1, running ones their share of epochs
        units = float(ended)
        if self.epochs:
            for t in trials:
                epoch = self._last.get(t.trial_id, {}).get("epoch")
                if self._status(t) in _ACTIVE and isinstance(epoch, (int, float)) and epoch == epoch:
                    units += min(1.0, float(epoch) / self.epochs)
        if 0 < units < total:
            text += f" | ETA {format_seconds(elapsed / units * (total - units))}"
        return text

    # -- output ----------------------------------------------------------------------------

    def _out(self) -> TextIO:
        return self.stream or sys.stdout

    def _is_tty(self) -> bool:
        if self.tty is not None:
            return self.tty
        isatty = getattr(self._out(), "isatty", None)
        return bool(isatty and isatty())

    def _update(self, trials: list[Trial], trial: Trial, status: str | None) -> None:
        """A trial started, reported or ended: one line when appending, a redraw soon on a terminal."""
        self._dirty = True
        if not self._is_tty():
            self._out().write(self.line(trial, status, trials if status in (*_ENDED, "STOPPED") else None) + "\n")
            self._out().flush()

    def line(self, trial: Trial, status: str | None, trials: Sequence[Trial] | None = None) -> str:
        """One plain line for a trial update: ``[0:42] a032b5ba epoch 2/12 val/acc=0.8111 ...``;
        its status when it started or ended (then with the sweep's progress, from ``trials``)."""
        v = self.values(trial)
        cells = dict(zip((c.header for c in self.columns), self.rows([trial])[0].values(), strict=True))
        parts = [f"[{format_seconds(time.monotonic() - self._t0)}]", str(v["trial"])]
        if status is not None:
            parts.append(status)
        if status == "RUNNING" and not self._last.get(trial.trial_id):  # started: what it tries
            parts.append(cells["config"])
            return " ".join(p for p in parts if p)
        if v["epoch_of"]:
            parts.append(f"epoch {v['epoch_of']}")
        skip = {"trial", "status", "epoch", "where", "config"}
        parts += [f"{h}={cell}" for h, cell in cells.items() if h not in skip and cell]
        if trials is not None:
            parts.append("| " + self.progress(trials))
        return " ".join(p for p in parts if p)

    def frame(self, trials: Sequence[Trial]) -> list[str]:
        """The terminal screen: the head line and the table, within ``size`` (columns, lines)."""
        width, height = self.size or shutil.get_terminal_size((80, 24))
        width = max(20, width - 1)  # never the last column: some terminals wrap there
        room = max(1, height - 4)  # head, table head and rule, and the cursor's line
        shown = list(trials)
        hidden = 0
        if len(shown) > room:  # keep the active trials, then the latest ended ones
            keep = [t for t in shown if self._status(t) in _ACTIVE][: room - 1]
            ended = [t for t in shown if self._status(t) not in _ACTIVE]
            keep += ended[len(ended) - (room - 1 - len(keep)) :] if room - 1 > len(keep) else []
            ids = {t.trial_id for t in keep}
            hidden = len(shown) - len(ids)
            shown = [t for t in shown if t.trial_id in ids]
        always = {"trial", "status", "epoch", "config", *(metric_header(m) for m in self.metrics)}
        table = format_table(
            self.rows(shown),
            [c.header for c in self.columns],
            width=width,
            flexible="config",
            droppable=("where",),
            hide_empty=[c.header for c in self.columns if c.header not in always],
        )
        lines = [self.progress(trials)[:width], *table.split("\n")]
        if hidden:
            lines.append(f"… {hidden} more trials (all in the table at the end)"[:width])
        return lines

    def print_table(self, trials: list[Trial]) -> None:
        """Redraw the frame in place (a terminal), or print it once (elsewhere)."""
        out = self._out()
        lines = self.frame(trials)
        if self._is_tty():
            up = f"\r\x1b[{self._drawn}A\x1b[J" if self._drawn else ""
            out.write(up + "\n".join(lines) + "\n")
            self._drawn = len(lines)
        else:
            out.write("\n".join(lines) + "\n")
        out.flush()
        self._printed, self._dirty = time.monotonic(), False
