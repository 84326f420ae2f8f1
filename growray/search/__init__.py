"""The search side of a sweep, without Ray: the experiment's space as an Optuna
define-by-run function, samplers by name, the grid sampler, PBT's initial population and
the Pareto math. ``tune/`` hands these to Ray Tune; ``growray pareto`` and the tables use
them without starting Ray."""

from .pareto import crowding_distance, dominates, non_dominated_sort, pareto_front, rank_order, to_minimization
from .samplers import SAMPLERS, build_sampler
from .space import SpaceFunction, active

__all__ = [
    "SAMPLERS",
    "SpaceFunction",
    "active",
    "build_sampler",
    "crowding_distance",
    "dominates",
    "non_dominated_sort",
    "pareto_front",
    "rank_order",
    "to_minimization",
]
