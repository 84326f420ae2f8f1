"""Newborn diagnostics: forward-active but backward-starved, measured per event and after."""

from __future__ import annotations

import math

import torch

from growray.config import validate_dict
from growray.data import load_dataset
from growray.growth import INITIALIZERS, TRIGGERS, GrowthStrategy, TriggerContext
from growray.growth.diagnostics import log_parity, newborn_parity
from growray.models import GrowableMLP
from growray.tracking import MemoryRecorder
from growray.train import build_trainer

torch.set_num_threads(1)


def test_log_parity():
    v = torch.tensor([1.0, 1.0, 2.0, 2.0])
    assert math.isclose(log_parity(v, 2, 4), math.log(2.0))
    assert log_parity(torch.tensor([1.0, 0.0]), 1, 2) < -15  # starved newborn


def grown(initializer: str, batch_norm: bool = False):
    torch.manual_seed(0)
    model = GrowableMLP((8,), 3, hidden=[6], batch_norm=batch_norm)
    x, y = torch.randn(128, 8), torch.randint(0, 3, (128,))
    strategy = GrowthStrategy(
        TRIGGERS.build({"name": "schedule", "every_steps": 1, "n_units": 4}), INITIALIZERS.build(initializer)
    )
    ctx = TriggerContext(step=1, epoch=0, phase="step", widths=model.widths(), model=model, batch=(x, y))
    strategy.step(model, None, ctx, (x[:16], y[:16]))
    return model, (x, y)


def test_zero_fan_out_newborns_are_backward_starved():
    model, batch = grown("random")
    p = newborn_parity(model, "hidden.0", 6, 10, batch)
    assert p.grad < -15  # zero fan-out: exactly no gradient reaches the newborns
    assert abs(p.act) < 2  # but they are active in the forward pass
    before = [t.clone() for t in model.state_dict().values()]
    newborn_parity(model, "hidden.0", 6, 10, batch)
    assert all(torch.equal(a, b) for a, b in zip(before, model.state_dict().values()))  # nothing touched


def test_net2wider_copies_receive_gradient():
    model, batch = grown("net2wider", batch_norm=True)
    p = newborn_parity(model, "hidden.0", 6, 10, batch)
    assert p.grad > -3 and abs(p.act) < 2


def test_trainer_logs_parity_at_birth_and_until_horizon():
    exp = validate_dict(
        {
            "name": "d",
            "data": "digits",
            "model": {"name": "mlp", "hidden": [6]},
            "trainer": {"epochs": 2, "batch_size": 64},
            "growth": {
                "trigger": {"name": "schedule", "every_steps": 15, "n_units": 2, "stop_step": 15},
                "diagnostics": {"every_steps": 5, "horizon_steps": 10},
            },
        }
    )
    rec = MemoryRecorder()
    trainer = build_trainer(exp, load_dataset(exp.data, seed=0), recorder=rec)
    trainer.fit()
    (event,) = trainer.events
    assert event["step"] == 15 and event["newborn_grad_parity"] < -15  # random init: zero fan-out
    steps = [s for s, _ in rec.metrics["growth/newborn_grad_parity"]]
    assert steps == [15, 20, 25]  # at birth, then every 5 steps until 10 steps after it
    assert [s for s, _ in rec.metrics["growth/newborn_act_parity/hidden.0"]] == steps
    later = [v for _, v in rec.metrics["growth/newborn_grad_parity"]][1:]
    assert all(v > -15 for v in later)  # once the fan-out moved, gradient reaches the newborns
