"""The Net2Wider and optimizer-slot math that appended units (growth) and dormant units
(the plasticity grow arm, tests/sparse/test_grow_arm_copies.py) share: net2wider_proposal,
unit_slots, unit_rows."""

from __future__ import annotations

import copy

import pytest
import torch

from growray.growth.initializers import net2wider_proposal, split_unit_columns
from growray.growth.optim_state import unit_rows, unit_slots
from growray.models import GrowableCNN, GrowableMLP

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
def test_copies_of_given_sources(name, model, site):
    mods = model.site_modules(site)
    sources = torch.tensor([2, 0, 2])
    p = net2wider_proposal(mods, sources)
    w, b = mods.producer.weight.detach(), mods.producer.bias.detach()
    assert torch.equal(p.fan_in, w[sources]) and torch.equal(p.bias, b[sources])
    for key in ("weight", "bias", "running_mean", "running_var"):
        assert torch.equal(p.norm[key], getattr(mods.norm, key).detach()[sources]), key
    blocks = split_unit_columns(mods.consumer.weight.detach(), mods.spatial)
    new = split_unit_columns(p.incumbent_fan_out, mods.spatial)
    assert torch.equal(new[:, 1], blocks[:, 1]), "a unit that is not copied keeps its columns"
    torch.testing.assert_close(new[:, 2], blocks[:, 2] / 3, atol=0, rtol=1e-6)  # two copies + the original
    torch.testing.assert_close(new[:, 0], blocks[:, 0] / 2, atol=0, rtol=1e-6)
    assert torch.equal(split_unit_columns(p.fan_out, mods.spatial), new[:, sources])


def test_unit_slots_policies():
    g = torch.Generator().manual_seed(0)
    value = torch.rand(4, 6, generator=g)
    assert torch.equal(unit_slots(value, "exp_avg", 1, 2, "zero"), torch.zeros(4, 2))
    assert torch.equal(unit_slots(value, "exp_avg", 1, 2, "transplant", torch.tensor([5, 0])), value[:, [5, 0]])
    assert torch.equal(unit_slots(value, "exp_avg", 0, 3, "reset"), torch.zeros(3, 6))
    reset = unit_slots(value, "exp_avg_sq", 0, 3, "reset")
    assert reset.shape == (3, 6) and torch.equal(reset, value.mean(dim=0, keepdim=True).expand(3, 6))
    with pytest.raises(ValueError, match="sources must give one position per newborn"):
        unit_slots(value, "exp_avg", 1, 2, "transplant", torch.tensor([1]))
    with pytest.raises(ValueError, match=r"policy must be one of \['zero', 'transplant', 'reset'\]"):
        unit_slots(value, "exp_avg", 1, 2, "copy")


def test_unit_rows_pair_fan_in_with_the_units_consumer_columns():
    torch.manual_seed(0)
    cnn = GrowableCNN((2, 8, 8), 3, channels=[3, 4], batch_norm=True)
    mods = cnn.site_modules("conv.1")  # 4 channels, each owning 4 consecutive Linear columns
    rows = unit_rows(mods)
    w, c = mods.producer.weight.detach(), mods.consumer.weight.detach()
    assert rows.shape == (4, 3 * 3 * 3 + c.shape[0] * 4)
    assert torch.equal(rows[2, :27], w[2].flatten())
    assert torch.equal(rows[2, 27:], c[:, 8:12].flatten())
