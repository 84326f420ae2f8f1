"""A whole search run in one process against a table: ask, look up, tell, until a simulated budget is spent.

This is how tabular NAS/HPO benchmarks are used to compare search strategies (NAS-Bench-201's
own baselines, Syne Tune's simulated backend, NASLib): each proposed configuration costs its
table training time on a simulated clock, and the search stops once the clock passes the
budget. As in NAS-Bench-201's search scripts, the configuration whose cost crosses the budget
is still counted (the loop runs while the clock is below the budget). The sampler is any of
:data:`growray.search.SAMPLERS` (Optuna's), driven through ``ask``/``tell`` as Ray Tune's
``OptunaSearch`` drives it in a sweep, with the experiment's own space function.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from .pareto import to_minimization
from .space import SpaceFunction

__all__ = ["hypervolume_2d", "simulated_search"]


def simulated_search(
    space: SpaceFunction,
    evaluate: Callable[[dict[str, Any]], Mapping[str, float]],
    sampler: Any,
    metrics: Sequence[str],
    modes: Sequence[str],
    budget: float,
    cost_metric: str,
    max_evaluations: int = 10_000,
) -> list[dict[str, float]]:
    """Run one search on a table; returns every evaluation's metrics in order, each with
    ``clock`` (the simulated seconds spent so far, its own cost included).

    Args:
        space: the search space (``SpaceFunction``); ``evaluate`` gets the sampled values by path.
        evaluate: looks a configuration up; returns the metrics, ``cost_metric`` among them.
        sampler: an Optuna sampler (a fresh one: it keeps the study's state).
        metrics, modes: the objective(s) the sampler is told, and their directions.
        budget: simulated seconds; the search runs while fewer have been spent.
        cost_metric: the metric that holds one evaluation's cost in simulated seconds.
        max_evaluations: a cap on evaluations whatever the budget.
    """
    import optuna

    if budget <= 0:
        raise ValueError(f"budget must be a positive number of simulated seconds; got {budget!r}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    directions = [
        optuna.study.StudyDirection.MAXIMIZE if m == "max" else optuna.study.StudyDirection.MINIMIZE for m in modes
    ]
    study = optuna.create_study(sampler=sampler, directions=directions)
    history: list[dict[str, float]] = []
    clock = 0.0
    while clock < budget and len(history) < max_evaluations:
        trial = study.ask()
        space(trial)
        values = dict(evaluate(dict(trial.params)))
        clock += float(values[cost_metric])
        history.append({**values, "clock": clock})
        study.tell(trial, [values[m] for m in metrics] if len(metrics) > 1 else values[metrics[0]])
    return history


def hypervolume_2d(values: Any, modes: Sequence[str], reference: Sequence[float]) -> float:
    """The area two objectives' points dominate up to ``reference`` (a point worse than every
    point of interest in both objectives); points not better than it in both count nothing."""
    points = to_minimization(values, modes)
    ref = to_minimization([list(reference)], modes)[0]
    if points.shape[1] != 2:
        raise ValueError(f"hypervolume_2d takes two objectives; got {points.shape[1]}")
    points = points[np.all(points < ref, axis=1)]
    # sweep in increasing first objective: a point adds the strip below the lowest second
    # objective seen so far (the dominated ones add nothing); O(n log n), a whole table at once
    points = points[np.lexsort((points[:, 1], points[:, 0]))]
    area, y_prev = 0.0, float(ref[1])
    for x, y in points:
        if y < y_prev:
            area += (float(ref[0]) - float(x)) * (y_prev - float(y))
            y_prev = float(y)
    return area
