"""NAS-Bench-201's macro skeleton and its network of one fixed cell (``nb201_network``).

Layout (Dong & Yang, ICLR 2020; ``TinyNetwork*`` in ``D-X-Y/AutoDL-Projects``): a stem (3x3
conv to ``channels``, BatchNorm), three stages of ``cells_per_stage`` cells at ``channels``,
``2 * channels`` and ``4 * channels``, a residual reduction block between stages (a ResNet
basic block with stride 2: ReLU-Conv3x3-BN twice, shortcut 2x2 average pooling + 1x1 conv),
then BatchNorm + ReLU, global average pooling and a Linear head. A cell maps C channels to C
(every op has stride 1) and outputs its last node (``growray.nas.nb201``). One departure:
the shortcut's average pooling uses ``ceil_mode`` so odd maps (7x7 Fashion-MNIST stages)
match the stride-2 conv's ``ceil(H / 2)``; on CIFAR's even sizes it is NAS-Bench-201's.
The search supernet on the same skeleton is ``growray.nas.nb201_net``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from growray.checks import check_bool, check_int
from growray.models.spec import MODELS, ArchSpec
from growray.nas.nb201 import Nb201Genotype
from growray.nas.network import check_drop_path, check_image_shape, drop_path
from growray.nas.ops import ReLUConvBN, cpu_channels_last, make_op
from growray.nas.pcdarts import PartialOp, check_partial_channels

__all__ = ["Nb201Network", "ResNetBasicBlock"]


class ResNetBasicBlock(nn.Module):
    """NAS-Bench-201's residual reduction block (stride 2, ``c_in`` -> ``c_out``)."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        self.downsample = nn.Sequential(
            nn.AvgPool2d(2, stride=2, padding=0, ceil_mode=True), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.downsample(x) + self.conv_b(self.conv_a(x))


def _stack(
    c_in: int, channels: int, cells_per_stage: int, make_cell: Callable[[int], nn.Module]
) -> tuple[nn.Sequential, nn.ModuleList, nn.Sequential, int]:
    stem = nn.Sequential(nn.Conv2d(c_in, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
    cells: list[nn.Module] = []
    c_prev = channels
    for stage in range(3):
        c = channels * 2**stage
        if stage:
            cells.append(ResNetBasicBlock(c_prev, c))
        cells += [make_cell(c) for _ in range(cells_per_stage)]
        c_prev = c
    lastact = nn.Sequential(nn.BatchNorm2d(c_prev), nn.ReLU(inplace=False))
    return stem, nn.ModuleList(cells), lastact, c_prev


class _Cell(nn.Module):
    """A fixed NAS-Bench-201 cell: one op per edge."""

    def __init__(self, genotype: Nb201Genotype, C: int, affine: bool, partial_channels: int):
        super().__init__()
        self.nodes = genotype.n_nodes
        k = partial_channels

        def edge(op: str) -> nn.Module:
            if k == 1:
                return make_op(op, C, 1, affine)
            return PartialOp(make_op(op, C // k, 1, affine), k, 1)

        self.ops = nn.ModuleList(edge(op) for op in genotype.ops)
        self._plain = [op in ("skip_connect", "none") for op in genotype.ops]

    def forward(self, x: torch.Tensor, drop_prob: float = 0.0) -> torch.Tensor:
        states = [x]
        e = 0
        for j in range(1, self.nodes):
            s = None
            for i in range(j):
                h = self.ops[e](states[i])
                if self.training and drop_prob > 0.0 and not self._plain[e]:
                    h = drop_path(h, drop_prob)
                s = h if s is None else s + h
                e += 1
            assert s is not None
            states.append(s)
        return states[-1]


def _check_common(
    input_shape: object, n_classes: int, channels: int, cells_per_stage: int, model: str
) -> tuple[int, int, int]:
    shape = check_image_shape(input_shape, model)
    check_int("n_classes", n_classes, minimum=1)
    check_int("channels", channels, minimum=1)
    check_int("cells_per_stage", cells_per_stage, minimum=1)
    return shape


@MODELS.register("nb201_network")
class Nb201Network(nn.Module):
    """NAS-Bench-201's network of one cell (its architecture string), trainable from scratch.

    Args:
        input_shape: ``(C, H, W)``; supplied by growray.
        n_classes: supplied by growray.
        genotype: the NAS-Bench-201 string ``|op~0|+|op~0|op~1|+|...|``, a table key, or
            ``{"nb201": string}``.
        channels: first-stage channels (16 in the benchmark).
        cells_per_stage: cells per stage (5 in the benchmark).
        affine: learnable BatchNorm scale/shift in the cells (False when the weights come
            from a supernet).
        drop_path: drop-path probability on the cells' conv and pool ops (training mode only;
            the benchmark trains without it).
        partial_channels: PC-DARTS' K (a discretized PC-DARTS supernet); 1 otherwise.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        genotype: str,
        channels: int = 16,
        cells_per_stage: int = 5,
        affine: bool = True,
        drop_path: float = 0.0,
        partial_channels: int = 1,
    ):
        super().__init__()
        self.input_shape = _check_common(input_shape, n_classes, channels, cells_per_stage, "nb201_network")
        self.genotype = Nb201Genotype.from_dict(genotype)
        self.n_classes, self.channels, self.cells_per_stage = n_classes, channels, cells_per_stage
        self.affine = check_bool("affine", affine)
        self.drop_path = check_drop_path(drop_path)
        self.partial_channels = check_int("partial_channels", partial_channels, minimum=1)
        check_partial_channels(self.partial_channels, channels)

        def make_cell(c: int) -> nn.Module:
            return _Cell(self.genotype, c, self.affine, self.partial_channels)

        self.stem, self.cells, self.lastact, c_last = _stack(self.input_shape[0], channels, cells_per_stage, make_cell)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_last, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = cpu_channels_last(self.stem(x), self.partial_channels == 1)
        for cell in self.cells:
            h = cell(h, self.drop_path) if isinstance(cell, _Cell) else cell(h)
        return self.classifier(self.global_pooling(self.lastact(h)).flatten(1))

    def sites(self) -> list[str]:
        return []

    def widths(self) -> dict[str, int]:
        return {}

    def spec(self) -> ArchSpec:
        return ArchSpec(
            kind="nb201_network",
            params={
                "input_shape": list(self.input_shape),
                "n_classes": self.n_classes,
                "genotype": self.genotype.arch_str(),
                "channels": self.channels,
                "cells_per_stage": self.cells_per_stage,
                "affine": self.affine,
                "drop_path": self.drop_path,
                "partial_channels": self.partial_channels,
            },
        )
