"""The one training loop: growth hook, checkpoints with a grown architecture, exact resume."""

from __future__ import annotations

import json

import pytest
import torch

from growray.config import validate_dict
from growray.data import load_dataset
from growray.models import ArchSpec
from growray.tracking import MemoryRecorder
from growray.train import Trainer, TrainingDivergedError, build_trainer, load_checkpoint

torch.set_num_threads(1)

EXP = {
    "name": "t",
    "seed": 3,
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [6, 5], "batch_norm": True},
    "trainer": {"epochs": 4, "batch_size": 128, "optimizer": "adam", "lr": 0.01, "log_every_steps": 2},
    "growth": {
        "trigger": {"name": "schedule", "every_steps": 6, "n_units": 3},
        "initializer": "random",
        "max_width": 14,
    },
}


@pytest.fixture(scope="module")
def digits():
    return load_dataset({"name": "digits"}, seed=0)


def test_growth_hook_grows_logs_and_measures_preservation(digits):
    rec = MemoryRecorder()
    trainer = build_trainer(validate_dict(EXP), digits, recorder=rec)
    final = trainer.fit()
    widths = trainer.model.widths()
    assert widths == {"hidden.0": 14, "hidden.1": 14}  # grown to the cap
    assert trainer.events and all(e["preservation_error"] < 1e-5 for e in trainer.events)  # random: exact
    assert {e["trigger"] for e in trainer.events} == {"schedule"}
    assert final["growth/width/hidden.0"] == 14 and final["growth/events"] == len(trainer.events)
    assert final["cost/params"] > 0 and "test/acc" in final
    # step-indexed series in the recorder; the width series only ever increases
    width_series = [v for _, v in rec.metrics["growth/width/hidden.0"]]
    assert width_series[0] == 6 and width_series == sorted(width_series)
    assert {"architecture.json", "growth_events.json", "plots/growth_timeline.png"} <= set(rec.artifacts)
    spec = ArchSpec.from_json(rec.artifacts["architecture.json"])
    assert spec.params["hidden"] == [14, 14]


def test_resume_from_grown_checkpoint_is_exact(digits, tmp_path):
    exp = validate_dict(EXP)
    straight = build_trainer(exp, digits)
    straight.fit()

    # same run, interrupted after epoch 2 (widths already grown), restored from the checkpoint
    saved = {}

    def report(metrics, d):
        if metrics["epoch"] == 2:
            import shutil

            shutil.copytree(d, tmp_path / "ckpt")
            saved["widths"] = {k: v for k, v in metrics.items() if k.startswith("growth/width/")}
            raise KeyboardInterrupt  # stands in for the worker dying

    first = build_trainer(exp, digits, report=report)
    with pytest.raises(KeyboardInterrupt):
        first.fit()
    ckpt = load_checkpoint(tmp_path / "ckpt")
    assert ckpt.spec.params["hidden"] != [6, 5], "the checkpoint must hold the grown architecture"
    assert json.loads((tmp_path / "ckpt" / "meta.json").read_text())["epoch"] == 2

    resumed = build_trainer(exp, digits, checkpoint_dir=str(tmp_path / "ckpt"))
    assert resumed.epoch == 2 and resumed.model.spec() == ckpt.spec
    resumed.fit()
    assert resumed.step == straight.step
    assert resumed.events == straight.events
    for (k, a), (_, b) in zip(straight.model.state_dict().items(), resumed.model.state_dict().items()):
        assert torch.equal(a, b), k


def test_checkpoint_loads_with_weights_only(digits, tmp_path):
    trainer = build_trainer(validate_dict(EXP), digits)
    trainer.save(str(tmp_path))
    state = torch.load(tmp_path / "state.pt", weights_only=True)  # no pickled code
    assert set(state) == {"model", "optimizer", "rng", "data_rng", "hooks"}


def test_divergence_is_an_error(digits):
    exp = validate_dict({**EXP, "growth": None})
    trainer = build_trainer(exp, digits)
    with torch.no_grad():
        next(trainer.model.parameters())[0, 0] = float("nan")
    with pytest.raises(TrainingDivergedError, match=r"lower trainer\.lr"):
        trainer.fit()


def test_unknown_growth_site_is_reported(digits):
    with pytest.raises(ValueError, match=r"growth\.sites"):  # caught by validation, before any training
        validate_dict({**EXP, "growth": {**EXP["growth"], "sites": ["hidden.7"]}})


def test_static_model_has_no_growth_hook(digits):
    exp = validate_dict({**EXP, "growth": None, "trainer": {**EXP["trainer"], "epochs": 1}})
    trainer = build_trainer(exp, digits)
    assert trainer.hooks == [] and isinstance(trainer, Trainer)
    assert trainer.fit()["growth/events"] == 0


def test_costs_follow_the_architecture(digits, monkeypatch):
    import growray.train.costs as trainer_mod

    calls = []
    real = trainer_mod.measure_latency
    monkeypatch.setattr(trainer_mod, "measure_latency", lambda *a, **k: calls.append(a[0].spec()) or real(*a, **k))
    costs = {"every_epochs": 1, "latency": {"batch_sizes": [1, 8], "min_run_time": 0.01, "warmup": 1}}
    rec = MemoryRecorder()
    trainer = build_trainer(validate_dict({**EXP, "costs": costs}), digits, recorder=rec)
    final = trainer.fit()
    assert final["cost/latency_p95_ms"] >= final["cost/latency_ms"] > 0 and final["cost/latency_ms/bs8"] > 0
    assert rec.params["cost.latency.batch_sizes"] == "1,8" and rec.params["cost.latency.device"] == "cpu"
    assert rec.params["cost.latency.threads"] == str(torch.get_num_threads())
    assert len(calls) == len(
        {json.dumps(s.to_dict(), sort_keys=True) for s in calls}
    )  # never twice on one architecture
    flops = [v for _, v in rec.metrics["cost/train_flops"]]
    assert flops == sorted(flops) and flops[-1] > 0
    # static network: one measurement for the whole run
    calls.clear()
    build_trainer(validate_dict({**EXP, "growth": None, "costs": costs}), digits).fit()
    assert len(calls) == 1


def test_restore_applies_this_trials_hyperparameters(digits, tmp_path):
    """A PBT recipient loads a donor's checkpoint: moments kept, its own (mutated) lr used."""
    donor = build_trainer(validate_dict({**EXP, "trainer": {**EXP["trainer"], "epochs": 1}}), digits)
    donor.fit()
    donor.save(str(tmp_path))
    mutated = validate_dict({**EXP, "trainer": {**EXP["trainer"], "lr": 0.0042, "weight_decay": 1e-4}})
    recipient = build_trainer(mutated, digits, checkpoint_dir=str(tmp_path))
    assert {g["lr"] for g in recipient.optimizer.param_groups} == {0.0042}
    assert {g["weight_decay"] for g in recipient.optimizer.param_groups} == {1e-4}
    for p_d, p_r in zip(donor.model.parameters(), recipient.model.parameters()):
        assert torch.equal(donor.optimizer.state[p_d]["exp_avg"], recipient.optimizer.state[p_r]["exp_avg"])


@pytest.mark.parametrize(
    "trigger", [{"name": "schedule", "every_steps": 5}, {"name": "plateau", "patience": 1, "min_delta": 10.0}]
)
def test_every_metric_is_logged_once_per_step_when_events_fall_on_epoch_ends(digits, trigger):
    """digits' training split is 1257 samples: 10 steps of 128 per epoch, so a schedule every 5
    steps grows at each epoch's last step, and a plateau trigger grows at the epoch end itself;
    the event's and the epoch's architecture metrics must not both be recorded at that step."""
    exp = validate_dict(
        {
            **EXP,
            "model": {"name": "mlp", "hidden": [4, 4]},
            "growth": {"trigger": {**trigger, "n_units": 2}, "max_width": 40},
            "costs": {"latency": {"enabled": False}},
        }
    )
    rec = MemoryRecorder()
    trainer = build_trainer(exp, digits, recorder=rec)
    steps_per_epoch = len(trainer.data.train[0]) // 128 + (1 if len(trainer.data.train[0]) % 128 >= 2 else 0)
    trainer.fit()
    event_steps = {e["step"] for e in trainer.events}
    epoch_ends = {steps_per_epoch * (i + 1) for i in range(exp.trainer.epochs)}
    assert event_steps & epoch_ends, "the case needs an event at an epoch's last step"
    for key, points in rec.metrics.items():
        steps = [s for s, _ in points]
        assert len(steps) == len(set(steps)), f"{key} logged twice at a step: {sorted(steps)}"
