"""Widening conv sites: Conv2d -> Conv2d and Conv2d -> Linear through the flatten."""

import pytest
import torch
from torch import nn

from growray.growth import (
    Net2WiderInitializer,
    RandomInitializer,
    WidthProposal,
    migrate_optimizer,
    widen,
)
from growray.growth.initializers import join_unit_columns, split_unit_columns
from growray.models import GrowableCNN, SiteModules

torch.set_num_threads(1)

X = torch.randn(32, 2, 8, 8, generator=torch.Generator().manual_seed(3))
# conv.0 -> conv.1 (Conv2d -> Conv2d); conv.1 -> fc.0 through a 2x2 flatten (spatial 4)
SITES = {"conv.0": 1, "conv.1": 4}


def _model(batch_norm: bool = True, seed: int = 0) -> GrowableCNN:
    torch.manual_seed(seed)
    m = GrowableCNN((2, 8, 8), 3, channels=[3, 4], hidden=[5], batch_norm=batch_norm)
    if batch_norm:
        m.train()
        with torch.no_grad():
            for _ in range(3):
                m(X * 2 + 0.7)  # running stats far from (0, 1)
            for mod in m.modules():
                if isinstance(mod, nn.modules.batchnorm._BatchNorm):
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.normal_(0, 0.5)
    return m.eval()


def _grow(model, init, site, n, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        before = model(X)
    proposal = init.propose(model, site, n)
    changes = widen(model, site, proposal)
    with torch.no_grad():
        err = (model(X) - before).abs().max().item()
    return err, proposal, changes


@pytest.mark.parametrize("site", SITES)
@pytest.mark.parametrize("batch_norm", [False, True])
@pytest.mark.parametrize(
    "init", [RandomInitializer(scale=2.0), Net2WiderInitializer(noise=0.0)], ids=["random", "net2wider"]
)
def test_exact_preservation(init, batch_norm, site):
    model = _model(batch_norm)
    err, _, _ = _grow(model, init, site, n=9)  # 9 > width: net2wider repeats sources
    assert err <= 1e-5
    assert model.widths()[site] == {"conv.0": 3, "conv.1": 4}[site] + 9
    model.train()
    assert model(X).shape == (32, 3)  # BN in train mode on the grown channels


@pytest.mark.parametrize("site", SITES)
def test_net2wider_copies_filters_and_divides_consumer_slices(site):
    model = _model()
    mods = model.site_modules(site)
    w, b = mods.producer.weight.detach().clone(), mods.producer.bias.detach().clone()
    stats = {k: getattr(mods.norm, k).detach().clone() for k in ("weight", "bias", "running_mean", "running_var")}
    tracked = mods.norm.num_batches_tracked.clone()
    cw = mods.consumer.weight.detach().clone()
    width, spatial = w.shape[0], mods.spatial
    assert spatial == SITES[site]
    _, p, _ = _grow(model, Net2WiderInitializer(noise=0.0), site, n=7)
    g = [int((w.flatten(1) == row.flatten()).all(1).nonzero()[0]) for row in p.fan_in]
    assert torch.equal(p.bias, b[g])
    for k, v in stats.items():  # same g for every BN entry; incumbents untouched
        assert torch.equal(p.norm[k], v[g]), k
        assert torch.equal(getattr(mods.norm, k), torch.cat([v, v[g]])), k
    assert torch.equal(mods.norm.num_batches_tracked, tracked)
    counts = torch.bincount(torch.tensor(g), minlength=width) + 1
    blocks = split_unit_columns(cw, spatial)  # (out, width, spatial, *kernel)
    scale = counts.to(cw.dtype).reshape((1, width) + (1,) * (blocks.dim() - 2))
    assert torch.allclose(split_unit_columns(p.incumbent_fan_out, spatial), blocks / scale)
    assert torch.allclose(split_unit_columns(p.fan_out, spatial), (blocks / scale)[:, g])
    assert p.fan_out.shape == (cw.shape[0], 7 * spatial, *cw.shape[2:])


def test_random_conv_fresh_norm_and_zero_fan_out():
    model = _model()
    _, p, _ = _grow(model, RandomInitializer(), "conv.1", n=3)
    assert p.fan_in.shape == (3, 3, 3, 3) and p.fan_in.abs().max() <= 1 / 27**0.5
    assert p.fan_out.shape == (5, 3 * 4) and torch.count_nonzero(p.fan_out) == 0
    assert torch.equal(p.norm["weight"], torch.ones(3)) and torch.equal(p.norm["running_var"], torch.ones(3))
    assert torch.equal(p.norm["bias"], torch.zeros(3)) and torch.equal(p.norm["running_mean"], torch.zeros(3))


def test_conv_to_linear_blocks_appended_after_incumbents():
    model = _model()
    fc = model.site_modules("conv.1").consumer
    old = fc.weight.detach().clone()
    _, _, changes = _grow(model, RandomInitializer(), "conv.1", n=2)
    assert fc.in_features == 6 * 4 and fc.weight.shape == (5, 24)
    assert torch.equal(fc.weight[:, :16], old)  # incumbents' blocks first, unchanged
    consumer_change = next(c for c in changes if c.new is fc.weight)
    assert consumer_change.dim == 1 and consumer_change.n_old == 16
    # a new channel's block: column j*S + s of fan_out
    p2 = Net2WiderInitializer(noise=0.0).propose(model, "conv.1", 1)
    assert torch.equal(join_unit_columns(split_unit_columns(p2.fan_out, 4)), p2.fan_out)


@pytest.mark.parametrize("opt_name", ["sgd_momentum", "adam"])
@pytest.mark.parametrize("site", SITES)
def test_optimizer_migration_of_conv_weights(opt_name, site):
    model = _model().train()
    opt = {
        "sgd_momentum": lambda ps: torch.optim.SGD(ps, lr=0.05, momentum=0.9),
        "adam": lambda ps: torch.optim.Adam(ps, lr=1e-3),
    }[opt_name](model.parameters())
    y = torch.randint(0, 3, (32,))
    for _ in range(2):
        opt.zero_grad()
        nn.functional.cross_entropy(model(X), y).backward()
        opt.step()
    old_state = {id(p): {k: v.clone() for k, v in opt.state[p].items()} for p in model.parameters()}
    _, _, changes = _grow(model, Net2WiderInitializer(noise=0.0), site, n=3)
    migrate_optimizer(opt, changes)
    spatial = SITES[site]
    mods = model.site_modules(site)
    by_new = {id(c.new): c for c in changes}
    assert by_new[id(mods.producer.weight)].dim == 0 and mods.producer.weight.dim() == 4
    assert by_new[id(mods.consumer.weight)].dim == 1
    assert by_new[id(mods.consumer.weight)].n_old == {"conv.0": 3, "conv.1": 4}[site] * spatial
    for c in changes:
        n_extra = c.new.shape[c.dim] - c.n_old
        assert n_extra == (3 * spatial if c.new is mods.consumer.weight else 3)
        for k, old in old_state[id(c.old)].items():
            new = opt.state[c.new][k]
            if old.dim() == 0:
                assert torch.equal(new, old)
                continue
            assert new.shape == c.new.shape, k
            assert torch.equal(new.narrow(c.dim, 0, c.n_old), old), k
            assert torch.count_nonzero(new.narrow(c.dim, c.n_old, n_extra)) == 0, k
    model.train()
    opt.zero_grad()
    nn.functional.cross_entropy(model(X), y).backward()
    opt.step()
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_bad_proposals_are_rejected():
    model = _model()
    p = RandomInitializer().propose(model, "conv.1", 2)
    bad = WidthProposal(p.fan_in, p.bias, p.fan_out[:, :2], None, p.norm)  # n columns, not n * spatial
    with pytest.raises(ValueError, match=r"fan_out has shape \(5, 2\); expected \(5, 8\)"):
        widen(model, "conv.1", bad)
    bad = WidthProposal(p.fan_in[:, :, :2], p.bias, p.fan_out, None, p.norm)
    with pytest.raises(ValueError, match=r"fan_in has shape \(2, 3, 2, 3\); expected \(2, 3, 3, 3\)"):
        widen(model, "conv.1", bad)
    assert model.widths()["conv.1"] == 4  # nothing changed


class _Grouped(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(2, 4, 3, padding=1, groups=2)
        self.b = nn.Conv2d(4, 2, 1)

    def site_modules(self, site):
        return SiteModules(self.a, None, self.b, None)


def test_grouped_conv_refused():
    m = _Grouped()
    p = WidthProposal(torch.zeros(2, 1, 3, 3), torch.zeros(2), torch.zeros(2, 2, 1, 1))
    with pytest.raises(TypeError, match="grouped Conv2d \\(groups=2\\)"):
        widen(m, "x", p)


def test_strategy_grows_every_cnn_site_and_preserves_function():
    from growray.growth import GrowthStrategy, ScheduleTrigger, TriggerContext

    model = _model().train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    probe = (X[:16], torch.randint(0, 3, (16,)))
    strategy = GrowthStrategy(ScheduleTrigger(every_steps=1, n_units=2), Net2WiderInitializer(noise=0.0))
    ctx = TriggerContext(1, 0, "step", model.widths(), model=model, batch=(X, torch.randint(0, 3, (32,))))
    events = strategy.step(model, opt, ctx, probe)
    assert [e.site for e in events] == ["conv.0", "conv.1", "fc.0"]
    assert all(e.preservation_error < 1e-5 and e.flops_after > e.flops_before for e in events)
    assert model.widths() == {"conv.0": 5, "conv.1": 6, "fc.0": 7} and model.training
