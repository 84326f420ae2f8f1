"""A tiny multi-objective sweep end to end: objectives and a constraint through Optuna,
the front tagged in MLflow, pareto.csv and the plot on the sweep, `growray pareto` later."""

from __future__ import annotations

from pathlib import Path

import pytest
from _summaries import check_summaries
from conftest import tiny_experiment

from growray.search.pareto import pareto_front

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.slow,
]  # a whole sweep: CI runs it with -m slow (the default suite stays near 10 min on 2 cores)


@pytest.fixture(scope="module")
def mo_sweep(ray_session, tmp_path_factory):
    from growray.tune.orchestrate import run_sweep

    tmp = tmp_path_factory.mktemp("mo")
    exp = tiny_experiment(
        tmp,
        name="mo",
        trainer={"epochs": 2},
        costs={"every_epochs": 1, "latency": {"batch_sizes": [16], "min_run_time": 0.02, "warmup": 2}},
        search={
            "metric": "val/acc",
            "objectives": [{"metric": "val/acc", "mode": "max"}, {"metric": "cost/params", "mode": "min"}],
            "constraints": ["cost/latency_ms <= 1000", "cost/params <= 2000"],
            "sampler": {"name": "nsga2", "population_size": 2},
            "num_samples": 5,
            "space": {
                "model.hidden.0": {"type": "int", "low": 2, "high": 24},
                "trainer.lr": {"type": "float", "low": 1e-3, "high": 3e-2, "log": True},
            },
        },
    )
    return exp, run_sweep(exp, live_interval_s=60), tmp


def test_front_tagged_and_logged(mo_sweep):
    from mlflow import MlflowClient

    _, result, _ = mo_sweep
    client = MlflowClient(result.tracking_uri)
    runs = client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert len(runs) == 5
    feasible = [r for r in runs if r.data.metrics["cost/params"] <= 2000 and r.data.metrics["cost/latency_ms"] <= 1000]
    values = [[r.data.metrics["val/acc"], r.data.metrics["cost/params"]] for r in feasible]
    expected = {feasible[i].info.run_id for i in pareto_front(values, ["max", "min"])} if feasible else set()
    tagged = {r.info.run_id for r in runs if r.data.tags["growray.pareto"] == "true"}
    assert tagged == expected and {r.data.tags["growray.pareto"] for r in runs} <= {"true", "false"}
    assert {r["run_id"] for r in result.pareto.front} == expected
    names = {a.path for a in client.list_artifacts(result.parent_run_id)} | {
        a.path for a in client.list_artifacts(result.parent_run_id, "plots")
    }
    assert {"pareto.csv", "plots/pareto.png"} <= names
    csv = Path(client.download_artifacts(result.parent_run_id, "pareto.csv")).read_text().splitlines()
    assert csv[0].startswith("trial,run_id,pareto,stopped_early,feasible,val/acc,cost/params") and len(csv) == 6


def test_every_trial_has_costs_and_the_latency_protocol(mo_sweep):
    from mlflow import MlflowClient

    _, result, _ = mo_sweep
    client = MlflowClient(result.tracking_uri)
    for r in client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'"):
        for key in (
            "cost/params",
            "cost/flops",
            "cost/latency_ms",
            "cost/latency_p95_ms",
            "cost/train_flops",
            "cost/train_seconds",
        ):
            assert key in r.data.metrics, key
        for key in (
            "cost.latency.batch_sizes",
            "cost.latency.dtype",
            "cost.latency.threads",
            "cost.latency.device",
            "cost.latency.warmup",
            "cost.latency.min_run_time",
        ):
            assert key in r.data.params, key
        assert r.data.params["cost.latency.batch_sizes"] == "16"


def test_study_matches_the_front_and_records_constraints(mo_sweep):
    import optuna
    from mlflow import MlflowClient

    _, result, tmp = mo_sweep
    study = optuna.load_study(study_name=result.name, storage=f"sqlite:///{tmp / 'runs' / 'mo' / 'optuna.db'}")
    assert study.directions == [optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE]
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) == 5
    client = MlflowClient(result.tracking_uri)
    for t in done:
        run = client.get_run(t.user_attrs["growray.mlflow_run_id"])
        latency, params = sorted(t.constraints.items())  # "0:cost/latency_ms<=1000", "1:cost/params<=2000"
        assert latency[1] == pytest.approx(run.data.metrics["cost/latency_ms"] - 1000)
        assert params[1] == pytest.approx(run.data.metrics["cost/params"] - 2000)
    rows = {r["run_id"]: r for r in result.pareto.rows}
    assert all(r["feasible"] for r in result.pareto.front)
    assert {rid for rid, r in rows.items() if r["feasible"]} == {
        t.user_attrs["growray.mlflow_run_id"] for t in done if all(v <= 0 for v in t.constraints.values())
    }
    # Optuna's own front (feasible trials only) is the one growray tagged in MLflow
    best = {t.user_attrs["growray.mlflow_run_id"] for t in study.best_trials}
    assert best == {r["run_id"] for r in result.pareto.front}


def test_growray_pareto_prints_the_front_later(mo_sweep, capsys):
    from growray.cli import main

    _, result, _ = mo_sweep
    assert main(["pareto", "mo", "--tracking-uri", result.tracking_uri]) == 0
    out = capsys.readouterr().out
    for row in result.pareto.front:
        assert row["run_id"] in out
    assert main(["pareto", "nope", "--tracking-uri", result.tracking_uri]) == 2


def test_summaries_agree_with_the_store(mo_sweep, capsys):
    exp, result, _ = mo_sweep
    check_summaries(result, exp, capsys)
    # a front from fewer ranked trials than objectives + 1 says so
    assert (len(result.pareto.ranked) < 3) == any("fewer than objectives + 1" in w for w in result.warnings())


def test_the_study_holds_the_first_objectives_curve(mo_sweep):
    """Optuna refuses Trial.report on a multi-objective study: growray writes the first
    objective's values per epoch through the storage, so optuna-dashboard draws them."""
    import optuna
    from mlflow import MlflowClient

    _, result, tmp = mo_sweep
    study = optuna.load_study(study_name=result.name, storage=f"sqlite:///{tmp / 'runs' / 'mo' / 'optuna.db'}")
    client = MlflowClient(result.tracking_uri)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert done
    for t in done:
        assert t.user_attrs["growray.intermediate_metric"] == "val/acc"
        history = sorted(
            client.get_metric_history(t.user_attrs["growray.mlflow_run_id"], "val/acc"), key=lambda m: m.step
        )
        assert [t.intermediate_values[k] for k in sorted(t.intermediate_values)] == pytest.approx(
            [m.value for m in history]
        )
        run = client.get_run(t.user_attrs["growray.mlflow_run_id"])
        assert run.data.metrics["cost/latency_spread"] >= 0.0 and run.data.params["cost.latency.repeats"] == "3"
