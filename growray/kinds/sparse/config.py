"""The ``sparse`` section: dynamic sparse training (static sparse, SET, RigL, structured RigL)."""

from __future__ import annotations

from pydantic import Field, StrictFloat, StrictInt

from growray.config import PluginDict, Section

__all__ = ["SparseConfig"]


class SparseConfig(Section):
    """Per-weight masks on every Linear/Conv2d layer, updated on the RigL schedule
    (ALGORITHMS.md §10): every ``delta_t`` steps until ``t_end`` of training, drop the
    fraction (α/2)(1 + cos(π t / T_end)) of each layer's active weights and regrow as many.
    """

    dense: bool = Field(
        False,
        description="the dense baseline arm: no mask at all (sparsity, distribution and updater are not used); "
        "one sweep then holds the dense run beside the sparse arms",
    )
    sparsity: StrictFloat = Field(
        0.9, gt=0, lt=1, description="global share of zero weights over the sparse layers, in (0, 1)"
    )
    distribution: PluginDict = Field(
        default_factory=lambda: {"name": "erk"},
        description="how the sparsity is shared among layers: uniform | erk (growray.sparse.DISTRIBUTIONS)",
    )
    dense_first: bool = Field(False, description="keep the first masked layer dense (outside the budget)")
    dense_last: bool = Field(False, description="keep the last layer (the classifier head) dense (outside the budget)")
    updater: PluginDict = Field(
        default_factory=lambda: {"name": "rigl"},
        description="the mask updater: static | set | rigl | srigl (growray.sparse.UPDATERS)",
    )
    delta_t: StrictInt = Field(100, ge=1, description="ΔT: optimizer steps between mask updates")
    alpha: StrictFloat = Field(0.3, gt=0, le=1, description="α: the drop fraction at step 0, decayed by a cosine")
    t_end: StrictFloat = Field(
        0.75, gt=0, le=1, description="T_end: no update after this share of the training steps (RigL: 0.75)"
    )
