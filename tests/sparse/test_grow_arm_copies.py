"""The plasticity grow arm writes the growth library's Net2Wider copies and optimizer
slots into dormant units: the same values as appending them."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from growray.growth import RandomInitializer, widen
from growray.growth.initializers import net2wider_proposal
from growray.models import GrowableCNN, GrowableMLP
from growray.sparse import migrate_moments, net2wider_insert

torch.set_num_threads(1)


def _fill_stats(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    model.train()
    with torch.no_grad():
        model(x * 2 + 0.5)
    return model.eval()


def _models():
    torch.manual_seed(0)
    yield "mlp_bn", _fill_stats(GrowableMLP((8,), 3, hidden=[6, 5], batch_norm=True), torch.randn(32, 8)), "hidden.0"
    torch.manual_seed(1)
    cnn = GrowableCNN((2, 8, 8), 3, channels=[3, 4], batch_norm=True)
    yield "cnn_flatten", _fill_stats(cnn, torch.randn(16, 2, 8, 8)), "conv.1"  # conv -> Linear, spatial 4
    yield "cnn_conv", _fill_stats(copy.deepcopy(cnn), torch.randn(16, 2, 8, 8)), "conv.0"


@pytest.mark.parametrize("name, model, site", list(_models()), ids=lambda v: v if isinstance(v, str) else "")
def test_in_place_copies_equal_appended_copies(name, model, site):
    """Appending the copies (growth) and writing them into spare units (plasticity) give the
    same network, entry for entry: both come from one computation."""
    sources, n = torch.tensor([1, 0, 1]), 3
    width = model.widths()[site]
    appended = copy.deepcopy(model)
    widen(appended, site, net2wider_proposal(appended.site_modules(site), sources))
    in_place = copy.deepcopy(model)
    torch.manual_seed(0)
    widen(in_place, site, RandomInitializer().propose(in_place, site, n))  # spare units, zero fan-out
    net2wider_insert(in_place, site, torch.arange(width, width + n), sources)
    a, b = appended.state_dict(), in_place.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_in_place_moments_are_the_appended_units_slots():
    """migrate_moments writes unit_slots' entries: a transplant copies the source's slots in every slice."""
    torch.manual_seed(0)
    model = GrowableMLP((8,), 3, hidden=[6, 5])
    opt = torch.optim.Adam(model.parameters())
    x, y = torch.randn(16, 8), torch.randint(0, 3, (16,))
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    mods = model.site_modules("hidden.0")
    before = {k: v.clone() for k, v in opt.state[mods.consumer.weight].items()}
    migrate_moments(opt, model, "hidden.0", torch.tensor([4]), "transplant", torch.tensor([1]))
    after = opt.state[mods.consumer.weight]
    assert torch.equal(after["exp_avg"][:, 4], before["exp_avg"][:, 1])
    assert torch.equal(after["exp_avg_sq"][:, [0, 1, 2, 3, 5]], before["exp_avg_sq"][:, [0, 1, 2, 3, 5]])
