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

``static_sparse`` trains the dense target for the same epochs under the ``sparse`` kind with
its ``static`` updater: one random mask (ERK over the Linear/Conv2d weights, drawn from the
seed) fixed for the whole run, effective FLOPs counted. Its sparsity is
``baselines.static_sparsity``, or by default the one at which it spends the grown run's
training FLOPs (:func:`matched_sparsity`). Why that default: the grown network is the final
architecture only at its end, so no sparsity makes the two equal in parameters over training;
equal compute is the one budget both arms can share, and it asks the question the static
sparse baseline is for — spending the grown run's compute on the final architecture at once,
with random sparse connectivity instead of growing units. (A fixed sparsity such as RigL's
0.9 is one more point, and the report does not judge it against the grown run.)
"""

from __future__ import annotations

import math
from typing import Any

import torch

from growray.config import Experiment, validate_dict
from growray.data import Dataset
from growray.train import Hook, Trainer, build_trainer

from .config import BaselinesConfig

__all__ = ["FlopBudgetHook", "linked_experiment", "matched_sparsity", "spec_model_section"]

#: the bounds of the compute-matched sparsity (a grown run that spent more than the dense
#: target, or almost nothing, gets the bound; the report then says the FLOPs do not match)
SPARSITY_BOUNDS = (0.01, 0.99)

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
    sparsity: float | None = None,
) -> Experiment:
    """The experiment of a linked arm: ``exp`` with the model rebuilt from ``spec``, no growth,
    the same seed, data and trainer (``epochs`` replaces trainer.epochs when given); with
    ``sparsity``, the sparse kind's static updater at that sparsity (``static_sparse``)."""
    raw = exp.to_dict()
    raw["model"] = spec_model_section(spec)
    raw["growth"] = None
    if sparsity is not None:
        raw["sparse"] = {"sparsity": float(sparsity), "updater": {"name": "static"}}
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

    with torch.device("cpu"):
        model = _build(spec, dataset)
    n_train = len(dataset.to_tensors(torch.device("cpu")).train[0])
    per_epoch = training_flops_per_sample(model, dataset.input_shape) * n_train
    return max(exp.trainer.epochs, math.ceil(budget / per_epoch) if per_epoch else exp.trainer.epochs)


def _static_masks(model: torch.nn.Module, sparsity: float) -> Any:
    """The static updater's masks of the ``static_sparse`` arm at ``sparsity`` (default sparse
    section otherwise: ERK, no layer kept dense); only their counts matter for the FLOPs."""
    from growray.sparse import DISTRIBUTIONS, UPDATERS, WeightMasks, active_counts

    from ..sparse import SparseConfig, sparse_layers

    cfg = SparseConfig(sparsity=sparsity, updater={"name": "static"})
    shapes = sparse_layers(model, cfg)
    counts = active_counts(shapes, DISTRIBUTIONS.build(cfg.distribution).densities(shapes, sparsity))
    updater, gen = UPDATERS.build(cfg.updater), torch.Generator().manual_seed(0)
    return WeightMasks({k: updater.init_mask(s, counts[k], gen) for k, s in shapes.items()})


def matched_sparsity(exp: Experiment, spec: dict[str, Any], dataset: Dataset, budget: float) -> float:
    """The sparsity at which the final architecture ``spec`` under a static mask spends
    ``budget`` training FLOPs in ``trainer.epochs`` (bisection on the effective training FLOPs
    per sample, which fall as the sparsity rises), within :data:`SPARSITY_BOUNDS`."""
    from growray.cost import training_flops_per_sample

    with torch.device("cpu"):
        model = _build(spec, dataset)
    n_train = len(dataset.to_tensors(torch.device("cpu")).train[0])
    target = budget / (exp.trainer.epochs * n_train)

    def per_sample(sparsity: float) -> float:
        masks = _static_masks(model, sparsity)
        masks.attach(model)
        try:
            return float(training_flops_per_sample(model, dataset.input_shape))
        finally:
            masks.detach()

    lo, hi = SPARSITY_BOUNDS
    if per_sample(lo) <= target:
        return lo
    try:
        if per_sample(hi) >= target:
            return hi
    except ValueError:  # the distribution cannot reach hi on this model: bisect below it
        pass
    for _ in range(20):  # to within 1e-6 of the sparsity
        mid = (lo + hi) / 2
        try:
            above = per_sample(mid) > target
        except ValueError:
            above = False
        lo, hi = (mid, hi) if above else (lo, mid)
    return round((lo + hi) / 2, 6)


def _build(spec: dict[str, Any], dataset: Dataset) -> torch.nn.Module:
    """The model of ``spec`` for ``dataset``'s inputs and classes, from scratch."""
    from growray.models import MODELS

    return MODELS.build(spec_model_section(spec), input_shape=dataset.input_shape, n_classes=dataset.n_classes)


def train_linked(exp: Experiment, dataset: Dataset, recorder: Any, device: torch.device) -> dict[str, float]:
    """Fit one linked arm (``exp`` from :func:`linked_experiment`); returns its final metrics."""
    from growray.tracking import flatten_params

    recorder.log_params(flatten_params(exp.to_dict()))
    recorder.log_dict(exp.to_dict(), "config.yaml")
    trainer = build_trainer(exp, dataset, recorder=recorder, device=device)
    metrics = trainer.fit()
    recorder.flush()
    return metrics
