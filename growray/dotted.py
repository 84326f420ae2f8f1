"""Dotted paths into nested mappings and lists (``growth.trigger.every_steps``, ``model.hidden.0``).

Used by the config layer (overrides, checks) and the search layer (conditions on fixed
values); plain Python, imports nothing.
"""

from __future__ import annotations

from typing import Any

__all__ = ["get_path", "set_path"]


def get_path(d: Any, parts: list[str]) -> tuple[bool, Any]:
    """``(found, value)`` at ``parts`` in nested mappings and lists (list indices as digits)."""
    cur = d
    for part in parts:
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return False, None
    return True, cur


def set_path(d: dict[str, Any], parts: list[str], value: Any) -> None:
    """Set ``value`` at ``parts`` in place, creating mappings on the way."""
    cur: Any = d
    for part in parts[:-1]:
        if isinstance(cur, list) and part.isdigit():
            cur = cur[int(part)]
            continue
        if not isinstance(cur.get(part), (dict, list)):
            cur[part] = {}
        cur = cur[part]
    last = parts[-1]
    if isinstance(cur, list) and last.isdigit():
        cur[int(last)] = value
    else:
        cur[last] = value
