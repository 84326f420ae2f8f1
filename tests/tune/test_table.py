"""Plain-text tables: alignment, and fitting into a terminal's width."""

from growray.tracking.tables import format_metric, format_table, metric_header, short_params


def test_format_table_aligns_columns():
    text = format_table([{"a": "x", "b": "long value"}, {"a": "yyy", "b": ""}], ["a", "b"])
    lines = text.splitlines()
    assert lines[0].index("b") == lines[2].index("long")
    assert short_params({"x.y": "z" * 100}, limit=10).endswith("…")
    assert not short_params({"x.y": "z" * 100}, limit=None).endswith("…")


def test_format_table_fits_a_width_dropping_then_narrowing_then_cutting():
    rows = [{"trial": "t1", "where": "node-a:1234", "config": "lr=0.01 " * 20, "x": ""}]
    cols = ["trial", "where", "config", "x"]
    text = format_table(rows, cols, width=40, flexible="config", droppable=("where",), hide_empty=("x",))
    lines = text.splitlines()
    assert all(len(line) <= 40 for line in lines)
    assert "where" not in lines[0] and " x" not in lines[0] and lines[2].rstrip().endswith("…")
    wide = format_table(rows, cols, width=400, flexible="config", droppable=("where",))
    assert "node-a:1234" in wide and "…" not in wide
    tiny = format_table(rows, cols, width=12, flexible="config", droppable=("where",))
    assert all(len(line) <= 12 for line in tiny.splitlines())


def test_metric_cells_and_headers():
    assert [format_metric(v) for v in (0.81111, 0.157, 1066.0, float("nan"), "x")] == [
        "0.8111",
        "0.157",
        "1066",
        "-",
        "x",
    ]
    assert metric_header("cost/latency_ms") == "latency_ms" and metric_header("val/acc") == "val/acc"
