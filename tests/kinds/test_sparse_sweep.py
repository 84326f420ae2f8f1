"""A tiny dynamic-sparse-training sweep on real Ray + Optuna + MLflow (sqlite): the dense,
static, SET and RigL arms as a grid, every trial's sparse metrics and artifacts in MLflow,
the side-by-side report on the parent run; the experiment file validates, its search
variants too; and (slow) a trial whose worker is SIGKILLed resumes with identical masks."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest

from growray.tracking import param_value

pytestmark = pytest.mark.timeout(400)

ARMS = {"dense", "static", "set", "rigl"}


def _experiment(tmp, name="tinydst", **changes):
    from growray.config import validate_dict

    raw = {
        "name": name,
        "seed": 0,
        "output_dir": str(tmp / "runs"),
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [24, 16]},
        "trainer": {"epochs": 1, "batch_size": 64, "optimizer": "sgd", "lr": 0.1, "momentum": 0.9},
        "sparse": {"sparsity": 0.8, "updater": {"name": "rigl"}, "delta_t": 4, "t_end": 0.9},
        "search": {
            "space": {
                "sparse.dense": {"type": "categorical", "choices": [True, False]},
                "sparse.updater.name": {
                    "type": "categorical",
                    "choices": ["static", "set", "rigl"],
                    "when": {"sparse.dense": False},
                },
            },
            "sampler": {"name": "grid"},
            "num_samples": 4,
            "max_concurrent": 2,
        },
        "costs": {"latency": {"enabled": False}},
        "resources": {"cpu": 1},
        "tracking": {"uri": f"sqlite:///{tmp / 'mlflow.db'}"},
    }
    for key, value in changes.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) and isinstance(raw.get(key), dict) else value
    return validate_dict(raw)


@pytest.fixture(scope="module")
def sweep(ray_session, tmp_path_factory):
    from growray.tune.orchestrate import run_sweep

    tmp = tmp_path_factory.mktemp("dst")
    exp = _experiment(tmp)
    return exp, run_sweep(exp, live_interval_s=5), tmp


def _client_runs(result, name="tinydst"):
    from mlflow import MlflowClient

    client = MlflowClient(result.tracking_uri)
    experiment = client.get_experiment_by_name(name)
    runs = client.search_runs([experiment.experiment_id])
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    return client, parent, [r for r in runs if "mlflow.parentRunId" in r.data.tags]


def _arm(run):
    p = run.data.params
    return "dense" if param_value(p, "sparse.dense") == "True" else param_value(p, "sparse.updater.name")


@pytest.mark.slow
def test_every_trial_has_the_sparse_metrics_and_artifacts(sweep):
    _, result, _ = sweep
    client, _, trials = _client_runs(result)
    assert {_arm(r) for r in trials} == ARMS and all(r.info.status == "FINISHED" for r in trials)
    for run in trials:
        m, arm = run.data.metrics, _arm(run)
        for key in ("sparse/sparsity", "cost/params", "cost/params_dense", "cost/flops", "cost/train_flops"):
            assert key in m, f"{arm}: {key} missing"
        if arm == "dense":
            assert m["sparse/sparsity"] == 0 and m["cost/params"] == m["cost/params_dense"]
            continue
        assert m["sparse/sparsity"] == pytest.approx(0.8, abs=0.01)
        assert m["cost/params"] < 0.3 * m["cost/params_dense"]
        assert any(k.startswith("sparse/sparsity/") for k in m)
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert "sparse_history.json" in artifacts
        assert "plots/sparse_masks.png" in {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        if arm != "static":
            churn = client.get_metric_history(run.info.run_id, "sparse/mask_churn")
            before = client.get_metric_history(run.info.run_id, "sparse/loss_before_update")
            after = client.get_metric_history(run.info.run_id, "sparse/loss_after_update")
            assert len(churn) == len(before) == len(after) == m["sparse/updates"] >= 3
            assert all(0 <= c.value < 1 for c in churn) and max(c.value for c in churn) > 0
    flops = {_arm(r): r.data.metrics["cost/train_flops"] for r in trials}
    assert flops["static"] == flops["set"] < flops["rigl"] < flops["dense"], flops


@pytest.mark.slow
def test_parent_run_holds_the_side_by_side_report(sweep):
    _, result, tmp = sweep
    client, parent, trials = _client_runs(result)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"sparse_report.md", "sparse_report.json"} <= artifacts
    assert "plots/sparse_report.png" in {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    rows = json.loads(Path(client.download_artifacts(parent.info.run_id, "sparse_report.json", str(tmp))).read_text())
    assert {r["arm"] for r in rows} == ARMS and all(r["n"] == 1 for r in rows)
    by_arm = {r["arm"]: r for r in rows}
    test_acc = {_arm(r): r.data.metrics["test/acc"] for r in trials}
    for arm, row in by_arm.items():
        assert row["acc_mean"] == pytest.approx(test_acc[arm])
    assert by_arm["static"]["acc_vs_static"] == 0.0
    assert by_arm["rigl"]["acc_vs_static"] == pytest.approx(test_acc["rigl"] - test_acc["static"])
    assert by_arm["dense"]["flops_vs_dense"] == 1.0 and by_arm["static"]["flops_vs_dense"] < 0.5
    text = Path(client.download_artifacts(parent.info.run_id, "sparse_report.md", str(tmp))).read_text()
    assert "| mlp | rigl | 0.80 | erk | 1 |" in text
    assert "static < SET <= RigL <= dense" in text and ("holds" in text or "does NOT hold" in text)


def test_the_experiment_file_and_its_search_variants_validate():
    from growray.config import load_experiment

    root = Path(__file__).resolve().parents[2]
    exp = load_experiment(root / "experiments" / "fashion_mnist_dst.yaml")
    assert exp.search.num_samples == 42 and exp.search.sampler["name"] == "grid"
    single = load_experiment(
        root / "experiments" / "fashion_mnist_dst.yaml",
        overrides={"search.space": "sparse_dst", "search.sampler.name": "tpe", "search.num_samples": 24},
    )
    assert {"sparse.sparsity", "sparse.updater.name", "sparse.delta_t", "sparse.alpha"} <= set(single.search.space)
    pareto = load_experiment(
        root / "experiments" / "fashion_mnist_dst.yaml",
        overrides={
            "search.space": "sparse_dst",
            "search.sampler.name": "nsga2",
            "search.objectives": [{"metric": "val/acc", "mode": "max"}, {"metric": "cost/train_flops", "mode": "min"}],
        },
    )
    assert pareto.search.multi_objective


def _kill_after_checkpoint(out: Path, killed: dict, stop: threading.Event) -> None:
    """SIGKILL the trial's process once it reported its third checkpoint (epoch 3)."""
    from mlflow import MlflowClient

    from growray.tune.record import SweepRecord

    while not stop.is_set():
        time.sleep(0.05)
        record_file = out / "latest_sweep.json"
        if not record_file.exists():
            continue
        record = SweepRecord.load(record_file)
        ckpts = [
            c.parent
            for c in Path(record.storage_path).glob("*/checkpoint_*/meta.json")
            if int(c.parent.name.split("_")[1]) >= 2
        ]
        if not ckpts:
            continue
        client = MlflowClient(record.tracking_uri)
        runs = client.search_runs([record.experiment_id], f"tags.mlflow.parentRunId = '{record.parent_run_id}'")
        if not runs or "growray.pid" not in runs[0].data.tags:
            continue
        killed.update(pid=int(runs[0].data.tags["growray.pid"]), at=sorted(c.name for c in ckpts)[-1])
        os.kill(killed["pid"], signal.SIGKILL)
        return


@pytest.mark.slow
def test_killed_worker_resumes_with_identical_masks(ray_session, tmp_path):
    import torch

    from growray.data import load_dataset
    from growray.train import build_trainer
    from growray.tune.orchestrate import run_sweep

    epochs = 20
    exp = _experiment(
        tmp_path,
        name="dstkill",
        trainer={"epochs": epochs, "batch_size": 32},
        sparse={"updater": {"name": "rigl"}, "delta_t": 7},
        search={"space": {}, "sampler": {"name": "tpe"}, "num_samples": 1, "max_concurrent": 1, "max_failures": 2},
    )
    killed: dict = {}
    stop = threading.Event()
    killer = threading.Thread(target=_kill_after_checkpoint, args=(tmp_path / "runs" / "dstkill", killed, stop))
    killer.start()
    try:
        result = run_sweep(exp, live_interval_s=60)
    finally:
        stop.set()
        killer.join(timeout=5)
    assert killed, "the trial finished before its worker could be killed"
    client, _, (run,) = _client_runs(result, "dstkill")
    assert run.info.status == "FINISHED" and run.data.tags["growray.restores"] == "1"
    assert int(run.data.tags["growray.pid"]) != killed["pid"]
    history = json.loads(
        Path(client.download_artifacts(run.info.run_id, "sparse_history.json", str(tmp_path))).read_text()
    )
    steps = [e["step"] for e in history]
    assert steps == sorted(set(steps)), "no update recorded twice"
    churn = client.get_metric_history(run.info.run_id, "sparse/mask_churn")
    assert len({m.step for m in churn}) == len(churn) == len(history) - 1, "each update's metrics once"
    # the same training without the kill, in this process: the same masks after every update
    torch.set_num_threads(1)
    straight = build_trainer(exp, load_dataset(exp.data, seed=exp.seed), device="cpu")
    straight.fit()
    (hook,) = [h for h in straight.hooks if h.name == "sparse"]
    assert [e["digest"] for e in history] == [e["digest"] for e in hook.history]
