"""One source of truth for a sweep's summaries: ``growray ls``, the final table (and its copy
``trials.txt``), the parent run's metrics and the end-of-sweep report must agree with each
other and with the trial runs in the MLflow store. Called by the sweep tests (growth, NAS,
Pareto) on the sweeps they already run."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any


def _trial_runs(client: Any, result: Any) -> list[Any]:
    runs = client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    return [r for r in runs if r.data.tags.get("growray.kind") != "retrain"]


def check_summaries(result: Any, exp: Any, capsys: Any) -> None:
    """Assert that every summary of ``result`` (a finished sweep of ``exp``) agrees with the store."""
    from mlflow import MlflowClient

    from growray.cli import main
    from growray.cli.sweep import _report
    from growray.tune.results import paired_test_metric

    client = MlflowClient(result.tracking_uri)
    parent = client.get_run(result.parent_run_id)
    runs = _trial_runs(client, result)
    by_run = {r.info.run_id: r for r in runs}
    metrics = exp.search.metrics

    # trials, not retrain runs: the store, the result, the parent run and ls count the same
    assert len(runs) == len(result.trials) == parent.data.metrics["sweep/n_trials"]
    for status in ("STOPPED", "INTERRUPTED", "DIVERGED"):
        assert parent.data.metrics[f"sweep/n_{status.lower()}"] == result.count(status)
    (row,) = [r for r in _ls_rows(result) if r["run_id"] == result.parent_run_id]
    assert row["n_trials"] == len(runs) and row["objectives"] == list(zip(metrics, exp.search.modes))

    # each trial's status and objective values are its run's
    for t in result.trials:
        run = by_run[t.mlflow_run_id]
        assert (t.status == "STOPPED") == (run.data.tags.get("growray.stopped_early") == "true"), t
        for m in metrics:
            stored, shown = run.data.metrics.get(m), t.metrics.get(m)
            assert stored is not None and shown is not None and math.isclose(stored, shown, rel_tol=1e-9), (m, t)
        test = paired_test_metric(metrics[0])
        if t.test_acc is not None:
            assert math.isclose(t.test_acc, run.data.metrics[test], rel_tol=1e-9), (test, t)

    # the final table shows every objective, and trials.txt on the parent run is that table
    table = result.table()
    header = table.splitlines()[0].split()
    assert all(m in header for m in metrics), header
    for t in result.trials:
        line = next(line for line in table.splitlines() if line.startswith(t.trial_id))
        assert line.split()[1] == t.status
        assert f"{t.metric:.4f}" in line
    logged = Path(client.download_artifacts(result.parent_run_id, "trials.txt")).read_text()
    assert logged == table + "\n"

    capsys.readouterr()
    _report(result, exp, resume_hint="x.yaml")
    out = capsys.readouterr().out
    if len(metrics) == 1:
        # the best trial: the store's best value of the objective, on the parent run and in ls
        values = {r.info.run_id: r.data.metrics[metrics[0]] for r in runs if math.isfinite(r.data.metrics[metrics[0]])}
        pick = max if exp.search.modes[0] == "max" else min
        best = result.best
        # trials can tie on a small validation set: the best is one of the tied runs, and the
        # result, the parent run and ls name the same one
        assert best is not None and values[best.mlflow_run_id] == values[pick(values, key=values.get)], values
        best_run = best.mlflow_run_id
        assert best_run == parent.data.tags["growray.best_run_id"]
        key = f"best/{metrics[0].replace('/', '_')}"
        assert math.isclose(parent.data.metrics[key], values[best_run], rel_tol=1e-9)
        test_key = paired_test_metric(metrics[0])
        assert math.isclose(
            parent.data.metrics[f"best/{test_key.replace('/', '_')}"], by_run[best_run].data.metrics[test_key]
        )
        assert row["result"] == f"{metrics[0]}={values[best_run]:.4f}"
        assert f"best trial: {best.trial_id}  {metrics[0]}={values[best_run]:.4f}" in out
        assert f"{test_key}={by_run[best_run].data.metrics[test_key]:.4f}" in out
    else:
        # several objectives: the front, never one "best" trial
        front = {r.info.run_id for r in runs if r.data.tags.get("growray.pareto") == "true"}
        assert result.best is None and "best trial" not in out and "Pareto front" in out
        assert not [k for k in parent.data.metrics if k.startswith("best/")]
        assert parent.data.metrics["sweep/pareto_size"] == len(front) == len(result.pareto.front)
        assert row["result"].startswith(f"front {len(front)} (")
        marks = {line.split()[0]: line for line in table.splitlines()[2:]}
        for t in result.trials:
            assert (" yes " in marks[t.trial_id]) == (t.mlflow_run_id in front), marks[t.trial_id]

    # growray ls prints the same
    assert main(["ls", "--tracking-uri", result.tracking_uri]) == 0
    listed = next(line for line in capsys.readouterr().out.splitlines() if result.parent_run_id in line)
    assert row["result"] in listed and f" {len(runs)} " in listed


def _ls_rows(result: Any) -> list[dict[str, Any]]:
    from growray.api import list_sweeps

    return list_sweeps(result.tracking_uri)
