"""ENAS (micro) in pure torch: the shared-weight supernet, plus the controller and REINFORCE.

``EnasSupernet`` holds one op module for every candidate (node, input, op) of the normal
and the reduction cell of every layer; ``set_arch(genotype)`` picks the architecture that
``forward`` runs, so only the chosen candidates compute and receive gradients (ENAS'
weight sharing). The controller that picks the genotypes lives outside, in
``growray.nas.enas_controller`` (re-exported here).

Importing this module registers the ``enas_supernet`` model in ``growray.models.MODELS``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from growray.checks import check_bool, check_int
from growray.models.spec import MODELS, ArchSpec
from growray.nas.bn import batch_statistics
from growray.nas.enas_controller import EnasController, EnasSearch
from growray.nas.enas_cost import ChildCosts
from growray.nas.genotype import Genotype
from growray.nas.network import (
    Cell,
    CellNetwork,
    build_cell_stack,
    check_drop_path,
    check_image_shape,
    drop_path,
    modules_of,
)
from growray.nas.ops import ENAS_OPS, OPS, FactorizedReduce, ReLUConvBN, cpu_channels_last, make_op
from growray.registry import UnknownNameError

__all__ = ["EnasController", "EnasSearch", "EnasSupernet", "edge_index"]


def edge_index(node: int, input_index: int) -> int:
    """Position of the edge ``input_index -> node`` in node order (node 0: inputs 0, 1; node 1: 0, 1, 2; ...)."""
    return node * (node + 3) // 2 + input_index


class _SharedCell(Cell):
    """Every candidate op of one cell; ``forward`` runs the ones a genotype's pairs choose.

    ``edges[edge_index(node, i)][op]`` is the shared op from input ``i`` to ``node``. The
    preprocessing matches ``growray.nas.network.EvalCell``, so the weights transfer.
    """

    def __init__(
        self,
        n_nodes: int,
        op_names: Sequence[str],
        c_prev_prev: int,
        c_prev: int,
        C: int,
        reduction: bool,
        reduction_prev: bool,
        affine: bool,
    ):
        super().__init__()
        self.n_nodes = n_nodes
        self.multiplier = n_nodes  # every node is concatenated into the output
        self.reduction = reduction
        if reduction_prev:
            self.preprocess0: nn.Module = FactorizedReduce(c_prev_prev, C, affine)
        else:
            self.preprocess0 = ReLUConvBN(c_prev_prev, C, 1, 1, 0, affine)
        self.preprocess1 = ReLUConvBN(c_prev, C, 1, 1, 0, affine)
        self.edges = nn.ModuleList(
            nn.ModuleDict({op: make_op(op, C, 2 if reduction and i < 2 else 1, affine) for op in op_names})
            for node in range(n_nodes)
            for i in range(node + 2)
        )

    def candidate(self, node: int, pair: tuple[str, int]) -> nn.Module:
        """The shared op ``pair = (op_name, input_index)`` into ``node``."""
        op, i = pair
        edge = self.edges[edge_index(node, i)]
        if not isinstance(edge, nn.ModuleDict):
            raise TypeError(f"edge {edge_index(node, i)} of a shared cell must be a ModuleDict; got {type(edge)}")
        return edge[op]

    def forward(
        self, s0: torch.Tensor, s1: torch.Tensor, pairs: Sequence[tuple[str, int]], drop_prob: float
    ) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for node in range(self.n_nodes):
            total = None
            for pair in pairs[2 * node : 2 * node + 2]:
                op = self.candidate(node, pair)
                h = op(states[pair[1]])
                if self.training and drop_prob > 0.0 and not isinstance(op, nn.Identity):
                    h = drop_path(h, drop_prob)
                total = h if total is None else total + h
            states.append(total)
        return torch.cat(states[2:], dim=1)


@MODELS.register("enas_supernet")
class EnasSupernet(nn.Module):
    """ENAS' shared child weights over micro cells, with the layout of ``CellNetwork``.

    Stem (3x3 conv to ``stem_multiplier * channels``, BatchNorm), ``layers`` cells with
    reduction cells at ``layers // 3`` and ``2 * layers // 3`` (channels doubled, H and W
    halved; ops reading the cell inputs use stride 2), global average pooling, Linear.
    Every cell concatenates all ``nodes`` intermediate nodes (the controller's genotypes
    do), so the widths do not depend on the sampled architecture; the paper concatenates
    only the unused nodes.

    Each layer owns one op per (node, input, op) candidate; a node that picks the same
    (input, op) twice applies that one module twice. ``discretized`` copies the chosen
    candidates into a ``CellNetwork`` (inherited weights).

    Args:
        input_shape: ``(C, H, W)`` of one sample; supplied by growray.
        n_classes: number of logits; supplied by growray.
        channels: channels of the first cells (doubled by each reduction cell); 20 in ENAS.
        layers: number of cells (>= 1); 6 in ENAS' search.
        nodes: intermediate nodes per cell (>= 1); 5 in ENAS.
        ops: candidate op names registered in ``OPS`` (unique); ENAS' five by default.
        stem_multiplier: the stem outputs ``stem_multiplier * channels`` channels.
        affine: learnable BatchNorm scale/shift in the cells. True by default: unlike a
            DARTS mixed op, an ENAS child runs one op per edge, so its BatchNorms need not
            be non-affine.
        drop_path: drop-path probability in [0, 1) on non-identity ops, training mode only
            (ENAS' search used keep probability 0.6, i.e. 0.4).
    """

    def __init__(
        self,
        input_shape: tuple[int, ...],
        n_classes: int,
        channels: int = 20,
        layers: int = 6,
        nodes: int = 5,
        ops: list[str] = list(ENAS_OPS),  # noqa: B006 - never mutated; the config schema needs a default
        stem_multiplier: int = 3,
        affine: bool = True,
        drop_path: float = 0.0,
    ):
        super().__init__()
        c_in, h, w = check_image_shape(input_shape, "enas_supernet")
        check_int("n_classes", n_classes, minimum=1)
        check_int("channels", channels, minimum=1)
        check_int("layers", layers, minimum=1)
        check_int("nodes", nodes, minimum=1)
        check_int("stem_multiplier", stem_multiplier, minimum=1)
        if isinstance(ops, (str, bytes)) or not isinstance(ops, Sequence) or len(ops) == 0:
            raise ValueError(f"ops must be a non-empty list of op names registered in OPS; got {ops!r}")
        for i, op in enumerate(ops):
            try:
                OPS.get(op)
            except UnknownNameError as e:  # names the registered ops and the closest match
                raise ValueError(f"ops[{i}]: {e}") from None
        if len(set(ops)) != len(ops):
            raise ValueError(f"ops must not repeat a name; got {list(ops)!r}")
        self.input_shape = (c_in, h, w)
        self.n_classes = n_classes
        self.channels = channels
        self.layers = layers
        self.n_nodes = nodes
        self.op_names = tuple(ops)
        self.stem_multiplier = stem_multiplier
        self.affine = check_bool("affine", affine)
        self.drop_path = check_drop_path(drop_path)
        self._arch: Genotype | None = None
        self._eval_batch_stats = False
        self._child_costs = ChildCosts(self)

        def make_cell(c_pp: int, c_p: int, c_curr: int, reduction: bool, reduction_prev: bool) -> _SharedCell:
            return _SharedCell(nodes, self.op_names, c_pp, c_p, c_curr, reduction, reduction_prev, affine)

        self.stem, self.cells, c_p = build_cell_stack(c_in, channels, layers, stem_multiplier, make_cell)
        self.global_pooling = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, n_classes)

    @property
    def arch(self) -> Genotype | None:
        """The genotype ``forward`` runs, or None before ``set_arch``."""
        return self._arch

    def check_genotype(self, genotype: Genotype | dict[str, Any]) -> Genotype:
        """``genotype`` as a ``Genotype`` that fits this supernet, or a ValueError saying why."""
        g = Genotype.from_dict(genotype)
        if g.n_nodes != self.n_nodes:
            raise ValueError(
                f"the genotype has {g.n_nodes} nodes per cell; this enas_supernet has nodes={self.n_nodes}"
            )
        everything = tuple(range(2, self.n_nodes + 2))
        for name in ("normal", "reduce"):
            pairs, concat = g.cell(name)
            if tuple(concat) != everything:
                raise ValueError(
                    f"genotype.{name}_concat is {list(concat)}; the enas_supernet concatenates every intermediate "
                    f"node, so it must be {list(everything)}"
                )
            bad = sorted({op for op, _ in pairs} - set(self.op_names))
            if bad:
                raise ValueError(
                    f"genotype.{name} uses {bad}, which are not candidates of this supernet: {list(self.op_names)}"
                )
        return g

    def set_arch(self, genotype: Genotype | dict[str, Any]) -> None:
        """Choose the architecture ``forward`` runs (a ``Genotype`` or its dict)."""
        self._arch = self.check_genotype(genotype)

    def cost_key(self) -> Genotype | None:
        """The architecture set: what, beside the parameters, decides the cost of ``forward``
        (``growray.cost.architecture_key``)."""
        return self._arch

    def training_flops_per_sample(self, input_shape: Sequence[int]) -> int:
        """Forward + backward FLOPs per sample of a training step of the architecture set,
        summed from per-module counts (``growray.nas.enas_cost``); ``TrainingCompute`` calls
        it at every weight step, so each step is charged the child sampled for it."""
        if self._arch is None:
            raise RuntimeError("EnasSupernet.training_flops_per_sample needs an architecture: call set_arch first")
        return self._child_costs.training_flops(self._arch, input_shape)

    @property
    def eval_batch_stats(self) -> bool:
        """Whether eval-mode ``forward`` normalises with the batch's own BatchNorm statistics.

        Off by default; change it with :meth:`set_eval_batch_stats`. See that method for
        why an ENAS supernet is evaluated this way.
        """
        return self._eval_batch_stats

    def set_eval_batch_stats(self, enabled: bool) -> None:
        """Evaluate with batch BatchNorm statistics (``enabled``) or the running ones.

        The running statistics of the shared BatchNorms average over every architecture
        trained so far, so in plain eval mode they misjudge any single one (ENAS scores a
        sampled cell on the shared weights with batch statistics for this reason). With the
        switch on, ``forward`` in eval mode normalises every BatchNorm with the batch's own
        mean and variance and leaves ``running_mean``, ``running_var`` and
        ``num_batches_tracked`` untouched; drop-path stays off, as in any eval-mode forward.
        Training mode is unaffected. The switch is state of this module, not a constructor
        argument: the spec, the resolved config and ``state_dict`` do not carry it, and it
        survives ``train()`` / ``eval()``. The ENAS hook turns it on, so that the trainer's
        one evaluation measures the derived cell the way ENAS scores it; :meth:`arch_accuracy`
        with ``batch_stats=True`` uses the same mechanism.

        Raises:
            ValueError: ``enabled`` is not a bool.
        """
        self._eval_batch_stats = check_bool("enabled", enabled)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._arch is None:
            raise RuntimeError(
                "EnasSupernet.forward needs an architecture: call set_arch(genotype) first "
                "(e.g. with EnasController.sample()[0])"
            )
        if self._eval_batch_stats and not self.training:
            with batch_statistics(self):
                return self._forward(x, self._arch)
        return self._forward(x, self._arch)

    def _forward(self, x: torch.Tensor, arch: Genotype) -> torch.Tensor:
        s0 = s1 = cpu_channels_last(self.stem(x))
        for cell in self.cell_list():
            pairs = arch.reduce if cell.reduction else arch.normal
            s0, s1 = s1, cell(s0, s1, pairs, self.drop_path)
        return self.classifier(self.global_pooling(s1).flatten(1))

    def cell_list(self) -> list[_SharedCell]:
        """The cells, in order (typed)."""
        return modules_of(self.cells, _SharedCell)

    @torch.no_grad()
    def arch_accuracy(
        self,
        x: torch.Tensor,
        y: torch.Tensor,
        genotype: Genotype | dict[str, Any] | None = None,
        *,
        batch_stats: bool = True,
    ) -> float:
        """Accuracy of one architecture on the shared weights (an ENAS reward or derive score).

        Args:
            x: a validation batch.
            y: its labels.
            genotype: the architecture (it stays set); None keeps the one already set.
            batch_stats: evaluate with the batch's own BatchNorm statistics, buffers
                untouched (default): an eval-mode forward with :meth:`set_eval_batch_stats`
                on, whose docstring says why. False evaluates in plain eval mode.

        Drop-path is off either way; every submodule's train/eval mode and the
        ``eval_batch_stats`` switch are restored afterwards.
        """
        if genotype is not None:
            self.set_arch(genotype)
        modes = {m: m.training for m in self.modules()}
        switch = self._eval_batch_stats
        try:
            self.eval()
            self.set_eval_batch_stats(batch_stats)
            return (self(x).argmax(dim=1) == y).float().mean().item()
        finally:
            self._eval_batch_stats = switch
            for m, mode in modes.items():
                m.training = mode

    def chosen_modules(self, genotype: Genotype | dict[str, Any]) -> list[nn.Module]:
        """The shared op modules that ``genotype`` uses (each once, in layer and pair order)."""
        g = self.check_genotype(genotype)
        out: list[nn.Module] = []
        for cell in self.cell_list():
            pairs = g.reduce if cell.reduction else g.normal
            for k, pair in enumerate(pairs):
                m = cell.candidate(k // 2, pair)
                if all(m is not o for o in out):
                    out.append(m)
        return out

    def discretized(self, genotype: Genotype | dict[str, Any]) -> CellNetwork:
        """A ``CellNetwork`` for ``genotype`` whose weights and BatchNorm buffers are copies of
        the chosen candidates (plus stem, preprocessing and classifier).

        In eval mode its output equals this supernet's with ``set_arch(genotype)``. The
        shared BatchNorm statistics describe every architecture that used them, so
        recalibrate them (``growray.nas.recalibrate_batchnorm``) before evaluating.
        """
        g = self.check_genotype(genotype)
        ref = next(self.parameters())
        net = CellNetwork(
            self.input_shape,
            self.n_classes,
            g.to_dict(),
            channels=self.channels,
            layers=self.layers,
            stem_multiplier=self.stem_multiplier,
            affine=self.affine,
            drop_path=self.drop_path,
        ).to(device=ref.device, dtype=ref.dtype)
        net.stem.load_state_dict(self.stem.state_dict())
        net.classifier.load_state_dict(self.classifier.state_dict())
        for shared, cell in zip(self.cell_list(), net.cell_list()):
            cell.preprocess0.load_state_dict(shared.preprocess0.state_dict())
            cell.preprocess1.load_state_dict(shared.preprocess1.state_dict())
            pairs = g.reduce if shared.reduction else g.normal
            for k, pair in enumerate(pairs):
                cell.ops[k].load_state_dict(shared.candidate(k // 2, pair).state_dict())
        net.train(self.training)
        return net

    def weight_parameters(self) -> list[nn.Parameter]:
        """Every parameter (the controller is a separate module)."""
        return list(self.parameters())

    def sites(self) -> list[str]:
        """No width sites: a supernet does not grow."""
        return []

    def widths(self) -> dict[str, int]:
        return {}

    def spec(self) -> ArchSpec:
        """Every constructor argument, JSON types only; ``build_model`` of it rebuilds this supernet
        (the architecture set by ``set_arch`` is state, not part of the spec)."""
        return ArchSpec(
            kind="enas_supernet",
            params={
                "input_shape": list(self.input_shape),
                "n_classes": self.n_classes,
                "channels": self.channels,
                "layers": self.layers,
                "nodes": self.n_nodes,
                "ops": list(self.op_names),
                "stem_multiplier": self.stem_multiplier,
                "affine": self.affine,
                "drop_path": self.drop_path,
            },
        )
