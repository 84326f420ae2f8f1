"""The ``baselines`` section: which arm of the guide's evaluation protocol a trial runs."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictFloat

from growray.config import Section

__all__ = ["ARMS", "LINKED", "TRIAL_ARMS", "BaselinesConfig"]

#: arms a trial of the sweep runs (they need the growth section: its trigger, schedule, model)
TRIAL_ARMS = ("grown", "random_expansion", "small_static")
#: arms trained after a grown trial, in linked runs (their architecture and budget are the grown run's)
LINKED = ("dense_target", "compute_matched")
ARMS = TRIAL_ARMS + LINKED

Arm = Literal["grown", "random_expansion", "small_static", "dense_target", "compute_matched"]
LinkedArm = Literal["dense_target", "compute_matched"]


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
        "dense_target / compute_matched (set by the linked runs themselves, or by hand with a fixed model)",
    )
    linked: list[LinkedArm] = Field(
        default_factory=_both,
        description="arms trained after each grown trial from its final architecture: dense_target (same "
        "epochs) | compute_matched (until the grown run's cumulative cost/train_flops)",
    )
    flop_budget: StrictFloat | None = Field(
        None, gt=0, description="compute_matched: stop once cost/train_flops reaches this (the linked run sets it)"
    )
    grown_run_id: str | None = Field(None, description="the grown run a linked arm belongs to (set by the link)")
