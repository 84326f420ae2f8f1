"""Training FLOPs of the child an ENAS supernet runs, summed from per-module counts.

Each ENAS weight step trains the architecture sampled for that step, so its cost is that
child's, not the supernet's nor a single cell's. Counting every step's child with a counted
forward + backward pass would cost about as much as the step itself (and a new child comes
almost every step), so ``ChildCosts.training_flops`` adds up counts of the modules the child runs,
each counted once by ``growray.cost`` (``forward_flops``, ``training_flops_per_sample``) on
the shape it sees, under the same conventions (matmuls and convolutions only, 2 FLOPs per
multiply-add, a backward pass = the weight gradients plus the input gradient where the
input needs one).

What a child runs, per sample: the stem; in every cell both preprocessing ops and the two
chosen candidates of every node (a pair chosen twice runs twice); global pooling and the
classifier. The forward pass runs all of them. The backward pass reaches only the modules
whose output reaches the loss: every chosen candidate of a cell whose output does (every
node is concatenated into the output); a preprocessing op when some pair of a live cell
reads its input; a cell's output when it is the last, or when a live later cell reads it
(cell ``j + 1`` through its input 1, cell ``j + 2`` through its input 0); the stem when a
live cell reads it (cells 0 and 1). Inside a cell every state needs a gradient (it follows
trainable weights), so candidates count their input gradient; the stem reads data and does
not. ``tests/cost/test_cost_enas.py`` checks the sum against one counted pass of the whole
supernet and against hand counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import torch
from torch import nn

from growray.cost import forward_flops, training_flops_per_sample
from growray.cost.static import check_input_shape

if TYPE_CHECKING:
    from growray.nas.enas import EnasSupernet
    from growray.nas.genotype import Genotype

__all__ = ["ChildCosts"]

Shape = tuple[int, ...]


class _CellShapes(NamedTuple):
    sources: tuple[Shape, Shape]  # what preprocess0 and preprocess1 read
    states: tuple[Shape, Shape]  # what they output: the cell inputs 0 and 1
    node: Shape  # one intermediate node


def _shapes(net: EnasSupernet, input_shape: Shape) -> tuple[list[_CellShapes], Shape]:
    """Every cell's shapes and the classifier head's input (the last cell's output), from one
    no-grad eval pass of 2 zero samples with the architecture set (the shapes do not depend
    on it: every node is concatenated); the modules' modes are restored."""
    found: dict[tuple[int, str], Shape] = {}
    handles = []
    for j, cell in enumerate(net.cell_list()):
        for part, module in (("pre0", cell.preprocess0), ("pre1", cell.preprocess1), ("cell", cell)):

            def record(
                m: nn.Module, args: tuple[torch.Tensor, ...], out: torch.Tensor, at: tuple[int, str] = (j, part)
            ) -> None:
                found[(at[0], at[1] + ".in")] = tuple(args[0].shape[1:])
                found[(at[0], at[1] + ".out")] = tuple(out.shape[1:])

            handles.append(module.register_forward_hook(record))
    ref = next(net.parameters())
    modes = {m: m.training for m in net.modules()}
    try:
        net.eval()
        with torch.no_grad():
            net(torch.zeros((2, *input_shape), device=ref.device, dtype=ref.dtype))
    finally:
        for handle in handles:
            handle.remove()
        for m, mode in modes.items():
            m.training = mode
    cells = []
    for j in range(len(net.cell_list())):
        c, h, w = found[(j, "cell.out")]
        cells.append(
            _CellShapes(
                sources=(found[(j, "pre0.in")], found[(j, "pre1.in")]),
                states=(found[(j, "pre0.out")], found[(j, "pre1.out")]),
                node=(c // net.n_nodes, h, w),
            )
        )
    return cells, found[(len(cells) - 1, "cell.out")]


def _live_cells(reads: Sequence[tuple[bool, bool]]) -> list[bool]:
    """Whether each cell's output reaches the loss, from which of its inputs each cell reads."""
    n = len(reads)
    live = [False] * n
    for j in reversed(range(n)):
        live[j] = (
            j == n - 1
            or (j + 1 < n and live[j + 1] and reads[j + 1][1])
            or (j + 2 < n and live[j + 2] and reads[j + 2][0])
        )
    return live


class ChildCosts:
    """Per-sample training FLOPs of ENAS children of one supernet (module docstring).

    Keeps every module's count (forward, forward + backward) per input shape, and the
    supernet's shapes per input shape: a supernet's modules never change shape, so each is
    counted once, the first time a child runs it.

    Args:
        net: the supernet whose children are counted.
    """

    def __init__(self, net: EnasSupernet) -> None:
        self._net = net
        self._units: dict[tuple[str, Shape], tuple[int, int]] = {}
        self._shapes: dict[Shape, tuple[list[_CellShapes], Shape]] = {}

    def _unit(self, name: str, module: nn.Module, shape: Shape, input_grad: bool = True) -> tuple[int, int]:
        key = (name, shape)
        if key not in self._units:
            self._units[key] = (
                forward_flops(module, shape),
                training_flops_per_sample(module, shape, input_requires_grad=input_grad),
            )
        return self._units[key]

    def training_flops(self, genotype: Genotype, input_shape: Sequence[int]) -> int:
        """Forward + backward FLOPs per sample of one training step of ``genotype`` (a
        genotype that fits the supernet; ``EnasSupernet.check_genotype``)."""
        net, shape = self._net, check_input_shape(input_shape)
        if shape not in self._shapes:
            self._shapes[shape] = _shapes(net, shape)
        cell_shapes, head_in = self._shapes[shape]
        cells = net.cell_list()
        pairs_of = [genotype.reduce if c.reduction else genotype.normal for c in cells]
        reads = [(any(i == 0 for _, i in p), any(i == 1 for _, i in p)) for p in pairs_of]
        live = _live_cells(reads)
        stem_live = (live[0] and any(reads[0])) or (len(cells) > 1 and live[1] and reads[1][0])
        fwd, both = self._unit("stem", net.stem, shape, input_grad=False)  # reads data: no input gradient
        total = both if stem_live else fwd
        for j, (cell, pairs, sh) in enumerate(zip(cells, pairs_of, cell_shapes)):
            for k, pre in enumerate((cell.preprocess0, cell.preprocess1)):
                fwd, both = self._unit(f"cells.{j}.preprocess{k}", pre, sh.sources[k])
                total += both if live[j] and reads[j][k] else fwd
            for k, (op, i) in enumerate(pairs):
                node = k // 2
                fwd, both = self._unit(
                    f"cells.{j}.{node}.{i}.{op}", cell.candidate(node, (op, i)), sh.states[i] if i < 2 else sh.node
                )
                total += both if live[j] else fwd
        head = nn.Sequential(net.global_pooling, nn.Flatten(1), net.classifier)
        return total + self._unit("head", head, head_in)[1]  # its output is the loss's input: always live
