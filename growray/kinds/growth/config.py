"""The ``growth`` section: a growth strategy = trigger x initializer x optimizer-state policy x caps."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, StrictFloat, StrictInt

from growray.config import PluginDict, Section

__all__ = ["GrowthConfig", "NewbornDiagnosticsConfig"]


class NewbornDiagnosticsConfig(Section):
    """Newborn vs incumbent activation/gradient log-parity (growth/newborn_*_parity)."""

    every_steps: StrictInt = Field(25, ge=0, description="measure every N steps after an event (0: only at birth)")
    horizon_steps: StrictInt = Field(500, ge=0, description="stop measuring a cohort this many steps after its birth")
    tau: StrictFloat = Field(0.05, ge=0, description="a unit counts as active where its output exceeds tau")
    enabled: bool = True


class GrowthConfig(Section):
    """A growth strategy = trigger (when/where/how many) x initializer (how) x caps."""

    trigger: PluginDict
    initializer: PluginDict = Field(default_factory=lambda: {"name": "random"})
    deepen: PluginDict | None = Field(
        None, description="depth operator for the trigger's deepen requests: net2deeper | dropin (null: width only)"
    )
    max_depth: StrictInt | None = Field(None, ge=1, description="no more hidden layers than this")
    max_width: StrictInt | None = Field(None, ge=1, description="no site grows beyond this many units")
    sites: list[str] | None = Field(None, description="sites allowed to grow (default: all)")
    optimizer_state: Literal["zero", "transplant", "reset"] = Field(
        "zero",
        description="new units' optimizer slots: zero | transplant (matched incumbent) | reset (no Adam amplification)",
    )
    buffer_size: StrictInt = Field(
        256, ge=2, description="recent training samples kept for data-driven triggers and initializers"
    )
    diagnostics: NewbornDiagnosticsConfig = Field(default_factory=NewbornDiagnosticsConfig)
    lr_factor_after_growth: StrictFloat | None = Field(
        None,
        gt=0,
        description="multiply the learning rate by this at every growth event, on top of trainer.lr_schedule "
        "(the Net2Net course project decayed it after growth, e.g. 0.1); null: unchanged",
    )
