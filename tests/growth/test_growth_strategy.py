import json

import pytest
import torch

from growray.growth import (
    GrowthEvent,
    GrowthStrategy,
    Net2WiderInitializer,
    PlateauTrigger,
    RandomInitializer,
    ScheduleTrigger,
    TriggerContext,
)
from growray.models import GrowableMLP

torch.set_num_threads(1)


def _train(model, strategy, n_steps, opt, probe):
    events = []
    for step in range(1, n_steps + 1):
        x, y = torch.randn(8, 2, 3), torch.randint(0, 4, (8,))
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        ctx = TriggerContext(step, 0, "step", model.widths(), train_loss=1.0)
        events += strategy.step(model, opt, ctx, probe)
        assert model.training
    return events


@pytest.mark.parametrize("batch_norm", [False, True])
def test_schedule_strategy_grows_at_steps_and_respects_max_width(batch_norm):
    torch.manual_seed(0)
    model = GrowableMLP((2, 3), 4, hidden=[4, 3], batch_norm=batch_norm).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    probe = (torch.randn(32, 2, 3), torch.randint(0, 4, (32,)))
    strategy = GrowthStrategy(
        ScheduleTrigger(every_steps=5, n_units=3),
        Net2WiderInitializer(noise=0.0),
        max_width=9,
        trigger_name="schedule",
        initializer_name="net2wider",
    )
    events = _train(model, strategy, 22, opt, probe)
    assert model.widths() == {"hidden.0": 9, "hidden.1": 9}
    got = [(e.step, e.site, e.width_before, e.width_after) for e in events]
    assert got == [
        (5, "hidden.0", 4, 7),
        (5, "hidden.1", 3, 6),
        (10, "hidden.0", 7, 9),
        (10, "hidden.1", 6, 9),  # clipped to max_width
    ]  # steps 15, 20: nothing left, no events
    for e in events:
        assert e.kind == "widen" and e.trigger == "schedule" and e.initializer == "net2wider"
        assert e.preserves_function and e.preservation_error < 1e-5
        assert e.params_after > e.params_before and e.flops_after > e.flops_before
    assert model(probe[0]).shape == (32, 4)


def test_sites_restriction_and_event_json_round_trip():
    model = GrowableMLP((2, 3), 4, hidden=[4, 3]).eval()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    probe = (torch.randn(16, 2, 3), torch.randint(0, 4, (16,)))
    strategy = GrowthStrategy(PlateauTrigger(patience=1, n_units=2), RandomInitializer(), sites=["hidden.1"])
    assert strategy.step(model, opt, TriggerContext(10, 0, "epoch", model.widths(), val_loss=1.0), probe) == []
    (event,) = strategy.step(model, opt, TriggerContext(20, 1, "epoch", model.widths(), val_loss=1.5), probe)
    assert not model.training  # mode restored
    assert model.widths() == {"hidden.0": 4, "hidden.1": 5}
    assert (event.site, event.n_added, event.epoch, event.trigger) == ("hidden.1", 2, 1, "PlateauTrigger")
    assert event.trigger_score == pytest.approx(0.5) and event.preservation_error <= 1e-6
    assert event.params_after - event.params_before == 2 * (4 + 1) + 4 * 2
    assert event.flops_after - event.flops_before == 2 * (2 * 4 + 4 * 2)
    d = json.loads(json.dumps(event.to_dict()))
    assert GrowthEvent.from_dict(d) == event
    with pytest.raises(ValueError, match="unknown keys"):
        GrowthEvent.from_dict({**d, "extra": 1})
    state = strategy.state_dict()
    fresh = GrowthStrategy(PlateauTrigger(patience=1, n_units=2), RandomInitializer())
    fresh.load_state_dict(json.loads(json.dumps(state)))
    assert fresh.state_dict() == state


def test_strategy_validation():
    t, i = ScheduleTrigger(), RandomInitializer()
    with pytest.raises(ValueError, match="max_width must be an int >= 1 or null; got 0"):
        GrowthStrategy(t, i, max_width=0)
    with pytest.raises(ValueError, match=r"optimizer_state must be one of \['zero', 'transplant', 'reset'\]"):
        GrowthStrategy(t, i, optimizer_state="adam_fresh")
    model = GrowableMLP((2, 3), 4, hidden=[4])
    s = GrowthStrategy(ScheduleTrigger(every_steps=1), i, sites=["hiden.0"])
    with pytest.raises(KeyError, match=r"did you mean 'hidden\.0'"):
        s.step(model, None, TriggerContext(1, 0, "step", model.widths()), (torch.randn(2, 2, 3), None))
