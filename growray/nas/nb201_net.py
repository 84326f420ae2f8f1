"""NAS-Bench-201's macro skeleton with its search cell (``nb201_supernet``) or a fixed cell (``nb201_network``).

Layout (Dong & Yang, ICLR 2020; ``TinyNetwork*`` in ``D-X-Y/AutoDL-Projects``): a stem (3x3
conv to ``channels``, BatchNorm), three stages of ``cells_per_stage`` cells at ``channels``,
``2 * channels`` and ``4 * channels``, a residual reduction block between stages (a ResNet
basic block with stride 2: ReLU-Conv3x3-BN twice, shortcut 2x2 average pooling + 1x1 conv),
then BatchNorm + ReLU, global average pooling and a Linear head. A cell maps C channels to C
(every op has stride 1) and outputs its last node (``growray.nas.nb201``). One departure:
the shortcut's average pooling uses ``ceil_mode`` so odd maps (7x7 Fashion-MNIST stages)
match the stride-2 conv's ``ceil(H / 2)``; on CIFAR's even sizes it is NAS-Bench-201's.

The supernet's edges are DARTS mixed ops with non-affine BatchNorm (NAS-Bench-201's search
setting), no BatchNorm after pooling (NAS-Bench-201's ops have none); the same relaxations as
``darts_supernet``: softmax (DARTS), ``set_gumbel`` (GDAS), ``partial_channels`` and
``edge_normalization`` (PC-DARTS). One alpha ``[n_edges, n_ops]`` is shared by every cell.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from growray.checks import check_bool, check_int
from growray.models.spec import MODELS, ArchSpec
from growray.nas.darts import _check_ops, inherited_op, make_edge
from growray.nas.nb201 import Nb201Genotype, discretize_nb201, nb201_edges
from growray.nas.network import check_drop_path, check_image_shape, drop_path
from growray.nas.ops import NB201_OPS, ReLUConvBN, make_op
from growray.nas.pcdarts import PartialOp, check_partial_channels, edge_softmax
from growray.nas.relaxed import RelaxedSupernet

__all__ = ["Nb201Network", "Nb201Supernet", "ResNetBasicBlock"]


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


class _SearchCell(nn.Module):
    """Every edge a mixed op; node j sums the edges from nodes i < j; output: the last node."""

    def __init__(self, C: int, nodes: int, op_names: Sequence[str], partial_channels: int | None):
        super().__init__()
        self.nodes = nodes
        self.edges = nn.ModuleList(
            make_edge(C, 1, op_names, partial_channels, pool_bn=False) for _ in nb201_edges(nodes)
        )

    def forward(
        self,
        x: torch.Tensor,
        weights: torch.Tensor,
        index: Sequence[int] | None = None,
        edge_scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        states = [x]
        e = 0
        for j in range(1, self.nodes):
            s = None
            for i in range(j):
                edge = self.edges[e]
                out = edge(states[i], weights[e]) if index is None else edge(states[i], weights[e], index[e])
                if edge_scale is not None:
                    out = edge_scale[e] * out
                s = out if s is None else s + out
                e += 1
            assert s is not None
            states.append(s)
        return states[-1]


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


@MODELS.register("nb201_supernet")
class Nb201Supernet(RelaxedSupernet):
    """NAS-Bench-201's search space as a DARTS-style supernet (module docstring).

    Args:
        input_shape: ``(C, H, W)`` of one sample; supplied by growray.
        n_classes: number of logits; supplied by growray.
        channels: channels of the first stage (NAS-Bench-201: 16).
        cells_per_stage: cells per stage (NAS-Bench-201: 5).
        nodes: nodes per cell, the input included (NAS-Bench-201: 4, i.e. 6 edges).
        ops: candidate ops (NAS-Bench-201's five by default).
        partial_channels: PC-DARTS' K (None: every channel through the ops).
        edge_normalization: PC-DARTS' beta per edge.
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        channels: int = 16,
        cells_per_stage: int = 5,
        nodes: int = 4,
        ops: list[str] = list(NB201_OPS),  # noqa: B006 - never mutated; the config schema needs a default
        partial_channels: int | None = None,
        edge_normalization: bool = False,
    ):
        super().__init__()
        self.input_shape = _check_common(input_shape, n_classes, channels, cells_per_stage, "nb201_supernet")
        self.n_classes, self.channels, self.cells_per_stage = n_classes, channels, cells_per_stage
        self.nodes = check_int("nodes", nodes, minimum=2)
        self.op_names = _check_ops(ops)
        self.partial_channels = check_partial_channels(partial_channels, channels)
        self.edge_normalization = check_bool("edge_normalization", edge_normalization)
        n = len(nb201_edges(self.nodes))
        self.alpha = nn.Parameter(1e-3 * torch.randn(n, len(self.op_names)))
        self.beta: nn.Parameter | None = nn.Parameter(1e-3 * torch.randn(n)) if self.edge_normalization else None

        def make_cell(c: int) -> nn.Module:
            return _SearchCell(c, self.nodes, self.op_names, self.partial_channels)

        self.stem, self.cells, self.lastact, c_last = _stack(self.input_shape[0], channels, cells_per_stage, make_cell)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_last, n_classes)

    def edge_scales(self) -> dict[str, torch.Tensor] | None:
        if self.beta is None:
            return None
        return {"cell": edge_softmax(self.beta, list(range(1, self.nodes)))}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights, index = self.edge_weights(self.alpha)
        scales = self.edge_scales()
        scale = None if scales is None else scales["cell"]
        h = self.stem(x)
        for cell in self.cells:
            h = cell(h, weights, index, scale) if isinstance(cell, _SearchCell) else cell(h)
        return self.classifier(self.global_pooling(self.lastact(h)).flatten(1))

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha] if self.beta is None else [self.alpha, self.beta]

    def alpha_logits(self) -> dict[str, torch.Tensor]:
        return {"cell": self.alpha}

    def edges(self) -> list[tuple[int, int]]:
        """``(node, input)`` of every edge, in the row order of alpha."""
        return nb201_edges(self.nodes)

    def edge_names(self) -> list[str]:
        return [f"{j}←{i}" for j, i in self.edges()]

    def discretization_weights(self) -> dict[str, torch.Tensor]:
        weights = self.alphas()
        scales = self.edge_scales()
        if scales is not None:
            weights = {k: w * scales[k].detach().unsqueeze(-1) for k, w in weights.items()}
        return weights

    def genotype(self) -> Nb201Genotype:
        """The argmax op of every edge, ``none`` included (``growray.nas.nb201``). Edge
        normalisation scales whole edges, so it never changes an edge's argmax here."""
        return discretize_nb201(self.discretization_weights()["cell"], self.op_names)

    def discretized(self, genotype: Nb201Genotype | dict[str, Any] | str | None = None) -> Nb201Network:
        """The ``nb201_network`` of ``genotype`` (default: :meth:`genotype`) with inherited weights
        (non-affine BatchNorm, the supernet's running statistics: recalibrate before evaluating)."""
        geno = self.genotype() if genotype is None else Nb201Genotype.from_dict(genotype)
        if geno.n_nodes != self.nodes:
            raise ValueError(f"genotype has {geno.n_nodes} nodes; this supernet has nodes={self.nodes}")
        unknown = sorted(set(geno.ops) - set(self.op_names))
        if unknown:
            raise ValueError(
                f"genotype uses op(s) {unknown} that this supernet does not have; its ops: {self.op_names}"
            )
        ref = self.alpha
        net = Nb201Network(
            self.input_shape,
            self.n_classes,
            geno.arch_str(),
            channels=self.channels,
            cells_per_stage=self.cells_per_stage,
            affine=False,
            partial_channels=self.partial_channels or 1,
        ).to(device=ref.device, dtype=ref.dtype)
        for name in ("stem", "lastact", "classifier"):
            getattr(net, name).load_state_dict(getattr(self, name).state_dict())
        for src, dst in zip(self.cells, net.cells):
            if isinstance(src, _SearchCell) and isinstance(dst, _Cell):
                for e, op in enumerate(geno.ops):
                    inherited_op(src.edges[e], op, dst.ops[e])
            else:
                dst.load_state_dict(src.state_dict())
        net.train(self.training)
        return net

    def sites(self) -> list[str]:
        return []

    def widths(self) -> dict[str, int]:
        return {}

    def spec(self) -> ArchSpec:
        return ArchSpec(
            kind="nb201_supernet",
            params={
                "input_shape": list(self.input_shape),
                "n_classes": self.n_classes,
                "channels": self.channels,
                "cells_per_stage": self.cells_per_stage,
                "nodes": self.nodes,
                "ops": list(self.op_names),
                "partial_channels": self.partial_channels,
                "edge_normalization": self.edge_normalization,
            },
        )


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
        h = self.stem(x)
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
