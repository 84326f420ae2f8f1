"""Genotypes: the discrete cell architecture found by DARTS or ENAS, as JSON-able data.

A cell has two inputs (the outputs of cells k-2 and k-1, inputs 0 and 1) and
``n_nodes`` intermediate nodes; node ``i`` is input ``i + 2`` of the later nodes. Each
node sums two ``(op_name, input_index)`` terms. The cell output concatenates the nodes
listed in ``*_concat`` (DARTS: all of them; ENAS: the loose ends).

The supernet's edges are ordered node by node: node 0 from inputs 0, 1; node 1 from
inputs 0, 1, 2; ... (14 edges for 4 nodes). ``discretize`` applies the DARTS rule to
architecture weights in that order.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from growray.checks import check_int
from growray.nas.ops import OPS, PARAMETER_FREE_OPS
from growray.registry import UnknownNameError

__all__ = ["Genotype", "alpha_entropy", "count_op", "discretize", "n_edges", "skip_fraction"]

_CELLS = ("normal", "reduce")


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def n_edges(n_nodes: int) -> int:
    """Edges of a DARTS cell with ``n_nodes`` intermediate nodes: 2 + 3 + ... + (n_nodes + 1)."""
    return n_nodes * (n_nodes + 3) // 2


def _check_pairs(where: str, pairs: object) -> tuple[tuple[str, int], ...]:
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence) or len(pairs) == 0 or len(pairs) % 2:
        raise ValueError(
            f"genotype.{where} must be a non-empty list of [op_name, input_index] pairs, two per node; got {pairs!r}"
        )
    out = []
    for j, pair in enumerate(pairs):
        if isinstance(pair, (str, bytes)) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise ValueError(f"genotype.{where}[{j}] must be a pair [op_name, input_index]; got {pair!r}")
        op, idx = pair
        try:
            OPS.get(op)
        except UnknownNameError as e:
            raise ValueError(f"genotype.{where}[{j}]: {e}") from None
        node = j // 2
        if not _is_int(idx) or not 0 <= idx < node + 2:
            raise ValueError(
                f"genotype.{where}[{j}] (node {node}) reads input {idx!r}; node {node} may read inputs "
                f"0..{node + 1} (0, 1 = the cell inputs, i + 2 = node i)"
            )
        out.append((op, idx))
    return tuple(out)


def _check_concat(where: str, concat: object, n_nodes: int) -> tuple[int, ...]:
    if isinstance(concat, (str, bytes)) or not isinstance(concat, Sequence) or len(concat) == 0:
        raise ValueError(f"genotype.{where} must be a non-empty list of node indices; got {concat!r}")
    for c in concat:
        if not _is_int(c) or not 2 <= c < n_nodes + 2:
            raise ValueError(
                f"genotype.{where} entries must be intermediate nodes 2..{n_nodes + 1} (for {n_nodes} nodes); "
                f"got {c!r} in {list(concat)!r}"
            )
    if len(set(concat)) != len(concat):
        raise ValueError(f"genotype.{where} must not repeat a node; got {list(concat)!r}")
    return tuple(concat)


@dataclass(frozen=True)
class Genotype:
    """A normal and a reduction cell, each two ``(op_name, input_index)`` pairs per node.

    Lists are accepted and stored as tuples; every op must be registered in ``OPS``.
    Both cells must have the same number of nodes.
    """

    normal: tuple[tuple[str, int], ...]
    normal_concat: tuple[int, ...]
    reduce: tuple[tuple[str, int], ...]
    reduce_concat: tuple[int, ...]

    def __post_init__(self) -> None:
        normal = _check_pairs("normal", self.normal)
        reduce = _check_pairs("reduce", self.reduce)
        if len(normal) != len(reduce):
            raise ValueError(
                f"genotype.normal and genotype.reduce must have the same number of nodes; got "
                f"{len(normal) // 2} and {len(reduce) // 2}"
            )
        n = len(normal) // 2
        object.__setattr__(self, "normal", normal)
        object.__setattr__(self, "reduce", reduce)
        object.__setattr__(self, "normal_concat", _check_concat("normal_concat", self.normal_concat, n))
        object.__setattr__(self, "reduce_concat", _check_concat("reduce_concat", self.reduce_concat, n))

    @property
    def n_nodes(self) -> int:
        """Intermediate nodes per cell."""
        return len(self.normal) // 2

    def cell(self, cell: str) -> tuple[tuple[tuple[str, int], ...], tuple[int, ...]]:
        """``(pairs, concat)`` of the ``"normal"`` or ``"reduce"`` cell."""
        if cell not in _CELLS:
            raise ValueError(f"cell must be 'normal' or 'reduce'; got {cell!r}")
        return getattr(self, cell), getattr(self, f"{cell}_concat")

    def to_dict(self) -> dict[str, Any]:
        """JSON types only (lists), the inverse of ``from_dict``."""
        return {
            "normal": [[op, idx] for op, idx in self.normal],
            "normal_concat": list(self.normal_concat),
            "reduce": [[op, idx] for op, idx in self.reduce],
            "reduce_concat": list(self.reduce_concat),
        }

    @classmethod
    def from_dict(cls, d: Genotype | Mapping[str, Any]) -> Genotype:
        """Build from ``to_dict`` output; a missing ``*_concat`` means all intermediate nodes."""
        if isinstance(d, Genotype):
            return d
        if not isinstance(d, Mapping):
            raise ValueError(f"a genotype must be a mapping with keys normal, reduce (and *_concat); got {d!r}")
        allowed = {"normal", "normal_concat", "reduce", "reduce_concat"}
        unknown = sorted(set(d) - allowed)
        if unknown:
            raise ValueError(f"genotype has unknown key(s) {unknown}; accepted: {sorted(allowed)}")
        missing = [k for k in ("normal", "reduce") if k not in d]
        if missing:
            raise ValueError(
                f"genotype is missing {missing}; it needs 'normal' and 'reduce' lists of [op, input] pairs"
            )
        normal = _check_pairs("normal", d["normal"])
        everything = list(range(2, len(normal) // 2 + 2))
        return cls(
            normal=normal,
            normal_concat=d.get("normal_concat", everything),
            reduce=d["reduce"],
            reduce_concat=d.get("reduce_concat", everything),
        )


def discretize(
    alpha: torch.Tensor, op_names: Sequence[str], n_nodes: int, k: int = 2, *, apply_softmax: bool = True
) -> tuple[tuple[str, int], ...]:
    """The DARTS rule: per node, the top-``k`` incoming edges and each one's strongest op.

    Edges are ranked by their strongest op other than ``none`` (the zero op's weight is
    underdetermined under BatchNorm), so a node keeps edges from ``k`` distinct
    predecessors (each edge has its own predecessor); ties go to the lower input index.
    Each kept edge becomes ``(argmax op excluding none, input_index)``.

    Args:
        alpha: ``[n_edges(n_nodes), len(op_names)]`` architecture logits, edges in node order.
        op_names: the op of each column; at least one must not be ``none``.
        n_nodes: intermediate nodes of the cell.
        k: edges kept per node, 1 or 2 (node 0 has two predecessors). A ``Genotype``
            needs ``k=2``.
        apply_softmax: rank by ``softmax(alpha)`` over ops, as DARTS does (False: ``alpha``
            already holds the weights to rank by).

    Returns:
        ``k`` pairs per node, in node order, each node's pairs strongest first.
    """
    check_int("n_nodes", n_nodes, minimum=1)
    check_int("k", k, minimum=1, maximum=2)  # node 0 has two predecessors
    names = list(op_names)
    if not isinstance(alpha, torch.Tensor) or alpha.dim() != 2 or tuple(alpha.shape) != (n_edges(n_nodes), len(names)):
        shape = tuple(alpha.shape) if isinstance(alpha, torch.Tensor) else type(alpha).__name__
        raise ValueError(
            f"alpha must be a [n_edges, n_ops] = [{n_edges(n_nodes)}, {len(names)}] tensor for {n_nodes} nodes and "
            f"ops {names}; got {shape}"
        )
    candidates = [j for j, n in enumerate(names) if n != "none"]
    if not candidates:
        raise ValueError(f"op_names must contain an op other than 'none' to discretize; got {names}")
    w = alpha.detach().float().cpu()
    if apply_softmax:
        w = torch.softmax(w, dim=-1)
    w = w[:, candidates]
    best_val, best_idx = w.max(dim=-1)
    out: list[tuple[str, int]] = []
    start = 0
    for node in range(n_nodes):
        n_in = node + 2
        strengths = best_val[start : start + n_in].tolist()
        order = sorted(range(n_in), key=lambda i: (-strengths[i], i))[:k]
        for i in order:
            out.append((names[candidates[int(best_idx[start + i])]], i))
        start += n_in
    return tuple(out)


def _pairs_of(genotype: Genotype | dict[str, Any], cell: str) -> tuple[tuple[str, int], ...]:
    return Genotype.from_dict(genotype).cell(cell)[0]


def skip_fraction(genotype: Genotype | dict[str, Any], cell: str = "normal") -> float:
    """Share of the cell's ops that are parameter-free (skip, pools, none): a collapse signal."""
    pairs = _pairs_of(genotype, cell)
    return sum(op in PARAMETER_FREE_OPS for op, _ in pairs) / len(pairs)


def count_op(genotype: Genotype | dict[str, Any], op: str, cell: str = "normal") -> int:
    """How many of the cell's terms use ``op`` (DARTS+ stops when skip_connect count >= 2)."""
    return sum(name == op for name, _ in _pairs_of(genotype, cell))


def alpha_entropy(alpha: torch.Tensor) -> float:
    """Mean over edges of the entropy (nats) of ``softmax(alpha)`` over ops.

    ``log(n_ops)`` for uniform weights (the initial state), 0 when every edge is one-hot.
    """
    if not isinstance(alpha, torch.Tensor) or alpha.dim() != 2 or alpha.shape[1] < 1:
        raise ValueError(f"alpha must be a [n_edges, n_ops] tensor of logits; got {getattr(alpha, 'shape', alpha)!r}")
    logp = torch.log_softmax(alpha.detach().double(), dim=-1)
    ent = -(logp.exp() * logp).sum(dim=-1)
    value = float(ent.mean())
    return 0.0 if math.isclose(value, 0.0, abs_tol=1e-12) else value
