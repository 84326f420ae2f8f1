"""Pareto math for multi-objective sweeps: dominance, non-dominated sorting, crowding distance.

Pure (numpy and the standard library only): used by the Pareto-aware trial scheduler
(:mod:`growray.tune.schedulers`), by the post-sweep front computation and by ``growray pareto``.

Conventions shared by every function:

* ``values`` is an ``(n, m)`` array-like: one row per point (trial), one column per objective.
* ``modes`` gives each column's direction, ``"min"`` or ``"max"``; internally "max" columns are
  negated so that everything is minimised.
* Rows holding a NaN or an infinite value are *invalid* (a diverged or unreported trial): they
  take part in no dominance comparison and all go to one extra **last** front, after every
  valid front, with crowding distance 0.
* Identical valid rows never dominate each other, so exact duplicates land in the same front.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "MODES",
    "crowding_distance",
    "dominates",
    "non_dominated_sort",
    "pareto_front",
    "rank_order",
    "to_minimization",
]

MODES = ("min", "max")


def _check_modes(modes: Any) -> list[str]:
    if isinstance(modes, str) or not isinstance(modes, Sequence):
        raise ValueError(
            f"modes must be a list with one 'min' or 'max' per objective, e.g. ['min', 'max']; got {modes!r}"
        )
    if len(modes) == 0:
        raise ValueError("modes is empty: give one 'min' or 'max' per objective (at least one objective)")
    for i, mode in enumerate(modes):
        if mode not in MODES:
            raise ValueError(f"modes[{i}] must be 'min' or 'max'; got {mode!r}")
    return list(modes)


def to_minimization(values: Any, modes: Sequence[str]) -> np.ndarray:
    """The ``(n, m)`` float array of ``values`` with every "max" column negated.

    Raises:
        ValueError: if ``modes`` holds something other than "min"/"max", if ``values`` is not
            numeric and two-dimensional, or if its number of columns differs from ``len(modes)``.
    """
    modes = _check_modes(modes)
    try:
        arr = np.array(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"values must be an (n, m) array of numbers; got {values!r} ({exc})") from None
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, len(modes))
    if arr.ndim != 2:
        raise ValueError(
            f"values must be two-dimensional, one row per point and one column per objective; got shape {arr.shape}"
        )
    if arr.shape[1] != len(modes):
        raise ValueError(
            f"values has {arr.shape[1]} objective column(s) but modes has {len(modes)} entries ({modes}); "
            "give one mode per column"
        )
    sign = np.array([-1.0 if m == "max" else 1.0 for m in modes])
    return arr * sign


def dominates(a: Any, b: Any) -> bool:
    """True when ``a`` Pareto-dominates ``b`` under minimisation: ``a <= b`` everywhere and
    ``a < b`` somewhere. Any NaN makes the answer False.

    Raises:
        ValueError: if ``a`` and ``b`` are not 1-D vectors of the same length.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"dominates compares two 1-D vectors of equal length; got shapes {a.shape} and {b.shape}")
    return bool(np.all(a <= b) and np.any(a < b))


def _dominance_matrix(x: np.ndarray) -> np.ndarray:
    """``D[i, j]`` is True when row i dominates row j (rows assumed finite)."""
    le = np.all(x[:, None, :] <= x[None, :, :], axis=2)
    lt = np.any(x[:, None, :] < x[None, :, :], axis=2)
    return le & lt


def non_dominated_sort(values: Any, modes: Sequence[str]) -> list[list[int]]:
    """Fronts of row indices (each sorted ascending); front 0 is the Pareto front.

    Every row of front ``k > 0`` is dominated by some row of front ``k - 1``, and no row
    dominates another in the same front (so duplicates share a front). Rows with a NaN or
    infinite value form one extra last front. No input rows gives ``[]``.
    """
    x = to_minimization(values, modes)
    valid = np.all(np.isfinite(x), axis=1)
    idx = np.flatnonzero(valid)
    fronts: list[list[int]] = []
    if idx.size:
        dom = _dominance_matrix(x[idx])
        n_dominators = dom.sum(axis=0)
        current = np.flatnonzero(n_dominators == 0)
        while current.size:
            fronts.append([int(i) for i in idx[current]])
            n_dominators = n_dominators - dom[current].sum(axis=0)
            n_dominators[current] = -1  # assigned
            current = np.flatnonzero(n_dominators == 0)
    invalid = np.flatnonzero(~valid)
    if invalid.size:
        fronts.append([int(i) for i in invalid])
    return fronts


def crowding_distance(values: Any, modes: Sequence[str], front: Sequence[int]) -> np.ndarray:
    """NSGA-II crowding distance of the rows ``front`` (returned in the order given).

    For each objective, the front is sorted (stably) by its value; the two extremes get
    ``inf`` and each interior point adds the gap between its neighbours divided by the
    objective's range over the front. An objective whose range is zero contributes 0 to every
    point (and marks no extremes). Fronts of one or two valid points are all extremes (``inf``).
    Invalid rows (NaN or infinite) get 0 and are ignored when computing the others.

    Raises:
        ValueError: for bad ``values``/``modes`` or an index in ``front`` outside ``0..n-1``.
    """
    x = to_minimization(values, modes)
    rows = np.asarray(list(front), dtype=int).reshape(-1)
    if rows.size and (rows.min() < 0 or rows.max() >= len(x)):
        bad = [int(r) for r in rows if r < 0 or r >= len(x)]
        raise ValueError(f"front holds row indices {bad} outside 0..{len(x) - 1}")
    dist = np.zeros(rows.size)
    pts = x[rows]
    valid = np.flatnonzero(np.all(np.isfinite(pts), axis=1))
    if valid.size <= 2:
        dist[valid] = np.inf
        return dist
    sub = pts[valid]
    acc = np.zeros(valid.size)
    for j in range(sub.shape[1]):
        order = np.argsort(sub[:, j], kind="stable")
        col = sub[order, j]
        span = col[-1] - col[0]
        if span <= 0:
            continue
        acc[order[1:-1]] += (col[2:] - col[:-2]) / span
        acc[order[0]] = acc[order[-1]] = np.inf
    dist[valid] = acc
    return dist


def pareto_front(values: Any, modes: Sequence[str]) -> list[int]:
    """Indices (ascending) of the non-dominated valid rows; ``[]`` when there are none."""
    x = to_minimization(values, modes)
    if not np.all(np.isfinite(x), axis=1).any():
        return []
    return non_dominated_sort(x, ["min"] * x.shape[1])[0]


def rank_order(values: Any, modes: Sequence[str]) -> list[int]:
    """All row indices best-first: by front, then by crowding distance descending within a
    front, ties broken by the smaller index (earlier row first)."""
    x = to_minimization(values, modes)
    minimize = ["min"] * x.shape[1]
    out: list[int] = []
    for front in non_dominated_sort(x, minimize):
        cd = crowding_distance(x, minimize, front)
        ids = np.asarray(front)
        out.extend(int(i) for i in ids[np.lexsort((ids, -cd))])
    return out
