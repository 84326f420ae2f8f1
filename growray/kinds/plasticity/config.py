"""The ``plasticity`` section: the Grow-vs-Prune protocol of the structural-plasticity study."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictFloat, StrictInt, field_validator, model_validator

from growray.config import Section

__all__ = ["PlasticityConfig"]


class PlasticityConfig(Section):
    """Grow or prune the units of a fixed-shape network over cycles (ALGORITHMS.md §7, §12).

    Training is split into ``cycles`` equal cycles (``trainer.epochs`` must be a multiple
    of ``cycles``); units are edited at each boundary between two cycles, so both arms
    reach the same final budget before the last cycle and train it for one whole cycle.
    """

    arm: Literal["grow", "prune"] = Field(
        "prune",
        description="prune: start dense, remove the lowest-scoring units and IMP-rewind; "
        "grow: start with initial_fraction of the units and activate dormant ones",
    )
    compactness: StrictFloat = Field(
        0.5,
        gt=0,
        le=1,
        description="final budget: the fraction of units (budget: units) or weights (budget: weights) kept",
    )
    budget: Literal["units", "weights"] = Field(
        "units",
        description="units: compactness of every site's units; weights: of the sites' weights, "
        "converted to per-site unit targets (the same unit fraction everywhere)",
    )
    cycles: StrictInt = Field(5, ge=1, description="number of cycles; edits happen at the cycles - 1 boundaries")
    initial_fraction: StrictFloat = Field(
        0.1, gt=0, le=1, description="grow: fraction of each site's units active at the start"
    )
    tau: StrictFloat = Field(
        0.05, ge=0, description="a unit is active on an input where its post-activation exceeds tau"
    )
    selection: Literal["activity", "gradmax"] = Field(
        "activity",
        description="grow: which dormant units are born: activity (fraction above tau) | "
        "gradmax (norm of the fan-out gradient they would receive)",
    )
    insertion: Literal["keep", "net2wider"] = Field(
        "keep",
        description="grow: newborns keep their dormant weights | net2wider (copy an incumbent, split its fan-out)",
    )
    net2wider_noise: StrictFloat = Field(
        0.01, ge=0, description="net2wider: relative noise on the copied fan-in rows (0: copies never separate)"
    )
    optimizer_state: Literal["zero", "transplant"] = Field(
        "zero", description="grow: newborn optimizer slots: zero | transplant (moments of a matched incumbent)"
    )
    rewind_step: StrictInt = Field(
        0,
        ge=0,
        description="prune: optimizer step whose weights survivors are rewound to (0: initialisation); "
        "must not be after the first edit",
    )
    score: str = Field(
        "magnitude", description="prune: unit scorer (growray.sparse.UNIT_SCORERS): magnitude | activity"
    )
    sites: list[str] | None = Field(None, description="sites to edit (default: all sites of the model)")
    winning_ticket: bool = Field(
        True,
        description="after training, freeze the final mask, re-initialise and retrain from scratch (plasticity/wt_acc)",
    )
    wt_epochs: StrictInt | None = Field(
        None, ge=1, description="winning-ticket retraining epochs (default: trainer.epochs)"
    )
    wt_init: Literal["fresh", "original", "rewind"] = Field(
        "fresh",
        description="the winning ticket's weights: fresh (a new draw, seeded from the experiment seed) | "
        "original (the run's own initial weights, as the lottery-ticket hypothesis resets them) | "
        "rewind (prune: the IMP rewind weights at plasticity.rewind_step)",
    )
    wt_seed: StrictInt | None = Field(
        None,
        description="seed of the winning ticket's data order (null: the experiment seed); its fresh draw uses "
        "this seed + 1000003, so it differs from the run's own initialisation",
    )

    @field_validator("score")
    @classmethod
    def _known_scorer(cls, v: str) -> str:
        from growray.registry import UnknownNameError
        from growray.sparse import UNIT_SCORERS

        if v not in UNIT_SCORERS:  # a ValueError, so pydantic reports it with its path
            raise ValueError(str(UnknownNameError("unit scorer", v, UNIT_SCORERS.names())))
        return v

    @model_validator(mode="after")
    def _rewind_needs_prune(self) -> PlasticityConfig:
        if self.winning_ticket and self.wt_init == "rewind" and self.arm != "prune":
            raise ValueError(
                "wt_init=rewind uses the prune arm's IMP rewind weights; the grow arm has none: "
                "use wt_init: original or fresh"
            )
        return self

    @model_validator(mode="after")
    def _grow_below_budget(self) -> PlasticityConfig:
        if self.arm == "grow" and self.budget == "units" and self.initial_fraction > self.compactness:
            raise ValueError(
                f"grow starts with initial_fraction={self.initial_fraction} of the units but must end at "
                f"compactness={self.compactness}: set initial_fraction <= compactness"
            )
        return self
