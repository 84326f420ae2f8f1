"""The DARTS supernet: mixed ops on every edge, architecture weights shared by all cells.

Layout as in DARTS' search network: stem (3x3 conv, BatchNorm), ``layers`` search cells
(reductions at ``layers // 3`` and ``2 * layers // 3``), global average pooling, Linear.
A search cell has ``nodes`` intermediate nodes; node ``i`` sums a mixed op on every
earlier state (the two preprocessed cell inputs and nodes ``0..i-1``); the cell outputs
the concatenation of its last ``multiplier`` nodes. A mixed op is
``sum_o softmax(alpha_edge)_o * o(x)``, its ops built with non-affine BatchNorm and a
BatchNorm after pooling.

``alpha_normal`` and ``alpha_reduce`` (``[n_edges, n_ops]``, initialised ``1e-3 * N(0, 1)``)
are ``nn.Parameter`` s, so they live in ``state_dict`` and checkpoints; keep them out of
the weight optimizer with ``weight_parameters()`` and update them with ``DartsArchitect``.

The same supernet serves GDAS (``set_gumbel``: one sampled op per edge, see
``growray.nas.relaxed``) and PC-DARTS (``partial_channels`` K and ``edge_normalization``
beta, see ``growray.nas.pcdarts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from growray.checks import check_bool, check_int
from growray.models.spec import MODELS, ArchSpec
from growray.nas.genotype import Genotype, discretize, n_edges
from growray.nas.network import Cell, CellNetwork, build_cell_stack, check_image_shape, modules_of
from growray.nas.ops import DARTS_OPS, OPS, FactorizedReduce, ReLUConvBN, cpu_channels_last, make_op
from growray.nas.pcdarts import PartialMixedOp, PartialOp, check_partial_channels, edge_softmax
from growray.nas.relaxed import RelaxedSupernet

__all__ = ["DartsSupernet", "MixedOp", "SearchCell", "make_edge"]


class MixedOp(nn.Module):
    """All candidate ops of one edge; ``forward(x, weights)`` is their weighted sum.

    The ``none`` op contributes exactly zero, so it is skipped in the sum (its weight still
    matters through the softmax normalisation). With ``index`` (GDAS) only that op runs:
    ``weights[index] * op_index(x)``.
    """

    def __init__(self, C: int, stride: int, op_names: Sequence[str], pool_bn: bool = True):
        super().__init__()
        self.op_names = list(op_names)
        self.ops = nn.ModuleList(make_op(name, C, stride, affine=False, pool_bn=pool_bn) for name in self.op_names)
        self._active = [j for j, name in enumerate(self.op_names) if name != "none"]

    def forward(self, x: torch.Tensor, weights: torch.Tensor, index: int | None = None) -> torch.Tensor:
        if index is not None:
            return weights[index] * self.ops[index](x)
        first, *rest = self._active  # the supernet rejects op sets without a non-none op
        out = weights[first] * self.ops[first](x)
        for j in rest:
            out = out + weights[j] * self.ops[j](x)
        return out

    def op(self, name: str) -> nn.Module:
        """The candidate op ``name`` of this edge."""
        return self.ops[self.op_names.index(name)]


def make_edge(
    C: int, stride: int, op_names: Sequence[str], partial_channels: int | None, pool_bn: bool = True
) -> nn.Module:
    """A mixed op on ``C`` channels, or PC-DARTS' partial one (ops on ``C / K`` channels)."""
    if partial_channels is None:
        return MixedOp(C, stride, op_names, pool_bn)
    return PartialMixedOp(MixedOp(C // partial_channels, stride, op_names, pool_bn), partial_channels, stride)


def inherited_op(edge: nn.Module, name: str, op: nn.Module) -> None:
    """Copy the candidate ``name`` of a search edge into ``op`` (a discrete net's edge; a
    ``PartialOp`` for a partial-channel edge)."""
    target = op.op if isinstance(op, PartialOp) else op
    source = edge.op(name) if isinstance(edge, (MixedOp, PartialMixedOp)) else None
    if source is None:
        raise TypeError(f"expected a mixed op; got {type(edge).__name__}")
    target.load_state_dict(source.state_dict())


class SearchCell(Cell):
    """A DARTS search cell: every node sums the mixed ops on all earlier states."""

    def __init__(
        self,
        nodes: int,
        multiplier: int,
        c_prev_prev: int,
        c_prev: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
        op_names: Sequence[str],
        partial_channels: int | None = None,
    ):
        super().__init__()
        self.reduction = reduction
        self.nodes = nodes
        self.multiplier = multiplier
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(c_prev_prev, C, affine=False)
        else:
            self.preprocess0 = ReLUConvBN(c_prev_prev, C, 1, 1, 0, affine=False)
        self.preprocess1 = ReLUConvBN(c_prev, C, 1, 1, 0, affine=False)
        self.edges = nn.ModuleList(
            make_edge(C, 2 if reduction and inp < 2 else 1, op_names, partial_channels)
            for node in range(nodes)
            for inp in range(node + 2)
        )

    def edge_list(self) -> list[nn.Module]:
        """The mixed op of every edge, in node order."""
        return list(self.edges)

    def forward(
        self,
        s0: torch.Tensor,
        s1: torch.Tensor,
        weights: torch.Tensor,
        index: Sequence[int] | None = None,
        edge_scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """``index``: the one op per edge (GDAS); ``edge_scale``: PC-DARTS' normalised beta per edge."""
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        edges = self.edge_list()
        offset = 0
        for _ in range(self.nodes):
            s = None
            for j, h in enumerate(states):
                e = offset + j
                out = edges[e](h, weights[e]) if index is None else edges[e](h, weights[e], index[e])
                if edge_scale is not None:
                    out = edge_scale[e] * out
                s = out if s is None else s + out
            assert s is not None
            offset += len(states)
            states.append(s)
        return torch.cat(states[-self.multiplier :], dim=1)


def _check_ops(ops: object) -> list[str]:
    if isinstance(ops, (str, bytes)) or not isinstance(ops, Sequence) or len(ops) == 0:
        raise ValueError(
            f"ops must be a non-empty list of op names (registered: {', '.join(OPS.names())}); got {ops!r}"
        )
    names = list(ops)
    for name in names:
        OPS.get(name)  # the registry's error lists the valid names and the closest match
    if len(set(names)) != len(names):
        raise ValueError(f"ops must not repeat a name; got {names}")
    if all(name == "none" for name in names):
        raise ValueError(f"ops needs at least one op other than 'none' (a cell must compute something); got {names}")
    return names


@MODELS.register("darts_supernet")
class DartsSupernet(RelaxedSupernet):
    """DARTS' continuous relaxation of a cell network (architecture weights are parameters).

    Args:
        input_shape: ``(C, H, W)`` of one sample; supplied by growray.
        n_classes: number of logits; supplied by growray.
        channels: channels of the first cells (doubled by each reduction cell).
        layers: number of cells (DARTS search: 8).
        nodes: intermediate nodes per cell (DARTS: 4).
        multiplier: the cell output concatenates the last ``multiplier`` nodes (1..nodes).
        stem_multiplier: the stem outputs ``stem_multiplier * channels`` channels.
        ops: the candidate op set, names registered in ``growray.nas.OPS`` (default: DARTS' 8).
        partial_channels: PC-DARTS' K: each edge sends ``channels / K`` channels through its
            ops (None: DARTS, every channel; K must divide ``channels``).
        edge_normalization: PC-DARTS' beta per edge (``beta_normal``, ``beta_reduce``).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        channels: int = 16,
        layers: int = 8,
        nodes: int = 4,
        multiplier: int = 4,
        stem_multiplier: int = 3,
        ops: list[str] = list(DARTS_OPS),  # noqa: B006 - never mutated; the config schema needs a default
        partial_channels: int | None = None,
        edge_normalization: bool = False,
    ):
        super().__init__()
        c_in, h, w = check_image_shape(input_shape, "darts_supernet")
        check_int("n_classes", n_classes, minimum=1)
        check_int("channels", channels, minimum=1)
        check_int("layers", layers, minimum=1)
        check_int("nodes", nodes, minimum=1)
        check_int("multiplier", multiplier, minimum=1)
        check_int("stem_multiplier", stem_multiplier, minimum=1)
        if multiplier > nodes:
            raise ValueError(
                f"multiplier (nodes concatenated into the cell output) must be <= nodes={nodes}; got {multiplier}"
            )
        self.op_names = _check_ops(ops)
        self.input_shape = (c_in, h, w)
        self.n_classes = n_classes
        self.channels = channels
        self.layers = layers
        self.nodes = nodes
        self.multiplier = multiplier
        self.stem_multiplier = stem_multiplier
        self.partial_channels = check_partial_channels(partial_channels, channels)
        self.edge_normalization = check_bool("edge_normalization", edge_normalization)

        shape = (n_edges(nodes), len(self.op_names))
        # mul_, not 1e-3 * x: the same values, but on the meta device (growray validate) the
        # out-of-place product goes through a Python kernel that imports torch._dynamo (~2.5 s)
        self.alpha_normal = nn.Parameter(torch.randn(shape).mul_(1e-3))
        self.alpha_reduce = nn.Parameter(torch.randn(shape).mul_(1e-3))
        self.beta_normal: nn.Parameter | None = None
        self.beta_reduce: nn.Parameter | None = None
        if self.edge_normalization:  # created only then: DARTS' initial weights stay the same
            self.beta_normal = nn.Parameter(torch.randn(n_edges(nodes)).mul_(1e-3))
            self.beta_reduce = nn.Parameter(torch.randn(n_edges(nodes)).mul_(1e-3))

        def make_cell(c_pp: int, c_p: int, c_curr: int, reduction: bool, reduction_prev: bool) -> SearchCell:
            return SearchCell(
                nodes, multiplier, c_pp, c_p, c_curr, reduction, reduction_prev, self.op_names, self.partial_channels
            )

        self.stem, self.cells, c_p = build_cell_stack(c_in, channels, layers, stem_multiplier, make_cell)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, n_classes)

    def _inputs_per_node(self) -> list[int]:
        return [node + 2 for node in range(self.nodes)]

    def edge_scales(self) -> dict[str, torch.Tensor] | None:
        """PC-DARTS' normalised beta per edge, by cell type (None without edge normalisation)."""
        if self.beta_normal is None or self.beta_reduce is None:
            return None
        n = self._inputs_per_node()
        return {"normal": edge_softmax(self.beta_normal, n), "reduce": edge_softmax(self.beta_reduce, n)}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w_normal, i_normal = self.edge_weights(self.alpha_normal, "normal")
        w_reduce, i_reduce = self.edge_weights(self.alpha_reduce, "reduce")
        scales = self.edge_scales()
        s0 = s1 = cpu_channels_last(self.stem(x), (self.partial_channels or 1) == 1)
        for cell in self.cells:
            kind = "reduce" if cell.reduction else "normal"
            w, index = (w_reduce, i_reduce) if cell.reduction else (w_normal, i_normal)
            if index is None and scales is None:
                s0, s1 = s1, cell(s0, s1, w)
            else:
                s0, s1 = s1, cell(s0, s1, w, index, None if scales is None else scales[kind])
        return self.classifier(self.global_pooling(s1).flatten(1))

    def cell_list(self) -> list[SearchCell]:
        """The cells, in order (typed)."""
        return modules_of(self.cells, SearchCell)

    # -- parameters ------------------------------------------------------------------
    def arch_parameters(self) -> list[nn.Parameter]:
        """``[alpha_normal, alpha_reduce]`` (+ ``beta_normal, beta_reduce``): what the architect updates."""
        betas = [b for b in (self.beta_normal, self.beta_reduce) if b is not None]
        return [self.alpha_normal, self.alpha_reduce, *betas]

    def alpha_logits(self) -> dict[str, torch.Tensor]:
        return {"normal": self.alpha_normal, "reduce": self.alpha_reduce}

    def edges(self) -> list[tuple[int, int]]:
        """``(node, input)`` of every edge, in the row order of the alphas."""
        return [(node, inp) for node in range(self.nodes) for inp in range(node + 2)]

    def edge_modules(self) -> list[tuple[str, int, nn.Module]]:
        """``(cell type, alpha row, mixed op)`` of every edge of every cell."""
        return [
            ("reduce" if cell.reduction else "normal", e, edge)
            for cell in self.cell_list()
            for e, edge in enumerate(cell.edge_list())
        ]

    # -- architecture ------------------------------------------------------------------
    def concat(self) -> tuple[int, ...]:
        """States concatenated into a cell's output (the last ``multiplier`` nodes)."""
        return tuple(range(2 + self.nodes - self.multiplier, 2 + self.nodes))

    def discretization_weights(self) -> dict[str, torch.Tensor]:
        """What the genotype ranks: ``softmax(alpha)``, times PC-DARTS' normalised beta per edge."""
        weights = self.alphas()
        scales = self.edge_scales()
        if scales is not None:
            weights = {k: w * scales[k].detach().unsqueeze(-1) for k, w in weights.items()}
        return weights

    def genotype(self) -> Genotype:
        """The DARTS discretization (top-2 edges, strongest non-none op) of :meth:`discretization_weights`."""
        concat = self.concat()
        w = self.discretization_weights()
        return Genotype(
            normal=discretize(w["normal"], self.op_names, self.nodes, apply_softmax=False),
            normal_concat=concat,
            reduce=discretize(w["reduce"], self.op_names, self.nodes, apply_softmax=False),
            reduce_concat=concat,
        )

    def discretized(self, genotype: Genotype | dict[str, Any] | None = None) -> CellNetwork:
        """The discrete network of ``genotype`` (default: ``self.genotype()``) with inherited weights.

        A ``CellNetwork`` with ``affine=False`` and ``pool_bn=True`` (the search-time ops),
        the same channels, layers and stem; the stem, the cells' preprocessing, every kept
        ``(edge, op)`` and the classifier are copies of the supernet's (including BatchNorm
        running statistics: recalibrate them with ``recalibrate_batchnorm`` before
        evaluating, since they describe the mixture). With ``partial_channels`` K every kept
        op stays on ``C / K`` channels with the bypass and shuffle (``cell_network``'s
        ``partial_channels``), so its weights are inherited; edge normalisation's beta is
        dropped (a node sums its two ops). Returned on the supernet's device and dtype, in
        its train/eval mode.
        """
        geno = self.genotype() if genotype is None else Genotype.from_dict(genotype)
        if geno.n_nodes != self.nodes:
            raise ValueError(f"genotype has {geno.n_nodes} nodes per cell; this supernet has nodes={self.nodes}")
        for cell in ("normal", "reduce"):
            pairs, concat = geno.cell(cell)
            if len(concat) != self.multiplier:
                raise ValueError(
                    f"genotype.{cell}_concat has {len(concat)} nodes; this supernet concatenates multiplier="
                    f"{self.multiplier} (the inherited weights need the same cell output width)"
                )
            unknown = sorted({op for op, _ in pairs} - set(self.op_names))
            if unknown:
                raise ValueError(
                    f"genotype.{cell} uses op(s) {unknown} that this supernet does not have; its ops: {self.op_names}"
                )
        ref = self.alpha_normal
        net = CellNetwork(
            self.input_shape,
            self.n_classes,
            geno.to_dict(),
            channels=self.channels,
            layers=self.layers,
            stem_multiplier=self.stem_multiplier,
            affine=False,
            drop_path=0.0,
            pool_bn=True,
            partial_channels=self.partial_channels or 1,
        ).to(device=ref.device, dtype=ref.dtype)
        net.stem.load_state_dict(self.stem.state_dict())
        net.classifier.load_state_dict(self.classifier.state_dict())
        starts = [node * (node + 3) // 2 for node in range(self.nodes)]  # first edge of each node
        for src, dst in zip(self.cell_list(), net.cell_list()):
            dst.preprocess0.load_state_dict(src.preprocess0.state_dict())
            dst.preprocess1.load_state_dict(src.preprocess1.state_dict())
            edges = src.edge_list()
            for j, (op, inp) in enumerate(zip(dst.op_names, dst.indices)):
                inherited_op(edges[starts[j // 2] + inp], op, dst.ops[j])
        net.train(self.training)
        return net

    # -- the model protocol ------------------------------------------------------------
    def sites(self) -> list[str]:
        """No width sites: a supernet does not grow."""
        return []

    def widths(self) -> dict[str, int]:
        return {}

    def spec(self) -> ArchSpec:
        """Every constructor argument, JSON types only (the alphas are in ``state_dict``)."""
        return ArchSpec(
            kind="darts_supernet",
            params={
                "input_shape": list(self.input_shape),
                "n_classes": self.n_classes,
                "channels": self.channels,
                "layers": self.layers,
                "nodes": self.nodes,
                "multiplier": self.multiplier,
                "stem_multiplier": self.stem_multiplier,
                "ops": list(self.op_names),
                "partial_channels": self.partial_channels,
                "edge_normalization": self.edge_normalization,
            },
        )
