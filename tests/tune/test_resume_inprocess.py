"""Resume in the default suite: a sweep interrupted (SIGINT, as Ctrl-C) while its first trial
trains, then resumed in the same process. Every trial finishes once, the interrupted one from
its checkpoint in the same MLflow run, and every (metric, step) of every run appears once,
``train/loss`` included, as often as in the trials that were never interrupted."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from conftest import tiny_experiment

pytestmark = pytest.mark.timeout(400)

EPOCHS = 6


def _interrupt_at_second_checkpoint(root: Path, stop: threading.Event) -> None:
    while not stop.is_set():
        if list(root.glob("ray/*/*/checkpoint_000001")):
            os.kill(os.getpid(), signal.SIGINT)  # Tune's handler in the main thread stops the sweep
            return
        time.sleep(0.02)


@pytest.mark.slow  # a sweep of its own: ~1-1.5 min on 2 cores (the default suite's ~10-min budget)
def test_interrupted_sweep_resumes_in_process(ray_session, tmp_path):
    import optuna
    from _sqlite import journal_mode
    from mlflow import MlflowClient

    from growray.journal import wanted_journal_mode
    from growray.tune.orchestrate import resume_sweep, run_sweep
    from growray.tune.record import SweepRecord
    from growray.tune.study import study_file

    exp = tiny_experiment(
        tmp_path,
        name="rsi",
        trainer={"epochs": EPOCHS, "batch_size": 32},
        search={"num_samples": 3, "max_concurrent": 1},  # trials 2 and 3 have not started at the interrupt
    )
    stop = threading.Event()
    watcher = threading.Thread(target=_interrupt_at_second_checkpoint, args=(tmp_path / "runs" / "rsi", stop))
    watcher.start()
    try:
        first = run_sweep(exp, live_interval_s=60)
    finally:
        stop.set()
        watcher.join()
    assert first.interrupted, [t.status for t in first.trials]

    record = SweepRecord.load(tmp_path / "runs" / "rsi" / "latest_sweep.json")
    second = resume_sweep(record.state_dir + "/latest_sweep.json", live_interval_s=60)
    assert not second.interrupted
    assert [t.status for t in second.trials] == ["TERMINATED"] * 3
    assert second.parent_run_id == first.parent_run_id

    client = MlflowClient(record.tracking_uri)
    children = client.search_runs([record.experiment_id], f"tags.mlflow.parentRunId = '{record.parent_run_id}'")
    assert len(children) == 3 and {c.info.run_id for c in children} == {t.mlflow_run_id for t in second.trials}
    interrupted_run = first.trials[0].mlflow_run_id
    assert interrupted_run in {c.info.run_id for c in children}  # continued, not started again
    counts = {}
    for c in children:
        assert c.info.status == "FINISHED" and c.data.metrics["epoch"] == EPOCHS
        for key in c.data.metrics:
            steps = [m.step for m in client.get_metric_history(c.info.run_id, key)]
            assert len(steps) == len(set(steps)), (c.info.run_id, key, sorted(steps))
        counts[c.info.run_id] = tuple(
            len(client.get_metric_history(c.info.run_id, k)) for k in ("train/loss", "val/acc", "val/loss")
        )
    assert len(set(counts.values())) == 1, counts  # the interrupted trial logged as much as the others
    assert client.get_run(record.parent_run_id).info.status == "FINISHED"
    assert "growray.interrupted" not in client.get_run(record.parent_run_id).data.tags

    study = optuna.load_study(study_name=record.sweep, storage=record.optuna_storage)
    states = [t.state for t in study.trials]
    assert states.count(optuna.trial.TrialState.COMPLETE) == 3 and len(states) == 3
    db = study_file(record.optuna_storage)
    assert db is not None and journal_mode(db) == wanted_journal_mode(db.parent)  # kept across the resume
