"""A trial that raises mid-epoch on its first attempt only is retried from its checkpoint by
Ray (search.max_failures), and every (metric, step) of its run is recorded exactly once:
the crashed attempt's unflushed partial epoch is dropped (the trial's crash path discards
it) and the retry logs it again. Checked against the same trial without the crash."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

PLUGIN = Path(__file__).resolve().parents[1] / "kinds" / "toy_plugin"

EXPERIMENT = """
name: crash
seed: 4
data: {{name: digits}}
model: {{name: mlp, hidden: [8]}}
trainer: {{epochs: 2, batch_size: 64, lr: 0.01, log_every_steps: 3}}
growth:
  trigger: {{name: crash_once, marker: "{marker}", at_step: 31}}
search: {{num_samples: 1, max_concurrent: 1, max_failures: 1, sampler: {{name: random}}}}
costs: {{latency: {{enabled: false}}}}
output_dir: {out}
tracking: {{uri: "sqlite:///{db}"}}
"""


def _sweep(folder: Path, crash: bool) -> dict[str, list[tuple[int, float]]]:
    from mlflow import MlflowClient

    folder.mkdir()
    marker = folder / "crashed"
    if not crash:
        marker.write_text("no crash\n")
    db = folder / "mlflow.db"
    (folder / "exp.yaml").write_text(EXPERIMENT.format(marker=marker, out=folder / "runs", db=db))
    env = {**os.environ, "PYTHONPATH": str(PLUGIN)}
    res = subprocess.run(
        [sys.executable, "-m", "growray", "run", "exp.yaml"],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert marker.exists()
    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("crash")
    (run,) = [r for r in client.search_runs([exp.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert run.info.status == "FINISHED"
    assert ("growray.restores" in run.data.tags) == crash, run.data.tags
    return {k: [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, k)] for k in run.data.metrics}


@pytest.mark.slow  # a sweep of its own: ~1-1.5 min on 2 cores (the default suite's ~10-min budget)
@pytest.mark.timeout(900)
def test_a_crashed_attempt_leaves_each_metric_once_per_step(tmp_path):
    crashed = _sweep(tmp_path / "crashed", crash=True)
    clean = _sweep(tmp_path / "clean", crash=False)
    assert set(crashed) == set(clean)
    for key, points in crashed.items():
        steps = [s for s, _ in points]
        assert len(steps) == len(set(steps)), f"{key} recorded twice at a step: {sorted(steps)}"
        assert sorted(steps) == sorted(s for s, _ in clean[key]), key
    assert len(crashed["train/loss"]) == len(clean["train/loss"]) > 10
