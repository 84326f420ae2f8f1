"""Sparsity distributions: uniform and ERK densities reach the target global sparsity; ERK is
proportional to its raw densities, redistributes overflowing layers and excludes dense ones."""

from __future__ import annotations

import math

import pytest

from growray.models import MODELS
from growray.sparse import DISTRIBUTIONS, ERKDistribution, UniformDistribution, active_counts, maskable_layers


def _shapes(spec, input_shape=(1, 28, 28)):
    import torch

    with torch.device("meta"):
        model = MODELS.build(spec, input_shape=input_shape, n_classes=10)
    return {k: tuple(m.weight.shape) for k, m in maskable_layers(model).items()}


SHAPES = {
    "mlp": _shapes({"name": "mlp", "hidden": [300, 100]}),
    "cnn": _shapes({"name": "cnn", "channels": [16, 32], "hidden": [64]}),
    "tiny": {"a": (4, 3), "b": (200, 300), "c": (2, 200)},
}


def _global_density(shapes, densities, exclude=()):
    n = {k: math.prod(s) for k, s in shapes.items() if k not in exclude}
    return sum(densities[k] * n[k] for k in n) / sum(n.values())


@pytest.mark.parametrize("sparsity", [0.5, 0.8, 0.9, 0.95, 0.99])
@pytest.mark.parametrize("model", list(SHAPES))
@pytest.mark.parametrize("name", ["uniform", "erk"])
def test_densities_give_the_target_global_sparsity(name, model, sparsity):
    shapes = SHAPES[model]
    d = DISTRIBUTIONS.build(name).densities(shapes, sparsity)
    assert all(0 < v <= 1 for v in d.values())
    assert _global_density(shapes, d) == pytest.approx(1 - sparsity, rel=1e-9)
    counts = active_counts(shapes, d)  # integer counts: within rounding (half a weight per layer)
    total = sum(math.prod(s) for s in shapes.values())
    assert abs(sum(counts.values()) / total - (1 - sparsity)) <= len(shapes) / total


def test_erk_is_proportional_to_the_raw_erk_density():
    shapes = SHAPES["cnn"]
    d = ERKDistribution().densities(shapes, 0.9)
    raw = {k: sum(s) / math.prod(s) for k, s in shapes.items()}
    free = [k for k in shapes if d[k] < 1]
    assert len(free) >= 2
    eps = {k: d[k] / raw[k] for k in free}
    assert max(eps.values()) == pytest.approx(min(eps.values()), rel=1e-12), "one scale for every layer"
    # by hand for two Linear layers: eps * (n_in + n_out) = density * n_in * n_out, sum = 0.1 * total
    two = {"x": (10, 40), "y": (20, 10)}
    eps2 = 0.1 * (400 + 200) / ((10 + 40) + (20 + 10))
    assert ERKDistribution().densities(two, 0.9) == pytest.approx({"x": eps2 * 50 / 400, "y": eps2 * 30 / 200})


def test_erk_makes_overflowing_layers_dense_and_resolves_the_others():
    shapes = SHAPES["tiny"]  # the 4x3 and 2x200 layers would need densities > 1 at sparsity 0.5
    d = ERKDistribution().densities(shapes, 0.5)
    assert d["a"] == 1.0 and d["c"] == 1.0
    assert 0 < d["b"] < 1
    assert _global_density(shapes, d) == pytest.approx(0.5, rel=1e-9)
    # the raw solution (a single scale for all) would exceed 1 for "a"
    raw = {k: sum(s) / math.prod(s) for k, s in shapes.items()}
    n = {k: math.prod(s) for k, s in shapes.items()}
    eps = 0.5 * sum(n.values()) / sum(raw[k] * n[k] for k in shapes)
    assert eps * raw["a"] > 1


def test_dense_layers_are_outside_the_budget():
    shapes = SHAPES["mlp"]
    first, *_, last = list(shapes)
    for dist in (UniformDistribution(), ERKDistribution()):
        d = dist.densities(shapes, 0.9, dense=[first, last])
        assert d[first] == d[last] == 1.0
        assert _global_density(shapes, d, exclude=[first, last]) == pytest.approx(0.1, rel=1e-9)


def test_power_scale_zero_is_uniform():
    shapes = SHAPES["mlp"]
    assert ERKDistribution(power_scale=0.0).densities(shapes, 0.8) == pytest.approx(
        UniformDistribution().densities(shapes, 0.8)
    )


@pytest.mark.parametrize("bad", [0, 1, -0.1, 1.5, float("nan")])
def test_sparsity_outside_the_open_unit_interval_is_refused(bad):
    with pytest.raises(ValueError, match=r"sparsity must be a finite number in \(0, 1\)"):
        ERKDistribution().densities(SHAPES["mlp"], bad)


def test_every_layer_dense_is_refused():
    shapes = SHAPES["tiny"]
    with pytest.raises(ValueError, match="at least one layer must be sparse"):
        UniformDistribution().densities(shapes, 0.5, dense=list(shapes))
    with pytest.raises(ValueError, match="not among the layers"):
        UniformDistribution().densities(shapes, 0.5, dense=["nope"])


def test_erk_at_low_sparsity_still_meets_the_target():
    shapes = {"a": (4, 3), "c": (2, 200)}
    d = ERKDistribution().densities(shapes, 0.01)
    assert d["a"] == 1.0 and 0 < d["c"] <= 1
    assert _global_density(shapes, d) == pytest.approx(0.99, rel=1e-9)
