"""Conformance suite for depth operators (``growray.growth.DEEPENERS``).

Every check runs on the initializer suite's probe families (an MLP, an MLP with BatchNorm,
a CNN with BatchNorm, all relu; ``PROBE_CASES``) at every site, including the CNN's pooled
conv sites, where the inserted block must go before the pool. Every ``apply`` gets a
``batch=(x, y)`` of 64 random training samples.

Usage (see ``tests/growth/test_growth_depth.py``)::

    class TestMine(DeepenerConformance):
        @pytest.fixture
        def deepener(self):
            return MyDeepener()
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable

import pytest
import torch
from torch import nn

from growray.growth import DEEPENERS, Deepener, DepthChange, SiteLimits, add_new_parameters
from growray.models import ArchSpec, build_model
from growray.models.dropin import DropInGate
from growray.testing.initializers import (
    BATCH_SIZE,
    N_CLASSES,
    PROBE_CASES,
    PROBE_FAMILIES,
    Batch,
    ProbeModel,
    assert_function_preserved,
    check_registered_parameters,
    probe_batch,
)

__all__ = ["DeepenerConformance", "half_open_gates"]

_cases = pytest.mark.parametrize("family, site", PROBE_CASES, ids=[f"{f}-{s}" for f, s in PROBE_CASES])
_OPTIMIZERS: dict[str, Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]] = {
    "sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-3),
}


def half_open_gates(model: nn.Module) -> None:
    """Set every DropIn gate of ``model`` half-way (so inserted blocks get gradients)."""
    for m in model.modules():
        if isinstance(m, DropInGate) and int(m.steps) > 0:
            m.progress.copy_(m.steps // 2)


def _deepen(deepener: Deepener, model: ProbeModel, site: str, batch: Batch, seed: int = 123) -> DepthChange:
    model.eval()
    torch.manual_seed(seed)
    change = deepener.apply(model, site, batch=batch)
    assert isinstance(change, DepthChange)
    return change


def _train_step(model: nn.Module, opt: torch.optim.Optimizer, batch: Batch) -> float:
    x, y = batch
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return float(loss.detach())


class DeepenerConformance:
    """Shapes and names, function preservation (where claimed), optimizer state, determinism
    and spec round trip of ``deepener`` on every site of every probe family."""

    @pytest.fixture
    def deepener(self) -> Deepener:
        raise NotImplementedError("subclasses define the `deepener` fixture")

    def test_is_deepener(self, deepener: Deepener) -> None:
        assert isinstance(deepener, Deepener)
        assert isinstance(deepener.preserves_function, bool)

    def test_registered_parameters_have_defaults(self, deepener: Deepener) -> None:
        check_registered_parameters(DEEPENERS)

    @_cases
    def test_inserts_a_block_of_the_same_width(self, deepener: Deepener, family: str, site: str) -> None:
        model = PROBE_FAMILIES[family](0)
        batch = probe_batch(model)
        assert deepener.check_site(model, site, SiteLimits()) is None
        before_sites, widths = model.sites(), model.widths()
        change = _deepen(deepener, model, site, batch)
        assert change.site == site and change.new_site not in before_sites
        sites = model.sites()
        at = before_sites.index(site) + 1
        assert sites == [*before_sites[:at], change.new_site, *before_sites[at:]], (
            "the new block follows its site; every other site keeps its name and place"
        )
        assert model.widths() == {**widths, change.new_site: widths[site]} and change.width == widths[site]
        block_params = {id(p) for p in model.block(change.new_site).parameters()}
        assert block_params and {id(p) for p in change.new_params} == block_params
        assert model(batch[0]).shape == (BATCH_SIZE, N_CLASSES)
        assert all(torch.isfinite(p).all() for p in model.parameters())

    @_cases
    def test_function_preservation(self, deepener: Deepener, family: str, site: str) -> None:
        if not deepener.preserves_function:
            pytest.skip("deepener does not claim function preservation")
        model = PROBE_FAMILIES[family](0)
        x, _ = probe_batch(model, seed=7)
        with torch.no_grad():
            before = model(x)
        _deepen(deepener, model, site, probe_batch(model))
        with torch.no_grad():
            after = model(x)
        assert_function_preserved(before, after, f"{family} {site}")

    @_cases
    @pytest.mark.parametrize("opt_name", list(_OPTIMIZERS))
    def test_optimizer_after_deepening(self, deepener: Deepener, family: str, site: str, opt_name: str) -> None:
        """Incumbents' state untouched; new parameters in the producer's group, in model
        order (a fresh optimizer of the rebuilt model loads the state); then they train."""
        model = PROBE_FAMILIES[family](0).train()
        batch = probe_batch(model)
        opt = _OPTIMIZERS[opt_name](model.parameters())
        _train_step(model, opt, batch)
        _train_step(model, opt, batch)
        old = {id(p): {k: v.clone() for k, v in opt.state[p].items()} for p in model.parameters()}
        anchor = model.site_modules(site).producer.weight
        change = _deepen(deepener, model, site, batch)
        add_new_parameters(opt, model, change.new_params, anchor)
        assert [id(p) for g in opt.param_groups for p in g["params"]] == [id(p) for p in model.parameters()]
        for p in model.parameters():
            if id(p) in old:
                assert opt.state[p].keys() == old[id(p)].keys()
                assert all(torch.equal(opt.state[p][k], v) for k, v in old[id(p)].items())
            else:
                assert not opt.state.get(p)
        rebuilt = build_model(model.spec())
        rebuilt.load_state_dict(model.state_dict())
        fresh = _OPTIMIZERS[opt_name](rebuilt.parameters())
        fresh.load_state_dict(opt.state_dict())  # raises on a group/shape mismatch
        half_open_gates(model)
        model.train()
        before = {id(p): p.detach().clone() for p in change.new_params}
        loss = _train_step(model, opt, batch)
        assert torch.isfinite(torch.tensor(loss))
        assert all(torch.isfinite(p).all() for p in model.parameters())
        assert any(not torch.equal(before[id(p)], p) for p in change.new_params), "the new block did not train"

    @_cases
    def test_deterministic_under_seed(self, deepener: Deepener, family: str, site: str) -> None:
        outs = []
        for _ in range(2):
            model = PROBE_FAMILIES[family](0)
            _deepen(deepener, model, site, probe_batch(model), seed=99)
            outs.append(model.state_dict())
        assert outs[0].keys() == outs[1].keys()
        assert all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])

    @_cases
    def test_spec_round_trip(self, deepener: Deepener, family: str, site: str) -> None:
        model = PROBE_FAMILIES[family](0)
        batch = probe_batch(model)
        first = _deepen(deepener, model, site, batch)
        _deepen(deepener, model, first.new_site, batch)  # a block after an inserted block
        spec = ArchSpec.from_json(json.dumps(json.loads(model.spec().to_json())))
        assert spec == model.spec()
        rebuilt = build_model(spec)
        assert isinstance(rebuilt, type(model))
        assert rebuilt.sites() == model.sites() and rebuilt.widths() == model.widths()
        rebuilt.load_state_dict(model.state_dict())
        rebuilt.eval()
        with torch.no_grad():
            assert torch.equal(rebuilt(batch[0]), model(batch[0]))
