"""Optimizer-state policies for newborn units: zero, transplant, reset (ALGORITHMS.md §7)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from growray.growth import INITIALIZERS, TRIGGERS, GrowthStrategy, TriggerContext
from growray.growth.optim_state import OPTIMIZER_STATE_POLICIES, match_incumbents, migrate_optimizer
from growray.models import GrowableMLP

torch.set_num_threads(1)


def trained(seed=0, steps=50, opt="adam"):
    torch.manual_seed(seed)
    model = GrowableMLP((6,), 3, hidden=[5], batch_norm=False)
    optim = (
        torch.optim.Adam(model.parameters(), lr=1e-2)
        if opt == "adam"
        else torch.optim.SGD(model.parameters(), lr=1e-2, momentum=0.9)
    )
    x, y = torch.randn(64, 6), torch.randint(0, 3, (64,))
    for _ in range(steps):
        optim.zero_grad()
        F.cross_entropy(model(x), y).backward()
        optim.step()
    return model, optim, (x, y)


def grow(model, optim, policy, initializer="net2wider", n=3):
    strategy = GrowthStrategy(
        TRIGGERS.build({"name": "schedule", "every_steps": 1, "n_units": n}),
        INITIALIZERS.build(initializer),
        optimizer_state=policy,
    )
    x = torch.randn(8, 6)
    ctx = TriggerContext(
        step=1, epoch=0, phase="step", widths=model.widths(), model=model, batch=(x, torch.zeros(8, dtype=torch.long))
    )
    return strategy.step(model, optim, ctx, (x, torch.zeros(8, dtype=torch.long)))


@pytest.mark.parametrize("policy", OPTIMIZER_STATE_POLICIES)
@pytest.mark.parametrize("opt", ["adam", "sgd"])
def test_incumbents_kept_bit_identical(policy, opt):
    model, optim, _ = trained(opt=opt)
    before = {
        n: {k: v.clone() for k, v in optim.state[p].items() if torch.is_tensor(v)} for n, p in model.named_parameters()
    }
    grow(model, optim, policy)
    for name, p in model.named_parameters():
        for key, old in before[name].items():
            new = optim.state[p][key]
            if old.dim() == 0:
                assert torch.equal(new, old)
                continue
            dim = 1 if name == "head.weight" else 0
            assert torch.equal(new.narrow(dim, 0, old.shape[dim]), old), (name, key)


def test_transplant_copies_the_net2wider_source():
    model, optim, _ = trained()
    w_old = model.hidden[0].linear.weight.detach().clone()
    m_old = optim.state[model.hidden[0].linear.weight]["exp_avg"].clone()
    grow(model, optim, "transplant", "net2wider")
    w = model.hidden[0].linear.weight
    m = optim.state[w]["exp_avg"]
    for j in range(5, 8):
        src = int((w_old - w[j].detach()).abs().sum(1).argmin())  # the copied incumbent
        assert torch.equal(m[j], m_old[src])


def test_zero_and_reset_slots():
    for policy in ("zero", "reset"):
        model, optim, _ = trained()
        v_old = optim.state[model.hidden[0].linear.weight]["exp_avg_sq"].clone()
        grow(model, optim, policy, "random")
        st = optim.state[model.hidden[0].linear.weight]
        assert torch.count_nonzero(st["exp_avg"][5:]) == 0
        if policy == "zero":
            assert torch.count_nonzero(st["exp_avg_sq"][5:]) == 0
        else:
            assert torch.allclose(st["exp_avg_sq"][5:], v_old.mean(0, keepdim=True).expand(3, -1))


def first_newborn_step(policy):
    """Size of the newborns' first Adam update on the head (fan-out), in units of lr."""
    model, optim, (x, y) = trained(steps=300)
    grow(model, optim, policy, "random")
    head = model.head.weight
    before = head.detach().clone()
    optim.zero_grad()
    F.cross_entropy(model(x), y).backward()
    g = head.grad[:, 5:].clone()
    optim.step()
    delta = (head.detach() - before)[:, 5:]
    mask = g.abs() > 1e-8
    return float((delta[mask].abs() / 1e-2).mean())


def test_adam_amplification_measured():
    zero, reset = first_newborn_step("zero"), first_newborn_step("reset")
    # zero moments under the shared step count t (301 here): the update is
    # (1-b1)/(1-b1^t) / sqrt((1-b2)/(1-b2^t)) x lr, -> 3.16 x lr as t grows; a fresh Adam takes ~1 x lr
    t, b1, b2 = 301, 0.9, 0.999
    expected = (1 - b1) / (1 - b1**t) / math.sqrt((1 - b2) / (1 - b2**t))
    assert zero == pytest.approx(expected, rel=0.02)
    assert expected > 1.5
    # reset starts the second moment at the incumbents' mean: no amplification
    assert reset < 1.0 < zero


def test_match_incumbents_by_direction():
    inc = torch.eye(4)
    new = torch.tensor([[0.0, 2.0, 0.1, 0.0], [0.0, 0.0, 0.0, 0.0]])
    torch.manual_seed(0)
    idx = match_incumbents(inc, new)
    assert int(idx[0]) == 1 and 0 <= int(idx[1]) < 4


def test_transplant_needs_sources():
    _, optim, _ = trained()
    with pytest.raises(ValueError, match="transplant"):
        migrate_optimizer(optim, [], "transplant")
