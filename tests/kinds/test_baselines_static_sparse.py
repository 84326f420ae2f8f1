"""The baselines kind's static_sparse arm through the real trainer and a real MLflow sqlite
store: the grown run's final architecture under one fixed random mask for the same epochs, at
the compute-matched (default) or the configured sparsity, its metrics on the grown run, the
growth report's row and verdict, and the config errors of the sparse + baselines combination."""

from __future__ import annotations

import copy
import json
import tempfile
from pathlib import Path

import pytest
import torch

from growray.config import ConfigError, validate_dict
from growray.cost import training_flops_per_sample
from growray.data import load_dataset
from growray.kinds import get_kind
from growray.kinds.baselines.linked import linked_experiment
from growray.kinds.sparse import SparseHook
from growray.models import ArchSpec, build_model
from growray.tracking import MemoryRecorder, MlflowRecorder, create_sweep_run, ensure_store, get_or_create_experiment
from growray.train import Hook, build_trainer

torch.set_num_threads(1)

BASE = {
    "name": "baselines-static-sparse",
    "seed": 1,
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [4, 4]},
    "trainer": {"epochs": 3, "batch_size": 64, "optimizer": "sgd", "lr": 0.1, "log_every_steps": 2},
    # 20 steps an epoch; both sites grow 4 -> 16 at step 30 (inside epoch 2)
    "growth": {
        "trigger": {"name": "schedule", "every_steps": 30, "n_units": 12, "stop_step": 30},
        "initializer": {"name": "net2wider"},
        "max_width": 16,
        "diagnostics": {"enabled": False},
    },
    "baselines": {"arm": "grown", "linked": ["static_sparse"]},
    "costs": {"latency": {"enabled": False}},
}


def _raw(**changes):
    raw = copy.deepcopy(BASE)
    for key, value in changes.items():
        raw[key] = value
    return raw


@pytest.fixture(scope="module")
def dataset():
    return load_dataset({"name": "digits"}, seed=1)


class _Stage:
    def __init__(self, trainer, final, dataset, uri, run_id):
        self.trainer, self.final, self.dataset, self.tracking_uri, self.run_id = trainer, final, dataset, uri, run_id


@pytest.fixture(scope="module")
def grown(tmp_path_factory, dataset):
    """A grown run under a sweep parent, its after_fit stage (static_sparse at the default,
    compute-matched sparsity), and the linked run read back."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"
    ensure_store(uri)
    eid = get_or_create_experiment(uri, "baselines-static-sparse")
    parent = create_sweep_run(uri, eid, run_name="sweep", tags={"growray.sweep": "sweep-1", "growray.kind": "sweep"})
    exp = validate_dict(_raw())
    rec = MlflowRecorder(uri, eid, run_name="grown", parent_run_id=parent, tags={"growray.searched": "{}"})
    rec.log_params({"baselines.arm": "grown", "seed": "1"})
    trainer = build_trainer(exp, dataset, recorder=rec, device="cpu")
    final = trainer.fit()
    rec.close("FINISHED")
    added = get_kind("baselines").after_fit(
        exp, exp.kinds["baselines"], _Stage(trainer, final, dataset, uri, rec.run_id)
    )
    client = MlflowClient(uri)
    grown_run = client.get_run(rec.run_id)
    linked = client.get_run(grown_run.data.tags["growray.static_sparse_run_id"])
    return {"uri": uri, "parent": parent, "exp": exp, "trainer": trainer, "final": final, "added": added,
            "grown_run": grown_run, "linked": linked}  # fmt: skip


def _artifact(uri, run_id, path):
    from mlflow import MlflowClient

    with tempfile.TemporaryDirectory() as d:
        return json.loads(Path(MlflowClient(uri).download_artifacts(run_id, path, d)).read_text())


def test_static_sparse_is_the_final_architecture_for_the_same_epochs(grown):
    linked, trainer = grown["linked"], grown["trainer"]
    spec = _artifact(grown["uri"], linked.info.run_id, "architecture.json")
    assert spec == json.loads(trainer.arch_json()) and spec["hidden"] == [16, 16]  # final, not [4, 4]
    assert linked.data.metrics["epoch"] == trainer.epoch == 3
    assert linked.data.tags["growray.baseline"] == "static_sparse"
    assert linked.data.params["sparse.updater.name"] == "static"
    assert linked.data.params["seed"] == "1" and linked.data.params["trainer.lr"] == "0.1"
    history = _artifact(grown["uri"], linked.info.run_id, "sparse_history.json")
    assert [e["kind"] for e in history] == ["init"] and linked.data.metrics["sparse/updates"] == 0


def test_default_sparsity_spends_the_grown_runs_training_flops(grown, dataset):
    linked, final = grown["linked"], grown["final"]
    sparsity = float(linked.data.params["sparse.sparsity"])
    assert 0.2 < sparsity < 0.9
    assert linked.data.metrics["sparse/sparsity"] == pytest.approx(sparsity, abs=2e-3)
    spent, budget = linked.data.metrics["cost/train_flops"], final["cost/train_flops"]
    assert spent == pytest.approx(budget, rel=0.01)
    # effective (masked) FLOPs: the dense [16, 16] network for the same epochs costs far more
    dense = build_model(ArchSpec.from_json(grown["trainer"].arch_json()))
    n_train = len(dataset.to_tensors(torch.device("cpu")).train[0])
    assert spent < 0.8 * training_flops_per_sample(dense, dataset.input_shape) * n_train * 3
    assert linked.data.metrics["cost/params"] < linked.data.metrics["cost/params_dense"]


def test_its_metrics_land_on_the_grown_run(grown):
    metrics, linked = grown["grown_run"].data.metrics, grown["linked"].data.metrics
    for key, src in (("val_acc", "val/acc"), ("test_acc", "test/acc"), ("train_flops", "cost/train_flops")):
        assert metrics[f"baselines/static_sparse/{key}"] == pytest.approx(linked[src])
        assert grown["added"][f"baselines/static_sparse/{key}"] == pytest.approx(linked[src])
    assert grown["linked"].data.tags["growray.grown_run_id"] == grown["grown_run"].info.run_id


def test_growth_report_has_the_arm_and_the_equal_compute_verdict(grown):
    from growray.kinds.baselines import growth_report

    text, runs = growth_report(grown["uri"], grown["parent"])
    assert sorted(r.arm for r in runs) == ["grown", "static_sparse"]
    assert "| static_sparse |  | 1 |" in text
    assert '"beats a fixed random sparse mask on its final architecture at equal compute' in text
    assert "static_sparse spent 1.00" in text


class _MaskWatch(Hook):
    """Records the sparse hook's masks at the start and checks them after every step."""

    name = "mask_watch"

    def __init__(self, sparse: SparseHook):
        self.sparse, self.start, self.changed = sparse, {}, []

    def on_fit_start(self, trainer):
        self.start = {k: self.sparse.masks.mask(k).clone() for k in self.sparse.masks}

    def on_step_end(self, trainer, loss):
        masks = self.sparse.masks
        if any(not torch.equal(masks.mask(k), m) for k, m in self.start.items()):
            self.changed.append(trainer.step)


def test_a_configured_sparsity_keeps_one_mask_for_the_whole_run(grown, dataset):
    exp, trainer = grown["exp"], grown["trainer"]
    spec = json.loads(trainer.arch_json())
    sparse_exp = linked_experiment(exp, "static_sparse", spec, sparsity=0.7)
    run = build_trainer(sparse_exp, dataset, recorder=MemoryRecorder(), device="cpu")
    (hook,) = [h for h in run.hooks if isinstance(h, SparseHook)]
    watch = _MaskWatch(hook)
    run.hooks.append(watch)
    final = run.fit()
    assert watch.changed == [] and run.step == trainer.step  # the same steps, never a new mask
    assert final["sparse/sparsity"] == pytest.approx(0.7, abs=2e-3)
    for k, m in watch.start.items():
        assert torch.equal(hook.masks.mask(k), m)
        assert torch.all(hook.masks.weight(k)[~m] == 0)  # the masked weights stayed exactly zero
    # the effective compute: the masked model's training FLOPs per sample times the samples seen
    n_train = len(dataset.to_tensors(torch.device("cpu")).train[0])
    assert final["cost/train_flops"] == training_flops_per_sample(run.model, dataset.input_shape) * n_train * 3


def test_baselines_static_sparsity_reaches_the_linked_run(grown, dataset):
    from mlflow import MlflowClient

    exp = validate_dict(_raw(baselines={**BASE["baselines"], "static_sparsity": 0.7}))
    uri = grown["uri"]
    eid = get_or_create_experiment(uri, "baselines-static-sparse")
    other = MlflowRecorder(uri, eid, run_name="grown-again")  # no sweep parent: the report's sweep stays as is
    other.close("FINISHED")
    stage = _Stage(grown["trainer"], grown["final"], dataset, uri, other.run_id)
    added = get_kind("baselines").after_fit(exp, exp.kinds["baselines"], stage)
    client = MlflowClient(uri)
    linked = client.get_run(client.get_run(other.run_id).data.tags["growray.static_sparse_run_id"])
    assert linked.data.params["sparse.sparsity"] == "0.7"
    assert linked.data.metrics["sparse/sparsity"] == pytest.approx(0.7, abs=2e-3)
    assert added["baselines/static_sparse/train_flops"] < grown["added"]["baselines/static_sparse/train_flops"]


def _issues(raw):
    with pytest.raises(ConfigError) as info:
        validate_dict(raw)
    return {i.path: str(i) for i in info.value.issues}


def test_config_errors_of_the_combination():
    fixed = {"model": {"name": "mlp", "hidden": [16, 16]}, "growth": None}
    sparse = {"updater": {"name": "static"}, "sparsity": 0.5}
    ok = validate_dict(_raw(**fixed, baselines={"arm": "static_sparse"}, sparse=sparse))
    assert sorted(ok.kinds) == ["baselines", "sparse"]  # written by hand with a fixed model: allowed
    got = _issues(_raw(**fixed, baselines={"arm": "dense_target"}, sparse=sparse))
    assert "only in the static_sparse arm" in got["baselines.arm"] and "'dense_target'" in got["baselines.arm"]
    got = _issues(_raw(**fixed, baselines={"arm": "static_sparse"}, sparse={**sparse, "updater": {"name": "rigl"}}))
    assert "use static" in got["sparse.updater.name"] and "'rigl'" in got["sparse.updater.name"]
    got = _issues(_raw(**fixed, baselines={"arm": "static_sparse"}))
    assert "sparse: {updater: {name: static}" in got["baselines.arm"]
    got = _issues(_raw(sparse=sparse))  # grown + sparse written by hand
    assert "does not combine with growth" in got["growth"] and "only in the static_sparse arm" in got["baselines.arm"]
    got = _issues(_raw(baselines={"arm": "grown", "linked": ["static_sparse"], "static_sparsity": 1.0}))
    assert "less than 1" in got["baselines.static_sparsity"]
    got = _issues(_raw(baselines={"arm": "grown", "linked": ["sparse_static"]}))
    assert "'static_sparse'" in got["baselines.linked[0]"] and "'sparse_static'" in got["baselines.linked[0]"]


def test_verdict_is_withheld_when_the_flops_do_not_match():
    from growray.kinds.baselines.report import verdicts
    from growray.tracking.growth_report import ArmRun

    def run(arm, seed, acc, flops, rid, grown=None):
        return ArmRun(rid, "FINISHED", arm, "", str(seed), grown, {"test/acc": acc, "cost/train_flops": flops})

    matched = [run("grown", 0, 0.8, 1e9, "g0"), run("static_sparse", 0, 0.75, 1.01e9, "s0", grown="g0")]
    text = "\n".join(verdicts(matched))
    assert 'at equal compute: growing units beat random sparse connectivity": HOLDS' in text
    assert "vs static_sparse +0.0500" in text
    unmatched = [run("grown", 0, 0.8, 1e9, "g0"), run("static_sparse", 0, 0.85, 0.5e9, "s0", grown="g0")]
    text = "\n".join(verdicts(unmatched))
    assert "static sparse mask at equal compute: not judged (static_sparse spent 0.500-0.500x" in text
    assert "HOLDS" not in text.split("static sparse mask")[1]
