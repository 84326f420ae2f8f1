"""The baselines kind through the real trainer and a real MLflow sqlite store: each arm's
architecture, epochs and FLOP budget, the linked runs, and the growth report read back."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from growray.config import ConfigError, validate_dict
from growray.cost import training_flops_per_sample
from growray.data import load_dataset
from growray.growth import RandomExpansionInitializer
from growray.kinds import get_kind
from growray.kinds.growth import GrowthHook
from growray.models import ArchSpec, build_model
from growray.testing.kinds import KindConformance
from growray.tracking import MemoryRecorder, MlflowRecorder, create_sweep_run, ensure_store, get_or_create_experiment
from growray.train import build_trainer

torch.set_num_threads(1)

BASE = {
    "name": "baselines-kind",
    "seed": 1,
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [4, 4]},
    "trainer": {"epochs": 3, "batch_size": 64, "optimizer": "sgd", "lr": 0.1, "log_every_steps": 2},
    # digits' default training split -> 20 steps an epoch; one event at step 30 (inside epoch 2)
    "growth": {
        "trigger": {"name": "schedule", "every_steps": 30, "n_units": 12, "stop_step": 30},
        "initializer": {"name": "net2wider"},
        "max_width": 16,
        "lr_factor_after_growth": 0.5,
        "diagnostics": {"enabled": False},
    },
    "baselines": {"arm": "grown"},
    "costs": {"latency": {"enabled": False}},
}


def _exp(**baselines):
    raw = copy.deepcopy(BASE)
    raw["baselines"] = {**raw["baselines"], **baselines}
    return validate_dict(raw)


@pytest.fixture(scope="module")
def dataset():
    return load_dataset({"name": "digits"}, seed=1)


def test_small_static_never_grows_and_random_expansion_swaps_the_initializer(dataset):
    trainer = build_trainer(_exp(arm="small_static"), dataset, recorder=MemoryRecorder(), device="cpu")
    assert not any(isinstance(h, GrowthHook) for h in trainer.hooks)
    trainer.fit()
    assert trainer.widths() == {"hidden.0": 4, "hidden.1": 4} and trainer.events == []

    trainer = build_trainer(_exp(arm="random_expansion"), dataset, recorder=MemoryRecorder(), device="cpu")
    (hook,) = [h for h in trainer.hooks if isinstance(h, GrowthHook)]
    assert isinstance(hook.strategy.initializer, RandomExpansionInitializer)
    trainer.fit()
    assert trainer.widths() == {"hidden.0": 16, "hidden.1": 16}
    assert [e["initializer"] for e in trainer.events] == ["random_expansion"] * 2
    assert min(e["preservation_error"] for e in trainer.events) > 1e-4  # measured, not preserved


def test_lr_factor_after_growth_scales_every_group_from_the_event_on(dataset):
    rec = MemoryRecorder()
    trainer = build_trainer(_exp(), dataset, recorder=rec, device="cpu")
    trainer.fit()
    assert [e["step"] for e in trainer.events] == [30, 30]
    lrs = [v for _, v in rec.metrics["train/lr"]]
    assert lrs == pytest.approx([0.1, 0.05, 0.05])  # the epochs' last rates: the event is in epoch 2
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx(
        [0.05] * len(trainer.optimizer.param_groups)
    )
    (hook,) = [h for h in trainer.hooks if isinstance(h, GrowthHook)]
    assert hook.state_dict()["lr_scale"] == 0.5  # one event (two sites at one step): one factor


def test_config_errors_name_the_path():
    raw = copy.deepcopy(BASE)
    raw.pop("growth")
    with pytest.raises(ConfigError) as err:
        validate_dict(raw)
    assert "baselines.arm" in str(err.value) and "growth section" in str(err.value)
    with pytest.raises(ConfigError) as err:
        _exp(arm="compute_matched")
    assert "baselines.flop_budget" in str(err.value)
    with pytest.raises(ConfigError) as err:
        _exp(arm="dense")
    assert "baselines.arm" in str(err.value) and "small_static" in str(err.value)


class _Stage:
    def __init__(self, trainer, final, dataset, uri, run_id):
        self.trainer, self.final, self.dataset, self.tracking_uri, self.run_id = trainer, final, dataset, uri, run_id


@pytest.fixture(scope="module")
def sweep(tmp_path_factory, dataset):
    """A grown run and its linked arms, and a small_static run, under one sweep parent run."""
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    ensure_store(uri)
    eid = get_or_create_experiment(uri, "baselines-kind")
    parent = create_sweep_run(uri, eid, run_name="sweep", tags={"growray.sweep": "sweep-1", "growray.kind": "sweep"})
    runs = {}
    for arm in ("grown", "small_static"):
        exp = _exp(arm=arm)
        rec = MlflowRecorder(uri, eid, run_name=arm, parent_run_id=parent, tags={"growray.searched": "{}"})
        rec.log_params({"baselines.arm": arm, "seed": "1"})
        trainer = build_trainer(exp, dataset, recorder=rec, device="cpu")
        final = trainer.fit()
        rec.close("FINISHED")
        runs[arm] = (exp, trainer, final, rec.run_id)
    exp, trainer, final, grown_id = runs["grown"]
    kind = get_kind("baselines")
    added = kind.after_fit(exp, exp.kinds["baselines"], _Stage(trainer, final, dataset, uri, grown_id))
    return uri, parent, runs, added


def _linked(uri, grown_id):
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    tags = client.get_run(grown_id).data.tags
    return {arm: client.get_run(tags[f"growray.{arm}_run_id"]) for arm in ("dense_target", "compute_matched")}


def _spec(uri, run_id):
    import tempfile
    from pathlib import Path

    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory() as d:
        return json.loads(Path(MlflowClient(uri).download_artifacts(run_id, "architecture.json", d)).read_text())


def test_dense_target_is_the_final_architecture_from_scratch_for_the_same_epochs(sweep):
    uri, _, runs, added = sweep
    _, trainer, final, grown_id = runs["grown"]
    dense = _linked(uri, grown_id)["dense_target"]
    spec = _spec(uri, dense.info.run_id)
    assert spec == json.loads(trainer.arch_json())  # rebuilt from the grown run's final spec
    assert spec["hidden"] == [16, 16]
    assert dense.data.metrics["epoch"] == 3 == trainer.epoch
    assert dense.data.params["seed"] == "1" and dense.data.params["trainer.lr"] == "0.1"
    assert dense.data.tags["growray.grown_run_id"] == grown_id
    assert added["baselines/dense_target/test_acc"] == pytest.approx(dense.data.metrics["test/acc"])
    # from scratch, never grown: a whole 3-epoch run of [16, 16] costs more than the grown one
    assert dense.data.metrics["cost/train_flops"] > final["cost/train_flops"]


def test_compute_matched_stops_at_the_grown_runs_flops_within_one_step(sweep, dataset):
    uri, _, runs, _ = sweep
    exp, trainer, final, grown_id = runs["grown"]
    matched = _linked(uri, grown_id)["compute_matched"]
    budget = final["cost/train_flops"]
    spent = matched.data.metrics["cost/train_flops"]
    model = build_model(ArchSpec.from_json(trainer.arch_json()))
    one_step = training_flops_per_sample(model, dataset.input_shape) * exp.trainer.batch_size
    assert budget <= spent < budget + one_step
    assert matched.data.tags["growray.stop_reason"].startswith("compute_matched")
    assert matched.data.params["baselines.flop_budget"] == str(budget)
    assert matched.data.metrics["epoch"] <= exp.trainer.epochs
    assert _spec(uri, matched.info.run_id)["hidden"] == [16, 16]


def test_a_restarted_stage_reuses_the_finished_linked_runs(sweep, dataset):
    uri, _, runs, added = sweep
    exp, trainer, final, grown_id = runs["grown"]
    before = _linked(uri, grown_id)
    again = get_kind("baselines").after_fit(exp, exp.kinds["baselines"], _Stage(trainer, final, dataset, uri, grown_id))
    assert again == pytest.approx(added)
    after = _linked(uri, grown_id)
    assert {a: r.info.run_id for a, r in after.items()} == {a: r.info.run_id for a, r in before.items()}


def test_growth_report_from_the_store(sweep):
    from growray import api
    from growray.kinds.baselines import growth_report

    uri, parent, runs, _ = sweep
    text, arm_runs = growth_report(uri, parent)
    assert sorted(r.arm for r in arm_runs) == ["compute_matched", "dense_target", "grown", "small_static"]
    for arm in ("small_static", "grown", "dense_target", "compute_matched"):
        assert f"| {arm} |" in text
    assert "warm start only" in text and "equal compute" in text and "overfits" in text
    assert "| grown | 1 | 30 |" in text  # the loss jump around the event at step 30
    run_id, again = api.growth_report(runs["grown"][3], tracking_uri=uri)  # a trial's run id: its sweep
    assert run_id == parent and again == text


def test_verdicts_on_hand_built_runs():
    from growray.kinds.baselines.report import verdicts
    from growray.tracking.growth_report import ArmRun

    def run(arm, seed, acc, rid="", grown=None, curves=None, events=()):
        return ArmRun(
            rid or f"{arm}{seed}", "FINISHED", arm, "", str(seed), grown, {"test/acc": acc}, curves or {}, list(events)
        )

    curves = {"train/acc": [(10, 0.5), (20, 0.9)], "val/acc": [(10, 0.5), (20, 0.55)]}
    runs = [
        run("grown", 0, 0.80, "g0", curves=curves, events=[{"step": 15}]),
        run("grown", 1, 0.82, "g1", curves=curves, events=[{"step": 15}]),
        run("small_static", 0, 0.70),
        run("small_static", 1, 0.71),
        run("dense_target", 0, 0.85, grown="g0"),
        run("dense_target", 1, 0.86, grown="g1"),
        run("compute_matched", 0, 0.75, grown="g0"),
        run("compute_matched", 1, 0.78, grown="g1"),
    ]
    text = "\n".join(verdicts(runs))
    assert '"beats the small baseline but not the dense target: warm start only": HOLDS' in text
    assert "vs small_static +0.1050" in text and "vs dense_target -0.0450" in text
    assert '"beats the dense target at equal compute: the growth found a better structure": HOLDS' in text
    assert "vs compute_matched +0.0450" in text
    assert 'overfits" (val gain < half the train gain): HOLDS' in text
    assert "train acc (the epochs' running accuracy) +0.4000, val acc +0.0500" in text


class TestBaselinesKindConformance(KindConformance):
    kind_name = "baselines"
    example = {**copy.deepcopy(BASE), "name": "baselines-conformance", "trainer": {**BASE["trainer"], "epochs": 1}}
