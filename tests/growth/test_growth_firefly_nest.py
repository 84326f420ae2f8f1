"""Firefly and NeST initializers."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from growray.growth import WidthProposal, widen
from growray.growth.firefly import FireflyInitializer
from growray.growth.nest import NeSTInitializer
from growray.models import GrowableMLP

torch.set_num_threads(1)


def _toy(seed: int = 0, n: int = 256):
    """A small 3-class problem that a 3-unit MLP fits poorly, trained a little."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 6, generator=g)
    y = ((x[:, 0] * x[:, 1] > 0).long() + (x[:, 2] > 0.5).long()).clamp(max=2)
    torch.manual_seed(seed)
    model = GrowableMLP((6,), 3, hidden=[3])
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(40):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), (x, y)


def _loss_after(model, proposal, batch) -> float:
    model = copy.deepcopy(model)
    widen(model, "hidden.0", proposal)
    with torch.no_grad():
        return float(F.cross_entropy(model(batch[0]), batch[1]))


def test_firefly_beats_random_candidates():
    model, batch = _toy()
    with torch.no_grad():
        base = float(F.cross_entropy(model(batch[0]), batch[1]))
    eps = 0.05
    torch.manual_seed(1)
    ff = FireflyInitializer(n_candidates=30, eps=eps, opt_steps=20, lr=0.05, grow_splits=False)
    gain_ff = base - _loss_after(model, ff.propose(model, "hidden.0", 1, batch=batch), batch)
    # Random candidates of the same kind: default-init fan-in, fan-out eps * unit random v.
    gains = []
    for seed in range(20):
        g = torch.Generator().manual_seed(100 + seed)
        fan_in = (torch.rand(1, 6, generator=g) * 2 - 1) / math.sqrt(6)
        v = torch.randn(3, 1, generator=g)
        prop = WidthProposal(fan_in, torch.zeros(1), eps * v / v.norm(), None, None)
        gains.append(base - _loss_after(model, prop, batch))
    gains = torch.tensor(gains)
    assert gain_ff > 0
    assert gain_ff > gains.max(), (gain_ff, gains.max().item(), gains.mean().item())


def test_firefly_split_is_expressed_as_append():
    model, batch = _toy()
    mods = model.site_modules("hidden.0")
    w, b, cw = (
        mods.producer.weight.detach().clone(),
        mods.producer.bias.detach().clone(),
        mods.consumer.weight.detach().clone(),
    )
    with torch.no_grad():
        base = float(F.cross_entropy(model(batch[0]), batch[1]))
    torch.manual_seed(0)
    prop = FireflyInitializer(n_candidates=0, eps=0.05, opt_steps=10, lr=0.05).propose(
        model, "hidden.0", 2, batch=batch
    )
    # Only splits: recover each copy's source unit, check fan-in = theta + eps*delta, half fan-out.
    src = [int((prop.fan_in[k] - w).norm(dim=1).argmin()) for k in range(2)]
    assert len(set(src)) == 2
    for k, i in enumerate(src):
        assert abs(float((prop.fan_in[k] - w[i]).norm()) - 0.05) < 1e-5
        assert prop.bias[k] == b[i]
        assert torch.allclose(prop.fan_out[:, k], cw[:, i] / 2)
    halved = torch.ones(3)
    halved[src] = 0.5
    assert torch.allclose(prop.incumbent_fan_out, cw * halved)
    assert _loss_after(model, prop, batch) < base  # the chosen moves point downhill
    assert not FireflyInitializer().preserves_function


@pytest.mark.parametrize(
    "kwargs",
    [
        {"n_candidates": -1},
        {"eps": 0.0},
        {"opt_steps": -2},
        {"lr": float("inf")},
        {"n_candidates": 0, "grow_splits": False},
    ],
)
def test_firefly_rejects_bad_params(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        FireflyInitializer(**kwargs)


def _bridge(model, batch):
    """B = (1/N) H^T G with G = -dL_n/dz (per sample) at the consumer, by hand."""
    x, y = batch
    h = x.flatten(1)
    z = model.head(model.hidden[0](h)).detach().requires_grad_(True)
    (dz,) = torch.autograd.grad(F.cross_entropy(z, y, reduction="sum"), z)
    return h.t() @ (-dz) / x.shape[0]


def test_nest_single_pair_signs_and_magnitudes():
    model, batch = _toy()
    b = _bridge(model, batch)
    i, j = divmod(int(b.abs().argmax()), b.shape[1])
    torch.manual_seed(0)
    alpha = 0.5
    prop = NeSTInitializer(birth_strength=alpha, beta=1e-6).propose(model, "hidden.0", 4, batch=batch)  # one pair
    mods = model.site_modules("hidden.0")
    psi, omega = prop.fan_in, prop.fan_out.t()
    assert torch.count_nonzero(psi) == 4 and torch.count_nonzero(omega) == 4
    assert (psi[:, i] != 0).all() and (omega[:, j] != 0).all()
    assert torch.equal(torch.sign(psi[:, i] * omega[:, j]), torch.sign(b[i, j]).expand(4))
    assert torch.allclose(psi[:, i].abs(), alpha * mods.producer.weight.detach().abs().mean().expand(4))
    assert torch.allclose(omega[:, j].abs(), alpha * mods.consumer.weight.detach().abs().mean().expand(4))
    assert len(set(torch.sign(psi[:, i]).tolist())) == 2  # random shared signs differ across neurons (seeded)
    assert torch.count_nonzero(prop.bias) == 0 and not NeSTInitializer().preserves_function


def test_nest_kept_pairs_and_path_signs():
    model, batch = _toy()
    b = _bridge(model, batch)
    beta = 0.2
    k = math.ceil(beta * b.numel())
    tau = b.abs().flatten().sort(descending=True).values[k - 1]
    kept = b.abs() >= tau
    torch.manual_seed(3)
    prop = NeSTInitializer(birth_strength=0.3, beta=beta).propose(model, "hidden.0", 3, batch=batch)
    rows_kept, cols_kept = kept.any(1), kept.any(0)
    assert (prop.fan_in[:, ~rows_kept] == 0).all() and (prop.fan_out[~cols_kept] == 0).all()
    mean_w = model.site_modules("hidden.0").producer.weight.detach().abs().mean()
    for n in range(3):
        nz = prop.fan_in[n][prop.fan_in[n] != 0]
        assert torch.allclose(nz.abs().mean(), 0.3 * mean_w)
    # A pair that is its row's and column's only kept pair carries sign(B) on its path.
    for r, c in kept.nonzero().tolist():
        if kept[r].sum() == 1 and kept[:, c].sum() == 1:
            assert (torch.sign(prop.fan_in[:, r] * prop.fan_out[c]) == torch.sign(b[r, c])).all()


@pytest.mark.parametrize("kwargs", [{"birth_strength": 0.0}, {"beta": 0.0}, {"beta": 1.5}])
def test_nest_rejects_bad_params(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        NeSTInitializer(**kwargs)


@pytest.mark.parametrize("site", ["conv.0", "conv.1", "fc.0"])
def test_firefly_cached_path_matches_the_widened_copy(site):
    """Eval mode scores on cached activations; train mode runs the whole widened copy. Without
    BatchNorm or dropout both modes are the same function, so both paths must agree."""
    from growray.models import GrowableCNN

    torch.manual_seed(0)
    model = GrowableCNN((1, 8, 8), 4, channels=[3, 4], hidden=[5], batch_norm=False)
    g = torch.Generator().manual_seed(1)
    batch = (torch.randn(32, 1, 8, 8, generator=g), torch.randint(0, 4, (32,), generator=g))
    ff = FireflyInitializer(n_candidates=6, opt_steps=3)
    out = []
    for train in (False, True):
        model.train(train)
        torch.manual_seed(2)
        out.append(ff.propose(model, site, 3, batch=batch))
    for a, b in zip(
        (out[0].fan_in, out[0].fan_out, out[0].incumbent_fan_out),
        (out[1].fan_in, out[1].fan_out, out[1].incumbent_fan_out),
    ):
        if a is None or b is None:
            assert a is None and b is None
        else:
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
