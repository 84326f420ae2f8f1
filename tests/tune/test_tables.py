"""The live view and the final trial table: columns as data (a kind's extra columns before
where/config, none repeating an objective), the sweep's objectives as columns, plain lines
off a terminal, in-place redraws within the screen on one, STOPPED/INTERRUPTED told apart."""

from __future__ import annotations

import io
import pickle
import re
from types import SimpleNamespace

import pytest

from growray.tracking.tables import Column
from growray.tune.results import SweepResult, TrialSummary
from growray.tune.table import LiveTrialTable, format_seconds

CONFIG = {"growth.trigger.name": "plateau", "model.hidden.0": 12, "trainer.lr": 0.00312}


def _trials():
    return [
        SimpleNamespace(trial_id="t1", status="RUNNING", config=CONFIG),
        SimpleNamespace(trial_id="t2", status="PENDING", config={}),
        SimpleNamespace(trial_id="t3", status="TERMINATED", config={"trainer.lr": 0.0312, "growth.trigger.n_units": 3}),
    ]


R1 = {
    "epoch": 3.0,
    "val/acc": 0.91234,
    "cost/params": 610.0,
    "growth/width/hidden.1": 9.0,
    "growth/width/hidden.0": 14.0,
    "hostname": "node-a",
    "pid": 42,
    "gpu_ids": "0",
    "nas/gap": 0.03125,
}
R3 = {"epoch": 2.0, "val/acc": 0.5, "cost/params": 1234.0, "hostname": "node-b", "pid": 7}  # stopped at 2 of 5


def _live(extra=(), metrics="val/acc", **kw):
    table = LiveTrialTable(metrics, epochs=5, num_samples=4, stream=io.StringIO(), extra_columns=extra, **kw)
    t1, _t2, t3 = trials = _trials()
    table.on_trial_result(0, trials, t1, R1)
    table.on_trial_result(0, trials, t3, R3)
    return table, trials


def test_rows_show_epoch_of_epochs_objectives_placement_and_stopped():
    table, trials = _live(tty=True, size=(200, 24))
    rows = table.rows(trials)
    assert [r["status"] for r in rows] == ["RUNNING", "PENDING", "STOPPED"]  # t3 ended at epoch 2 of 5
    assert rows[0]["epoch"] == "3/5" and rows[0]["val/acc"] == "0.9123" and rows[0]["widths"] == "[14,9]"
    assert rows[0]["where"] == "node-a:42:gpu0" and rows[1]["where"] == ""
    assert rows[0]["config"] == "trigger=plateau hidden.0=12 lr=0.00312"  # whole: the frame narrows it


def test_a_pareto_sweep_shows_every_objective_and_nas_a_pending_one_as_dash():
    table, _ = _live(metrics=["val/acc", "cost/latency_ms"])
    assert [c.header for c in table.columns][:5] == ["trial", "status", "epoch", "val/acc", "latency_ms"]
    nas = LiveTrialTable(
        "nas/retrain_val_acc", epochs=5, extra_columns=[Column("retrained", "nas/retrain_val_acc", digits=4)]
    )
    headers = [c.header for c in nas.columns]
    assert "retrain_val_acc" in headers and "val/acc" in headers and "retrained" not in headers  # no repeat
    trial = _trials()[0]
    nas.on_trial_result(0, [trial], trial, {"epoch": 1.0, "val/acc": 0.19, "nas/retrain_val_acc": float("nan")})
    row = nas.rows([trial])[0]
    assert row["retrain_val_acc"] == "-" and row["val/acc"] == "0.19"


def test_off_a_terminal_one_plain_line_per_trial_update():
    out = io.StringIO()
    table = LiveTrialTable("val/acc", epochs=2, num_samples=2, stream=out)  # StringIO: not a terminal
    trial = SimpleNamespace(trial_id="abc", status="PENDING", config={"trainer.lr": 0.01})
    table.setup(total_num_samples=2)
    table.on_trial_start(0, [trial], trial)
    trial.status = "RUNNING"
    for epoch in (1, 2):
        table.on_trial_result(0, [trial], trial, {"epoch": float(epoch), "val/acc": 0.5 + epoch / 10, "test/acc": 0.6})
        table.on_step_begin(0, [trial])  # no redraws off a terminal
    trial.status = "TERMINATED"
    table.on_trial_complete(0, [trial], trial)
    table.on_experiment_end([trial])
    lines = out.getvalue().splitlines()
    assert len(lines) == 4, lines  # start, 2 results, end
    assert re.fullmatch(r"\[0:00\] abc RUNNING lr=0.01", lines[0])
    assert lines[1].endswith("abc epoch 1/2 val/acc=0.6") and lines[2].endswith("abc epoch 2/2 val/acc=0.7")
    assert "abc TERMINATED epoch 2/2 val/acc=0.7" in lines[3] and "| 1/2 done" in lines[3]
    assert "\x1b" not in out.getvalue() and "\r" not in out.getvalue()


@pytest.mark.parametrize("size", [(80, 24), (60, 10), (200, 50)])
def test_on_a_terminal_the_frame_fits_the_screen_and_redraws_in_place(size):
    table, trials = _live(extra=[Column("nas/gap", "nas/gap", digits=3)], tty=True, size=size)
    many = trials + [SimpleNamespace(trial_id=f"x{i}", status="TERMINATED", config=CONFIG) for i in range(20)]
    table.print_table(many)
    first = table.stream.getvalue()
    table.print_table(many)
    second = table.stream.getvalue()[len(first) :]
    frame = first.splitlines()
    assert len(frame) <= size[1] - 1 and all(len(line) < size[0] for line in frame)
    assert second.startswith(f"\r\x1b[{len(frame)}A\x1b[J")  # back to the frame's first line, cleared
    assert "running" in frame[0] and "ETA" in frame[0]
    assert any("t1" in line for line in frame)  # the running trial is never left out
    assert ("more trials" in frame[-1]) == (len(many) > size[1] - 4)
    if size[0] >= 200:
        assert "trigger=plateau hidden.0=12 lr=0.00312" in first  # no cut when there is room


def test_live_view_pickles_with_its_columns():
    """The Tuner pickles its callbacks (tuner.pkl): the table, its columns and formatters must survive."""
    table, trials = _live([Column("nas/gap", "nas/gap", digits=3)])
    again = pickle.loads(pickle.dumps(table))
    assert again.stream is None and [c.header for c in again.columns] == [c.header for c in table.columns]
    assert again.rows(trials) == table.rows(trials)


def test_an_extra_column_cannot_repeat_a_core_header():
    with pytest.raises(ValueError, match="'params' appears twice"):
        LiveTrialTable("val/acc", extra_columns=[Column("params", "nas/params")])
    with pytest.raises(ValueError, match="'widths' appears twice"):
        _summary(extra=[Column("widths", "x")]).table()


def test_format_seconds():
    assert (format_seconds(0), format_seconds(75.4), format_seconds(3725)) == ("0:00", "1:15", "1:02:05")


def _summary(metric="val/acc", extra=(), objectives=()):
    trials = [
        TrialSummary(
            "a1b2c_00000",
            "TERMINATED",
            {"trainer.lr": 0.0123, "growth.initializer.name": "net2wider"},
            0.91234,
            0.9321,
            0.9,
            610,
            {"hidden.0": 14, "hidden.1": 8},
            3,
            "abcdef0123",
            metrics={"nas/gap": 0.0625, "val/acc": 0.91234, "cost/latency_ms": 0.25},
        ),
        TrialSummary("a1b2c_00001", "ERROR", {"trainer.lr": 0.001}, None, None, None, None, {}, 1, None, "boom"),
        TrialSummary(
            "a1b2c_00002", "DIVERGED", {"trainer.lr": 10.0}, float("nan"), 0.1, None, 300, {"hidden.0": 6}, 2, "ffff"
        ),
        TrialSummary("a1b2c_00003", "STOPPED", {}, 0.5, 0.5, None, 300, {}, 1, "eeee", stopped_early=True),
        TrialSummary("a1b2c_00004", "INTERRUPTED", {}, 0.95, 0.95, None, 300, {}, 2, "dddd"),
    ]
    return SweepResult(
        "s", "o", "p", "u", "1", "pid", metric, "max", trials, extra_columns=tuple(extra), objectives=objectives
    )


def test_summary_table_statuses_and_columns():
    summary = _summary(extra=[Column("nas/gap", "nas/gap", digits=3)])
    lines = summary.table().split("\n")
    assert lines[0].split() == [
        "trial", "status", "epochs", "val/acc", "best", "val/acc", "test/acc", "params", "widths",
        "nas/gap", "config", "mlflow", "run",
    ]  # fmt: skip
    assert [line.split()[1] for line in lines[2:]] == ["TERMINATED", "ERROR", "DIVERGED", "STOPPED", "INTERRUPTED"]
    assert "0.062" in lines[2] and "0.062" not in "".join(lines[3:])
    assert summary.best is not None and summary.best.trial_id == "a1b2c_00000"  # not the interrupted 0.95
    assert summary.count("STOPPED") == 1 and summary.n_errors == 2


def test_a_multi_objective_summary_has_no_best_trial_and_both_objectives():
    summary = _summary(objectives=(("val/acc", "max"), ("cost/latency_ms", "min")))
    header = summary.table().split("\n")[0].split()
    assert header[3:5] == ["val/acc", "cost/latency_ms"]
    assert summary.best is None and summary.multi_objective


def test_a_nas_summary_shows_the_retrained_test_accuracy():
    summary = _summary(metric="nas/retrain_val_acc", extra=[Column("retrained", "nas/retrain_val_acc", digits=4)])
    header = summary.table().split("\n")[0].split()
    assert "nas/retrain_test_acc" in header and "test/acc" not in header and "retrained" not in header
    assert "best" not in header  # best val/acc would be the supernet's
