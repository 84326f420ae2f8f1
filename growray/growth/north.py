"""NORTH* neurogenesis (Maile et al., AutoML-Conf 2022): grow a layer when the effective
dimension of its activations (or fan-in weights) rises above a baseline, and start new
units orthogonal to what the layer already represents, with zero fan-out.

Effective dimension of an ``M x n`` matrix ``H`` (units x samples):
``phi = (1/M) * #{sigma in SVD(H / sqrt(n)) : sigma > epsilon}``.

Triggers (``north_act``, ``north_weight``) compare the count with ``floor(gamma * phi0 * M)``
and add the difference: the corrected NORTH formula ``max(0, ...)``, as the authors' code
does (the paper prints ``min``). Placing the floor on the threshold (code) rather than on
``M * (phi - gamma * phi0)`` matters for narrow layers: with the latter a full-rank layer of
fewer than ``1 / (1 - gamma)`` units could never grow. ``phi0`` is measured at
initialisation (``Trigger.start``, before the first optimizer step, as the paper's
``phi(f_0, l)`` and the authors' ``svdinit``); dense sites keep it, conv sites keep a running
max of ``phi`` (late conv layers start near 0), updated after the comparison, as in the
reference code. ``north_weight`` measures the fan-in matrix with the bias as a last column.

Initializers (``north_select``, ``north_pre``, ``north_weight``) set the new fan-out to 0, so
growth preserves the function; new BatchNorm entries are fresh (1, 0, 0, 1) and biases 0.
Dense newborns (and every NORTH-Weight newborn) get the incumbents' mean fan-in norm.
Conv sites are supported: a candidate filter is a vector of ``C_in * k * k`` values and
spatial positions count as samples.

Deviations from the reference code, on purpose: Select keeps the *most* orthogonal
candidates (the code's dense path keeps the least: a probable bug); Pre's orthogonal
complement starts at the rank of the pre-activations (the code starts one column early).
"""

from growray.growth._north_initializers import (
    NorthPreInitializer,
    NorthSelectInitializer,
    NorthWeightInitializer,
    north_weight_compatible,
    orthogonality_scores,
)
from growray.growth._north_triggers import (
    NorthActTrigger,
    NorthWeightTrigger,
    effective_dimension,
    effective_rank,
)

__all__ = [
    "NorthActTrigger",
    "NorthPreInitializer",
    "NorthSelectInitializer",
    "NorthWeightInitializer",
    "NorthWeightTrigger",
    "effective_dimension",
    "effective_rank",
    "north_weight_compatible",
    "orthogonality_scores",
]
