"""Optuna samplers by name (``search.sampler``). Optuna is imported only when one is built.

Capabilities (registry data, read by the config checks): ``constraints`` (the sampler uses
trials' ``Trial.set_constraint`` values), ``multi_objective`` (it handles several
objectives), ``discrete`` (every parameter must be discrete: categorical, int, or a float
with a step), ``requires`` (packages it needs).
"""

from __future__ import annotations

from typing import Any, Literal

from growray.registry import Registry

__all__ = ["SAMPLERS", "build_sampler"]

SAMPLERS: Registry[Any] = Registry("sampler")


@SAMPLERS.register("tpe", constraints=True, multi_objective=True)
def tpe(
    seed: int | None = None,
    n_startup_trials: int = 10,
    multivariate: bool = True,
    group: bool = True,
    constant_liar: bool = True,
) -> Any:
    """Tree-structured Parzen estimator; ``group`` handles conditional parameters jointly."""
    import warnings

    import optuna

    # ``group``/``multivariate`` are marked experimental by Optuna but are what conditional spaces need.
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return optuna.samplers.TPESampler(
        seed=seed,
        n_startup_trials=n_startup_trials,
        multivariate=multivariate,
        group=group,
        constant_liar=constant_liar,
    )


@SAMPLERS.register("random", multi_objective=True)
def random(seed: int | None = None) -> Any:
    """Uniform random sampling (a baseline every search should beat)."""
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("gp", constraints=True, multi_objective=True)
def gp(seed: int | None = None, n_startup_trials: int = 10) -> Any:
    """Gaussian-process BO; conditional parameters fall back to random sampling (Optuna rule)."""
    import optuna

    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup_trials)


@SAMPLERS.register("nsga2", constraints=True, multi_objective=True)
def nsga2(seed: int | None = None, population_size: int = 50, crossover_prob: float = 0.9) -> Any:
    """NSGA-II genetic algorithm (multi-objective)."""
    from .genetic import NSGAIISampler

    return NSGAIISampler(seed=seed, population_size=population_size, crossover_prob=crossover_prob)


@SAMPLERS.register("nsga3", constraints=True, multi_objective=True)
def nsga3(seed: int | None = None, population_size: int = 50) -> Any:
    """NSGA-III (many-objective, reference points)."""
    from .genetic import NSGAIIISampler

    return NSGAIIISampler(seed=seed, population_size=population_size)


@SAMPLERS.register("qmc", multi_objective=True)
def qmc(seed: int | None = None, qmc_type: Literal["sobol", "halton"] = "sobol") -> Any:
    """Quasi-Monte-Carlo space filling."""
    import optuna

    return optuna.samplers.QMCSampler(seed=seed, qmc_type=qmc_type)


@SAMPLERS.register("grid", multi_objective=True, discrete=True)
def grid(seed: int | None = None) -> Any:
    """Every combination of a discrete space once (Optuna's BruteForceSampler): categorical,
    int and stepped float parameters only. For repeat protocols: seeds x settings."""
    import warnings

    import optuna

    from .grid import TuneGridSampler

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return TuneGridSampler(seed=seed)


def _cmaes(seed: int | None = None, n_startup_trials: int = 1) -> Any:
    """CMA-ES (continuous spaces; needs the ``cmaes`` package)."""
    import optuna

    return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=n_startup_trials)


SAMPLERS.register("cmaes", requires=("cmaes",))(_cmaes)


def build_sampler(spec: dict[str, Any], default_seed: int) -> Any:
    """Build the configured sampler; an unset seed takes the experiment's seed (reproducible sweeps)."""
    spec = dict(spec)
    if "seed" in SAMPLERS.user_parameters(spec["name"]) and spec.get("seed") is None:
        spec["seed"] = default_seed
    return SAMPLERS.build(spec)
