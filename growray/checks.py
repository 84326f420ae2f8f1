"""Argument checks for plug-in constructors: one set, one wording (pure Python).

Every registered plug-in (trigger, initializer, model, dataset, op, ...) checks its
arguments in its constructor with these, so a bad value reads the same everywhere:
``"every_steps must be an int >= 1; got 0"``. Messages start with the argument's name:
the config layer uses that to point at the YAML path (``growth.trigger.every_steps``).

``bool`` is never accepted as a number (``True`` is an ``int`` in Python), and numbers
must be finite.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Collection
from typing import TypeVar, overload

__all__ = ["check_bool", "check_choice", "check_int", "check_number"]

T = TypeVar("T")


def _bounds(low: float | None, high: float | None, low_open: bool, high_open: bool) -> str:
    if low is not None and high is not None:
        return f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
    if low is not None:
        return f"{'>' if low_open else '>='} {low:g}"
    if high is not None:
        return f"{'<' if high_open else '<='} {high:g}"
    return ""


@overload
def check_int(name: str, value: object, *, minimum: int | None = ..., maximum: int | None = ...) -> int: ...
@overload
def check_int(
    name: str, value: object, *, minimum: int | None = ..., maximum: int | None = ..., optional: bool
) -> int | None: ...
def check_int(
    name: str, value: object, *, minimum: int | None = None, maximum: int | None = None, optional: bool = False
) -> int | None:
    """``value`` as an int within ``[minimum, maximum]``; ``optional`` also accepts None.

    Raises:
        ValueError: ``"<name> must be an int >= <minimum>[ or null]; got <value>"``.
    """
    if optional and value is None:
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        v = int(value)
        if (minimum is None or v >= minimum) and (maximum is None or v <= maximum):
            return v
    rng = _bounds(minimum, maximum, False, False)
    raise ValueError(f"{name} must be an int{' ' + rng if rng else ''}{' or null' if optional else ''}; got {value!r}")


@overload
def check_number(
    name: str,
    value: object,
    *,
    low: float | None = ...,
    high: float | None = ...,
    low_open: bool = ...,
    high_open: bool = ...,
) -> float: ...
@overload
def check_number(
    name: str,
    value: object,
    *,
    low: float | None = ...,
    high: float | None = ...,
    low_open: bool = ...,
    high_open: bool = ...,
    optional: bool,
) -> float | None: ...
def check_number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
    optional: bool = False,
) -> float | None:
    """``value`` as a finite float within the bounds (``low_open``/``high_open``: exclusive).

    Raises:
        ValueError: ``"<name> must be a finite number in (0, 1]; got <value>"``.
    """
    if optional and value is None:
        return None
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value):
        v = float(value)
        above = low is None or (v > low if low_open else v >= low)
        below = high is None or (v < high if high_open else v <= high)
        if above and below:
            return v
    rng = _bounds(low, high, low_open, high_open)
    raise ValueError(
        f"{name} must be a finite number{' ' + rng if rng else ''}{' or null' if optional else ''}; got {value!r}"
    )


def check_choice(name: str, value: T, choices: Collection[T]) -> T:
    """``value`` if it is one of ``choices``.

    Raises:
        ValueError: ``"<name> must be one of [...]; got <value>"``.
    """
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; got {value!r}")
    return value


def check_bool(name: str, value: object) -> bool:
    """``value`` if it is a bool (YAML ``true``/``false``; 0 and 1 are not accepted).

    Raises:
        ValueError: ``"<name> must be true or false; got <value>"``.
    """
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false; got {value!r}")
    return value
