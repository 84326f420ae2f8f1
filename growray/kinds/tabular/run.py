"""What a tabular trial reports: one table lookup, or one whole simulated search on the table."""

from __future__ import annotations

import functools
from typing import Any

from .config import SimulateConfig, TabularConfig
from .tables import get_table

__all__ = ["lookup_result", "objectives_of", "simulate_result", "table_front", "table_optimum"]

COST = "cost/train_seconds"


def objectives_of(cfg: TabularConfig, sim: SimulateConfig) -> tuple[list[str], list[str]]:
    """The simulated search's objective metrics and modes (the table's main one by default)."""
    if sim.objectives:
        return [o.metric for o in sim.objectives], [o.mode for o in sim.objectives]
    table = get_table(cfg.benchmark)
    return [table.default_metric], [table.default_mode]


def lookup_result(cfg: TabularConfig, config: dict[str, Any] | None = None) -> dict[str, float]:
    """The table's entry for ``cfg.config`` (or ``config``) as one trial result."""
    table = get_table(cfg.benchmark)
    out = table.lookup(cfg.dataset, cfg.config if config is None else config, cfg.seed)
    out[COST] *= cfg.cost_scale
    out["epoch"] = 1.0
    return out


@functools.cache
def table_optimum(benchmark: str, dataset: str, metric: str, mode: str) -> float:
    """The best mean value of ``metric`` over the whole table."""
    values = [m[metric] for _, m in get_table(benchmark).entries(dataset)]
    return max(values) if mode == "max" else min(values)


@functools.cache
def table_front(
    benchmark: str, dataset: str, metrics: tuple[str, ...], modes: tuple[str, ...]
) -> tuple[tuple[float, ...], float]:
    """The whole table's reference point (the worst value of each objective) and the
    hypervolume its Pareto front dominates up to it."""
    from growray.search.simulate import hypervolume_2d

    values = [[m[k] for k in metrics] for _, m in get_table(benchmark).entries(dataset)]
    reference = tuple(
        (min(v[i] for v in values) if mode == "max" else max(v[i] for v in values)) for i, mode in enumerate(modes)
    )
    return reference, hypervolume_2d(values, modes, reference)


def simulate_result(cfg: TabularConfig, sim: SimulateConfig) -> dict[str, float]:
    """One whole search on the table under the simulated budget, as one trial result: the
    best configuration's metrics, the regret to the table's optimum, the evaluations, the
    simulated seconds spent (``cost/train_seconds``) and, for two objectives, the
    hypervolume as a fraction of the whole table's front."""
    from growray.search import SpaceFunction, build_sampler
    from growray.search.simulate import hypervolume_2d, simulated_search

    table = get_table(cfg.benchmark)
    metrics, modes = objectives_of(cfg, sim)
    prefix = "tabular.config."
    space = SpaceFunction(table.search_space(prefix.rstrip(".")), {})

    def evaluate(params: dict[str, Any]) -> dict[str, float]:
        return lookup_result(cfg, {k.removeprefix(prefix): v for k, v in params.items()})

    history = simulated_search(
        space,
        evaluate,
        build_sampler(sim.sampler, sim.seed),
        metrics,
        modes,
        budget=sim.budget_s,
        cost_metric=COST,
        max_evaluations=sim.max_evaluations,
    )
    first, mode = metrics[0], modes[0]
    pick = max if mode == "max" else min
    best = pick(history, key=lambda h: h[first])
    optimum = table_optimum(cfg.benchmark, cfg.dataset, first, mode)
    out = {k: v for k, v in best.items() if k not in (COST, "clock")}
    out.update(
        {
            "tabular/best": best[first],
            "tabular/regret": abs(optimum - best[first]),
            "tabular/evaluations": float(len(history)),
            COST: history[-1]["clock"],
            "epoch": 1.0,
        }
    )
    if len(metrics) == 2:
        reference, true_hv = table_front(cfg.benchmark, cfg.dataset, tuple(metrics), tuple(modes))
        found = hypervolume_2d([[h[m] for m in metrics] for h in history], modes, reference)
        out["tabular/hypervolume_fraction"] = found / true_hv if true_hv > 0 else 0.0
    return out
