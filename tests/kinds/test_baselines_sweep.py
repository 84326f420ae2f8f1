"""(slow) A tiny baselines sweep on real Ray + Optuna + MLflow (sqlite), every linked arm
(static_sparse too): the growth report on the parent run, and ``growray report`` printing the
same text later from the store alone."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _experiment(tmp):
    from growray.config import validate_dict

    return validate_dict(
        {
            "name": "tinybaselines",
            "seed": 0,
            "output_dir": str(tmp / "runs"),
            "data": {"name": "digits"},
            "model": {"name": "mlp", "hidden": [4, 4]},
            "trainer": {"epochs": 2, "batch_size": 64, "optimizer": "sgd", "lr": 0.1, "log_every_steps": 2},
            "growth": {
                "trigger": {"name": "schedule", "every_steps": 25, "n_units": 12, "stop_step": 25},
                "initializer": {"name": "net2wider"},
                "max_width": 16,
                "diagnostics": {"enabled": False},
            },
            "baselines": {"arm": "grown", "linked": ["dense_target", "compute_matched", "static_sparse"]},
            "search": {
                "space": {
                    "baselines.arm": {"type": "categorical", "choices": ["grown", "small_static"]},
                    "seed": {"type": "categorical", "choices": [0, 1]},
                },
                "sampler": {"name": "grid"},
                "num_samples": 4,
                "max_concurrent": 2,
            },
            "costs": {"latency": {"enabled": False}},
            "resources": {"cpu": 1},
            "tracking": {"uri": f"sqlite:///{tmp / 'mlflow.db'}"},
        }
    )


def test_sweep_writes_the_report_and_growray_report_prints_it(ray_session, tmp_path, capsys):
    from mlflow import MlflowClient

    from growray.cli import main
    from growray.tune.orchestrate import run_sweep

    exp = _experiment(tmp_path)
    result = run_sweep(exp, live_interval_s=5)
    assert result.n_errors == 0
    client = MlflowClient(result.tracking_uri)
    listed = {a.path for a in client.list_artifacts(result.parent_run_id)}
    assert "growth_report.md" in listed
    assert "plots/arms_vs_compute.png" in {a.path for a in client.list_artifacts(result.parent_run_id, "plots")}
    with tempfile.TemporaryDirectory() as d:
        written = Path(client.download_artifacts(result.parent_run_id, "growth_report.md", d)).read_text()
    for arm in ("small_static", "grown", "dense_target", "compute_matched", "static_sparse"):
        assert f"| {arm} |  | 2 |" in written  # every arm over both seeds
    assert "beats a fixed random sparse mask on its final architecture at equal compute" in written
    capsys.readouterr()
    assert main(["report", "tinybaselines", "--tracking-uri", result.tracking_uri]) == 0
    printed = capsys.readouterr().out
    assert printed == f"sweep run {result.parent_run_id}\n{written}"
