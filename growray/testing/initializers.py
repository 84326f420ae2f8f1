"""Conformance suite for growth initializers.

Every check runs on three tiny model families (``PROBE_FAMILIES``: an MLP, an MLP with
BatchNorm, a CNN with BatchNorm) at every width site, including the CNN's conv -> Linear
site through the flatten. Every ``propose`` call gets a ``batch=(x, y)`` of 64 random
training samples, so data-driven initializers run too. At every probe site the width
stays below the producer's fan-in after growth (initializers that need a direction
orthogonal to the existing fan-ins, like NORTH-Weight, can run), and every family is tiny
so that the suite stays fast with many initializers registered.

Usage (see ``tests/growth/test_growth_conformance.py``)::

    class TestMine(InitializerConformance):
        @pytest.fixture
        def initializer(self):
            return MyInitializer()
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable
from typing import TypeVar

import pytest
import torch
from torch import nn

from growray.growth import (
    INITIALIZERS,
    Initializer,
    ParamChange,
    WidthProposal,
    migrate_optimizer,
    widen,
)
from growray.models import ArchSpec, GrowableCNN, GrowableMLP, build_model
from growray.registry import Registry

__all__ = [
    "PRESERVATION_TOL",
    "PROBE_CASES",
    "PROBE_FAMILIES",
    "Batch",
    "InitializerConformance",
    "ProbeModel",
    "assert_function_preserved",
    "check_registered_parameters",
    "make_probe_cnn",
    "make_probe_mlp",
    "make_probe_model",
    "probe_batch",
]

N_NEW = 5
INPUT_SHAPE = (2, 3)
MLP_INPUT_SHAPE = (4, 4)
CNN_INPUT_SHAPE = (1, 8, 8)
N_CLASSES = 4
BATCH_SIZE = 64

#: A probe model of the suites.
ProbeModel = GrowableMLP | GrowableCNN
#: ``(x, y)``: samples and labels.
Batch = tuple[torch.Tensor, torch.Tensor]
T = TypeVar("T")

#: What "preserves the function" means in float32: every output moves by at most
#: ``PRESERVATION_TOL`` absolutely or relatively. Growth changes matrix shapes, so the wider
#: matmuls may round differently even when the new units contribute exactly zero.
PRESERVATION_TOL = 1e-6


def assert_function_preserved(before: torch.Tensor, after: torch.Tensor, what: str = "") -> None:
    """``after`` equals ``before`` to ``PRESERVATION_TOL`` (absolute or relative; shapes must match)."""
    torch.testing.assert_close(
        after,
        before,
        atol=PRESERVATION_TOL,
        rtol=PRESERVATION_TOL,
        msg=lambda m: f"{what + ': ' if what else ''}outputs changed beyond {PRESERVATION_TOL:g}: {m}",
    )


def _randomize_norms(model: nn.Module) -> None:
    """Non-trivial BN affine parameters and running statistics, so preservation checks bite."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                n = m.num_features
                m.weight.copy_(torch.rand(n) + 0.5)
                m.bias.copy_(torch.randn(n) * 0.5)
                if m.running_mean is not None and m.running_var is not None:
                    m.running_mean.copy_(torch.randn(n) * 0.5)
                    m.running_var.copy_(torch.rand(n) + 0.5)


def make_probe_model(batch_norm: bool, seed: int = 0) -> GrowableMLP:
    """A small MLP in eval mode (input (2, 3), hidden [7, 6], 4 classes); with BN,
    non-trivial affine parameters and running stats. (Kept for unit tests; the suite uses
    ``make_probe_mlp``, whose sites stay narrower than their fan-ins.)"""
    torch.manual_seed(seed)
    model = GrowableMLP(INPUT_SHAPE, N_CLASSES, hidden=[7, 6], activation="relu", batch_norm=batch_norm)
    _randomize_norms(model)
    return model.eval()


def make_probe_mlp(batch_norm: bool, seed: int = 0) -> GrowableMLP:
    """The suite's MLP in eval mode: input (4, 4) (16 features), hidden [10, 4], 4 classes;
    with BN, non-trivial affine parameters and running stats."""
    torch.manual_seed(seed)
    model = GrowableMLP(MLP_INPUT_SHAPE, N_CLASSES, hidden=[10, 4], activation="relu", batch_norm=batch_norm)
    _randomize_norms(model)
    return model.eval()


def make_probe_cnn(seed: int = 0) -> GrowableCNN:
    """A tiny CNN with BN in eval mode: input (1, 8, 8), channels [3, 4] each followed by a
    max-pool (so ``conv.1`` feeds ``fc.0`` through a 2x2 flatten, spatial 4), hidden [5]."""
    torch.manual_seed(seed)
    model = GrowableCNN(CNN_INPUT_SHAPE, N_CLASSES, channels=[3, 4], hidden=[5], batch_norm=True)
    _randomize_norms(model)
    return model.eval()


def _probe_mlp(seed: int = 0) -> GrowableMLP:
    return make_probe_mlp(False, seed)


def _probe_mlp_bn(seed: int = 0) -> GrowableMLP:
    return make_probe_mlp(True, seed)


#: family name -> builder(seed) of a fresh probe model in eval mode.
PROBE_FAMILIES: dict[str, Callable[[int], ProbeModel]] = {
    "mlp": _probe_mlp,
    "mlp_bn": _probe_mlp_bn,
    "cnn_bn": make_probe_cnn,
}

#: (family, site): every site of every probe family.
PROBE_CASES: list[tuple[str, str]] = [
    ("mlp", "hidden.0"),
    ("mlp", "hidden.1"),
    ("mlp_bn", "hidden.0"),
    ("mlp_bn", "hidden.1"),
    ("cnn_bn", "conv.0"),
    ("cnn_bn", "conv.1"),  # conv -> Linear through the flatten
    ("cnn_bn", "fc.0"),
]

_cases = pytest.mark.parametrize("family, site", PROBE_CASES, ids=[f"{f}-{s}" for f, s in PROBE_CASES])
_optimizers = pytest.mark.parametrize("opt_name", ["sgd_momentum", "adam"])
_OPTIMIZERS: dict[str, Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]] = {
    "sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
    "adam": lambda ps: torch.optim.Adam(ps, lr=1e-3),
}


def probe_batch(model: ProbeModel, seed: int = 1, n: int = BATCH_SIZE) -> Batch:
    """``n`` random samples of ``model.input_shape`` with random labels (a training batch)."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *model.input_shape, generator=g), torch.randint(0, model.n_classes, (n,), generator=g)


def _train_step(model: nn.Module, opt: torch.optim.Optimizer, batch: Batch) -> float:
    x, y = batch
    opt.zero_grad()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    opt.step()
    return float(loss.detach())


def _grow(
    initializer: Initializer, model: ProbeModel, site: str, n_new: int, batch: Batch, seed: int = 123
) -> list[ParamChange]:
    """Propose (eval mode, seeded) and widen; returns the ``ParamChange`` list."""
    model.eval()
    torch.manual_seed(seed)
    proposal = initializer.propose(model, site, n_new, batch=batch)
    assert isinstance(proposal, WidthProposal)
    return widen(model, site, proposal)


def check_registered_parameters(registry: Registry[T]) -> None:
    """Every user parameter of every entry is annotated and has a default (config schema)."""
    for name in registry.names():
        for pname, p in registry.user_parameters(name).items():
            assert p.annotation is not inspect.Parameter.empty, f"{registry.kind} {name!r}: {pname} has no annotation"
            assert p.default is not inspect.Parameter.empty, f"{registry.kind} {name!r}: {pname} has no default"


class InitializerConformance:
    """Checks shapes, training after growth, optimizer-state migration, function
    preservation (where claimed), determinism and spec round-trip for ``initializer``,
    on every site of every ``PROBE_FAMILIES`` model."""

    @pytest.fixture
    def initializer(self) -> Initializer:
        raise NotImplementedError("subclasses define the `initializer` fixture")

    def test_is_initializer(self, initializer: Initializer) -> None:
        assert isinstance(initializer, Initializer)
        assert isinstance(initializer.preserves_function, bool)

    def test_registered_parameters_have_defaults(self, initializer: Initializer) -> None:
        check_registered_parameters(INITIALIZERS)

    def test_cases_cover_every_site(self, initializer: Initializer) -> None:
        for family, build in PROBE_FAMILIES.items():
            assert build(0).sites() == [s for f, s in PROBE_CASES if f == family]

    @_cases
    def test_shapes_after_widen(self, initializer: Initializer, family: str, site: str) -> None:
        model = PROBE_FAMILIES[family](0)
        batch = probe_batch(model)
        widths = model.widths()
        spatial = model.site_modules(site).spatial
        changes = _grow(initializer, model, site, N_NEW, batch)
        assert model.widths() == {**widths, site: widths[site] + N_NEW}
        w = widths[site] + N_NEW
        mods = model.site_modules(site)
        assert mods.producer.bias is not None, "probe models' producers have a bias"
        assert mods.producer.weight.shape[0] == w and mods.producer.bias.shape == (w,)
        assert mods.consumer.weight.shape[1] == w * spatial
        out_attr = "out_channels" if isinstance(mods.producer, nn.Conv2d) else "out_features"
        in_attr = "in_channels" if isinstance(mods.consumer, nn.Conv2d) else "in_features"
        assert getattr(mods.producer, out_attr) == w and getattr(mods.consumer, in_attr) == w * spatial
        if mods.norm is not None:
            for t in (mods.norm.weight, mods.norm.bias, mods.norm.running_mean, mods.norm.running_var):
                assert t is not None and t.shape == (w,)
            assert mods.norm.num_features == w
        assert changes and all(c.new.shape[c.dim] > c.n_old for c in changes)
        assert model(batch[0]).shape == (BATCH_SIZE, N_CLASSES)
        assert all(torch.isfinite(p).all() for p in model.parameters())

    @_cases
    @_optimizers
    def test_optimizer_after_growth(self, initializer: Initializer, family: str, site: str, opt_name: str) -> None:
        """Train, grow, migrate: incumbents' moments bit-identical, newborn slots zero,
        then a finite training step that moves the grown parameters."""
        model = PROBE_FAMILIES[family](0).train()
        batch = probe_batch(model)
        opt = _OPTIMIZERS[opt_name](model.parameters())
        _train_step(model, opt, batch)
        _train_step(model, opt, batch)
        old_state = {id(p): {k: v.clone() for k, v in opt.state[p].items()} for p in model.parameters()}
        changes = _grow(initializer, model, site, N_NEW, batch)
        migrate_optimizer(opt, changes)
        held = {id(p) for g in opt.param_groups for p in g["params"]}
        for c in changes:
            assert id(c.new) in held and id(c.old) not in held
            for k, old in old_state[id(c.old)].items():
                new = opt.state[c.new][k]
                if old.dim() == 0:
                    assert torch.equal(new, old), k
                    continue
                assert torch.equal(new.narrow(c.dim, 0, c.n_old), old), k
                n_extra = c.new.shape[c.dim] - c.n_old
                assert torch.count_nonzero(new.narrow(c.dim, c.n_old, n_extra)) == 0, k
        model.train()
        before = {id(c.new): c.new.detach().clone() for c in changes}
        loss = _train_step(model, opt, batch)
        assert torch.isfinite(torch.tensor(loss))
        assert all(torch.isfinite(p).all() for p in model.parameters())
        assert any(not torch.equal(before[id(c.new)], c.new) for c in changes), "grown parameters did not train"

    @_cases
    def test_function_preservation(self, initializer: Initializer, family: str, site: str) -> None:
        if not initializer.preserves_function:
            pytest.skip("initializer does not claim function preservation")
        model = PROBE_FAMILIES[family](0)
        x, _ = probe_batch(model, seed=7)
        with torch.no_grad():
            before = model(x)
        _grow(initializer, model, site, N_NEW, probe_batch(model))
        with torch.no_grad():
            after = model(x)
        assert_function_preserved(before, after, f"{family} {site}")

    @_cases
    def test_deterministic_under_seed(self, initializer: Initializer, family: str, site: str) -> None:
        outs = []
        for _ in range(2):
            model = PROBE_FAMILIES[family](0)
            _grow(initializer, model, site, N_NEW, probe_batch(model), seed=99)
            outs.append(model.state_dict())
        assert outs[0].keys() == outs[1].keys()
        assert all(torch.equal(outs[0][k], outs[1][k]) for k in outs[0])

    @_cases
    def test_spec_round_trip(self, initializer: Initializer, family: str, site: str) -> None:
        model = PROBE_FAMILIES[family](0)
        batch = probe_batch(model)
        sites = model.sites()
        other = sites[(sites.index(site) + 1) % len(sites)]
        _grow(initializer, model, site, N_NEW, batch)
        _grow(initializer, model, other, 3, batch)
        spec = ArchSpec.from_json(json.dumps(json.loads(model.spec().to_json())))
        assert spec == model.spec()
        rebuilt = build_model(spec)
        assert isinstance(rebuilt, type(model))
        assert rebuilt.widths() == model.widths()
        rebuilt.load_state_dict(model.state_dict())
        rebuilt.eval()
        with torch.no_grad():
            assert torch.equal(rebuilt(batch[0]), model(batch[0]))
