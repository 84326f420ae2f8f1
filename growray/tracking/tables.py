"""Plain-text tables of trials: the summary printed after a sweep, ``growray ls``, the
Pareto front, and the rows of the live table (no terminal control codes, so logs stay
readable). No Ray, no MLflow: the commands that only read the store stay light.

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
    "format_table",
    "format_widths",
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
    """A trial's sampled values, compact (:func:`short_params`, 60 characters)."""
    return short_params(config)


def format_config_long(config: Mapping[str, Any]) -> str:
    """A trial's sampled values, compact (:func:`short_params`, 70 characters)."""
    return short_params(config, limit=70)


def short_params(config: Mapping[str, Any], limit: int = 60) -> str:
    """``growth.trigger.name=plateau lr=0.0031`` — last path element, compact values."""

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
    return text if len(text) <= limit else text[: limit - 1] + "…"


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


def format_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """Plain fixed-width table (no terminal control codes, so logs stay readable)."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(out)
