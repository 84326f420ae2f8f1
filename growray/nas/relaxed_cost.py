"""Training FLOPs of the ops a DARTS-family supernet computes, summed from per-op counts.

A GDAS weight step computes one sampled op per edge (``growray.nas.gdas``), and an ENAS step
on ``nb201_supernet`` the one op per edge of the sampled cell; the sample changes every step,
while the parameters do not, so a count cached by parameters would charge every step the
first sample. Counting every step's ops with a counted forward + backward pass of the whole
supernet would cost about as much as the step (and ENAS on NAS-Bench-201 would keep up to
15,625 cells), so ``SupernetCosts.training_flops`` adds up counts of the parts, each counted
once by ``growray.cost.training_flops_per_sample`` under its conventions (matmuls and
convolutions only, 2 FLOPs per multiply-add; a backward pass = the weight gradients plus the
input gradient where the input needs one):

    cost(indices) = full - sum_e unit(e, ref_e) + sum_e unit(e, indices_e)

``full`` is one counted pass of the whole supernet in eval mode, whose forward computes the
ops ``ref`` (``RelaxedSupernet.edge_indices(training=False)``: GDAS' argmax, ENAS' set cell,
or every op under DARTS' softmax); ``unit(e, o)`` is op ``o`` of edge ``e`` alone, forward and
backward with its input gradient, on the input shape the edge sees in that pass. What is not
an edge (stem, preprocessing, residual blocks, classifier) is the same under every sample, so
``full`` minus the reference edges is their count; the sum is exact because FLOPs add up over
modules.

Why every edge's backward counts (unlike ENAS' micro cells, ``growray.nas.enas_cost``): every
edge of these cells exists in every sample, and every node reaches the cell output (a DARTS
node feeds every later node, the last of which is concatenated; a NAS-Bench-201 node feeds the
output node), so every op's output reaches the loss and every op's input, a state after
trainable weights, needs a gradient. The ``none`` op (``x * 0``) keeps that path in autograd:
the backward runs through it, at no FLOPs of its own. The straight-through gradient to alpha
(``h = one_hot - sg(y) + y``, ``h[index] * op(x)``) is elementwise, so it adds nothing here; the
architecture steps are counted as they run (``cost/train_flops/arch``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from growray.cost import training_flops_per_sample

if TYPE_CHECKING:
    from growray.nas.relaxed import RelaxedSupernet

__all__ = ["SupernetCosts"]

Shape = tuple[int, ...]
Indices = dict[str, tuple[int, ...]] | None


class _OneOp(nn.Module):
    """Edge ``edge`` computing only its op ``index`` (weight 1), as in a GDAS forward."""

    def __init__(self, edge: nn.Module, index: int, n_ops: int, ref: torch.Tensor) -> None:
        super().__init__()
        # first parameter: where growray.cost puts the probe input (an edge of parameter-free
        # ops has none of its own); frozen, so it takes no part in the count
        self.ref = nn.Parameter(torch.empty(0, device=ref.device, dtype=ref.dtype), requires_grad=False)
        self.edge = edge
        self.index, self.n_ops = index, n_ops

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weights = torch.zeros(self.n_ops, device=x.device, dtype=x.dtype)
        weights[self.index] = 1.0
        return self.edge(x, weights, self.index)


class _Base:
    def __init__(self, full: int, ref: Indices, edges: list[tuple[str, int, nn.Module, Shape]]) -> None:
        self.full, self.ref, self.edges = full, ref, edges


class SupernetCosts:
    """Per-sample training FLOPs of a supernet computing given ops (module docstring).

    Keeps one full counted pass per input shape and every counted ``(edge, op)`` per input
    shape; a supernet's modules never change shape, so each is counted once, the first time
    it is needed.

    Args:
        net: the supernet whose forwards are counted.
    """

    def __init__(self, net: RelaxedSupernet) -> None:
        self._net = net
        self._bases: dict[Shape, _Base] = {}
        self._units: dict[tuple[int, int, Shape], int] = {}

    def _base(self, shape: Shape) -> _Base:
        if shape not in self._bases:
            net = self._net
            edges = net.edge_modules()
            found: dict[int, Shape] = {}
            handles = []
            for j, (_, _, edge) in enumerate(edges):

                def record(m: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor, at: int = j) -> None:
                    found[at] = tuple(args[0].shape[1:])

                handles.append(edge.register_forward_hook(record))
            try:
                full = training_flops_per_sample(net, shape)  # eval mode: the ops edge_indices(False) names
            finally:
                for handle in handles:
                    handle.remove()
            ref = net.edge_indices(training=False)
            self._bases[shape] = _Base(full, ref, [(k, row, e, found[j]) for j, (k, row, e) in enumerate(edges)])
        return self._bases[shape]

    def _unit(self, j: int, edge: nn.Module, index: int, shape: Shape) -> int:
        key = (j, index, shape)
        if key not in self._units:
            probe = _OneOp(edge, index, len(self._net.op_names), next(self._net.parameters()))
            modes = {m: m.training for m in edge.modules()}  # the probe's mode restore must not reach them
            try:
                self._units[key] = training_flops_per_sample(probe, shape, input_requires_grad=True)
            finally:
                for m, mode in modes.items():
                    m.training = mode
        return self._units[key]

    def _edges(self, base: _Base, indices: Indices) -> int:
        total = 0
        for j, (kind, row, edge, shape) in enumerate(base.edges):
            chosen = range(len(self._net.op_names)) if indices is None else (indices[kind][row],)
            total += sum(self._unit(j, edge, o, shape) for o in chosen)
        return total

    def training_flops(self, indices: Indices, shape: Shape) -> int:
        """Forward + backward FLOPs per sample of a training step whose forward computes
        ``indices`` (op per edge by cell type, as ``RelaxedSupernet.edge_indices``; None:
        every op) on inputs of ``shape``."""
        base = self._base(shape)
        if indices == base.ref:
            return base.full
        return base.full - self._edges(base, base.ref) + self._edges(base, indices)
