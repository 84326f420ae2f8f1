"""A kind is a plug-in: a toy kind defined outside the growray package, found through the
``growray.plugins`` entry point (``toy_plugin/``, laid out as an installed package), runs a
real sweep — Ray Tune, Optuna searching its own parameter, MLflow recording its metric —
with no change to any growray file. Without the plug-in on the path the same file is refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from growray.tracking import param_value

PLUGIN = Path(__file__).with_name("toy_plugin")


def _growray(*args: str, cwd: Path, plugin: bool = True, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(PLUGIN) if plugin else ""}
    return subprocess.run(
        [sys.executable, "-m", "growray", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_without_the_plugin_the_section_is_unknown(tmp_path):
    res = _growray("validate", str(PLUGIN / "toy.yaml"), cwd=tmp_path, plugin=False)
    assert res.returncode == 2
    assert "toy: unknown key; accepted:" in res.stderr


def test_the_plugin_kind_is_listed_and_its_section_checked(tmp_path):
    listed = _growray("show", "plugins", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    kinds = listed.stdout.split("kinds:", 1)[1].split("\n\n")[0]
    assert "toy" in kinds and "growth" in kinds

    ok = _growray("validate", str(PLUGIN / "toy.yaml"), cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert "(toy)" in ok.stdout

    bad = _growray(
        "validate", str(PLUGIN / "toy.yaml"), "--set", "toy.sigmaa=0.1", "--set", "toy.every_epochs=9", cwd=tmp_path
    )
    assert bad.returncode == 2
    assert "toy.sigmaa: unknown key; accepted: every_epochs, sigma (did you mean 'sigma'?)" in bad.stderr
    bad = _growray("validate", str(PLUGIN / "toy.yaml"), "--set", "toy.every_epochs=9", cwd=tmp_path)
    assert bad.returncode == 2 and "toy.every_epochs: larger than trainer.epochs (2)" in bad.stderr


@pytest.mark.slow  # a sweep of its own: ~1-1.5 min on 2 cores (the default suite's ~10-min budget)
@pytest.mark.timeout(600)
def test_a_sweep_of_the_plugin_kind_runs_on_ray_optuna_and_mlflow(tmp_path):
    import optuna
    from mlflow import MlflowClient

    db = tmp_path / "mlflow.db"
    res = _growray(
        "run",
        str(PLUGIN / "toy.yaml"),
        "--set",
        f"output_dir={tmp_path / 'runs'}",
        "--set",
        f"tracking.uri=sqlite:///{db}",
        cwd=tmp_path,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]

    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("toy")
    runs = client.search_runs([exp.experiment_id])
    trials = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(trials) == 2
    sigmas = set()
    for run in trials:
        assert run.data.tags["growray.kind"] == "toy"
        assert run.info.status == "FINISHED"
        history = client.get_metric_history(run.info.run_id, "toy/noise_norm")
        assert [m.step for m in history] == sorted(m.step for m in history) and len(history) == 2
        assert all(m.value >= 0 for m in history)
        sigma = float(param_value(run.data.params, "toy.sigma"))
        assert 0.0 <= sigma <= 0.2
        sigmas.add(sigma)
        if sigma > 0:
            assert history[-1].value > 0, "the hook shook the weights by the sampled sigma"
    assert len(sigmas) == 2, "Optuna sampled the plug-in's own parameter"

    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    report = client.download_artifacts(parent.info.run_id, "toy_report.md", str(tmp_path))
    rows = Path(report).read_text().splitlines()[2:]
    assert len(rows) == 2 and all(f"| {s:.4f} |" in "".join(rows) for s in sigmas), "the kind's sweep report"

    study = optuna.load_study(study_name=None, storage=f"sqlite:///{tmp_path / 'runs' / 'toy' / 'optuna.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 2 and {round(t.params["toy.sigma"], 12) for t in done} == {round(s, 12) for s in sigmas}
