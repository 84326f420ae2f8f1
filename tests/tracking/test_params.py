"""Which params a sweep's runs carry: searched values under search.*, a compact rest."""

from __future__ import annotations

from pathlib import Path

from growray.config import load_experiment
from growray.tracking import describe_param, sweep_params, trial_params

QUICKSTART = Path(__file__).resolve().parents[2] / "experiments" / "quickstart.yaml"

SCHEDULE = {
    "trainer.lr": 0.01,
    "growth.trigger.name": "schedule",
    "growth.trigger.every_steps": 30,
    "growth.trigger.patience": None,  # inactive in this trial
    "growth.trigger.n_units": 3,
    "growth.initializer.name": "random",
}
PLATEAU = {
    "trainer.lr": 0.004,
    "growth.trigger.name": "plateau",
    "growth.trigger.patience": 2,
    "growth.trigger.min_delta": 0.3,
    "growth.trigger.n_units": 5,
    "growth.initializer.name": "net2wider",
    "growth.initializer.noise": 0.001,
}


def _trial(config: dict) -> dict[str, str]:
    exp = load_experiment(QUICKSTART).with_overrides({k: v for k, v in config.items() if v is not None})
    return trial_params(exp.to_dict(), config)


def test_trial_params_put_the_searched_values_under_search_and_nowhere_else() -> None:
    params = _trial(SCHEDULE)
    searched = {k: v for k, v in params.items() if k.startswith("search.")}
    assert searched == {
        "search.trainer.lr": "0.01",
        "search.growth.trigger.name": "schedule",
        "search.growth.trigger.every_steps": "30",
        "search.growth.trigger.n_units": "3",
        "search.growth.initializer.name": "random",
    }
    assert "trainer.lr" not in params and "search.metric" not in params  # once, and no sweep settings
    assert not any(k.startswith("growth.trigger.") for k in params)  # they follow the searched name
    assert params["trainer.epochs"] == "12" and params["model.hidden"] == "[8, 8]"
    assert len(params) < 60


def test_only_searched_params_differ_between_trials() -> None:
    """MLflow's parallel coordinates start on the first three differing params by name."""
    a, b = _trial(SCHEDULE), _trial(PLATEAU)
    differing = {k for k in set(a) | set(b) if a.get(k) != b.get(k)}
    assert differing and all(k.startswith("search.") for k in differing), sorted(differing)


def test_a_searched_list_element_drops_the_list() -> None:
    exp = load_experiment(QUICKSTART).with_overrides({"model.hidden.0": 12})
    params = trial_params(exp.to_dict(), {"model.hidden.0": 12})
    assert params["search.model.hidden.0"] == "12" and "model.hidden" not in params


def test_sweep_params_show_distributions_not_the_base_values() -> None:
    params = sweep_params(load_experiment(QUICKSTART).to_dict())
    assert params["search.trainer.lr"] == "float [0.002, 0.03] log"
    assert params["search.growth.trigger.every_steps"] == "int [10, 60] when growth.trigger.name=schedule"
    assert params["search.growth.trigger.name"] == "categorical [schedule, plateau]"
    assert "trainer.lr" not in params and "growth.trigger.every_steps" not in params  # the base file's 3e-3, 40
    assert params["search.metric"] == "val/acc" and params["trainer.epochs"] == "12"
    assert not any(k.startswith("search.space") for k in params)


def test_describe_param_step() -> None:
    assert describe_param({"type": "int", "low": 2.0, "high": 8.0, "step": 2}) == "int [2, 8] step 2"
