"""OptunaSearch, plus what growray records on every Optuna trial.

Ray's ``OptunaSearch`` tells Optuna only the objective values. growray also stores, as
Optuna user attributes set just before ``tell``:

* ``growray.trial_id`` and ``growray.mlflow_run_id``: the study alone then leads back to
  each trial's MLflow run (``growray pareto`` uses this);
* the objective at every report as the trial's *intermediate values* (step = Tune's
  ``training_iteration``, one per epoch), so optuna-dashboard draws learning curves. Ray
  reports them for one objective; Optuna's ``Trial.report`` refuses a multi-objective study,
  so there the first objective's values are written through the study's storage
  (``set_trial_intermediate_value``, what ``Trial.report`` calls), user attribute
  ``growray.intermediate_metric`` naming the metric. Values not there yet (NaN placeholders,
  a NAS trial's ``nas/retrain_val_acc`` before it is retrained) are skipped;
* one Optuna constraint per ``search.constraints`` entry (``Trial.set_constraint``, Optuna 5's
  replacement for ``constraints_func``): <= 0 when it holds. Constraint-aware samplers (TPE,
  NSGA-II/III, GP) and ``study.best_trials`` read them; a trial that reported no value for a
  constrained metric counts as violating it.

This is the only module that touches OptunaSearch internals (``_ot_trials``, ``_ot_study``)
and Optuna's (``Trial._trial_id``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ray.tune.search.optuna import OptunaSearch

if TYPE_CHECKING:
    from growray.config import Constraint

__all__ = ["GrowrayOptunaSearch", "constraint_key"]


def constraint_key(i: int, constraint: Constraint) -> str:
    """The Optuna constraint name of ``search.constraints[i]``."""
    return f"{i}:{constraint.metric}{constraint.op}{constraint.value:g}"


class GrowrayOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that links Optuna trials to Ray trials and MLflow runs, and records
    constraint values (``constraints``: ``growray.config.Constraint`` objects)."""

    def __init__(self, *args: Any, constraints: list[Constraint] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._constraints = list(constraints or [])

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        # Intermediate objective values that are not there yet (NaN placeholders, e.g.
        # nas/retrain_val_acc before the retrain stage) are not reported to Optuna.
        metric = self.metric if isinstance(self.metric, str) else (self.metric or [None])[0]
        value = result.get(metric) if metric else None
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
            return
        if isinstance(self.metric, str):
            super().on_trial_result(trial_id, result)
            return
        # several objectives: the first one's curve, through the storage (Trial.report refuses)
        ot_trial = self._ot_trials.get(trial_id)
        step = result.get("training_iteration")
        if ot_trial is None or self._ot_study is None or trial_id in self._completed_trials or step is None:
            return
        if not ot_trial.user_attrs.get("growray.intermediate_metric"):
            ot_trial.set_user_attr("growray.intermediate_metric", metric)
        self._ot_study._storage.set_trial_intermediate_value(ot_trial._trial_id, int(step), float(value))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        ot_trial = self._ot_trials.get(trial_id)
        if ot_trial is not None and trial_id not in self._completed_trials:
            ot_trial.set_user_attr("growray.trial_id", trial_id)
            if result and result.get("mlflow_run_id"):
                ot_trial.set_user_attr("growray.mlflow_run_id", result["mlflow_run_id"])
            for i, c in enumerate(self._constraints):
                v = (result or {}).get(c.metric)
                # no value (or a non-finite one) counts as violating the constraint
                violation = c.violation(float(v)) if isinstance(v, (int, float)) and math.isfinite(v) else 1.0
                ot_trial.set_constraint(constraint_key(i, c), violation)
            if result and not self._finite_objectives(result) and self._ot_study is not None:
                # A diverged trial reports NaN objectives. Optuna 5 refuses NaN in ``tell`` (Ray
                # only logs that, leaving the trial RUNNING): record it as failed instead.
                from optuna.trial import TrialState

                ot_trial.set_user_attr("growray.failure", "non-finite objective value")
                self._ot_study.tell(ot_trial, state=TrialState.FAIL)
                self._completed_trials.add(trial_id)
                return
        super().on_trial_complete(trial_id, result, error)

    def _finite_objectives(self, result: dict[str, Any]) -> bool:
        metrics = self.metric if isinstance(self.metric, list) else [self.metric]
        values = [result.get(m) for m in metrics]
        return all(v is None or (isinstance(v, (int, float)) and math.isfinite(v)) for v in values)
