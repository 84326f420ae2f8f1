"""Configuration errors: every problem of a file, each with its YAML path."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["ConfigError", "ConfigIssue", "format_path"]

_MISSING = object()


def format_path(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("growth", "trigger", "every_steps")`` -> ``growth.trigger.every_steps``; list indices as ``[i]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif "." in str(part):  # a dotted search-space key is one element
            out += f"[{str(part)!r}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


@dataclass(frozen=True)
class ConfigIssue:
    """One problem: where (YAML path), what is wrong, the offending value, what is accepted."""

    path: str
    message: str
    value: Any = _MISSING

    def __str__(self) -> str:
        text = f"{self.path}: {self.message}"
        if self.value is not _MISSING:
            shown = repr(self.value)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            text += f" (got {shown})"
        return text


class ConfigError(ValueError):
    """Raised with every issue found in an experiment file, not just the first."""

    def __init__(self, issues: list[ConfigIssue], source: str | None = None):
        self.issues = list(issues)
        self.source = source
        head = f"{source}: " if source else ""
        n = len(self.issues)
        lines = [f"{head}{n} error{'s' if n != 1 else ''} in the experiment"]
        lines += [f"  - {issue}" for issue in self.issues]
        super().__init__("\n".join(lines))
