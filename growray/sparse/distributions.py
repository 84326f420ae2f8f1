"""Sparsity distributions: how a global sparsity is shared among layers (ALGORITHMS.md §10).

``uniform`` gives every sparse layer the same sparsity. ``erk`` (Erdős–Rényi-Kernel,
Evci et al. 2020) makes a layer's density proportional to
``(sum of its weight's dimensions) / (product of them)`` — ``(n_in + n_out + k_h + k_w) /
(n_in n_out k_h k_w)`` for a convolution, ``(n_in + n_out) / (n_in n_out)`` for a Linear
(Erdős–Rényi) — raised to ``power_scale``, with one scale ε solved so that the layers
together keep ``1 - sparsity`` of their weights. A layer whose density would exceed 1 is
made dense and ε is solved again over the others, one layer at a time (the layer with the
largest raw density first), as ``get_sparsities_erdos_renyi`` in google-research/rigl does.

Layers in ``dense`` (kept dense on request: the first and last layers) are outside the
budget, as the RigL code's custom sparsities are: the target applies to the other layers.
Dense-by-overflow layers are inside it (their extra weights are taken from the others).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Collection, Mapping, Sequence

from growray.checks import check_number
from growray.registry import Registry

__all__ = [
    "DISTRIBUTIONS",
    "Distribution",
    "ERKDistribution",
    "UniformDistribution",
    "active_counts",
]

DISTRIBUTIONS: Registry[Distribution] = Registry("sparsity distribution")

Shapes = Mapping[str, Sequence[int]]


def _check(shapes: Shapes, sparsity: float, dense: Collection[str]) -> list[str]:
    check_number("sparsity", sparsity, low=0, high=1, low_open=True, high_open=True)
    unknown = sorted(set(dense) - set(shapes))
    if unknown:
        raise ValueError(f"dense layers {unknown} are not among the layers {list(shapes)}")
    sparse = [k for k in shapes if k not in dense]
    if not sparse:
        raise ValueError(f"every layer ({list(shapes)}) is kept dense: at least one layer must be sparse")
    return sparse


class Distribution(ABC):
    """Shares a global sparsity among layers."""

    @abstractmethod
    def densities(self, shapes: Shapes, sparsity: float, dense: Collection[str] = ()) -> dict[str, float]:
        """``{layer: density in (0, 1]}`` for every layer of ``shapes`` (weight shapes by name);
        layers in ``dense`` get 1. The other layers together keep ``1 - sparsity`` of their
        weights."""


@DISTRIBUTIONS.register("uniform")
class UniformDistribution(Distribution):
    """Every sparse layer at the same sparsity."""

    def densities(self, shapes: Shapes, sparsity: float, dense: Collection[str] = ()) -> dict[str, float]:
        _check(shapes, sparsity, dense)
        return {k: 1.0 if k in dense else 1.0 - sparsity for k in shapes}


@DISTRIBUTIONS.register("erk")
class ERKDistribution(Distribution):
    """Erdős–Rényi-Kernel: density ∝ sum / product of the weight's dimensions; overflow made dense.

    The solve is in the module docstring.

    Args:
        power_scale: exponent of the raw ERK density (1: the paper's ERK; 0: uniform).
    """

    def __init__(self, power_scale: float = 1.0):
        self.power_scale = check_number("power_scale", power_scale, low=0)

    def densities(self, shapes: Shapes, sparsity: float, dense: Collection[str] = ()) -> dict[str, float]:
        sparse = _check(shapes, sparsity, dense)
        n = {k: math.prod(int(d) for d in shapes[k]) for k in sparse}
        raw = {k: (sum(int(d) for d in shapes[k]) / n[k]) ** self.power_scale for k in sparse}
        overflow: set[str] = set()
        while True:
            # eps * sum_free(raw_i N_i) + sum_overflow(N_i) = (1 - s) * sum_all(N_i)
            rhs = sum((1.0 - sparsity) * n[k] for k in sparse if k not in overflow)
            rhs -= sum(sparsity * n[k] for k in overflow)
            divisor = sum(raw[k] * n[k] for k in sparse if k not in overflow)
            if rhs <= 0 or divisor <= 0:
                raise ValueError(
                    f"ERK cannot reach sparsity {sparsity}: the layers made dense ({sorted(overflow)}) already hold "
                    "more than the budget; use a higher sparsity or the uniform distribution"
                )
            eps = rhs / divisor
            free = [k for k in sparse if k not in overflow]
            top = max(raw[k] for k in free)
            if eps * top <= 1.0:
                break
            overflow |= {k for k in free if raw[k] == top}
            if len(overflow) == len(sparse):
                raise ValueError(f"ERK at sparsity {sparsity} would make every layer dense; use a higher sparsity")
        out: dict[str, float] = {}
        for k in shapes:
            out[k] = 1.0 if k in dense or k in overflow else eps * raw[k]
        return out


def active_counts(shapes: Shapes, densities: Mapping[str, float]) -> dict[str, int]:
    """Active weights per layer: ``round(density x entries)``, at least 1 and at most all."""
    out = {}
    for k, shape in shapes.items():
        total = math.prod(int(d) for d in shape)
        out[k] = min(total, max(1, round(densities[k] * total)))
    return out
