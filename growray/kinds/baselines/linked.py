"""The linked baselines of a grown trial: its final architecture trained from scratch.

Why linked runs and not trials of their own: ``dense_target`` needs the grown network's
*final* architecture and ``compute_matched`` the grown run's *measured* cumulative training
FLOPs; both are known only once the grown trial has ended. A pre-computed final spec would be
right for a fixed schedule only (a loss-plateau, NORTH or gradient trigger decides the width
while training), and a pre-computed FLOP budget would disagree with the ``cost/train_flops``
the grown run measures (growth overhead included). So every ``grown`` trial trains them right
after its own fit (``Kind.after_fit``), as the NAS kind retrains a searched cell: same data
split (the trial's dataset object), same seed (initial weights and data order), same
``trainer`` section (optimizer, learning rate and its schedule), each in its own MLflow run
nested under the sweep and linked both ways (``growray.grown_run_id`` on the baseline,
``growray.<arm>_run_id`` on the grown run).

``compute_matched`` trains the dense target under the same schedule and stops after the step
at which its ``cost/train_flops`` reaches the grown run's (so it spends the budget to within
one step's FLOPs, above). When the budget is below the dense target's ``trainer.epochs``
(the usual case: the grown network was smaller most of the time), the schedule is cut, not
compressed; when above (costly growth overhead), ``trainer.epochs`` is raised to the epochs
the budget pays for, and a cosine schedule then spans those.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from growray.config import Experiment, validate_dict
from growray.data import Dataset
from growray.train import Hook, Trainer, build_trainer

from .config import BaselinesConfig

__all__ = ["FlopBudgetHook", "linked_experiment", "spec_model_section"]

_CONTEXT_ARGS = ("input_shape", "n_classes")


def spec_model_section(spec: dict[str, Any]) -> dict[str, Any]:
    """The ``model`` section that rebuilds an ArchSpec dict (``{"kind": ..., **params}``) from scratch."""
    return {"name": spec["kind"], **{k: v for k, v in spec.items() if k != "kind" and k not in _CONTEXT_ARGS}}


class FlopBudgetHook(Hook):
    """Ends training after the step at which ``cost/train_flops`` reaches ``budget``."""

    name = "flop_budget"

    def __init__(self, budget: float):
        self.budget = float(budget)

    def on_step_end(self, trainer: Trainer, loss: float) -> None:
        if trainer.costs.compute.total_flops >= self.budget:
            trainer.request_stop(f"compute_matched: spent the grown run's {self.budget:.4g} training FLOPs", now=True)


def linked_experiment(
    exp: Experiment,
    arm: str,
    spec: dict[str, Any],
    *,
    grown_run_id: str | None = None,
    flop_budget: float | None = None,
    epochs: int | None = None,
) -> Experiment:
    """The experiment of a linked arm: ``exp`` with the model rebuilt from ``spec``, no growth,
    the same seed, data and trainer (``epochs`` replaces trainer.epochs when given)."""
    raw = exp.to_dict()
    raw["model"] = spec_model_section(spec)
    raw["growth"] = None
    raw["baselines"] = BaselinesConfig(
        arm=arm,
        linked=[],
        flop_budget=flop_budget,
        grown_run_id=grown_run_id,
    ).model_dump(mode="json")
    if epochs is not None:
        raw["trainer"]["epochs"] = int(epochs)
    raw["search"] = {}  # the sweep settings do not apply to one linked run
    return validate_dict(raw, check_space=False)


def budget_epochs(exp: Experiment, spec: dict[str, Any], dataset: Dataset, budget: float) -> int:
    """``trainer.epochs``, or more when the dense target's epochs cost less than ``budget``."""
    from growray.cost import training_flops_per_sample
    from growray.models import MODELS

    with torch.device("cpu"):
        model = MODELS.build(spec_model_section(spec), input_shape=dataset.input_shape, n_classes=dataset.n_classes)
    n_train = len(dataset.to_tensors(torch.device("cpu")).train[0])
    per_epoch = training_flops_per_sample(model, dataset.input_shape) * n_train
    return max(exp.trainer.epochs, math.ceil(budget / per_epoch) if per_epoch else exp.trainer.epochs)


def train_linked(exp: Experiment, dataset: Dataset, recorder: Any, device: torch.device) -> dict[str, float]:
    """Fit one linked arm (``exp`` from :func:`linked_experiment`); returns its final metrics."""
    from growray.tracking import flatten_params

    recorder.log_params(flatten_params(exp.to_dict()))
    recorder.log_dict(exp.to_dict(), "config.yaml")
    trainer = build_trainer(exp, dataset, recorder=recorder, device=device)
    metrics = trainer.fit()
    recorder.flush()
    return metrics
