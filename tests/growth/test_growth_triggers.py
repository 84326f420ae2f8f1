import pytest

from growray.growth import TRIGGERS, GrowthRequest, PlateauTrigger, ScheduleTrigger, TriggerContext

W = {"hidden.0": 8, "hidden.1": 4}


def _steps(trigger, n):
    return [s for s in range(1, n + 1) if trigger.check(TriggerContext(s, 0, "step", W))]


def test_schedule_steps():
    assert _steps(ScheduleTrigger(every_steps=10), 45) == [10, 20, 30, 40]
    assert _steps(ScheduleTrigger(every_steps=10, start_step=20, stop_step=40), 60) == [30, 40]
    assert _steps(ScheduleTrigger(every_steps=5, start_step=5, stop_step=5), 60) == []
    reqs = ScheduleTrigger(every_steps=10, n_units=3).check(TriggerContext(10, 0, "step", W))
    assert [(r.site, r.n_units) for r in reqs] == [("hidden.0", 3), ("hidden.1", 3)]
    assert ScheduleTrigger(every_steps=10).check(TriggerContext(10, 0, "epoch", W, val_loss=1.0)) == []


def _epochs(trigger, losses):
    out = []
    for e, loss in enumerate(losses):
        reqs = trigger.check(TriggerContext(100 * e, e, "epoch", W, val_loss=loss))
        assert trigger.check(TriggerContext(100 * e, e, "step", W, train_loss=loss)) == []
        if reqs:
            out.append(e)
            assert {r.site for r in reqs} == set(W) and all(isinstance(r, GrowthRequest) for r in reqs)
    return out


def test_plateau_fires_after_patience():
    # epoch 0 sets best; 1, 2 are within min_delta -> fire at 2; counter reset; 3, 4 -> fire at 4
    assert _epochs(PlateauTrigger(patience=2, min_delta=0.01), [1.0, 0.995, 1.2, 0.999, 1.0]) == [2, 4]
    assert _epochs(PlateauTrigger(patience=3), [1.0, 0.9, 0.8, 0.8, 0.8, 0.8, 0.7]) == [5]
    assert _epochs(PlateauTrigger(patience=1), [1.0, 0.9, 0.8]) == []


def test_plateau_cooldown_and_score():
    t = PlateauTrigger(patience=1, cooldown=2, min_delta=0.0)
    assert _epochs(t, [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]) == [1, 4]
    t = PlateauTrigger(patience=1, n_units=2)
    t.check(TriggerContext(0, 0, "epoch", W, val_loss=1.0))
    (r, _) = t.check(TriggerContext(1, 1, "epoch", W, val_loss=1.25))
    assert r.score == pytest.approx(0.25) and r.n_units == 2 and "plateau" in r.reason


def test_plateau_needs_val_loss():
    with pytest.raises(ValueError, match=r"needs ctx\.val_loss"):
        PlateauTrigger().check(TriggerContext(1, 0, "epoch", W))


@pytest.mark.parametrize(
    "spec, match",
    [
        ({"name": "schedule", "every_steps": 0}, "every_steps must be an int >= 1; got 0"),
        ({"name": "schedule", "stop_step": 5, "start_step": 10}, "stop_step must be >= start_step"),
        ({"name": "plateau", "patience": 0}, "patience must be an int >= 1; got 0"),
        ({"name": "plateau", "min_delta": -1.0}, r"min_delta must be a finite number >= 0; got -1\.0"),
        ({"name": "plateau", "n_units": 2.5}, r"n_units must be an int >= 1; got 2\.5"),
    ],
)
def test_validation(spec, match):
    with pytest.raises(ValueError, match=match):
        TRIGGERS.build(spec)
