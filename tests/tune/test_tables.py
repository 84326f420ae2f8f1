"""The live and the final trial tables take their columns as data: with no extra columns they
print exactly what they printed before columns were data (pinned below); a kind's extra columns
appear before where/config; nothing but plain text (no terminal control codes)."""

from __future__ import annotations

import io
import pickle
from types import SimpleNamespace

import pytest

from growray.tracking.tables import Column
from growray.tune.results import SweepResult, TrialSummary
from growray.tune.table import LiveTrialTable

# What growray printed before the tables took columns (computed with that code, same inputs).
LIVE_BEFORE = [
    "",
    "trials: 1 pending, 1 running, 1 terminated",
    "trial  status      epoch  val/acc  params  widths  where           config                                ",
    "-----  ----------  -----  -------  ------  ------  --------------  --------------------------------------",
    "t1     RUNNING     3      0.9123   610     [14,9]  node-a:42:gpu0  trigger=plateau hidden.0=12 lr=0.00312",
    "t2     PENDING                                                                                           ",
    "t3     TERMINATED  5      0.5000   1234            node-b:7        lr=0.0312 n_units=3                   ",
    "",
]
SUMMARY_BEFORE = [
    "trial        status      epochs  val/acc  best val/acc  test/acc  params  widths  config                           mlflow run",
    "-----------  ----------  ------  -------  ------------  --------  ------  ------  -------------------------------  ----------",
    "a1b2c_00000  TERMINATED  3       0.9123   0.9321        0.9000    610     [14,8]  lr=0.0123 initializer=net2wider  abcdef0123",
    "a1b2c_00001  ERROR       1                                                        lr=0.001                                   ",
    "a1b2c_00002  DIVERGED    2       nan      0.1000                  300     [6]     lr=10                            ffff      ",
]


def _live(extra=()):
    table = LiveTrialTable("val/acc", stream=io.StringIO(), extra_columns=extra)
    t1 = SimpleNamespace(
        trial_id="t1",
        status="RUNNING",
        config={"growth.trigger.name": "plateau", "model.hidden.0": 12, "trainer.lr": 0.00312},
    )
    t2 = SimpleNamespace(trial_id="t2", status="PENDING", config={})
    t3 = SimpleNamespace(trial_id="t3", status="TERMINATED", config={"trainer.lr": 0.0312, "growth.trigger.n_units": 3})
    table.on_trial_result(
        0,
        [t1],
        t1,
        {
            "epoch": 3.0,
            "val/acc": 0.91234,
            "cost/params": 610.0,
            "growth/width/hidden.1": 9.0,
            "growth/width/hidden.0": 14.0,
            "hostname": "node-a",
            "pid": 42,
            "gpu_ids": "0",
            "nas/gap": 0.03125,
        },
    )
    table.on_trial_result(
        0, [t3], t3, {"epoch": 5.0, "val/acc": 0.5, "cost/params": 1234.0, "hostname": "node-b", "pid": 7}
    )
    table.print_table([t1, t2, t3])
    return table, [t1, t2, t3], table.stream.getvalue()


def _summary(extra=()):
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
            metrics={"nas/gap": 0.0625, "val/acc": 0.91234},
        ),
        TrialSummary("a1b2c_00001", "ERROR", {"trainer.lr": 0.001}, None, None, None, None, {}, 1, None, "boom"),
        TrialSummary(
            "a1b2c_00002", "DIVERGED", {"trainer.lr": 10.0}, float("nan"), 0.1, None, 300, {"hidden.0": 6}, 2, "ffff"
        ),
    ]
    return SweepResult("s", "o", "p", "u", "1", "pid", "val/acc", "max", trials, extra_columns=tuple(extra))


def test_live_table_without_extra_columns_is_unchanged():
    _, _, text = _live()
    assert text.split("\n") == LIVE_BEFORE
    assert "\x1b" not in text and "\r" not in text


def test_summary_table_without_extra_columns_is_unchanged():
    assert _summary().table().split("\n") == SUMMARY_BEFORE


GAP = Column("nas/gap", "nas/gap", digits=3)


def test_extra_columns_come_before_where_and_config():
    table, trials, text = _live([GAP])
    header = text.split("\n")[2].split()
    assert header == ["trial", "status", "epoch", "val/acc", "params", "widths", "nas/gap", "where", "config"]
    rows = table.rows(trials)
    assert [r["nas/gap"] for r in rows] == ["0.031", "", ""]  # 0.03125 to 3 digits; no value: empty
    assert rows[0]["where"] == "node-a:42:gpu0"

    summary = _summary([GAP])
    lines = summary.table().split("\n")
    assert lines[0].split() == [
        "trial", "status", "epochs", "val/acc", "best", "val/acc", "test/acc", "params", "widths",
        "nas/gap", "config", "mlflow", "run",
    ]  # fmt: skip
    assert lines[2].split()[8] == "0.062" and "0.062" not in lines[3] + lines[4]


def test_live_table_pickles_with_its_columns():
    """The Tuner pickles its callbacks (tuner.pkl): the table, its columns and formatters must survive."""
    table, trials, _ = _live([GAP])
    again = pickle.loads(pickle.dumps(table))
    assert again.stream is None and [c.header for c in again.columns] == [c.header for c in table.columns]
    assert again.rows(trials) == table.rows(trials)


def test_an_extra_column_cannot_repeat_a_core_header():
    with pytest.raises(ValueError, match="'params' appears twice"):
        LiveTrialTable("val/acc", extra_columns=[Column("params", "nas/params")])
    with pytest.raises(ValueError, match="'widths' appears twice"):
        _summary([Column("widths", "x")]).table()
