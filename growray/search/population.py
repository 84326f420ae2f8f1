"""PBT's initial population, drawn from the experiment's (conditional) search space."""

from __future__ import annotations

from typing import Any

from .space import SpaceFunction

__all__ = ["sample_population"]


def sample_population(exp: Any) -> list[dict[str, Any]]:
    """PBT's initial population: ``num_samples`` configs from the (conditional) search space,
    drawn by Optuna's seeded random sampler (Ray refuses search algorithms with PBT)."""
    import optuna

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=exp.seed))
    space = SpaceFunction.from_experiment(exp)
    population = []
    for _ in range(exp.search.num_samples):
        trial = study.ask()
        space(trial)
        population.append(dict(trial.params))
        study.tell(trial, 0.0)
    return population
