"""The supernet cases of the NAS conformance suite (``growray.testing.supernets``): every
registered supernet on a tiny config, with how it computes one architecture.

A new supernet (or a new way of running one, such as GDAS' sampler or ENAS' ``set_arch``) is
tested by adding a :class:`SupernetCase` to :data:`SUPERNET_CASES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from growray.models import MODELS
from growray.nas import DartsSupernet, EnasSupernet, Genotype, Nb201Genotype, Nb201Supernet, RelaxedSupernet, n_edges

__all__ = ["PEAK", "SUPERNET_CASES", "SupernetCase", "peak_alphas"]

PEAK = 20.0


def _darts(model: nn.Module) -> DartsSupernet:
    if not isinstance(model, DartsSupernet):
        raise TypeError(f"expected a DartsSupernet; got {type(model).__name__}")
    return model


def _enas(model: nn.Module) -> EnasSupernet:
    if not isinstance(model, EnasSupernet):
        raise TypeError(f"expected an EnasSupernet; got {type(model).__name__}")
    return model


def _darts_genotype(model: nn.Module, gen: torch.Generator) -> Genotype:
    """Two distinct inputs per node (ascending, as DARTS' tie-break orders equal strengths),
    each with a random op other than ``none``."""
    net = _darts(model)
    ops = [o for o in net.op_names if o != "none"]
    cells = []
    for _ in range(2):
        pairs: list[tuple[str, int]] = []
        for node in range(net.nodes):
            inputs = sorted(torch.randperm(node + 2, generator=gen)[:2].tolist())
            pairs += [(ops[int(torch.randint(len(ops), (1,), generator=gen))], i) for i in inputs]
        cells.append(tuple(pairs))
    concat = net.concat()
    return Genotype(normal=cells[0], normal_concat=concat, reduce=cells[1], reduce_concat=concat)


def peak_alphas(model: nn.Module, genotype: Genotype, scale: float = PEAK) -> None:
    """Set a DARTS supernet's alphas to ``+scale`` on each kept ``(edge, op)`` and ``-scale``
    elsewhere; a dropped edge puts ``+scale`` on ``none``, so it contributes ~0."""
    net = _darts(model)
    if "none" not in net.op_names:
        raise ValueError(f"peak_alphas needs the 'none' op to drop edges; this supernet has {net.op_names}")
    for alpha, pairs in ((net.alpha_normal, genotype.normal), (net.alpha_reduce, genotype.reduce)):
        a = torch.full((n_edges(net.nodes), len(net.op_names)), -scale)
        start = 0
        for node in range(net.nodes):
            kept = {inp: op for op, inp in pairs[2 * node : 2 * node + 2]}
            for inp in range(node + 2):
                a[start + inp, net.op_names.index(kept.get(inp, "none"))] = scale
            start += node + 2
        with torch.no_grad():
            alpha.copy_(a)


def _enas_genotype(model: nn.Module, gen: torch.Generator) -> Genotype:
    """Any two (op, input) pairs per node, an input possibly read twice; every node concatenated."""
    net = _enas(model)
    cells = []
    for _ in range(2):
        pairs = [
            (net.op_names[int(torch.randint(len(net.op_names), (1,), generator=gen))], int(i))
            for node in range(net.n_nodes)
            for i in torch.randint(node + 2, (2,), generator=gen).tolist()
        ]
        cells.append(tuple(pairs))
    concat = tuple(range(2, net.n_nodes + 2))
    return Genotype(normal=cells[0], normal_concat=concat, reduce=cells[1], reduce_concat=concat)


def _shared(model: nn.Module) -> EnasSupernet | Nb201Supernet:
    """A supernet that runs one architecture set by ``set_arch`` (ENAS' shared weights)."""
    if not isinstance(model, (EnasSupernet, Nb201Supernet)):
        raise TypeError(f"expected an EnasSupernet or an Nb201Supernet; got {type(model).__name__}")
    return model


def _enas_select(model: nn.Module, genotype: Any) -> None:
    _shared(model).set_arch(genotype)


def _enas_carry(src: nn.Module, dst: nn.Module) -> None:
    arch: Any = _shared(src).arch  # a Genotype or an Nb201Genotype, of the same kind as dst
    if arch is not None:
        _shared(dst).set_arch(arch)


def _nothing_to_carry(src: nn.Module, dst: nn.Module) -> None:
    """Everything the supernet computes with is in its ``state_dict``."""


def _nb201(model: nn.Module) -> Nb201Supernet:
    if not isinstance(model, Nb201Supernet):
        raise TypeError(f"expected an Nb201Supernet; got {type(model).__name__}")
    return model


def _nb201_genotype(model: nn.Module, gen: torch.Generator) -> Nb201Genotype:
    """Any op on every edge (``none`` included), at least one edge into the last node computing."""
    net = _nb201(model)
    names = list(net.op_names)
    while True:
        ops = tuple(names[int(i)] for i in torch.randint(len(names), (len(net.edges()),), generator=gen))
        if any(op != "none" for op in ops[-(net.nodes - 1) :]):
            return Nb201Genotype(ops)


def _peak_nb201(model: nn.Module, genotype: Any, scale: float = PEAK) -> None:
    net = _nb201(model)
    a = torch.full(tuple(net.alpha.shape), -scale)
    for e, op in enumerate(Nb201Genotype.from_dict(genotype).ops):
        a[e, net.op_names.index(op)] = scale
    with torch.no_grad():
        net.alpha.copy_(a)


def _gdas_on(model: nn.Module) -> None:
    if not isinstance(model, RelaxedSupernet):
        raise TypeError(f"expected a RelaxedSupernet; got {type(model).__name__}")
    model.set_gumbel(1.0, torch.Generator().manual_seed(0))


def _gdas_select(peak: Callable[[nn.Module, Any], None]) -> Callable[[nn.Module, Any], None]:
    def select(model: nn.Module, genotype: Any) -> None:
        peak(model, genotype)
        _gdas_on(model)

    return select


def _gdas_carry(src: nn.Module, dst: nn.Module) -> None:
    _gdas_on(dst)


@dataclass(frozen=True)
class SupernetCase:
    """How the suite checks one registered supernet.

    Attributes:
        name: registered model name.
        params: a tiny config (model parameters besides ``input_shape`` and ``n_classes``).
        random_genotype: ``(model, generator) -> Genotype``: an architecture this supernet
            can compute exactly.
        select: ``(model, genotype)``: make the supernet compute ``genotype`` (ENAS:
            ``set_arch``; DARTS: :func:`peak_alphas`).
        carry_state: ``(src, dst)``: copy what ``forward`` depends on that ``state_dict``
            does not hold (ENAS: the architecture set).
        atol: absolute tolerance of discretized vs supernet outputs (float32).
        rtol: relative tolerance of the same.
        input_shape: ``(C, H, W)`` of the probe inputs.
        n_classes: logits.
    """

    name: str
    params: dict[str, Any]
    random_genotype: Callable[[nn.Module, torch.Generator], Any]
    select: Callable[[nn.Module, Any], None]
    carry_state: Callable[[nn.Module, nn.Module], None] = _nothing_to_carry
    atol: float = 1e-5
    rtol: float = 1e-5
    input_shape: tuple[int, int, int] = (3, 8, 8)
    n_classes: int = 4
    discrete_kind: str = "cell_network"
    parse_genotype: Callable[[Any], Any] = Genotype.from_dict
    exact_discretization: bool = True

    def build(self, seed: int = 0) -> nn.Module:
        """A fresh supernet of this case, seeded."""
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            return MODELS.build(
                {"name": self.name, **self.params}, input_shape=self.input_shape, n_classes=self.n_classes
            )


#: Every registered supernet on a tiny config.
SUPERNET_CASES: dict[str, SupernetCase] = {
    "darts_supernet": SupernetCase(
        "darts_supernet",
        {"channels": 4, "layers": 3, "nodes": 3, "multiplier": 3, "stem_multiplier": 1},
        random_genotype=_darts_genotype,
        select=lambda model, genotype: peak_alphas(model, genotype),
        rtol=1e-4,  # the unchosen ops still carry e^-40 of the mixture
    ),
    "darts_supernet/gdas": SupernetCase(
        "darts_supernet",
        {"channels": 4, "layers": 3, "nodes": 3, "multiplier": 3, "stem_multiplier": 1},
        random_genotype=_darts_genotype,
        select=_gdas_select(peak_alphas),
        carry_state=_gdas_carry,
        atol=1e-6,
        rtol=1e-6,  # eval mode runs exactly the argmax ops
    ),
    "darts_supernet/pcdarts": SupernetCase(
        "darts_supernet",
        {
            "channels": 4,
            "layers": 3,
            "nodes": 3,
            "multiplier": 3,
            "stem_multiplier": 1,
            "partial_channels": 2,
            "edge_normalization": True,
        },
        random_genotype=_darts_genotype,
        select=lambda model, genotype: peak_alphas(model, genotype),
        exact_discretization=False,
    ),
    "nb201_supernet": SupernetCase(
        "nb201_supernet",
        {"channels": 4, "cells_per_stage": 1},
        random_genotype=_nb201_genotype,
        select=_peak_nb201,
        rtol=1e-4,
        discrete_kind="nb201_network",
        parse_genotype=Nb201Genotype.from_dict,
    ),
    "nb201_supernet/gdas": SupernetCase(
        "nb201_supernet",
        {"channels": 4, "cells_per_stage": 1},
        random_genotype=_nb201_genotype,
        select=_gdas_select(_peak_nb201),
        carry_state=_gdas_carry,
        atol=1e-6,
        rtol=1e-6,
        discrete_kind="nb201_network",
        parse_genotype=Nb201Genotype.from_dict,
    ),
    "nb201_supernet/pcdarts": SupernetCase(
        "nb201_supernet",
        {"channels": 4, "cells_per_stage": 1, "partial_channels": 2, "edge_normalization": True},
        random_genotype=_nb201_genotype,
        select=_peak_nb201,
        discrete_kind="nb201_network",
        parse_genotype=Nb201Genotype.from_dict,
        exact_discretization=False,
    ),
    "nb201_supernet/enas": SupernetCase(
        "nb201_supernet",
        {"channels": 4, "cells_per_stage": 1},
        random_genotype=_nb201_genotype,
        select=_enas_select,
        carry_state=_enas_carry,
        discrete_kind="nb201_network",
        parse_genotype=Nb201Genotype.from_dict,
    ),
    "enas_supernet": SupernetCase(
        "enas_supernet",
        {"channels": 4, "layers": 3, "nodes": 3, "stem_multiplier": 1, "drop_path": 0.2},
        random_genotype=_enas_genotype,
        select=_enas_select,
        carry_state=_enas_carry,
    ),
}
