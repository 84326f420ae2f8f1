"""Conformance suite for NAS supernets (``darts_supernet``, ``enas_supernet``, and new ones).

Every case (:data:`SUPERNET_CASES`, in ``growray.testing.supernet_cases``) is a registered
supernet on a tiny config, with two functions that say how it computes one architecture.
The suite checks that:

* ``weight_parameters()`` holds every parameter except the architecture parameters
  (``arch_parameters()``, DARTS' alphas), each once;
* ``build_model(spec())`` rebuilds it and ``load_state_dict`` restores its outputs exactly;
* ``discretized(genotype)`` is a discrete network (``cell_network``, ``nb201_network``) of
  that genotype whose spec round-trips (rebuilt and loaded, it computes the same outputs exactly);
* the discretized network's eval output equals the supernet's for the same genotype, up to
  float rounding: ENAS (and NAS-Bench-201's supernet with ``set_arch``) runs exactly the
  chosen candidates; DARTS computes it when the alphas are peaked (+-20 logits put
  ``1 - O(e^-40)`` on the kept ops and ``none`` on the dropped edges); GDAS' eval mode runs the argmax op of every edge, exactly. PC-DARTS is
  exempt from this one (``exact_discretization=False``): its bypass channels pass through
  every dropped edge and beta scales the kept ones, so no alpha makes the supernet compute
  the discrete cell.

Cases are keyed ``<model>`` or ``<model>/<variant>`` (``darts_supernet/gdas``: the same model
with GDAS' sampler switched on; ``/pcdarts``: partial channels and edge normalisation;
``nb201_supernet/enas``: one cell set by ``set_arch``, as ENAS trains it).

Weights and BatchNorm statistics are moved away from their initial values first, so the
equalities bite. Usage (see ``tests/nas/test_supernets_conformance.py``)::

    class TestRegisteredSupernets(SupernetConformance):
        @pytest.fixture(params=sorted(SUPERNET_CASES))
        def case(self, request):
            return SUPERNET_CASES[request.param]
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch
from torch import nn

from growray.models import MODELS, ArchSpec, build_model

from .supernet_cases import SUPERNET_CASES, SupernetCase, peak_alphas

__all__ = ["SUPERNET_CASES", "SupernetCase", "SupernetConformance", "peak_alphas", "prepared"]


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
