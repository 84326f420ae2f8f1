"""Optuna samplers by name (``search.sampler``). Optuna is imported only when one is built."""

from __future__ import annotations

from typing import Any, Literal

from growray.registry import Registry

__all__ = ["CONSTRAINED_SAMPLERS", "DISCRETE_SAMPLERS", "SAMPLERS", "SINGLE_OBJECTIVE_SAMPLERS", "build_sampler"]

SAMPLERS: Registry[Any] = Registry("sampler")

#: samplers that use trials' constraints (``Trial.set_constraint``) in their search
CONSTRAINED_SAMPLERS = ("gp", "nsga2", "nsga3", "tpe")
#: samplers that optimize a single objective only
SINGLE_OBJECTIVE_SAMPLERS = ("cmaes",)
#: samplers that need every parameter discrete (categorical, int, or float with a step)
DISCRETE_SAMPLERS = ("grid",)


@SAMPLERS.register("tpe")
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


@SAMPLERS.register("random")
def random(seed: int | None = None) -> Any:
    """Uniform random sampling (a baseline every search should beat)."""
    import optuna

    return optuna.samplers.RandomSampler(seed=seed)


@SAMPLERS.register("gp")
def gp(seed: int | None = None, n_startup_trials: int = 10) -> Any:
    """Gaussian-process BO; conditional parameters fall back to random sampling (Optuna rule)."""
    import optuna

    return optuna.samplers.GPSampler(seed=seed, n_startup_trials=n_startup_trials)


@SAMPLERS.register("nsga2")
def nsga2(seed: int | None = None, population_size: int = 50, crossover_prob: float = 0.9) -> Any:
    """NSGA-II genetic algorithm (multi-objective)."""
    import optuna

    return optuna.samplers.NSGAIISampler(seed=seed, population_size=population_size, crossover_prob=crossover_prob)


@SAMPLERS.register("nsga3")
def nsga3(seed: int | None = None, population_size: int = 50) -> Any:
    """NSGA-III (many-objective, reference points)."""
    import optuna

    return optuna.samplers.NSGAIIISampler(seed=seed, population_size=population_size)


@SAMPLERS.register("qmc")
def qmc(seed: int | None = None, qmc_type: Literal["sobol", "halton"] = "sobol") -> Any:
    """Quasi-Monte-Carlo space filling."""
    import optuna

    return optuna.samplers.QMCSampler(seed=seed, qmc_type=qmc_type)


@SAMPLERS.register("grid")
def grid(seed: int | None = None) -> Any:
    """Every combination of a discrete space once (Optuna's BruteForceSampler): categorical,
    int and stepped float parameters only. For repeat protocols: seeds x settings."""
    import warnings

    import optuna

    from growray.tune._grid import TuneGridSampler

    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    return TuneGridSampler(seed=seed)


def _cmaes(seed: int | None = None, n_startup_trials: int = 1) -> Any:
    """CMA-ES (continuous spaces; needs the ``cmaes`` package)."""
    import optuna

    return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=n_startup_trials)


_cmaes.requires = ("cmaes",)  # type: ignore[attr-defined]
SAMPLERS.register("cmaes")(_cmaes)


def build_sampler(spec: dict[str, Any], default_seed: int) -> Any:
    """Build the configured sampler; an unset seed takes the experiment's seed (reproducible sweeps)."""
    spec = dict(spec)
    if "seed" in SAMPLERS.user_parameters(spec["name"]) and spec.get("seed") is None:
        spec["seed"] = default_seed
    return SAMPLERS.build(spec)
