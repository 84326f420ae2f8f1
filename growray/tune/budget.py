"""A sweep budget on a reported cost: a Ray Tune stopper for simulated (table) time.

``search.time_budget_s`` is wall-clock time for trials that train. For trials whose cost is
simulated (a benchmark table's training times, ``Kind.budget_metric``), wall-clock time means
nothing: :class:`CostBudgetStopper` adds up each trial's last reported cost and stops the
sweep once the sum reaches the budget. That is the sequential simulated clock of
NAS-Bench-201's search baselines: every trial's cost counts, whichever ran in parallel.
Trials running when the budget is reached are stopped at their next report; a trial whose
report crossed the budget still counts (as NAS-Bench-201's scripts count the architecture
whose cost crossed it).
"""

from __future__ import annotations

from typing import Any

from ray.tune import Stopper

__all__ = ["CostBudgetStopper"]


class CostBudgetStopper(Stopper):
    """Stop the sweep once the trials' reported ``metric`` (each trial's cumulative cost, its
    last value counted) sums to ``budget``.

    Args:
        metric: the cost each trial reports, cumulative within the trial (``cost/train_seconds``).
        budget: the sweep's budget in that metric's unit (simulated seconds).
    """

    def __init__(self, metric: str, budget: float):
        if not isinstance(metric, str) or not metric:
            raise ValueError(f"metric must name a reported cost such as 'cost/train_seconds'; got {metric!r}")
        if not budget > 0:
            raise ValueError(f"budget must be positive; got {budget!r}")
        self.metric = metric
        self.budget = float(budget)
        self._cost: dict[str, float] = {}

    @property
    def spent(self) -> float:
        """The cost reported so far, summed over trials."""
        return sum(self._cost.values())

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        value = result.get(self.metric)
        if isinstance(value, (int, float)) and value == value:  # NaN: a diverged trial reports no cost
            self._cost[trial_id] = float(value)
        return self.spent >= self.budget

    def stop_all(self) -> bool:
        return self.spent >= self.budget
