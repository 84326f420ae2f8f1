"""A trial's worker process is SIGKILLed mid-training: Ray restarts it from its last
checkpoint, the model is rebuilt with the *grown* architecture, and the same MLflow run
continues with each epoch's metrics recorded exactly once."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from conftest import tiny_experiment

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.slow,
]  # a whole sweep: CI runs it with -m slow (the default suite stays near 10 min on 2 cores)

EPOCHS = 30


def _kill_after_grown_checkpoint(out: Path, killed: dict, stop: threading.Event) -> None:
    """Wait for a checkpoint of epoch >= 3 whose architecture has grown, then SIGKILL the trial's process."""
    from mlflow import MlflowClient

    from growray.tune.record import SweepRecord

    while not stop.is_set():
        time.sleep(0.05)
        record_file = out / "latest_sweep.json"
        if not record_file.exists():
            continue
        record = SweepRecord.load(record_file)
        ckpts = sorted(Path(record.storage_path).glob("*/checkpoint_*/arch.json"))
        grown = [
            c for c in ckpts if int(c.parent.name.split("_")[1]) >= 2 and json.loads(c.read_text())["hidden"] != [6, 6]
        ]
        if not grown:
            continue
        client = MlflowClient(record.tracking_uri)
        runs = client.search_runs([record.experiment_id], f"tags.mlflow.parentRunId = '{record.parent_run_id}'")
        if not runs or "growray.pid" not in runs[0].data.tags:
            continue
        pid = int(runs[0].data.tags["growray.pid"])
        killed.update(pid=pid, at_checkpoint=grown[-1].parent.name, widths=json.loads(grown[-1].read_text())["hidden"])
        os.kill(pid, signal.SIGKILL)
        return


def test_killed_worker_resumes_grown_trial_in_same_run(ray_session, tmp_path):
    from mlflow import MlflowClient

    from growray.tune.orchestrate import run_sweep

    exp = tiny_experiment(
        tmp_path,
        name="kill",
        trainer={"epochs": EPOCHS, "batch_size": 16},
        growth={"trigger": {"name": "schedule", "every_steps": 40, "n_units": 2}, "max_width": 200},
        search={"space": {}, "num_samples": 1, "max_concurrent": 1, "max_failures": 2},
    )
    killed: dict = {}
    stop = threading.Event()
    killer = threading.Thread(
        target=_kill_after_grown_checkpoint, args=(tmp_path / "runs" / "kill", killed, stop), daemon=True
    )
    killer.start()
    try:
        result = run_sweep(exp, live_interval_s=60)
    finally:
        stop.set()
        killer.join(timeout=5)

    assert killed, "the trial finished before its worker could be killed"
    (trial,) = result.trials
    assert trial.status == "TERMINATED" and trial.epochs == EPOCHS

    client = MlflowClient(result.tracking_uri)
    children = client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert len(children) == 1, "the restored trial must continue the same MLflow run"
    run = children[0]
    assert run.info.status == "FINISHED"
    assert run.data.tags["growray.restores"] == "1"
    assert int(run.data.tags["growray.pid"]) != killed["pid"]  # a new worker process finished it

    # exactly once: one val/acc per epoch, at strictly increasing steps
    val = sorted(client.get_metric_history(run.info.run_id, "val/acc"), key=lambda m: m.step)
    assert len(val) == EPOCHS
    assert len({m.step for m in val}) == EPOCHS
    for key in run.data.metrics:  # train/loss, growth/width/*, cost/* too
        steps = [m.step for m in client.get_metric_history(run.info.run_id, key)]
        assert len(steps) == len(set(steps)), (key, sorted(steps))
    # the architecture never fell back to the initial one: width series is non-decreasing
    widths = [
        m.value
        for m in sorted(client.get_metric_history(run.info.run_id, "growth/width/hidden.0"), key=lambda m: m.step)
    ]
    assert widths == sorted(widths) and widths[-1] > max(killed["widths"]) >= 8
    # no growth event recorded twice
    events = json.loads(Path(client.download_artifacts(run.info.run_id, "growth_events.json")).read_text())
    steps = [(e["step"], e["site"]) for e in events]
    assert len(steps) == len(set(steps)) == int(run.data.metrics["growth/events"])
