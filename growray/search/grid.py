"""Exhaustive grid search through Optuna's BruteForceSampler, usable from Ray Tune.

Optuna's sampler calls ``study.stop()`` once every combination was tried; that is only
allowed inside ``study.optimize``. Ray Tune drives the study through ``ask``/``tell``, so
here the exhaustion is noted instead, and further trials repeat random grid points (the
config check warns when ``num_samples`` exceeds the grid).
"""

from __future__ import annotations

from typing import Any

import optuna

__all__ = ["TuneGridSampler"]


class TuneGridSampler(optuna.samplers.BruteForceSampler):
    """BruteForceSampler whose exhaustion does not raise outside ``study.optimize``."""

    exhausted: bool = False

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        try:
            super().after_trial(study, trial, state, values)
        except RuntimeError as exc:
            if "Study.stop" not in str(exc):
                raise
            self.exhausted = True
