"""Conformance suite for NAS supernets (``darts_supernet``, ``enas_supernet``, and new ones).

Every case (:data:`SUPERNET_CASES`) is a registered supernet on a tiny config, with two
functions that say how it computes one architecture. The suite checks that:

* ``weight_parameters()`` holds every parameter except the architecture parameters
  (``arch_parameters()``, DARTS' alphas), each once;
* ``build_model(spec())`` rebuilds it and ``load_state_dict`` restores its outputs exactly;
* ``discretized(genotype)`` is a discrete network (``cell_network``, ``nb201_network``) of
  that genotype whose spec round-trips (rebuilt and loaded, it computes the same outputs exactly);
* the discretized network's eval output equals the supernet's for the same genotype, up to
  float rounding: ENAS runs exactly the chosen candidates; DARTS computes it when the
  alphas are peaked (+-20 logits put ``1 - O(e^-40)`` on the kept ops and ``none`` on the
  dropped edges); GDAS' eval mode runs the argmax op of every edge, exactly. PC-DARTS is
  exempt from this one (``exact_discretization=False``): its bypass channels pass through
  every dropped edge and beta scales the kept ones, so no alpha makes the supernet compute
  the discrete cell.

Cases are keyed ``<model>`` or ``<model>/<variant>`` (``darts_supernet/gdas``: the same model
with GDAS' sampler switched on; ``/pcdarts``: partial channels and edge normalisation).

Weights and BatchNorm statistics are moved away from their initial values first, so the
equalities bite. Usage (see ``tests/nas/test_supernets_conformance.py``)::

    class TestRegisteredSupernets(SupernetConformance):
        @pytest.fixture(params=sorted(SUPERNET_CASES))
        def case(self, request):
            return SUPERNET_CASES[request.param]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from torch import nn

from growray.models import MODELS, ArchSpec, build_model
from growray.nas import DartsSupernet, EnasSupernet, Genotype, Nb201Genotype, Nb201Supernet, RelaxedSupernet, n_edges

__all__ = ["SUPERNET_CASES", "SupernetCase", "SupernetConformance", "peak_alphas", "prepared"]

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


def _enas_select(model: nn.Module, genotype: Genotype) -> None:
    _enas(model).set_arch(genotype)


def _enas_carry(src: nn.Module, dst: nn.Module) -> None:
    arch = _enas(src).arch
    if arch is not None:
        _enas(dst).set_arch(arch)


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
    "enas_supernet": SupernetCase(
        "enas_supernet",
        {"channels": 4, "layers": 3, "nodes": 3, "stem_multiplier": 1, "drop_path": 0.2},
        random_genotype=_enas_genotype,
        select=_enas_select,
        carry_state=_enas_carry,
    ),
}


def _batch(case: SupernetCase, seed: int, n: int = 6) -> torch.Tensor:
    return torch.randn(n, *case.input_shape, generator=torch.Generator().manual_seed(seed))


def _weight_parameters(model: nn.Module) -> list[nn.Parameter]:
    fn = getattr(model, "weight_parameters", None)
    if not callable(fn):
        raise TypeError(f"a supernet must have weight_parameters(); {type(model).__name__} has none")
    return list(fn())


def _arch_parameters(model: nn.Module) -> list[nn.Parameter]:
    fn = getattr(model, "arch_parameters", None)
    return list(fn()) if callable(fn) else []


def _discretized(model: nn.Module, genotype: Any) -> nn.Module:
    fn = getattr(model, "discretized", None)
    if not callable(fn):
        raise TypeError(f"a supernet must have discretized(genotype); {type(model).__name__} has none")
    net = fn(genotype)
    if not isinstance(net, nn.Module):
        raise TypeError(f"discretized() must return a module; got {type(net).__name__}")
    return net


def _spec(model: nn.Module) -> ArchSpec:
    fn = getattr(model, "spec", None)
    spec = fn() if callable(fn) else None
    if not isinstance(spec, ArchSpec):
        raise TypeError(f"{type(model).__name__}.spec() must return an ArchSpec; got {type(spec).__name__}")
    return spec


def prepared(case: SupernetCase, seed: int = 0) -> tuple[nn.Module, Any]:
    """A supernet of ``case`` computing a random genotype, its weights moved off their
    initial values and its BatchNorm statistics off the defaults (train-mode forwards)."""
    model = case.build(seed)
    genotype = case.random_genotype(model, torch.Generator().manual_seed(seed + 100))
    case.select(model, genotype)
    gen = torch.Generator().manual_seed(seed + 200)
    with torch.no_grad():
        for p in _weight_parameters(model):
            p.add_(0.1 * torch.randn(p.shape, generator=gen))
        model.train()
        for s in range(3):
            model(_batch(case, seed + 300 + s, n=8) * (1 + s) + s)
    return model.eval(), genotype


class SupernetConformance:
    """Parameter split, spec round trip, discretization and its function for ``case``."""

    @pytest.fixture
    def case(self) -> SupernetCase:
        raise NotImplementedError("subclasses define the `case` fixture")

    def test_is_registered(self, case: SupernetCase) -> None:
        assert case.name in MODELS.names()
        assert _spec(case.build()).kind == case.name

    def test_weight_parameters_are_everything_but_the_architecture(self, case: SupernetCase) -> None:
        model = case.build()
        weights, arch = _weight_parameters(model), _arch_parameters(model)
        w_ids, a_ids = [id(p) for p in weights], [id(p) for p in arch]
        assert len(set(w_ids)) == len(w_ids) and len(set(a_ids)) == len(a_ids), "a parameter is listed twice"
        assert not set(w_ids) & set(a_ids), "an architecture parameter is among the weights"
        assert set(w_ids) | set(a_ids) == {id(p) for p in model.parameters()}, "a parameter is in neither set"
        names = {id(p): n for n, p in model.named_parameters()}
        assert all(names[i] in model.state_dict() for i in a_ids), "architecture parameters must be checkpointed"

    def test_spec_rebuilds_and_state_dict_restores_outputs_exactly(self, case: SupernetCase) -> None:
        model, _ = prepared(case)
        spec = _spec(model)
        assert ArchSpec.from_json(json.dumps(json.loads(spec.to_json()))) == spec
        rebuilt = build_model(spec)
        rebuilt.load_state_dict(model.state_dict())  # strict: the same keys and shapes
        case.carry_state(model, rebuilt)
        rebuilt.eval()
        x = _batch(case, 7)
        with torch.no_grad():
            assert torch.equal(rebuilt(x), model(x))

    def test_discretized_is_a_cell_network_whose_spec_round_trips(self, case: SupernetCase) -> None:
        model, genotype = prepared(case)
        net = _discretized(model, genotype)
        spec = _spec(net)
        assert spec.kind == case.discrete_kind and case.parse_genotype(spec.params["genotype"]) == genotype
        assert not net.training and next(net.parameters()).dtype == next(model.parameters()).dtype
        assert ArchSpec.from_json(json.dumps(json.loads(spec.to_json()))) == spec
        rebuilt = build_model(spec)
        rebuilt.load_state_dict(net.state_dict())
        rebuilt.eval()
        x = _batch(case, 8)
        with torch.no_grad():
            assert torch.equal(rebuilt(x), net(x))

    def test_discretized_computes_the_supernet_of_that_genotype(self, case: SupernetCase) -> None:
        if not case.exact_discretization:
            pytest.skip(f"{case.name}: no architecture weights make this supernet compute a discrete cell")
        model, genotype = prepared(case, seed=1)
        net = _discretized(model, genotype).eval()
        x = _batch(case, 9)
        with torch.no_grad():
            expected, got = model(x), net(x)
        torch.testing.assert_close(got, expected, atol=case.atol, rtol=case.rtol)
        other = case.random_genotype(model, torch.Generator().manual_seed(5))
        if other != genotype:  # the check bites: another architecture is another function
            case.select(model, other)
            with torch.no_grad():
                assert (model(x) - got).abs().max().item() > 10 * case.atol
