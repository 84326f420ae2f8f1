"""End to end on real local Ray + Optuna + MLflow (sqlite): what a user finds after a sweep."""

from __future__ import annotations

import contextlib
import io
import json
import socket
from pathlib import Path

import pytest
from _summaries import check_summaries
from conftest import tiny_experiment

pytestmark = pytest.mark.timeout(600)  # the module sweep takes 20-30 s idle, 5+ min on a loaded 2-core machine


@pytest.fixture(scope="module")
def sweep(ray_session, tmp_path_factory):
    from growray.tune.orchestrate import run_sweep

    tmp = tmp_path_factory.mktemp("e2e")
    exp = tiny_experiment(tmp)
    live = io.StringIO()  # not a terminal: the live view appends plain lines
    with contextlib.redirect_stdout(live):
        result = run_sweep(exp, live_interval_s=5)
    (tmp / "live.txt").write_text(live.getvalue())
    return exp, result, tmp


def _client(result):
    from mlflow import MlflowClient

    return MlflowClient(result.tracking_uri)


def test_every_trial_finished_and_grew(sweep):
    _, result, _ = sweep
    assert len(result.trials) == 3
    assert [t.status for t in result.trials] == ["TERMINATED"] * 3
    for t in result.trials:
        assert t.epochs == 3
        assert all(w > 6 for w in t.widths.values()), t.widths
        assert t.mlflow_run_id
    assert result.best is not None and result.best.metric == max(t.metric for t in result.trials)
    assert "best val/acc" in result.table() and "test/acc" in result.table()


def test_mlflow_holds_parent_children_metrics_artifacts(sweep):
    _, result, _ = sweep
    client = _client(result)
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == result.parent_run_id]
    assert [p.info.run_id for p in parents] == [result.parent_run_id]
    assert len(children) == 3 and len(runs) == 4
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["growray.best_run_id"] == result.best.mlflow_run_id
    import subprocess

    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    commit = head.stdout.strip() if head.returncode == 0 else None
    assert parent.data.tags.get("mlflow.source.git.commit") == commit
    assert all(c.data.tags.get("mlflow.source.git.commit") == commit for c in children)
    assert {"config.yaml", "trials.json", "trials.txt"} <= {a.path for a in client.list_artifacts(parent.info.run_id)}

    for child in children:
        rid = child.info.run_id
        assert child.info.status == "FINISHED"
        assert child.data.tags["growray.kind"] == "growth"
        metrics = child.data.metrics
        for key in (
            "train/loss",
            "train/acc",
            "val/loss",
            "val/acc",
            "test/acc",
            "cost/params",
            "cost/flops",
            "growth/events",
            "growth/width/hidden.0",
            "growth/width/hidden.1",
            "growth/preservation_error",
        ):
            assert key in metrics, key
        # params: the resolved config, with this trial's sampled values
        searched = json.loads(child.data.tags["growray.searched"])
        assert child.data.params["search.trainer.lr"] == str(searched["trainer.lr"])
        assert child.data.params["search.growth.initializer.name"] == searched["growth.initializer.name"]
        # widths grew over steps, recorded as a step-indexed series
        hist = client.get_metric_history(rid, "growth/width/hidden.0")
        values = [m.value for m in sorted(hist, key=lambda m: m.step)]
        assert values[0] == 6 and values[-1] > 6
        # each epoch's validation metric exactly once
        assert sorted(m.step for m in client.get_metric_history(rid, "val/acc")) == sorted(
            {m.step for m in client.get_metric_history(rid, "val/acc")}
        )
        assert len(client.get_metric_history(rid, "val/acc")) == 3
        names = {a.path for a in client.list_artifacts(rid)} | {a.path for a in client.list_artifacts(rid, "plots")}
        assert {"config.yaml", "architecture.json", "growth_events.json", "plots/growth_timeline.png"} <= names
        events = json.loads(Path(client.download_artifacts(rid, "growth_events.json")).read_text())
        assert len(events) == metrics["growth/events"]
        arch = json.loads(Path(client.download_artifacts(rid, "architecture.json")).read_text())
        assert arch["hidden"] == [int(metrics["growth/width/hidden.0"]), int(metrics["growth/width/hidden.1"])]


def test_optuna_study_survives_the_driver(sweep):
    import optuna
    from _sqlite import journal_mode

    from growray.journal import wanted_journal_mode

    _, result, tmp = sweep
    db = tmp / "runs" / "tiny" / "optuna.db"
    study = optuna.load_study(study_name=result.name, storage=f"sqlite:///{db}")
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 3
    # the study file and the MLflow store in WAL mode where their filesystem is local, the
    # rollback journal elsewhere
    assert journal_mode(db) == wanted_journal_mode(db.parent)
    assert journal_mode(tmp / "mlflow.db") == wanted_journal_mode(tmp)
    assert {tuple(sorted(t.params)) for t in complete} == {
        ("growth.initializer.name", "growth.trigger.n_units", "trainer.lr")
    }
    assert max(t.value for t in complete) == pytest.approx(result.best.metric)
    # the objective at every epoch: optuna-dashboard's learning curves
    from mlflow import MlflowClient

    client = MlflowClient(result.tracking_uri)
    for t in complete:
        history = sorted(
            client.get_metric_history(t.user_attrs["growray.mlflow_run_id"], "val/acc"), key=lambda m: m.step
        )
        assert sorted(t.intermediate_values) == [1, 2, 3]
        assert [t.intermediate_values[k] for k in (1, 2, 3)] == pytest.approx([m.value for m in history])


def test_off_a_terminal_the_live_view_is_one_line_per_trial_update(sweep):
    from mlflow import MlflowClient

    _, result, tmp = sweep
    text = (tmp / "live.txt").read_text()
    assert "\x1b" not in text and "\r" not in text  # no redraws in a log
    client = MlflowClient(result.tracking_uri)
    for t in result.trials:
        lines = [line for line in text.splitlines() if f"] {t.trial_id} " in line]
        n_reports = len(client.get_metric_history(t.mlflow_run_id, "val/acc"))  # one report per epoch
        starts = [line for line in lines if f"{t.trial_id} RUNNING " in line]
        results = [line for line in lines if f"{t.trial_id} epoch " in line]
        ends = [line for line in lines if f"{t.trial_id} TERMINATED epoch 3/3 " in line]
        assert (len(starts), len(results), len(ends)) == (1, n_reports, 1), lines
        assert len(lines) == n_reports + 2
        assert [line.split(" epoch ")[1].split()[0] for line in results] == ["1/3", "2/3", "3/3"]
        assert f"val/acc={t.metric:.4g}" in ends[0] and "done" in ends[0]


def test_summaries_agree_with_the_store(sweep, capsys):
    exp, result, _ = sweep
    check_summaries(result, exp, capsys)


def test_growray_ls_lists_the_sweep(sweep, capsys):
    from growray.cli import main

    _, result, _ = sweep
    assert main(["ls", "--tracking-uri", result.tracking_uri]) == 0
    out = capsys.readouterr().out
    assert result.name in out and result.parent_run_id in out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ui_serves_the_sweep_over_rest(sweep):
    import requests

    from growray.tracking import start_ui, wait_healthy

    _, result, _ = sweep
    port = _free_port()
    proc = start_ui(result.tracking_uri, host="127.0.0.1", port=port)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url, timeout=120, process=proc)
        r = requests.post(
            f"{url}/api/2.0/mlflow/runs/search",
            json={
                "experiment_ids": [result.experiment_id],
                "filter": f"tags.mlflow.parentRunId = '{result.parent_run_id}'",
            },
            timeout=30,
        )
        r.raise_for_status()
        ids = {run["info"]["run_id"] for run in r.json()["runs"]}
        assert ids == {t.mlflow_run_id for t in result.trials}
        listed = requests.get(
            f"{url}/api/2.0/mlflow/artifacts/list", params={"run_id": result.best.mlflow_run_id}, timeout=30
        )
        assert "growth_events.json" in {f["path"] for f in listed.json()["files"]}
    finally:
        proc.stop()


@pytest.mark.slow  # a sweep of its own: ~1-1.5 min on 2 cores (the default suite's ~10-min budget)
def test_asha_stops_weak_trials_and_closes_their_runs(ray_session, tmp_path):
    """Tune ends stopped trials inside report(): their runs must close FINISHED with artifacts."""
    from growray.tune.orchestrate import run_sweep

    exp = tiny_experiment(
        tmp_path,
        name="asha",
        trainer={"epochs": 4},
        search={
            "num_samples": 6,
            "sampler": {"name": "random"},
            "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2},
            "space": {"trainer.lr": {"type": "float", "low": 1e-6, "high": 0.05, "log": True}},
        },
    )
    result = run_sweep(exp, live_interval_s=60)
    client = _client(result)
    runs = client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert len(runs) == 6
    stopped = [r for r in runs if r.data.metrics["epoch"] < 4]
    assert stopped, "ASHA stopped no trial (6 trials, learning rates down to 1e-6)"
    by_run = {t.mlflow_run_id: t for t in result.trials}
    for r in runs:
        epoch = r.data.metrics["epoch"]
        assert r.info.status == "FINISHED", r.data.tags.get("growray.failure")
        assert "growray.failure" not in r.data.tags
        # Stopped early means "fewer epochs than trainer.epochs", whoever closed the run: the
        # trial itself, or the driver when Tune tore the trial's actor down before its close
        # reached MLflow (which also happens to trials ASHA ends at max_t = 4 epochs).
        assert (r.data.tags.get("growray.stopped_early") == "true") == (epoch < 4), (epoch, r.data.tags)
        if epoch < 4:
            assert r.data.tags["growray.stopped_at_epoch"] == str(int(epoch))
        assert by_run[r.info.run_id].stopped_early == (epoch < 4)
        assert ("test/acc" in r.data.metrics) == (epoch == 4)
        assert {"architecture.json", "growth_events.json"} <= {a.path for a in client.list_artifacts(r.info.run_id)}


@pytest.mark.slow  # a sweep of its own: ~1-1.5 min on 2 cores (the default suite's ~10-min budget)
def test_diverging_trial_fails_alone_and_is_not_retried(ray_session, tmp_path):
    """A NaN/inf loss: the run fails with the reason, Optuna records a failure, the sweep goes on."""
    import optuna

    from growray.tune.orchestrate import run_sweep

    exp = tiny_experiment(
        tmp_path,
        name="nan",
        seed=0,
        model={"hidden": [8]},
        growth=None,
        trainer={"epochs": 2, "optimizer": "sgd", "momentum": 0.9},  # lr 10 diverges at step ~27 here
        search={
            "space": {"trainer.lr": {"type": "categorical", "choices": [0.01, 10.0]}},
            "sampler": {"name": "random", "seed": 0},
            "num_samples": 4,
            "max_failures": 2,
        },
    )
    result = run_sweep(exp, live_interval_s=60)
    diverged = [t for t in result.trials if t.config["trainer.lr"] == 10.0]
    healthy = [t for t in result.trials if t.config["trainer.lr"] == 0.01]
    assert diverged and healthy, [t.config for t in result.trials]
    assert {t.status for t in diverged} == {"DIVERGED"} and {t.status for t in healthy} == {"TERMINATED"}
    assert result.best in healthy
    client = _client(result)
    for t in diverged:
        run = client.get_run(t.mlflow_run_id)
        assert run.info.status == "FAILED"
        assert "training loss became" in run.data.tags["growray.failure"]
        assert "growray.restores" not in run.data.tags  # not retried from its checkpoint
    study = optuna.load_study(study_name=result.name, storage=f"sqlite:///{tmp_path / 'runs' / 'nan' / 'optuna.db'}")
    states = sorted(t.state.name for t in study.trials)
    assert states.count("FAIL") == len(diverged) and states.count("COMPLETE") == len(healthy)


def test_cli_exits_1_when_every_trial_diverges(ray_session, tmp_path, capsys):
    """Not a success: the summary still prints, the exit code says nothing usable came out."""
    import yaml

    from growray.cli import main

    raw = {
        "name": "allnan",
        "seed": 0,
        "output_dir": str(tmp_path / "runs"),
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [8]},
        "trainer": {"epochs": 2, "batch_size": 64, "optimizer": "sgd", "momentum": 0.9},
        "costs": {"latency": {"enabled": False}},
        "search": {
            "space": {"trainer.lr": {"type": "categorical", "choices": [10.0]}},  # diverges, as above
            "sampler": {"name": "random", "seed": 0},
            "num_samples": 2,
        },
        "resources": {"cpu": 1},
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
    }
    (tmp_path / "allnan.yaml").write_text(yaml.safe_dump(raw))
    assert main(["run", str(tmp_path / "allnan.yaml")]) == 1
    err = capsys.readouterr().err
    assert "every trial failed" in err
