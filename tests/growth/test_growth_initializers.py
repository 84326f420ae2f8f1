import pytest
import torch

from growray.growth import INITIALIZERS, Net2WiderInitializer, RandomInitializer, widen
from growray.testing.initializers import make_probe_model

torch.set_num_threads(1)
X = torch.randn(64, 2, 3, generator=torch.Generator().manual_seed(3))


def _grow(model, init, site="hidden.0", n=5, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        before = model(X)
    proposal = init.propose(model, site, n)
    widen(model, site, proposal)
    with torch.no_grad():
        return (model(X) - before).abs().max().item(), proposal


@pytest.mark.parametrize("batch_norm", [False, True])
def test_net2wider_exact_without_noise(batch_norm):
    init = Net2WiderInitializer(noise=0.0)
    assert init.preserves_function
    err, p = _grow(make_probe_model(batch_norm), init, n=12)  # more copies than units: repeats
    assert err < 1e-5
    assert p.incumbent_fan_out is not None


@pytest.mark.parametrize("batch_norm", [False, True])
def test_net2wider_copies_with_same_mapping(batch_norm):
    model = make_probe_model(batch_norm)
    mods = model.site_modules("hidden.0")
    w, cw = mods.producer.weight.detach().clone(), mods.consumer.weight.detach().clone()
    b = mods.producer.bias.detach().clone()
    _, p = _grow(model, Net2WiderInitializer(noise=0.0), n=9)
    # recover g from the copied rows, then check bias / BN / consumer use the same g
    g = [int((w == row).all(1).nonzero()[0]) for row in p.fan_in]
    assert torch.equal(p.bias, b[g])
    counts = torch.bincount(torch.tensor(g), minlength=7) + 1
    assert torch.allclose(p.incumbent_fan_out, cw / counts)
    assert torch.allclose(p.fan_out, (cw / counts)[:, g])
    if batch_norm:
        for k in ("weight", "bias", "running_mean", "running_var"):
            assert torch.equal(p.norm[k], getattr(mods.norm, k).detach()[:7][g])


@pytest.mark.parametrize("batch_norm", [False, True])
def test_net2wider_noise_small_but_measurable(batch_norm):
    init = Net2WiderInitializer(noise=0.05)
    assert not init.preserves_function
    err, _ = _grow(make_probe_model(batch_norm), init)
    assert 1e-6 < err < 0.5


@pytest.mark.parametrize("batch_norm", [False, True])
def test_random_exact(batch_norm):
    err, p = _grow(make_probe_model(batch_norm), RandomInitializer(scale=2.0))
    assert err <= 1e-6  # zero fan-out; the wider matmuls may round differently (float32)
    assert p.fan_in.abs().max() <= 2.0 / 6**0.5 and p.fan_in.abs().max() > 0
    assert torch.count_nonzero(p.fan_out) == 0 and torch.count_nonzero(p.bias) == 0
    if batch_norm:
        assert p.norm["weight"].eq(1).all() and p.norm["running_var"].eq(1).all()
        assert p.norm["bias"].eq(0).all() and p.norm["running_mean"].eq(0).all()


@pytest.mark.parametrize("section", [{"name": "random"}, {"name": "net2wider", "noise": 0.0}], ids=lambda s: s["name"])
def test_widen_twice_in_a_row(section):
    model = make_probe_model(True)
    init = INITIALIZERS.build(section)
    e1, _ = _grow(model, init, n=3, seed=1)
    e2, _ = _grow(model, init, n=4, seed=2)
    e3, _ = _grow(model, init, site="hidden.1", n=2, seed=3)
    assert model.widths() == {"hidden.0": 14, "hidden.1": 8}
    assert max(e1, e2, e3) < 1e-5


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"name": "net2wider", "noise": -0.1}, r"noise must be a finite number >= 0; got -0\.1"),
        ({"name": "random", "scale": 0.0}, r"scale must be a finite number > 0; got 0\.0"),
        ({"name": "random", "scale": float("nan")}, "scale must be"),
    ],
)
def test_constructor_validation(spec, match):
    with pytest.raises(ValueError, match=match):
        INITIALIZERS.build(spec)


def test_propose_rejects_bad_n():
    with pytest.raises(ValueError, match="n_new must be an int >= 1; got 0"):
        RandomInitializer().propose(make_probe_model(False), "hidden.0", 0)


def test_widen_rejects_mismatched_proposal():
    model = make_probe_model(False)
    p = RandomInitializer().propose(model, "hidden.0", 3)
    p.fan_out = p.fan_out[:, :2]
    with pytest.raises(ValueError, match=r"fan_out has shape \(6, 2\); expected \(6, 3\)"):
        widen(model, "hidden.0", p)
    assert model.widths()["hidden.0"] == 7  # nothing changed
