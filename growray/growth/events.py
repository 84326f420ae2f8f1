"""GrowthEvent: one architecture change, as JSON-able data."""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from typing import Any

__all__ = ["GrowthEvent"]


@dataclass
class GrowthEvent:
    """One architecture change. ``preservation_error`` is max |logits_after - logits_before|
    on the probe batch with the model in eval mode; params/FLOPs come from ``growray.cost``.

    ``kind="widen"``: ``n_added`` units appended at ``site`` (``width_before`` ->
    ``width_after``). ``kind="deepen"``: a block inserted right after the site ``after``;
    ``site`` is the new block's (new) site name, ``width_before`` 0 and ``n_added`` =
    ``width_after`` its width, so a width timeline starts the new site at the event;
    ``initializer`` names the deepener.
    """

    step: int
    epoch: int
    site: str
    kind: str
    n_added: int
    width_before: int
    width_after: int
    trigger: str
    trigger_score: float | None
    reason: str
    initializer: str
    preserves_function: bool
    params_before: int
    params_after: int
    flops_before: int
    flops_after: int
    preservation_error: float
    newborn_act_parity: float | None = None
    """log(newborn / incumbent) activity right after the edit ("Post"); see growth.diagnostics."""
    newborn_grad_parity: float | None = None
    """log(newborn / incumbent) mean |dL/dz| right after the edit."""
    after: str | None = None
    """Deepen events: the site after which the block was inserted (None for widen)."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GrowthEvent:
        names = {f.name for f in fields(cls)}
        required = {f.name for f in fields(cls) if f.default is MISSING}
        unknown, missing = sorted(set(d) - names), sorted(required - set(d))
        if unknown or missing:
            raise ValueError(f"GrowthEvent dict: unknown keys {unknown}, missing keys {missing}")
        return cls(**d)
