"""HyperBand and BOHB as ``search.scheduler`` names: the quickstart's growing MLPs end to end
on real Ray + Optuna/HpBandSter + MLflow, epochs as the fidelity. HyperBand pauses trials at
its rungs and resumes the survivors from their checkpoints: a resumed trial continues its grown
architecture (its widths never fall back to the initial ones) and logs every epoch once."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(600)

QUICKSTART = Path(__file__).resolve().parents[2] / "experiments" / "quickstart.yaml"
INITIAL = 8  # the quickstart's hidden widths


def _quickstart(tmp_path: Path, scheduler: dict, **search):
    from growray.config import load_experiment

    overrides = {
        "output_dir": str(tmp_path / "runs"),
        "tracking.uri": f"sqlite:///{tmp_path / 'mlflow.db'}",
        # HyperBand, max_t 4, reduction 2 (Ray: s_max + 1 = 3 brackets of 3, 3 and 4 trials; in
        # Ray 2.60 the first trials went to a 3-trial bracket, and with 7 trials the 4-trial one
        # that halves at epoch 1 never filled, instrumented). Trials that reach a rung first wait
        # PAUSED for the rest of their bracket, then the survivors resume from their checkpoints
        "trainer.epochs": 4,
        "costs.latency.enabled": False,
        "growth.trigger.every_steps": 8,  # digits: ~20 steps an epoch, so trials grow before the first rung
        "search.space": {
            "trainer.lr": {"type": "float", "low": 2e-3, "high": 3e-2, "log": True},
            "growth.trigger.n_units": {"type": "int", "low": 2, "high": 6},
        },
        "search.scheduler": scheduler,
        "search.num_samples": 10,  # every bracket full
        # Ray's HyperBand lets the trials of a bracket that is not yet full run on (no halving), a
        # trial joins a bracket only when it is created, and a PAUSED trial still counts against
        # max_concurrent: every trial is created at the start (4 run at a time, on 0.5 CPU each)
        "search.max_concurrent": 10,
        "resources.cpu": 0.5,
        **{f"search.{k}": v for k, v in search.items()},
    }
    return load_experiment(QUICKSTART, overrides)


def _runs(result):
    from mlflow import MlflowClient

    client = MlflowClient(result.tracking_uri)
    runs = client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    return client, runs


def _widths(client, run) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "growth/width/hidden.0")]


def _check_runs(result, n: int) -> tuple[int, int]:
    """Every run: epochs logged once, widths never below where they were; returns (runs resumed
    after a pause with a grown architecture, runs)."""
    client, runs = _runs(result)
    assert len(runs) == len(result.trials) == n
    resumed_grown = 0
    for run in runs:
        steps = [m.step for m in client.get_metric_history(run.info.run_id, "val/acc")]
        assert len(steps) == len(set(steps)) and steps == sorted(steps), steps  # each epoch once, in order
        widths = [w for _, w in sorted(_widths(client, run))]
        assert widths == sorted(widths), widths  # a resume never falls back to a narrower network
        if int(run.data.tags.get("growray.restores", 0)) >= 1 and widths and widths[0] >= INITIAL:
            # resumed from a checkpoint: the width it resumed with is the grown one, not the initial
            resumed_grown += int(max(widths) > INITIAL)
        assert run.info.status == "FINISHED", run.data.tags
    return resumed_grown, len(runs)


def test_schedulers_build_from_config():
    from growray.tune.schedulers import multi_fidelity, tune_space

    sched, searcher = multi_fidelity("hyperband", "val/acc", "max", 4, 2.0, {}, 0)
    assert type(sched).__name__ == "HyperBandScheduler" and searcher is None
    from growray.config.schema import SearchParam

    space = tune_space(
        {
            "a": SearchParam(type="float", low=1e-3, high=1e-1, log=True),
            "b": SearchParam(type="int", low=1, high=4),
            "c": SearchParam(type="categorical", choices=[[4, 4], [8]]),
        }
    )
    assert space["c"].categories == ["[4, 4]", "[8]"] and space["b"].upper == 5


def test_bohb_conditional_space_is_refused():
    from growray.config import ConfigError, load_experiment

    with pytest.raises(ConfigError, match="flat space"):
        load_experiment(QUICKSTART, {"search.scheduler": {"name": "bohb"}})  # its space has `when`
    with pytest.raises(ConfigError, match="halves on one metric"):
        load_experiment(
            QUICKSTART,
            {
                "search.scheduler": {"name": "hyperband"},
                "search.objectives": [
                    {"metric": "val/acc", "mode": "max"},
                    {"metric": "cost/params", "mode": "min"},
                ],
            },
        )


def test_validate_names_bohb_dependencies_when_missing(monkeypatch):
    import sys

    from growray.config import ConfigError, load_experiment

    monkeypatch.setitem(sys.modules, "hpbandster", None)  # import machinery: "not installed"
    flat = {"trainer.lr": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True}}
    with pytest.raises(ConfigError, match=r"needs hpbandster: pip install 'growray\[bohb\]'"):
        load_experiment(QUICKSTART, {"search.scheduler": {"name": "bohb"}, "search.space": flat})


@pytest.mark.slow
def test_hyperband_pauses_and_resumes_grown_trials(ray_session, tmp_path):
    from growray.tune.orchestrate import run_sweep

    result = run_sweep(_quickstart(tmp_path, {"name": "hyperband", "reduction_factor": 2.0}), live_interval_s=3600)
    assert result.n_errors == 0 and not result.interrupted
    resumed_grown, _ = _check_runs(result, 10)
    assert resumed_grown >= 1, "no trial was paused and resumed with a grown network"
    epochs = sorted(t.epochs for t in result.trials)
    assert epochs[0] < 4 <= epochs[-1]  # successive halving: some stopped early, some ran to max_t


@pytest.mark.slow
def test_bohb_sweep_of_the_quickstart(ray_session, tmp_path):
    pytest.importorskip("hpbandster")
    from growray.tune.orchestrate import run_sweep

    exp = _quickstart(tmp_path, {"name": "bohb", "reduction_factor": 2.0}, num_samples=4)
    result = run_sweep(exp, live_interval_s=3600)
    assert result.n_errors == 0 and not result.interrupted
    _check_runs(result, 4)
    assert len({round(t.config["trainer.lr"], 12) for t in result.trials}) == 4  # BOHB proposed them
