"""NAS-Bench-201's search supernet (``nb201_supernet``) on its macro skeleton (``growray.nas.nb201_network``).

The supernet's edges are DARTS mixed ops with non-affine BatchNorm (NAS-Bench-201's search
setting), no BatchNorm after pooling (NAS-Bench-201's ops have none); the same relaxations as
``darts_supernet``: softmax (DARTS), ``set_gumbel`` (GDAS), ``partial_channels`` and
``edge_normalization`` (PC-DARTS). One alpha ``[n_edges, n_ops]`` is shared by every cell.

ENAS searches the same supernet with shared weights: ``set_arch(genotype)`` makes ``forward``
run that one cell (each edge computes only its op, in every cell; alpha takes no part), and
``set_eval_batch_stats`` / ``arch_accuracy`` score a cell with each batch's own BatchNorm
statistics, as ``EnasSupernet`` does (``growray.nas.enas``; the ENAS controller for this
space is ``growray.nas.enas_nb201``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from growray.checks import check_bool, check_int
from growray.models.spec import MODELS, ArchSpec
from growray.nas.bn import batch_statistics
from growray.nas.darts import _check_ops, inherited_op, make_edge
from growray.nas.nb201 import Nb201Genotype, discretize_nb201, nb201_edges
from growray.nas.nb201_network import Nb201Network, ResNetBasicBlock, _Cell, _check_common, _stack
from growray.nas.ops import NB201_OPS, cpu_channels_last
from growray.nas.pcdarts import check_partial_channels, edge_softmax
from growray.nas.relaxed import RelaxedSupernet

__all__ = ["Nb201Network", "Nb201Supernet", "ResNetBasicBlock"]


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
        # mul_, not 1e-3 * x: the same values, but on the meta device (growray validate) the
        # out-of-place product goes through a Python kernel that imports torch._dynamo (~2.5 s)
        self.alpha = nn.Parameter(torch.randn(n, len(self.op_names)).mul_(1e-3))
        self.beta: nn.Parameter | None = nn.Parameter(torch.randn(n).mul_(1e-3)) if self.edge_normalization else None

        def make_cell(c: int) -> nn.Module:
            return _SearchCell(c, self.nodes, self.op_names, self.partial_channels)

        self.stem, self.cells, self.lastact, c_last = _stack(self.input_shape[0], channels, cells_per_stage, make_cell)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_last, n_classes)
        self._arch: Nb201Genotype | None = None
        self._eval_batch_stats = False

    # -- ENAS: one cell on the shared weights (module docstring)
    @property
    def arch(self) -> Nb201Genotype | None:
        """The cell ``forward`` runs (ENAS), or None: the relaxation of alpha (DARTS, GDAS)."""
        return self._arch

    def set_arch(self, genotype: Nb201Genotype | dict[str, Any] | str | None) -> None:
        """Run ``genotype`` (each edge only its op, weight 1, alpha and beta unused), or the
        relaxation again (None). Like GDAS' switch, this is module state, not in the spec or
        ``state_dict``."""
        self._arch = None if genotype is None else self._check_genotype(genotype)

    def set_eval_batch_stats(self, enabled: bool) -> None:
        """Eval-mode ``forward`` normalises with each batch's own BatchNorm statistics, buffers
        untouched (``EnasSupernet.set_eval_batch_stats`` says why ENAS evaluates this way)."""
        self._eval_batch_stats = check_bool("enabled", enabled)

    @torch.no_grad()
    def arch_accuracy(
        self, x: torch.Tensor, y: torch.Tensor, genotype: Nb201Genotype | dict[str, Any] | str | None = None
    ) -> float:
        """Accuracy of one cell on the shared weights, with batch statistics (an ENAS reward);
        ``genotype`` stays set (None: the one set). Modes are restored afterwards."""
        if genotype is not None:
            self.set_arch(genotype)
        if self._arch is None:
            raise RuntimeError("arch_accuracy needs a cell: pass a genotype or call set_arch first")
        modes = {m: m.training for m in self.modules()}
        try:
            self.eval()
            with batch_statistics(self):
                return (self(x).argmax(dim=1) == y).float().mean().item()
        finally:
            for m, mode in modes.items():
                m.training = mode

    def edge_indices(self, training: bool) -> dict[str, tuple[int, ...]] | None:
        """The op every edge computes: the cell set (ENAS), else the relaxation's
        (``RelaxedSupernet.edge_indices``)."""
        if self._arch is not None:
            return {"cell": tuple(self.op_names.index(op) for op in self._arch.ops)}
        return super().edge_indices(training)

    def cost_key(self) -> Any:
        """What besides the parameters decides the cost of ``forward``: the cell set (ENAS),
        else the relaxation's (``RelaxedSupernet.cost_key``: GDAS' argmax cell). With a cell
        set, ``training_flops_per_sample`` sums that cell's per-op counts
        (``growray.nas.relaxed_cost``) instead of a counted pass per new cell."""
        return self._arch if self._arch is not None else super().cost_key()

    def _check_genotype(self, genotype: Nb201Genotype | dict[str, Any] | str) -> Nb201Genotype:
        geno = Nb201Genotype.from_dict(genotype)
        if geno.n_nodes != self.nodes:
            raise ValueError(f"genotype has {geno.n_nodes} nodes; this supernet has nodes={self.nodes}")
        unknown = sorted(set(geno.ops) - set(self.op_names))
        if unknown:
            raise ValueError(
                f"genotype uses op(s) {unknown} that this supernet does not have; its ops: {self.op_names}"
            )
        return geno

    def edge_scales(self) -> dict[str, torch.Tensor] | None:
        if self.beta is None:
            return None
        return {"cell": edge_softmax(self.beta, list(range(1, self.nodes)))}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._eval_batch_stats and not self.training:
            with batch_statistics(self):
                return self._forward(x)
        return self._forward(x)

    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        index: list[int] | None
        if self._arch is not None:  # ENAS: the one cell set
            index = [self.op_names.index(op) for op in self._arch.ops]
            weights = torch.zeros_like(self.alpha).scatter_(-1, torch.tensor(index, device=x.device)[:, None], 1.0)
            scale = None
        else:
            weights, index = self.edge_weights(self.alpha, "cell")
            scales = self.edge_scales()
            scale = None if scales is None else scales["cell"]
        h = cpu_channels_last(self.stem(x), (self.partial_channels or 1) == 1)
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

    def edge_modules(self) -> list[tuple[str, int, nn.Module]]:
        """``("cell", alpha row, mixed op)`` of every edge of every search cell."""
        return [
            ("cell", e, edge)
            for cell in self.cells
            if isinstance(cell, _SearchCell)
            for e, edge in enumerate(cell.edges)
        ]

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
        geno = self.genotype() if genotype is None else self._check_genotype(genotype)
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
