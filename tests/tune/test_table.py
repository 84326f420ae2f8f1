"""The live trial table: where each trial runs (host, pid, GPUs) and compact configs."""

from types import SimpleNamespace

from growray.tracking.tables import format_table, short_params
from growray.tune.table import LiveTrialTable


def test_rows_show_placement_widths_and_config():
    table = LiveTrialTable("val/acc")
    trial = SimpleNamespace(
        trial_id="t1",
        status="RUNNING",
        config={"growth.trigger.name": "plateau", "model.hidden.0": 12, "trainer.lr": 0.00312},
    )
    table.on_trial_result(
        0,
        [trial],
        trial,
        {
            "epoch": 3,
            "val/acc": 0.91234,
            "cost/params": 610.0,
            "growth/width/hidden.0": 14.0,
            "hostname": "node-a",
            "pid": 42,
            "gpu_ids": "0",
        },
    )
    (row,) = table.rows([trial])
    assert row["where"] == "node-a:42:gpu0"
    assert row["widths"] == "[14]" and row["val/acc"] == "0.9123"
    assert row["config"] == "trigger=plateau hidden.0=12 lr=0.00312"
    cpu = SimpleNamespace(trial_id="t2", status="PENDING", config={})
    assert table.rows([cpu])[0]["where"] == ""


def test_format_table_aligns_columns():
    text = format_table([{"a": "x", "b": "long value"}, {"a": "yyy", "b": ""}], ["a", "b"])
    lines = text.splitlines()
    assert lines[0].index("b") == lines[2].index("long")
    assert short_params({"x.y": "z" * 100}, limit=10).endswith("…")
