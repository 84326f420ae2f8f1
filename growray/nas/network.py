"""The evaluation network built from a genotype (DARTS or ENAS cells), registered as ``cell_network``.

Layout (DARTS' ``NetworkCIFAR``): a stem (3x3 conv to ``stem_multiplier * channels``,
BatchNorm), ``layers`` cells, global average pooling and a Linear head. Cells at
``layers // 3`` and ``2 * layers // 3`` are reduction cells: they double the channels and
halve H and W (their ops on the two cell inputs use stride 2). A cell preprocesses its
k-2 input with a 1x1 ReLU-Conv-BN, or with a factorized reduce when the previous cell
reduced, and its k-1 input with a 1x1 ReLU-Conv-BN.

Drop-path (``drop_path > 0``) zeroes each non-identity op output per sample with that
probability and rescales the survivors by ``1 / (1 - p)``; it acts only in training mode
(``model.train()``), never in ``eval()``. With ``drop_path_schedule: linear`` the
probability grows linearly from 0 to ``drop_path`` over training, as DARTS' ``train.py``
does (``drop_path_prob * epoch / epochs``; the trainer calls ``set_epoch_progress``).

DARTS' evaluation protocol also trains an auxiliary head (``auxiliary_weight > 0``, DARTS:
0.4) on the output of cell ``2 * layers // 3``: ReLU, 5x5 average pooling with stride 3
(adaptive 2x2 pooling when that map is not CIFAR's 8x8), 1x1 conv to 128, BN, ReLU, 2x2 conv
to 768, BN, ReLU, Linear (DARTS' ``AuxiliaryHeadCIFAR``). In training mode ``forward`` keeps
its logits, and ``auxiliary_output()`` hands them with the weight to the trainer, which
adds ``weight * cross_entropy`` to the loss; evaluation never uses the head.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

import torch
from torch import nn

from growray.checks import check_bool, check_choice, check_int, check_number
from growray.models.spec import MODELS, ArchSpec
from growray.nas.genotype import Genotype
from growray.nas.ops import FactorizedReduce, ReLUConvBN, cpu_channels_last, make_op
from growray.nas.pcdarts import PartialOp

__all__ = [
    "Cell",
    "CellNetwork",
    "EvalCell",
    "build_cell_stack",
    "check_drop_path",
    "check_image_shape",
    "drop_path",
    "modules_of",
    "reduction_layers",
]

M = TypeVar("M", bound=nn.Module)


def check_image_shape(input_shape: object, model: str) -> tuple[int, int, int]:
    """``(C, H, W)`` of positive ints, or a ValueError naming ``model``."""
    dims = input_shape if isinstance(input_shape, Sequence) and not isinstance(input_shape, (str, bytes)) else ()
    if len(dims) != 3 or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 1 for d in dims):
        raise ValueError(
            f"input_shape must be (C, H, W) of positive ints for the {model} model (an image dataset); "
            f"got {input_shape!r}"
        )
    c, h, w = (int(d) for d in dims)
    return c, h, w


def check_drop_path(value: object) -> float:
    """A drop-path probability in [0, 1)."""
    return check_number("drop_path", value, low=0.0, high=1.0, high_open=True)


def modules_of(container: nn.Module, kind: type[M]) -> list[M]:
    """The children of ``container`` (a ``ModuleList``), typed as ``kind`` (checked)."""
    out: list[M] = []
    for m in container.children():
        if not isinstance(m, kind):
            raise TypeError(f"expected {kind.__name__} modules in {type(container).__name__}; got {type(m).__name__}")
        out.append(m)
    return out


class Cell(nn.Module):
    """Base of every cell in the shared layout (search, ENAS shared, evaluation cells).

    Attributes:
        multiplier: number of nodes concatenated into the cell's output (its output has
            ``multiplier * C`` channels).
        reduction: whether the cell halves H and W (and doubles the channels).
    """

    multiplier: int
    reduction: bool


C = TypeVar("C", bound=Cell)


def reduction_layers(layers: int) -> set[int]:
    """Indices of the reduction cells: ``layers // 3`` and ``2 * layers // 3``."""
    return {layers // 3, 2 * layers // 3}


def build_cell_stack(
    c_in: int, channels: int, layers: int, stem_multiplier: int, make_cell: Callable[[int, int, int, bool, bool], C]
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


def auxiliary_head(c_in: int, n_classes: int, size: int) -> nn.Module:
    """DARTS' ``AuxiliaryHeadCIFAR`` on a ``size x size`` map of ``c_in`` channels (module docstring)."""
    pool: nn.Module = (
        nn.AvgPool2d(5, stride=3, padding=0, count_include_pad=False) if size == 8 else nn.AdaptiveAvgPool2d(2)
    )
    return nn.Sequential(
        nn.ReLU(inplace=False),
        pool,
        nn.Conv2d(c_in, 128, 1, bias=False),
        nn.BatchNorm2d(128),
        nn.ReLU(inplace=False),
        nn.Conv2d(128, 768, 2, bias=False),
        nn.BatchNorm2d(768),
        nn.ReLU(inplace=False),
        nn.Flatten(),
        nn.Linear(768, n_classes),
    )


def drop_path(x: torch.Tensor, p: float) -> torch.Tensor:
    """Zero whole samples with probability ``p``; scale the rest by ``1 / (1 - p)``."""
    if p <= 0.0:
        return x
    keep = 1.0 - p
    mask = torch.empty(x.shape[0], 1, 1, 1, device=x.device, dtype=x.dtype).bernoulli_(keep)
    return x * mask / keep


class EvalCell(Cell):
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
        partial_channels: int = 1,
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
        self.multiplier = len(self.concat)
        k = partial_channels

        def edge(op: str, idx: int) -> nn.Module:
            stride = 2 if reduction and idx < 2 else 1
            if k == 1:
                return make_op(op, C, stride, affine, pool_bn=pool_bn)
            return PartialOp(make_op(op, C // k, stride, affine, pool_bn=pool_bn), k, stride)

        self.ops = nn.ModuleList(edge(op, idx) for op, idx in pairs)
        self._identity = [isinstance(op, nn.Identity) for op in self.ops]

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
        partial_channels: PC-DARTS' K: each op on ``C / K`` channels, the rest bypassing it,
            channel-shuffled (a discretized PC-DARTS supernet); 1 for a normal network.
        auxiliary_weight: weight of the auxiliary head's loss (0: no head; DARTS: 0.4).
        drop_path_schedule: ``constant`` (``drop_path`` throughout) or ``linear`` (0 ->
            ``drop_path`` over training, DARTS).
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
        partial_channels: int = 1,
        auxiliary_weight: float = 0.0,
        drop_path_schedule: Literal["constant", "linear"] = "constant",
    ):
        super().__init__()
        c_in, h, w = check_image_shape(input_shape, "cell_network")
        self.genotype = Genotype.from_dict(genotype)
        self.input_shape = (c_in, h, w)
        self.n_classes = check_int("n_classes", n_classes, minimum=1)
        self.channels = check_int("channels", channels, minimum=1)
        self.layers = check_int("layers", layers, minimum=1)
        self.stem_multiplier = check_int("stem_multiplier", stem_multiplier, minimum=1)
        self.affine = check_bool("affine", affine)
        self.pool_bn = check_bool("pool_bn", pool_bn)
        self.drop_path = check_drop_path(drop_path)
        self.partial_channels = check_int("partial_channels", partial_channels, minimum=1)
        if channels % self.partial_channels:
            raise ValueError(f"partial_channels={partial_channels} must divide channels={channels}")
        self.auxiliary_weight = check_number("auxiliary_weight", auxiliary_weight, low=0.0)
        self.drop_path_schedule = check_choice("drop_path_schedule", drop_path_schedule, ("constant", "linear"))
        self._drop_now = self.drop_path if self.drop_path_schedule == "constant" else 0.0
        self._aux_logits: torch.Tensor | None = None
        aux_at = 2 * layers // 3
        widths: list[int] = []

        def make_cell(c_pp: int, c_p: int, c_curr: int, reduction: bool, reduction_prev: bool) -> EvalCell:
            pairs, concat = self.genotype.cell("reduce" if reduction else "normal")
            cell = EvalCell(
                pairs, concat, c_pp, c_p, c_curr, reduction, reduction_prev, affine, pool_bn, self.partial_channels
            )
            widths.append(cell.multiplier * c_curr)
            return cell

        self.stem, self.cells, c_p = build_cell_stack(c_in, channels, layers, stem_multiplier, make_cell)
        self.auxiliary_head: nn.Module | None = None
        if self.auxiliary_weight > 0:
            size = h
            for i in range(aux_at + 1):
                if i in reduction_layers(layers):
                    size = (size + 1) // 2
            self.auxiliary_head = auxiliary_head(widths[aux_at], n_classes, size)
        self._aux_at = aux_at
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, n_classes)

    def cell_list(self) -> list[EvalCell]:
        """The cells, in order (typed)."""
        return modules_of(self.cells, EvalCell)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._aux_logits = None
        s0 = s1 = cpu_channels_last(self.stem(x), self.partial_channels == 1)
        for i, cell in enumerate(self.cells):
            s0, s1 = s1, cell(s0, s1, self._drop_now)
            if i == self._aux_at and self.auxiliary_head is not None and self.training:
                self._aux_logits = self.auxiliary_head(s1)
        return self.classifier(self.global_pooling(s1).flatten(1))

    def set_epoch_progress(self, fraction: float) -> None:
        """Called by the trainer before each epoch with ``epoch / epochs``: the linear drop-path ramp."""
        if self.drop_path_schedule == "linear":
            self._drop_now = self.drop_path * min(max(float(fraction), 0.0), 1.0)

    def auxiliary_output(self) -> tuple[torch.Tensor, float] | None:
        """The auxiliary head's logits of the last training-mode forward and their loss weight."""
        if self._aux_logits is None:
            return None
        return self._aux_logits, self.auxiliary_weight

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
                "partial_channels": self.partial_channels,
                "auxiliary_weight": self.auxiliary_weight,
                "drop_path_schedule": self.drop_path_schedule,
            },
        )
