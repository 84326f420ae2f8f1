"""Driver failure: `growray run` is interrupted (SIGINT) or killed (SIGKILL) mid-sweep, then
`growray resume` finishes it: every trial completes, each (metric, step) once in MLflow, the
Optuna study without duplicates, the same MLflow parent run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.timeout(420), pytest.mark.slow]  # ~75 s each: CI runs them with -m slow

EPOCHS, TRIALS = 10, 4
EXPERIMENT = f"""
name: rs
seed: 0
data: {{name: digits}}
model: {{name: mlp, hidden: [8]}}
trainer: {{epochs: {EPOCHS}, batch_size: 16}}
growth: {{trigger: {{name: schedule, every_steps: 60, n_units: 2}}, max_width: 64}}
costs: {{latency: {{enabled: false}}}}
search:
  space: {{trainer.lr: {{type: float, low: 0.001, high: 0.01, log: true}}}}
  num_samples: {TRIALS}
  max_concurrent: 2
"""


def growray(*args: str, cwd: Path, **kw):
    exe = Path(sys.executable).with_name("growray")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [str(exe), *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw
    )


def wait_for_checkpoint(cwd: Path, timeout: float = 120) -> None:
    """Until some trial has written its second checkpoint (so the kill lands mid-sweep)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if list((cwd / "runs" / "rs" / "ray").glob("*/*/checkpoint_000001")):
            return
        time.sleep(0.2)
    raise TimeoutError("no checkpoint appeared")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_resume_after_driver_failure(tmp_path, sig):
    import optuna
    from mlflow import MlflowClient

    from growray.tune.record import SweepRecord

    (tmp_path / "exp.yaml").write_text(EXPERIMENT)
    run = growray("run", "exp.yaml", cwd=tmp_path)
    wait_for_checkpoint(tmp_path)
    run.send_signal(sig)
    out, _ = run.communicate(timeout=120)
    assert run.returncode != 0, out  # never mistaken for success
    if sig == signal.SIGINT:
        assert "INTERRUPTED" in out and "growray resume exp.yaml" in out
    time.sleep(3)  # let a killed driver's Ray processes go away

    resume = growray("resume", "exp.yaml", cwd=tmp_path)
    out, _ = resume.communicate(timeout=300)
    assert resume.returncode == 0, out

    record = SweepRecord.load(tmp_path / "runs" / "rs" / "latest_sweep.json")
    client = MlflowClient(record.tracking_uri)
    runs = client.search_runs([record.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == record.parent_run_id]
    assert [p.info.run_id for p in parents] == [record.parent_run_id]  # the same parent run
    assert parents[0].info.status == "FINISHED" and parents[0].data.tags["growray.resumed"] == "1"
    assert "growray.interrupted" not in parents[0].data.tags  # cleared by the resume that finished
    finished = [c for c in children if c.data.metrics.get("epoch") == EPOCHS]
    assert len(finished) == TRIALS, [(c.data.tags.get("growray.trial"), c.data.metrics.get("epoch")) for c in children]
    assert len({c.data.tags["growray.trial"] for c in children}) == len(children)  # one run per trial
    for c in finished:
        assert c.info.status == "FINISHED" and "growray.failure" not in c.data.tags
        steps = [m.step for m in client.get_metric_history(c.info.run_id, "val/acc")]
        assert len(steps) == EPOCHS == len(set(steps))  # each epoch exactly once
        for key in c.data.metrics:  # train/loss, growth/width/*, cost/*: each step once too
            steps = [m.step for m in client.get_metric_history(c.info.run_id, key)]
            assert len(steps) == len(set(steps)), (key, sorted(steps))
        events = json.loads(Path(client.download_artifacts(c.info.run_id, "growth_events.json")).read_text())
        assert len(events) == len({(e["step"], e["site"]) for e in events}) == int(c.data.metrics["growth/events"])
    losses = {len(client.get_metric_history(c.info.run_id, "train/loss")) for c in finished}
    assert len(losses) == 1, losses  # a resumed trial logs its loss as often as one never stopped

    study = optuna.load_study(study_name=record.sweep, storage=record.optuna_storage)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == TRIALS
    assert not [t for t in study.trials if t.state == optuna.trial.TrialState.RUNNING]
    assert {t.user_attrs["growray.mlflow_run_id"] for t in complete} == {c.info.run_id for c in finished}

    again = growray("resume", "exp.yaml", cwd=tmp_path)  # a finished sweep: nothing to do, nothing started
    out, _ = again.communicate(timeout=120)
    assert again.returncode == 0 and "nothing to resume" in out, out
