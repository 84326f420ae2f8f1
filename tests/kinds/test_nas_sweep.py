"""A tiny DARTS sweep on real Ray + Optuna + MLflow (sqlite): gap curves, genotype and
plots in MLflow, the in-trial retrain stage into a linked run, then ``growray retrain``."""

from __future__ import annotations

import json

import pytest

from growray.tracking import param_value

# one module sweep (DARTS, ENAS, retraining) shared by its tests: ~1.5 min on 2 cores
pytestmark = [pytest.mark.timeout(400), pytest.mark.slow]


@pytest.fixture(scope="module")
def sweep(ray_session, tmp_path_factory):
    from growray.config import validate_dict
    from growray.tune.orchestrate import run_sweep

    tmp = tmp_path_factory.mktemp("nas")
    exp = validate_dict(
        {
            "name": "tinydarts",
            "seed": 0,
            "output_dir": str(tmp / "runs"),
            "data": {"name": "digits", "image": True},
            "model": {
                "name": "darts_supernet",
                "layers": 1,
                "channels": 2,
                "nodes": 1,
                "multiplier": 1,
                "ops": ["skip_connect", "sep_conv_3x3", "max_pool_3x3"],
            },
            "trainer": {"epochs": 2, "batch_size": 256, "optimizer": "sgd", "lr": 0.05, "eval_batch_size": 2048},
            "nas": {
                "method": "darts",
                "bn_calibration_batches": 1,
                "retrain": {"enabled": True, "epochs": 1, "channels": 3, "layers": 2, "batch_size": 32},
            },
            "search": {
                "space": {"nas.order": {"type": "categorical", "choices": [1, 2]}},
                "sampler": {"name": "grid"},
                "metric": "nas/retrain_val_acc",
                "num_samples": 2,
                "max_concurrent": 2,
            },
            "costs": {"latency": {"enabled": False}},
            "resources": {"cpu": 1},
            "tracking": {"uri": f"sqlite:///{tmp / 'mlflow.db'}"},
        }
    )
    return exp, run_sweep(exp, live_interval_s=5), tmp


def _runs(result):
    from mlflow import MlflowClient

    client = MlflowClient(result.tracking_uri)
    experiment = client.get_experiment_by_name("tinydarts")
    return client, client.search_runs([experiment.experiment_id])


def test_search_runs_hold_gap_curves_genotype_and_plots(sweep):
    _, result, _ = sweep
    assert [t.status for t in result.trials] == ["TERMINATED"] * 2
    client, runs = _runs(result)
    searches = [r for r in runs if r.data.tags.get("growray.kind") == "darts"]
    assert len(searches) == 2
    assert sorted(param_value(r.data.params, "nas.order") for r in searches) == ["1", "2"]  # the grid, each once
    for run in searches:
        for key in ("nas/relaxed_val_acc", "nas/discrete_val_acc", "nas/gap", "nas/skip_fraction", "nas/alpha_entropy"):
            assert len(client.get_metric_history(run.info.run_id, key)) == 2, key
        names = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"genotype.json", "alphas.json", "config.yaml"} <= names
        plots = {a.path for a in client.list_artifacts(run.info.run_id, "plots")}
        assert {"plots/alpha_heatmap.png", "plots/alpha_history.png", "plots/genotype.png"} <= plots


def test_retrain_stage_writes_a_linked_run_and_reports_to_optuna(sweep):
    _, result, _ = sweep
    client, runs = _runs(result)
    retrains = [r for r in runs if r.data.tags.get("growray.kind") == "retrain"]
    assert len(retrains) == 2
    by_id = {r.info.run_id: r for r in runs}
    for r in retrains:
        search = by_id[r.data.tags["growray.search_run_id"]]
        assert search.data.tags["growray.retrain_run_id"] == r.info.run_id
        assert r.data.tags["mlflow.parentRunId"] == result.parent_run_id
        # the retrained cell learned (10 classes, chance 0.1; a hand-set cell scores 0.59-0.74 here)
        assert 0.2 < r.data.metrics["nas/retrain_val_acc"] <= 1
        assert search.data.metrics["nas/retrain_val_acc"] == r.data.metrics["nas/retrain_val_acc"]
        assert "nas/retrain_gap" in search.data.metrics
        with open(client.download_artifacts(r.info.run_id, "genotype.json")) as f:
            retrained = json.load(f)
        with open(client.download_artifacts(search.info.run_id, "genotype.json")) as f:
            assert retrained == json.load(f)
    assert all(t.metric == t.metric and 0.2 < t.metric <= 1 for t in result.trials), "Optuna got nas/retrain_val_acc"


def test_growray_retrain_command_trains_a_search_run_again(sweep, capsys):
    from growray.cli import main

    _, result, _ = sweep
    client, runs = _runs(result)
    search = next(r for r in runs if r.data.tags.get("growray.kind") == "darts")
    code = main(
        ["retrain", search.info.run_id, "--tracking-uri", result.tracking_uri, "--set", "nas.retrain.channels=3"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "nas/retrain_val_acc=" in out
    new_id = out.split("into MLflow run ")[1].split(":")[0]
    new = client.get_run(new_id)
    assert new.data.tags["growray.search_run_id"] == search.info.run_id
    assert new.data.params["model.channels"] == "3"
    assert client.get_run(search.info.run_id).data.tags["growray.retrain_run_id"] == new_id


def test_growray_retrain_refuses_a_run_without_a_genotype(sweep, capsys):
    from growray.cli import main

    _, result, _ = sweep
    code = main(["retrain", result.parent_run_id, "--tracking-uri", result.tracking_uri])
    assert code == 2
    assert "only DARTS/ENAS search runs can be retrained" in capsys.readouterr().err


def test_summaries_agree_with_the_store(sweep, capsys):
    """ls, the final table, the parent run and the report show the objective nas/retrain_val_acc
    and the retrained test accuracy (not the supernet's), and count the trials, not the retrain runs."""
    from _summaries import check_summaries

    exp, result, _ = sweep
    check_summaries(result, exp, capsys)
    assert all(t.test_acc == t.metrics["nas/retrain_test_acc"] for t in result.trials)
