"""The ``baselines`` section: which arm of the guide's evaluation protocol a trial runs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictFloat

from growray.config import Section

__all__ = ["ARMS", "LINKED", "TRIAL_ARMS", "BaselinesConfig"]

#: arms a trial of the sweep runs (they need the growth section: its trigger, schedule, model)
TRIAL_ARMS = ("grown", "random_expansion", "small_static")
#: arms trained after a grown trial, in linked runs (their architecture and budget are the grown run's)
LINKED = ("dense_target", "compute_matched", "static_sparse")
ARMS = TRIAL_ARMS + LINKED

Arm = Literal["grown", "random_expansion", "small_static", "dense_target", "compute_matched", "static_sparse"]
LinkedArm = Literal["dense_target", "compute_matched", "static_sparse"]


def _both() -> list[LinkedArm]:
    return ["dense_target", "compute_matched"]


class BaselinesConfig(Section):
    """The guide's baselines, attached to a growth experiment (``growray.kinds.baselines``).

    A sweep grids ``baselines.arm`` over the trial arms and ``seed`` over the seeds; every
    ``grown`` trial then trains the ``linked`` arms in runs linked to it, with its final
    architecture and its training FLOPs. All arms share the data split, the seed, the
    optimizer and the learning-rate schedule of the trial.
    """

    arm: Arm = Field(
        "grown",
        description="grown (the growth section as written) | random_expansion (same trigger and schedule, "
        "newborns with random fan-in and fan-out) | small_static (the initial model, never grown) | "
        "dense_target / compute_matched / static_sparse (set by the linked runs themselves, or by hand with a "
        "fixed model; static_sparse with a sparse section whose updater is static)",
    )
    linked: list[LinkedArm] = Field(
        default_factory=_both,
        description="arms trained after each grown trial from its final architecture: dense_target (same "
        "epochs) | compute_matched (until the grown run's cumulative cost/train_flops) | static_sparse (same "
        "epochs under a fixed random mask at baselines.static_sparsity; opt-in)",
    )
    flop_budget: StrictFloat | None = Field(
        None, gt=0, description="compute_matched: stop once cost/train_flops reaches this (the linked run sets it)"
    )
    static_sparsity: StrictFloat | None = Field(
        None,
        gt=0,
        lt=1,
        description="static_sparse: the fixed mask's global sparsity over the Linear/Conv2d weights (ERK "
        "distribution); null (default): the sparsity at which its training FLOPs over the same epochs equal "
        "the grown run's cost/train_flops, so the growth report can compare the two at equal compute",
    )
    grown_run_id: str | None = Field(None, description="the grown run a linked arm belongs to (set by the link)")
