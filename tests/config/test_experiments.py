"""The shipped experiment files: all validate; the growth-strategy sweep runs end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from growray.config import load_experiment

ROOT = Path(__file__).resolve().parents[2]
EXPERIMENTS = sorted((ROOT / "experiments").glob("*.yaml"))
FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[p.stem for p in EXPERIMENTS])
def test_every_experiment_validates(path):
    load_experiment(path)


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.skipif(
    not (FASHION / "train-images-idx3-ubyte.gz").exists(), reason="apt-get install dataset-fashion-mnist"
)
def test_fashion_mnist_strategy_sweep_records_growth(ray_session, tmp_path):
    from mlflow import MlflowClient

    from growray.tune.orchestrate import run_sweep

    exp = load_experiment(
        ROOT / "experiments" / "fashion_mnist_growth.yaml",
        {
            "output_dir": str(tmp_path / "runs"),
            "tracking.uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
            "data.limit_train": 800,
            "data.limit_test": 300,
            "trainer.epochs": 2,
            "trainer.batch_size": 32,
            "search.num_samples": 3,
        },
    )
    result = run_sweep(exp, live_interval_s=60)
    assert [t.status for t in result.trials] == ["TERMINATED"] * 3
    client = MlflowClient(result.tracking_uri)
    runs = client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    grown = [r for r in runs if r.data.metrics.get("growth/events", 0) > 0]
    assert grown, "no trial grew"
    for r in grown:
        m = r.data.metrics
        assert "growth/preservation_error" in m
        assert "growth/newborn_act_parity" in m and "growth/newborn_grad_parity" in m
        assert any(k.startswith("growth/width/conv.") for k in m)
        assert "plots/growth_timeline.png" in {a.path for a in client.list_artifacts(r.info.run_id, "plots")}
