"""Plain-text tables of trials: the summary printed after a sweep, ``growray ls``, the
Pareto front, and the rows of the live table (no terminal control codes, so logs stay
readable). No Ray, no MLflow: the commands that only read the store stay light."""

from __future__ import annotations

from typing import Any

__all__ = ["format_table", "short_params"]


def short_params(config: dict[str, Any], limit: int = 60) -> str:
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


def format_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Plain fixed-width table (no terminal control codes, so logs stay readable)."""
    cells = [[str(r.get(c, "")) for c in columns] for r in rows]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(columns, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(out)
