"""Pure sparse algorithms: unit masks, pruning schedules and budgets, IMP rewinding, the grow
arm's selection, insertion and moment transplant, and the smooth leaky activation."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from growray.models import ACTIVATIONS, GrowableMLP
from growray.models.smooth_leaky import RandSmoothLeaky, smooth_leaky
from growray.sparse import (
    UNIT_SCORERS,
    RewindSnapshot,
    UnitMasks,
    count_weights,
    edit_count,
    gradmax_scores,
    grow_step,
    imp_prune_step,
    migrate_moments,
    net2wider_insert,
    site_slices,
    unit_targets,
    weight_budget_targets,
)

torch.set_num_threads(1)


def _mlp(hidden=(6, 5), **kw) -> GrowableMLP:
    torch.manual_seed(0)
    return GrowableMLP((8,), 3, hidden=list(hidden), **kw)


def _batch(n: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 8, generator=g), torch.randint(0, 3, (n,), generator=g)


def _mask(model, off: dict[str, list[int]]) -> UnitMasks:
    masks = UnitMasks.dense(model)
    for site, units in off.items():
        masks.set_units(site, torch.tensor(units), False)
    return masks.attach(model)


# ---------------------------------------------------------------------- masks
@pytest.mark.parametrize("batch_norm", [False, True])
def test_masked_units_change_nothing_and_get_no_updates(batch_norm):
    model = _mlp(batch_norm=batch_norm)
    masks = _mask(model, {"hidden.0": [1, 4], "hidden.1": [0]})
    x, y = _batch()
    model.eval()
    before = model(x)
    with torch.no_grad():  # whatever the masked units hold, the output is the same
        for site, units in (("hidden.0", [1, 4]), ("hidden.1", [0])):
            for sl in site_slices(model, site):
                sl.set_(torch.tensor(units), torch.randn_like(sl.get(torch.tensor(units))) * 10)
    assert torch.equal(model(x), before)
    # ... and the same as a dense network whose masked units have a zero fan-out
    masks.detach()
    dense = copy.deepcopy(model)
    masks.attach(model)
    with torch.no_grad():
        dense.hidden[1].linear.weight[:, [1, 4]] = 0
        dense.head.weight[:, [0]] = 0
    assert torch.allclose(dense(x), before, atol=1e-6)

    model.train()
    masks.snapshot_inactive()
    held = {s: [sl.get(masks.inactive(s)) for sl in site_slices(model, s)] for s in masks.sites}
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=0.1)
    for _ in range(3):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        for s in masks.sites:  # the gradients of masked slices are exactly zero
            for sl in site_slices(model, s):
                assert torch.count_nonzero(sl.tensor.grad.index_select(sl.dim, sl.index(masks.inactive(s)))) == 0
        opt.step()
        masks.restore_inactive()
    for s in masks.sites:
        for sl, old in zip(site_slices(model, s), held[s]):
            assert torch.equal(sl.get(masks.inactive(s)), old), (s, sl.name)
    init = _mlp(batch_norm=batch_norm)
    active = masks.active("hidden.0")
    assert not torch.equal(model.hidden[0].linear.weight[active], init.hidden[0].linear.weight[active])


def test_masks_roundtrip_and_weight_counts():
    model = _mlp()
    masks = _mask(model, {"hidden.0": [0, 1, 2]})
    state = masks.state_dict()
    again = UnitMasks.from_state_dict(state)
    assert again.counts() == {"hidden.0": 3, "hidden.1": 5}
    assert torch.equal(again["hidden.0"], masks["hidden.0"].cpu())
    # 8->6->5->3 with biases; hidden.0 keeps 3 units: 3*8+3 + 5*3+5 + 3*5+3
    assert masks.active_weights(model) == 27 + 20 + 18
    assert count_weights(model) == 54 + 35 + 18 == sum(p.numel() for p in model.parameters())
    with pytest.raises(ValueError, match="only 0 and 1"):
        UnitMasks({"hidden.0": torch.tensor([0.5, 1.0])})
    with pytest.raises(ValueError, match="not a site"):
        UnitMasks({"hidden.9": torch.ones(3)}).attach(_mlp())


# ---------------------------------------------------------------------- schedule and budgets
def test_edit_count_spreads_the_budget_over_the_remaining_boundaries():
    q, ks = 10, []
    for t in range(1, 5):  # 5 cycles: boundaries after cycles 1..4
        k = edit_count(q, t, 5, 100)
        ks.append(k)
        q -= k
    assert ks == [3, 3, 2, 2] and q == 0  # ceil(10/4), ceil(7/3), ceil(4/2), ceil(2/1)
    assert edit_count(7, 1, 1, 100) == 7  # max(1, T - t): never divides by zero
    assert edit_count(9, 1, 5, 2) == 2  # never more than available
    assert edit_count(0, 2, 5, 10) == 0
    with pytest.raises(ValueError, match="remaining"):
        edit_count(-1, 1, 5, 3)


def test_budgets():
    assert unit_targets({"a": 256, "b": 10}, 0.5) == {"a": 128, "b": 5}
    assert unit_targets({"a": 3}, 0.01) == {"a": 1}
    with pytest.raises(ValueError, match="compactness"):
        unit_targets({"a": 3}, 1.5)
    torch.manual_seed(0)
    model = GrowableMLP((20,), 3, hidden=[10, 10])
    dense = count_weights(model)
    targets = weight_budget_targets(model, 0.3)
    assert targets["hidden.0"] == targets["hidden.1"]  # the same unit fraction everywhere
    assert count_weights(model, targets) <= 0.3 * dense
    bigger = {s: n + 1 for s, n in targets.items()}
    assert count_weights(model, bigger) > 0.3 * dense  # the largest that fits
    assert weight_budget_targets(model, 1.0) == {"hidden.0": 10, "hidden.1": 10}


# ---------------------------------------------------------------------- IMP with rewinding
def test_pruned_then_rewound_network_has_expected_mask_and_weights():
    model = _mlp(hidden=(8, 6))
    masks = UnitMasks.dense(model).attach(model)
    x, y = _batch()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def train(n):
        for _ in range(n):
            opt.zero_grad()
            F.cross_entropy(model(x), y).backward()
            opt.step()
            masks.restore_inactive()

    train(2)
    snap = RewindSnapshot.capture(model, step=2)
    train(5)
    fan_in = {s: model.site_modules(s).producer.weight.detach().abs().mean(1) for s in masks.sites}
    targets = {"hidden.0": 4, "hidden.1": 3}
    pruned = imp_prune_step(model, masks, UNIT_SCORERS.build("magnitude"), targets, 1, 2, x, snap, opt)
    for site, target in targets.items():
        expected = torch.sort(torch.argsort(fan_in[site], stable=True)[: masks[site].numel() - target]).values
        assert torch.equal(pruned[site], expected)  # cycle 1 of 2: all the way to the target
        assert torch.equal(masks.inactive(site), expected) and masks.counts()[site] == target
    dead = {s: set(pruned[s].tolist()) for s in pruned}
    params = dict(model.named_parameters())
    # every parameter equals the snapshot, except the pruned units' slices, which are zero
    expected_params = {k: v.clone() for k, v in snap.params.items()}
    for site in masks.sites:
        for sl in site_slices(model, site):
            name = next(k for k, p in params.items() if p is sl.tensor)
            expected_params[name].index_fill_(sl.dim, sl.index(torch.tensor(sorted(dead[site]))), 0.0)
    for k, p in params.items():
        assert torch.equal(p.detach(), expected_params[k]), k
    assert len(opt.state) == 0  # retraining from the rewind point starts a fresh optimizer
    # pruned units stay pruned and zero through further training
    train(3)
    for site in masks.sites:
        for sl in site_slices(model, site):
            assert torch.count_nonzero(sl.get(masks.inactive(site))) == 0
    restored = RewindSnapshot.from_state_dict(snap.state_dict())
    assert restored.step == 2 and all(torch.equal(restored.params[k], v) for k, v in snap.params.items())


# ---------------------------------------------------------------------- grow arm
def test_grow_selection_picks_the_most_active_dormant_units():
    model = _mlp(hidden=(8, 6))
    masks = UnitMasks({"hidden.0": torch.tensor([1, 1, 0, 0, 0, 0, 0, 0.0])}).attach(model)
    with torch.no_grad():  # dormant units 2..7: bias sets how often they exceed tau
        model.hidden[0].linear.weight[2:] *= 0.01
        model.hidden[0].linear.bias[2:] = torch.tensor([-5.0, 5.0, -5.0, 3.0, -5.0, -5.0])
    plan = grow_step(model, masks, {"hidden.0": 4}, 1, 2, _batch(), selection="activity", tau=0.05)
    assert plan["hidden.0"].newborns.tolist() == [3, 5]
    assert masks.active("hidden.0").tolist() == [0, 1, 3, 5]


def test_gradmax_score_is_the_fan_out_gradient_the_unit_would_get():
    model = _mlp(hidden=(6, 5))
    masks = _mask(model, {"hidden.0": [2, 3]})
    x, y = _batch()
    scores = gradmax_scores(model, masks, "hidden.0", x, y)
    for j in (2, 3):  # brute force: unmask j with a zero fan-out (same function), differentiate
        masks.detach()
        probe = copy.deepcopy(model)
        m = UnitMasks({"hidden.0": masks["hidden.0"].clone()})
        m.set_units("hidden.0", torch.tensor([j]), True)
        m.attach(probe)
        with torch.no_grad():
            probe.hidden[1].linear.weight[:, j] = 0
        probe.eval()
        F.cross_entropy(probe(x), y).backward()
        assert math.isclose(scores[j].item(), probe.hidden[1].linear.weight.grad[:, j].norm().item(), rel_tol=1e-4)
        m.detach()
        masks.attach(model)


def test_net2wider_insertion_preserves_the_function():
    model = _mlp(hidden=(6, 5), batch_norm=True)
    masks = _mask(model, {"hidden.0": [4, 5]})
    model.eval()
    x, _ = _batch()
    before = model(x)
    net2wider_insert(model, "hidden.0", torch.tensor([4, 5]), torch.tensor([1, 1]))
    masks.set_units("hidden.0", torch.tensor([4, 5]), True)
    assert torch.allclose(model(x), before, atol=1e-5)
    w = model.hidden[0].linear.weight
    assert torch.equal(w[4], w[1]) and torch.equal(w[5], w[1])


@pytest.mark.parametrize("optim", ["sgd", "adam"])
def test_moment_transplant_copies_the_incumbents_slots(optim):
    model = _mlp(hidden=(6, 5))
    _mask(model, {"hidden.0": [4, 5]})
    x, y = _batch()
    opt = (
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
        if optim == "sgd"
        else torch.optim.Adam(model.parameters())
    )
    for _ in range(2):
        opt.zero_grad()
        F.cross_entropy(model(x), y).backward()
        opt.step()
    keys = ["momentum_buffer"] if optim == "sgd" else ["exp_avg", "exp_avg_sq"]
    newborn, source = torch.tensor([4, 5]), torch.tensor([0, 2])
    for sl in site_slices(model, "hidden.0"):  # dormant units never had a gradient
        for k in keys:
            assert torch.count_nonzero(opt.state[sl.tensor][k].index_select(sl.dim, newborn)) == 0
    migrate_moments(opt, model, "hidden.0", newborn, "transplant", source)
    for sl in site_slices(model, "hidden.0"):
        for k in keys:
            st = opt.state[sl.tensor][k]
            assert torch.equal(st.index_select(sl.dim, newborn), st.index_select(sl.dim, source)), (sl.name, k)
            assert torch.count_nonzero(st.index_select(sl.dim, source)) > 0
    migrate_moments(opt, model, "hidden.0", newborn, "zero")
    for sl in site_slices(model, "hidden.0"):
        for k in keys:
            assert torch.count_nonzero(opt.state[sl.tensor][k].index_select(sl.dim, newborn)) == 0
    with pytest.raises(ValueError, match="optimizer_state"):
        migrate_moments(opt, model, "hidden.0", newborn, "copy")


# ---------------------------------------------------------------------- activation
def test_rand_smooth_leaky():
    assert "smooth_leaky" in ACTIVATIONS
    act = ACTIVATIONS.build("smooth_leaky")
    assert isinstance(act, RandSmoothLeaky) and (act.c, act.p) == (3.0, 5.0)
    x = torch.linspace(-6, 6, 101)
    act.eval()
    mid = (0.125 + 1 / 3) / 2
    assert torch.allclose(act(x), mid * x + (1 - mid) * x * torch.sigmoid(0.6 * x))
    act.train()
    torch.manual_seed(0)
    y = act(x)  # a random leak per element, between the two bounds' curves
    lo, hi = smooth_leaky(x, 0.125), smooth_leaky(x, 1 / 3)
    assert torch.all((y >= torch.minimum(lo, hi) - 1e-6) & (y <= torch.maximum(lo, hi) + 1e-6))
    assert not torch.allclose(y, act.eval()(x))
    z = torch.zeros(1, requires_grad=True)  # slope at 0 is positive: zero-fan-in units still learn
    act(z).sum().backward()
    assert z.grad.item() == pytest.approx(mid + (1 - mid) / 2)
    with pytest.raises(ValueError, match="upper"):
        RandSmoothLeaky(lower=0.3, upper=0.2)
    assert GrowableMLP((4,), 2, hidden=[3], activation="smooth_leaky")(torch.randn(2, 4)).shape == (2, 2)
