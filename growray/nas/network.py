"""The evaluation network built from a genotype (DARTS or ENAS cells), registered as ``cell_network``.

Layout (DARTS' ``NetworkCIFAR``): a stem (3x3 conv to ``stem_multiplier * channels``,
BatchNorm), ``layers`` cells, global average pooling and a Linear head. Cells at
``layers // 3`` and ``2 * layers // 3`` are reduction cells: they double the channels and
halve H and W (their ops on the two cell inputs use stride 2). A cell preprocesses its
k-2 input with a 1x1 ReLU-Conv-BN, or with a factorized reduce when the previous cell
reduced, and its k-1 input with a 1x1 ReLU-Conv-BN.

Drop-path (``drop_path > 0``) zeroes each non-identity op output per sample with that
probability and rescales the survivors by ``1 / (1 - p)``; it acts only in training mode
(``model.train()``), never in ``eval()``. The auxiliary head of DARTS' evaluation
protocol is not implemented.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from growray.models.spec import MODELS, ArchSpec
from growray.nas.genotype import Genotype
from growray.nas.ops import FactorizedReduce, ReLUConvBN, make_op

__all__ = ["CellNetwork", "EvalCell", "build_cell_stack", "check_image_shape", "drop_path", "reduction_layers"]


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def check_image_shape(input_shape: object, model: str) -> tuple[int, int, int]:
    """``(C, H, W)`` of positive ints, or a ValueError naming ``model``."""
    if (
        isinstance(input_shape, (str, bytes))
        or not isinstance(input_shape, Sequence)
        or len(input_shape) != 3
        or not all(_is_int(d) and d >= 1 for d in input_shape)
    ):
        raise ValueError(
            f"input_shape must be (C, H, W) of positive ints for the {model} model (an image dataset); "
            f"got {input_shape!r}"
        )
    c, h, w = input_shape
    return c, h, w


def check_positive(name: str, value: object, minimum: int = 1) -> int:
    if not _is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}; got {value!r}")
    return value  # type: ignore[return-value]


def reduction_layers(layers: int) -> set[int]:
    """Indices of the reduction cells: ``layers // 3`` and ``2 * layers // 3``."""
    return {layers // 3, 2 * layers // 3}


def build_cell_stack(
    c_in: int, channels: int, layers: int, stem_multiplier: int, make_cell: Callable[..., nn.Module]
) -> tuple[nn.Sequential, nn.ModuleList, int]:
    """The stem, the cells and the final channel count of the layout every cell model shares
    (supernets and the evaluation network must match it, so weights can be inherited).

    ``make_cell(c_pp, c_p, c_curr, reduction, reduction_prev)`` builds cell ``i``; its
    ``multiplier`` attribute is the number of nodes it concatenates.
    """
    c_curr = stem_multiplier * channels
    stem = nn.Sequential(nn.Conv2d(c_in, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
    c_pp, c_p, c_curr = c_curr, c_curr, channels
    reductions = reduction_layers(layers)
    cells = []
    reduction_prev = False
    for i in range(layers):
        reduction = i in reductions
        if reduction:
            c_curr *= 2
        cell = make_cell(c_pp, c_p, c_curr, reduction, reduction_prev)
        cells.append(cell)
        reduction_prev = reduction
        c_pp, c_p = c_p, cell.multiplier * c_curr
    return stem, nn.ModuleList(cells), c_p


def drop_path(x: torch.Tensor, p: float) -> torch.Tensor:
    """Zero whole samples with probability ``p``; scale the rest by ``1 / (1 - p)``."""
    if p <= 0.0:
        return x
    keep = 1.0 - p
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep


class EvalCell(nn.Module):
    """One discrete cell: per node, the sum of two ops on earlier states."""

    def __init__(
        self,
        pairs: Sequence[tuple[str, int]],
        concat: Sequence[int],
        c_prev_prev: int,
        c_prev: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
        affine: bool,
        pool_bn: bool,
    ):
        super().__init__()
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(c_prev_prev, C, affine)
        else:
            self.preprocess0 = ReLUConvBN(c_prev_prev, C, 1, 1, 0, affine)
        self.preprocess1 = ReLUConvBN(c_prev, C, 1, 1, 0, affine)
        self.indices = [idx for _, idx in pairs]
        self.op_names = [op for op, _ in pairs]
        self.concat = list(concat)
        self.ops = nn.ModuleList(
            make_op(op, C, 2 if reduction and idx < 2 else 1, affine, pool_bn=pool_bn) for op, idx in pairs
        )
        self._identity = [isinstance(op, nn.Identity) for op in self.ops]

    @property
    def multiplier(self) -> int:
        return len(self.concat)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(len(self.ops) // 2):
            total = None
            for j in (2 * node, 2 * node + 1):
                h = self.ops[j](states[self.indices[j]])
                if self.training and drop_prob > 0.0 and not self._identity[j]:
                    h = drop_path(h, drop_prob)
                total = h if total is None else total + h
            states.append(total)
        return torch.cat([states[i] for i in self.concat], dim=1)


@MODELS.register("cell_network")
class CellNetwork(nn.Module):
    """Stem, ``layers`` genotype cells (reductions at 1/3 and 2/3), global pooling, Linear.

    Works for DARTS genotypes and ENAS genotypes (where a node may read one input twice).

    Args:
        input_shape: ``(C, H, W)`` of one sample; supplied by growray.
        n_classes: number of logits; supplied by growray.
        genotype: ``Genotype.to_dict()`` (a ``Genotype`` is accepted from code).
        channels: channels of the first cells (doubled by each reduction cell).
        layers: number of cells (>= 1).
        stem_multiplier: the stem outputs ``stem_multiplier * channels`` channels.
        affine: learnable BatchNorm scale/shift in the cells (False for a network that
            inherits weights from a DARTS supernet, whose BatchNorms are non-affine).
        drop_path: drop-path probability in [0, 1), training mode only.
        pool_bn: follow pooling ops with a non-affine BatchNorm, as the DARTS search ops do
            (used by ``DartsSupernet.discretized``; False for a network trained from scratch).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        genotype: dict[str, Any],
        channels: int = 16,
        layers: int = 8,
        stem_multiplier: int = 3,
        affine: bool = True,
        drop_path: float = 0.0,
        pool_bn: bool = False,
    ):
        super().__init__()
        c_in, h, w = check_image_shape(input_shape, "cell_network")
        check_positive("n_classes", n_classes)
        check_positive("channels", channels)
        check_positive("layers", layers)
        check_positive("stem_multiplier", stem_multiplier)
        if not isinstance(affine, bool):
            raise ValueError(f"affine must be true or false; got {affine!r}")
        if not isinstance(pool_bn, bool):
            raise ValueError(f"pool_bn must be true or false; got {pool_bn!r}")
        if isinstance(drop_path, bool) or not isinstance(drop_path, (int, float)) or not 0.0 <= drop_path < 1.0:
            raise ValueError(f"drop_path must be a probability in [0, 1); got {drop_path!r}")
        self.genotype = Genotype.from_dict(genotype)
        self.input_shape = (c_in, h, w)
        self.n_classes = n_classes
        self.channels = channels
        self.layers = layers
        self.stem_multiplier = stem_multiplier
        self.affine = affine
        self.drop_path = float(drop_path)
        self.pool_bn = pool_bn

        def make_cell(c_pp: int, c_p: int, c_curr: int, reduction: bool, reduction_prev: bool) -> EvalCell:
            pairs, concat = self.genotype.cell("reduce" if reduction else "normal")
            return EvalCell(pairs, concat, c_pp, c_p, c_curr, reduction, reduction_prev, affine, pool_bn)

        self.stem, self.cells, c_p = build_cell_stack(c_in, channels, layers, stem_multiplier, make_cell)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, self.drop_path)
        return self.classifier(self.global_pooling(s1).flatten(1))

    def sites(self) -> list[str]:
        """No width sites: a cell network does not grow."""
        return []

    def widths(self) -> dict[str, int]:
        return {}

    def spec(self) -> ArchSpec:
        """Every constructor argument, JSON types only; ``build_model`` of it rebuilds this network."""
        return ArchSpec(
            kind="cell_network",
            params={
                "input_shape": list(self.input_shape),
                "n_classes": self.n_classes,
                "genotype": self.genotype.to_dict(),
                "channels": self.channels,
                "layers": self.layers,
                "stem_multiplier": self.stem_multiplier,
                "affine": self.affine,
                "drop_path": self.drop_path,
                "pool_bn": self.pool_bn,
            },
        )
