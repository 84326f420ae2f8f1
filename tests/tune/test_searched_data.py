"""A searched data parameter reaches the trial: each trial trains on its own data."""

from __future__ import annotations

import contextlib
import io

import pytest
from conftest import tiny_experiment

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


def test_each_trial_gets_the_data_its_config_names(ray_session, tmp_path):
    from mlflow import MlflowClient

    from growray.tune.orchestrate import run_sweep

    exp = tiny_experiment(
        tmp_path,
        data={"name": "synthetic", "n_samples": 300, "rank": 4},
        model={"name": "mlp", "hidden": [4]},
        trainer={"epochs": 1, "batch_size": 64, "lr": 0.01},
        search={
            "space": {"data.rank": {"type": "categorical", "choices": [2, 8]}},
            "sampler": {"name": "grid"},
            "num_samples": 2,
            "max_concurrent": 2,
        },
    )
    with contextlib.redirect_stdout(io.StringIO()):
        result = run_sweep(exp, live_interval_s=5)
    client = MlflowClient(result.tracking_uri)
    runs = [client.get_run(t.mlflow_run_id).data for t in result.trials]
    assert sorted(int(r.params["search.data.rank"]) for r in runs) == [2, 8]
    # the same base data (rank 4) would give both trials the same first-epoch loss: same seed,
    # same model, same batches; their own data (rank 2 and 8) does not
    losses = [r.metrics["val/loss"] for r in runs]
    assert abs(losses[0] - losses[1]) > 1e-6, losses
