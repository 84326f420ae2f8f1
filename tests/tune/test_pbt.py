"""Population-based training with growing networks: a trial exploits another trial's checkpoint
of a different width, keeps its own MLflow run, and trains on with the mutated learning rate."""

from __future__ import annotations

import json

import pytest
from conftest import tiny_experiment

pytestmark = [
    pytest.mark.timeout(400),
    pytest.mark.slow,
]  # a whole sweep: CI runs it with -m slow (the default suite stays near 10 min on 2 cores)


def test_pbt_exploits_across_widths(ray_session, tmp_path):
    from mlflow import MlflowClient

    from growray.search.population import sample_population
    from growray.tune.orchestrate import run_sweep

    exp = tiny_experiment(
        tmp_path,
        name="pbt",
        trainer={"epochs": 8, "batch_size": 64},
        growth={"trigger": {"name": "schedule", "every_steps": 15, "n_units": 2}, "max_width": 64},
        costs={"latency": {"enabled": False}},
        search={
            "space": {
                "model.hidden.0": {"type": "categorical", "choices": [3, 6, 12, 24]},
                "trainer.lr": {"type": "float", "low": 1e-4, "high": 3e-2, "log": True},
            },
            "scheduler": {
                "name": "pbt",
                "perturbation_interval": 2,
                "mutate": ["trainer.lr"],
                "quantile_fraction": 0.5,
            },
            "num_samples": 4,
            "max_concurrent": 2,
        },
    )
    population = sample_population(exp)
    assert len(population) == 4 and population == sample_population(exp)  # seeded
    result = run_sweep(exp, live_interval_s=60)
    assert [t.status for t in result.trials] == ["TERMINATED"] * 4  # no shape errors after exploits

    client = MlflowClient(result.tracking_uri)
    runs = client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert len(runs) == 4 and len({r.data.tags["growray.trial"] for r in runs}) == 4  # one run per trial
    exploited = [r for r in runs if "growray.exploited_from" in r.data.tags]
    assert exploited, "PBT made no exploit"
    names = {r.data.tags["growray.trial"] for r in runs}
    for r in exploited:
        assert r.data.tags["growray.exploited_from"] in names - {r.data.tags["growray.trial"]}
        assert "trainer.lr" in json.loads(r.data.tags["growray.searched_now"])
    for r in runs:
        for key in ("val/acc", *r.data.metrics):  # train/loss and the rest as well
            steps = [m.step for m in client.get_metric_history(r.info.run_id, key)]
            assert len(steps) == len(set(steps)), (key, sorted(steps))  # never twice at one step, exploit or not
        assert r.info.status == "FINISHED"
