"""Plain-text tables of trials: the summary printed after a sweep, ``growray ls``, the
Pareto front, and the rows of the live table (no terminal control codes here: the live view
adds its own on a terminal). No Ray, no MLflow: the commands that only read the store stay light.

:func:`format_table` can fit a table into a width (a terminal's): it drops the columns named
droppable, then narrows one flexible column (the config), then cuts what still overflows.

The trial tables take their columns as data: a :class:`Column` names its header, the key
of the value it shows and how that value is written, so an experiment kind can add its own
(``Column("nas/gap", "nas/gap", digits=4)``) without touching the tables.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Column",
    "check_headers",
    "format_config",
    "format_config_long",
    "format_metric",
    "format_table",
    "format_widths",
    "metric_header",
    "render_rows",
    "render_table",
    "short_params",
]


@dataclass(frozen=True)
class Column:
    """One column of a trial table.

    Attributes:
        header: the column's title; unique within a table.
        key: the key of the value in each row's mapping (a metric name such as ``val/acc``,
            or a row field such as ``config``).
        digits: numbers (not bools) are written with this many decimals; other values as ``str``.
        formatter: writes the value instead (lists, mappings: ``format_widths``). It must be
            picklable (a module-level function), since Ray Tune pickles the live table.

    A missing or ``None`` value is an empty cell.
    """

    header: str
    key: str
    digits: int | None = None
    formatter: Callable[[Any], str] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.header, str) or not self.header:
            raise ValueError(f"Column.header must be a non-empty string; got {self.header!r}")
        if not isinstance(self.key, str) or not self.key:
            raise ValueError(f"Column.key must be a non-empty string (a metric or row key); got {self.key!r}")
        if self.digits is not None and (isinstance(self.digits, bool) or not isinstance(self.digits, int)):
            raise ValueError(f"Column.digits must be an int >= 0 or None; got {self.digits!r}")
        if self.digits is not None and self.digits < 0:
            raise ValueError(f"Column.digits must be an int >= 0 or None; got {self.digits!r}")
        if self.digits is not None and self.formatter is not None:
            raise ValueError(f"Column {self.header!r}: give digits or a formatter, not both")

    def cell(self, values: Mapping[str, Any]) -> str:
        """The text of this column for one row's ``values``."""
        value = values.get(self.key)
        if value is None:
            return ""
        if self.formatter is not None:
            return self.formatter(value)
        if self.digits is not None and isinstance(value, float):
            return f"{value:.{self.digits}f}"
        return str(value)


def format_widths(widths: Mapping[str, Any] | Sequence[Any]) -> str:
    """``[8,12]``: the widths of the growth sites (a mapping's values in its order); ``""`` for none."""
    values = list(widths.values()) if isinstance(widths, Mapping) else list(widths)
    return "[" + ",".join(str(int(w)) for w in values) + "]" if values else ""


def format_config(config: Mapping[str, Any]) -> str:
    """A trial's sampled values, compact and whole (:func:`short_params` without a limit: a
    table that must fit a width narrows its config column, :func:`format_table`)."""
    return short_params(config, limit=None)


def format_config_long(config: Mapping[str, Any]) -> str:
    """A trial's sampled values, compact (:func:`short_params`, 70 characters)."""
    return short_params(config, limit=70)


def format_metric(value: Any) -> str:
    """An objective's value: 4 significant digits (``0.8111``, ``0.157``), whole numbers from
    1000 on (``cost/params`` 1066); ``-`` for NaN (not reported yet: a NAS trial's
    ``nas/retrain_val_acc`` during its search)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if value != value:
        return "-"
    return f"{value:.0f}" if abs(value) >= 1000 else f"{value:.4g}"


def metric_header(metric: str) -> str:
    """A short column header for a metric: ``cost/latency_ms`` -> ``latency_ms``,
    ``nas/retrain_val_acc`` -> ``retrain_val_acc``; ``val/acc`` stays."""
    section, _, name = metric.partition("/")
    return name if section in ("cost", "nas", "sparse", "growth") and name else metric


def short_params(config: Mapping[str, Any], limit: int | None = 60) -> str:
    """``growth.trigger.name=plateau lr=0.0031`` — last path element, compact values; cut
    to ``limit`` characters (None: whole)."""

    def short(path: list[str]) -> str:
        if path[-1] == "name" or path[-1].isdigit():  # growth.trigger.name -> trigger, model.hidden.0 -> hidden.0
            return path[-2] if path[-1] == "name" else ".".join(path[-2:])
        return path[-1]

    names = {key: short(key.split(".")) for key in config}
    clashes = {n for n in names.values() if list(names.values()).count(n) > 1}
    parts = []
    for key, value in config.items():
        path = key.split(".")
        name = names[key]
        if name in clashes and len(path) > 1:  # nas.controller.lr vs trainer.lr -> controller.lr, trainer.lr
            name = f"{path[-2]}.{name}" if path[-1] != "name" else ".".join(path[-3:-1])
        if isinstance(value, float):
            value = f"{value:.3g}"
        parts.append(f"{name}={value}")
    text = " ".join(parts)
    return text if limit is None or len(text) <= limit else text[: limit - 1] + "…"


def check_headers(columns: Sequence[Column]) -> None:
    """Raise ``ValueError`` when two columns share a header (an extra column repeating a core one)."""
    seen: set[str] = set()
    for c in columns:
        if c.header in seen:
            raise ValueError(
                f"table columns: header {c.header!r} appears twice "
                f"(columns: {', '.join(repr(x.header) for x in columns)}); give the extra column another header"
            )
        seen.add(c.header)


def render_rows(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> list[dict[str, str]]:
    """Each row's cells, keyed by header."""
    check_headers(columns)
    return [{c.header: c.cell(values) for c in columns} for values in rows]


def render_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[Column]) -> str:
    """A plain fixed-width table of ``rows`` (one mapping of values each) in ``columns``."""
    return format_table(render_rows(rows, columns), [c.header for c in columns])


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


def format_table(
    rows: Sequence[Mapping[str, Any]],
    columns: Sequence[str],
    *,
    width: int | None = None,
    flexible: str | None = None,
    droppable: Sequence[str] = (),
    hide_empty: Sequence[str] = (),
) -> str:
    """Plain fixed-width table (no terminal control codes, so logs stay readable).

    Args:
        rows: one mapping of cells (by header) per row.
        columns: the headers, in order.
        width: the most characters a line may have (None: no limit). To fit, the
            ``droppable`` columns go first (in that order), then the ``flexible`` column is
            narrowed (its cells cut with ``…``; dropped below 8 characters), and what still
            overflows is cut at the end of the line.
        flexible: the column that takes the space left (the config).
        droppable: columns given up, in this order, before the flexible one narrows.
        hide_empty: columns left out when no row has a value in them.
    """
    cells = [{c: str(r.get(c, "")) for c in columns} for r in rows]
    shown = [c for c in columns if c not in hide_empty or any(row[c] for row in cells)]
    natural = {c: max([len(c)] + [len(row[c]) for row in cells]) for c in shown}

    def total(cols: Sequence[str]) -> int:
        return sum(natural[c] for c in cols) + 2 * max(0, len(cols) - 1)

    if width is not None:
        for c in droppable:
            if total(shown) <= width:
                break
            if c in shown:
                shown.remove(c)
        if flexible in shown and total(shown) > width:
            room = width - (total(shown) - natural[flexible])
            if room >= max(8, len(flexible)):
                natural[flexible] = room
            else:
                shown.remove(flexible)
    widths = [natural[c] for c in shown]
    out = ["  ".join(c.ljust(w) for c, w in zip(shown, widths)), "  ".join("-" * w for w in widths)]
    out += ["  ".join(_cut(row[c], w).ljust(w) for c, w in zip(shown, widths)) for row in cells]
    if width is not None:
        out = [_cut(line.rstrip(), width) if len(line) > width else line for line in out]
    return "\n".join(out)
