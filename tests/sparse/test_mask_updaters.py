"""Mask updaters on hand-built layers: RigL drops the smallest magnitudes and regrows exactly
the top-|gradient| positions; counts are exact; the schedule is RigL's cosine; SRigL keeps a
constant fan-in and ablates neurons with too few salient connections."""

from __future__ import annotations

import math

import pytest
import torch

from growray.sparse import (
    UPDATERS,
    LayerInfo,
    RigLUpdater,
    SETUpdater,
    StructuredRigLUpdater,
    UpdateSchedule,
    constant_fan_in_mask,
)

LAYER = LayerInfo("layer", 0, 2)


def _hand_built():
    """A 3x4 layer with 6 active weights of distinct magnitudes and a distinct gradient."""
    mask = torch.tensor([[1, 1, 0, 0], [0, 1, 1, 0], [1, 0, 0, 1]], dtype=torch.bool)
    weight = torch.tensor([[0.9, -0.05, 0, 0], [0, 0.5, -0.02, 0], [0.7, 0, 0, -0.3]])
    grad = torch.tensor([[0.1, 5.0, -0.4, 3.0], [2.0, 0.3, 9.0, -0.2], [0.05, -7.0, 1.0, 0.01]])
    return mask, weight, grad


@pytest.mark.parametrize("noise", [0.0, 1e-5])
def test_rigl_regrows_exactly_the_top_gradient_positions(noise):
    mask, weight, grad = _hand_built()
    upd = RigLUpdater(drop_noise=noise).update(LAYER, mask, weight, grad, 0.5, torch.Generator().manual_seed(0))
    # k = floor(0.5 * 6) = 3: drop |w| = 0.02, 0.05, 0.3 -> (1,2), (0,1), (2,3)
    assert upd.n_dropped == upd.n_grown == 3
    kept = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 0, 0]], dtype=torch.bool)
    # grow the 3 largest |g| among the 9 positions inactive after the drop: 9.0 (1,2; just dropped,
    # grown again), 7.0 (2,1), 5.0 (0,1; just dropped) -- not 3.0 (0,3) nor 2.0 (1,0)
    grown = torch.zeros(3, 4, dtype=torch.bool)
    grown[1, 2] = grown[2, 1] = grown[0, 1] = True
    assert torch.equal(upd.mask, kept | grown)


def test_set_regrows_at_random_among_the_inactive_and_ignores_the_gradient():
    mask, weight, grad = _hand_built()
    a = SETUpdater().update(LAYER, mask, weight, None, 0.5, torch.Generator().manual_seed(1))
    b = RigLUpdater(regrow="random").update(LAYER, mask, weight, grad, 0.5, torch.Generator().manual_seed(1))
    assert torch.equal(a.mask, b.mask), "rigl with random regrowth is set under one seed"
    draws = {
        tuple(
            SETUpdater()
            .update(LAYER, mask, weight, None, 0.5, torch.Generator().manual_seed(s))
            .mask.flatten()
            .tolist()
        )
        for s in range(20)
    }
    assert len(draws) > 1, "the regrowth is random"


@pytest.mark.parametrize("name", ["set", "rigl"])
def test_drop_and_regrow_counts_are_exact_at_every_update(name):
    updater = UPDATERS.build(name)
    gen = torch.Generator().manual_seed(0)
    shape = (30, 50)
    mask = updater.init_mask(shape, 300, gen)
    schedule = UpdateSchedule(delta_t=10, alpha=0.3, end_step=200)
    for step in range(1, 200):
        if not schedule.is_update(step):
            continue
        f = schedule.drop_fraction(step)
        w = torch.randn(shape, generator=gen) * mask
        g = torch.randn(shape, generator=gen)
        upd = updater.update(LAYER, mask, w, g if updater.needs_gradient else None, f, gen)
        k = int(300 * f)
        assert upd.n_dropped == upd.n_grown == k, f"step {step}: f={f:.4f}"
        assert int(upd.mask.sum()) == 300
        assert int((mask & ~upd.mask).sum()) <= k and int((upd.mask & ~mask).sum()) <= k
        mask = upd.mask


def test_update_schedule_is_rigl_cosine():
    s = UpdateSchedule(delta_t=100, alpha=0.3, end_step=750)
    assert [t for t in range(1, 1000) if s.is_update(t)] == [100, 200, 300, 400, 500, 600, 700]
    assert s.n_updates() == 7
    assert s.drop_fraction(0) == pytest.approx(0.3)
    assert s.drop_fraction(375) == pytest.approx(0.15)
    assert s.drop_fraction(700) == pytest.approx(0.15 * (1 + math.cos(math.pi * 700 / 750)))
    assert s.drop_fraction(750) == 0.0
    with pytest.raises(ValueError, match="delta_t must be an int >= 1"):
        UpdateSchedule(0, 0.3, 10)
    with pytest.raises(ValueError, match=r"alpha must be a finite number in \(0, 1\]"):
        UpdateSchedule(1, 0.0, 10)


def test_srigl_keeps_a_constant_fan_in():
    updater = StructuredRigLUpdater(ablation=False)
    gen = torch.Generator().manual_seed(0)
    shape = (8, 4, 3, 3)
    mask = constant_fan_in_mask(shape, 8 * 7, gen)
    assert mask.reshape(8, -1).sum(1).tolist() == [7] * 8
    for f in (0.3, 0.2, 0.1):
        g = torch.randn(shape, generator=gen)
        upd = updater.update(LAYER, mask, torch.randn(shape, generator=gen) * mask, g, f, gen)
        assert upd.mask.reshape(8, -1).sum(1).tolist() == [7] * 8
        assert upd.n_dropped == upd.n_grown == int(56 * f)
        mask = upd.mask


def test_srigl_ablates_a_neuron_without_salient_connections_and_spreads_its_budget():
    rows, fan_in, k = 6, 10, 4
    mask = torch.zeros(rows, fan_in, dtype=torch.bool)
    mask[:, :k] = True
    weight = torch.ones(rows, fan_in) * mask
    weight[2, :k] = 1e-3  # neuron 2: tiny weights, all dropped ...
    grad = torch.ones(rows, fan_in)
    grad[2] = 1e-6  # ... and no gradient worth regrowing
    upd = StructuredRigLUpdater(gamma_sal=0.3, drop_noise=0.0).update(
        LAYER, mask, weight, grad, 0.25, torch.Generator().manual_seed(0)
    )
    fan = upd.mask.sum(1).tolist()
    assert upd.n_ablated == 1 and fan[2] == 0
    assert [f for i, f in enumerate(fan) if i != 2] == [24 // 5] * 5, "k' = floor(24 active / 5 neurons)"
    # the output layer keeps every neuron
    last = StructuredRigLUpdater(gamma_sal=0.3, drop_noise=0.0).update(
        LayerInfo("head", 1, 2), mask, weight, grad, 0.25, torch.Generator().manual_seed(0)
    )
    assert last.n_ablated == 0 and last.mask.sum(1).tolist() == [k] * rows
