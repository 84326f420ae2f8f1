"""Experiment files: typed, closed, every error reported at once with its YAML path."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from growray.config import ConfigError, Experiment, apply_overrides, load_experiment, validate_dict
from growray.search.space import SpaceFunction, active

ROOT = Path(__file__).resolve().parents[2]

MINIMAL = {
    "name": "t",
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [8]},
    "growth": {"trigger": {"name": "schedule", "every_steps": 5}},
}


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def paths_of(exc: ConfigError) -> list[str]:
    return [i.path for i in exc.issues]


def test_quickstart_validates_and_fills_plugin_defaults():
    exp = load_experiment(ROOT / "experiments" / "quickstart.yaml")
    assert exp.kind == "growth"
    assert exp.kinds["growth"].trigger["name"] == "schedule"
    # defaults of the registered plug-in are filled in, so the logged config says what ran
    assert exp.kinds["growth"].trigger["start_step"] == 0
    assert "growth.trigger.patience" in exp.search.space


def test_three_mistakes_are_all_reported_with_paths(tmp_path):
    p = write(
        tmp_path,
        """
        name: three
        data: {name: digitz}
        model: {name: mlp, hidden: [8]}
        trainer: {epochs: 0}
        growth:
          trigger: {name: schedule, every_step: 10}
        """,
    )
    with pytest.raises(ConfigError) as ei:
        load_experiment(p)
    paths = paths_of(ei.value)
    assert "data.name" in paths
    assert "trainer.epochs" in paths
    assert "growth.trigger.every_step" in paths
    text = str(ei.value)
    assert "did you mean 'digits'" in text
    assert "did you mean 'every_steps'" in text
    assert "(got 0)" in text


def test_cli_validate_exits_2_without_importing_ray(tmp_path):
    p = write(
        tmp_path,
        "name: x\ndata: {name: digits}\nmodel: {name: mlp}\ntrainer: {lr: -1, optimizer: sgdd}\nresource: {}\n",
    )
    code = (
        "import sys; from growray.cli import main; rc = main(['validate', sys.argv[1]]);"
        "assert 'ray' not in sys.modules and 'mlflow' not in sys.modules, 'validate imported ray/mlflow';"
        "sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(p)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    for path in ("trainer.lr", "trainer.optimizer", "resource"):
        assert f"  - {path}:" in proc.stderr
    assert "3 errors" in proc.stderr


def test_yaml_syntax_error_names_line(tmp_path):
    p = write(tmp_path, "name: x\ndata: {name: digits\nmodel: {}\n")
    with pytest.raises(ConfigError) as ei:
        load_experiment(p)
    assert "YAML syntax error" in str(ei.value)
    assert f"{p}:" in ei.value.issues[0].path


def test_duplicate_keys_are_errors(tmp_path):
    p = write(tmp_path, "name: x\nname: y\ndata: digits\nmodel: mlp\n")
    with pytest.raises(ConfigError, match="duplicate key 'name'"):
        load_experiment(p)


def test_frozen_and_closed():
    from pydantic import ValidationError

    exp = validate_dict(MINIMAL)
    with pytest.raises(ValidationError, match="frozen"):
        exp.seed = 3  # type: ignore[misc]
    with pytest.raises(ConfigError, match="unknown key"):
        validate_dict({**MINIMAL, "trainer": {"epochz": 3}})


def test_plugin_shorthand_and_unknown_parameter():
    exp = validate_dict({**MINIMAL, "growth": {"trigger": "plateau", "initializer": "net2wider"}})
    assert exp.kinds["growth"].trigger == {
        "name": "plateau",
        "patience": 2,
        "min_delta": 1e-3,
        "n_units": 4,
        "cooldown": 0,
    }
    with pytest.raises(ConfigError) as ei:
        validate_dict({**MINIMAL, "model": {"name": "mlp", "hiden": [3]}})
    assert paths_of(ei.value) == ["model.hiden"]


def test_constructor_range_checks_surface_at_validate_time():
    with pytest.raises(ConfigError) as ei:
        validate_dict({**MINIMAL, "growth": {"trigger": {"name": "schedule", "every_steps": 0}}})
    assert paths_of(ei.value) == ["growth.trigger.every_steps"]


def test_max_width_below_initial_width():
    with pytest.raises(ConfigError) as ei:
        validate_dict({**MINIMAL, "growth": {**MINIMAL["growth"], "max_width": 4}})
    assert paths_of(ei.value) == ["growth.max_width"]


def test_growth_checked_against_the_model_built_on_meta():
    with pytest.raises(ConfigError) as ei:
        validate_dict({**MINIMAL, "growth": {**MINIMAL["growth"], "sites": ["hidden.0", "hidden.4"]}})
    assert paths_of(ei.value) == ["growth.sites"]
    assert "its sites are hidden.0" in str(ei.value)


def test_invalid_strategy_combinations_are_rejected_with_a_reason():
    # north_weight needs width < fan-in at every event: digits has 64 input features
    with pytest.raises(ConfigError) as ei:
        validate_dict({**MINIMAL, "growth": {"trigger": "schedule", "initializer": "north_weight", "max_width": 80}})
    assert paths_of(ei.value) == ["growth.initializer.name"]
    assert "set growth.max_width <= 64" in str(ei.value)
    validate_dict({**MINIMAL, "growth": {"trigger": "schedule", "initializer": "north_weight", "max_width": 64}})
    # north_act on dense sites needs more buffered samples than units
    with pytest.raises(ConfigError) as ei:
        validate_dict({**MINIMAL, "growth": {"trigger": "north_act", "max_width": 300, "buffer_size": 256}})
    assert paths_of(ei.value) == ["growth.trigger.name"]
    # the same combination reached through a search space is caught too
    with pytest.raises(ConfigError, match="north_weight"):
        validate_dict(
            {
                **MINIMAL,
                "growth": {**MINIMAL["growth"], "max_width": 80},
                "search": {
                    "space": {"growth.initializer.name": {"type": "categorical", "choices": ["random", "north_weight"]}}
                },
            }
        )


def test_gpu_fraction_rules():
    assert validate_dict({**MINIMAL, "resources": {"gpu": 0.25}}).resources.gpu == 0.25
    with pytest.raises(ConfigError, match=r"resources\.gpu"):
        validate_dict({**MINIMAL, "resources": {"gpu": 1.5}})
    with pytest.raises(ConfigError, match=r"trainer\.device is 'cpu'"):
        validate_dict({**MINIMAL, "resources": {"gpu": 1}, "trainer": {"device": "cpu"}})


def test_missing_sampler_package_is_a_validate_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "cmaes" else real(name, *a))
    with pytest.raises(ConfigError, match="pip install cmaes"):
        validate_dict({**MINIMAL, "search": {"sampler": "cmaes"}})


# ------------------------------------------------------------------ search space


def test_space_file_reference_resolves_from_experiments_folder(tmp_path):
    (tmp_path / "search_spaces").mkdir()
    (tmp_path / "experiments").mkdir()
    (tmp_path / "search_spaces" / "s.yaml").write_text("trainer.lr: {type: float, low: 0.001, high: 0.1, log: true}\n")
    p = write(
        tmp_path / "experiments",
        "name: x\ndata: digits\nmodel: mlp\nsearch: {space: s}\n",
    )
    exp = load_experiment(p)
    assert list(exp.search.space) == ["trainer.lr"]


def test_missing_space_file_lists_folders(tmp_path):
    p = write(tmp_path, "name: x\ndata: digits\nmodel: mlp\nsearch: {space: nowhere}\n")
    with pytest.raises(ConfigError) as ei:
        load_experiment(p)
    assert paths_of(ei.value) == ["search.space"]
    assert "looked in" in str(ei.value)


@pytest.mark.parametrize(
    "param, fragment",
    [
        ({"trainer.lrr": {"type": "float", "low": 0.1, "high": 1.0}}, "did you mean 'lr'"),
        ({"trainer.lr": {"type": "float", "low": 0.1, "high": 100.0}}, "trainer.lr"),  # high out of range
        ({"growth.trigger.name": {"type": "categorical", "choices": ["schedule", "platau"]}}, "did you mean 'plateau'"),
        (
            {"growth.trigger.patience": {"type": "int", "low": 1, "high": 3}},
            "no parameter 'patience'",
        ),  # not for schedule
        ({"trainer.lr": {"type": "float", "low": 1.0, "high": 0.1}}, "must not exceed"),
        ({"trainer.lr": {"type": "categorical"}}, "non-empty 'choices'"),
        ({"search.num_samples": {"type": "int", "low": 1, "high": 2}}, "cannot be searched"),
        ({"model.hidden.0": {"type": "int", "low": 4, "high": 8, "when": {"nope.x": 1}}}, "condition"),
    ],
)
def test_space_errors(param, fragment):
    with pytest.raises(ConfigError) as ei:
        validate_dict({**MINIMAL, "search": {"space": param}})
    assert fragment in str(ei.value), str(ei.value)
    assert all(p.startswith("search.space") for p in paths_of(ei.value)), paths_of(ei.value)


def test_conditional_parameter_valid_only_under_its_condition():
    space = {
        "growth.trigger.name": {"type": "categorical", "choices": ["schedule", "plateau"]},
        "growth.trigger.patience": {"type": "int", "low": 1, "high": 3, "when": {"growth.trigger.name": "plateau"}},
        "growth.trigger.every_steps": {"type": "int", "low": 2, "high": 9, "when": {"growth.trigger.name": "schedule"}},
        "model.hidden.0": {"type": "int", "low": 4, "high": 16},
    }
    exp = validate_dict({**MINIMAL, "search": {"space": space}})
    assert len(exp.search.space) == 4


def test_overrides_switching_plugin_drop_old_params():
    exp = validate_dict(MINIMAL)
    trial = exp.with_overrides({"growth.trigger.name": "plateau", "growth.trigger.patience": 3, "model.hidden.0": 12})
    assert trial.kinds["growth"].trigger["name"] == "plateau"
    assert trial.kinds["growth"].trigger["patience"] == 3
    assert "every_steps" not in trial.kinds["growth"].trigger
    assert trial.model["hidden"] == [12]
    same = exp.with_overrides({"growth.trigger.name": "schedule"})
    assert same.kinds["growth"].trigger["every_steps"] == 5  # same plug-in: its parameters stay
    assert apply_overrides({"a": {"b": 1}}, {"a.c": 2}) == {"a": {"b": 1, "c": 2}}


def test_space_function_samples_only_active_parameters():
    import optuna

    exp = validate_dict(
        {
            **MINIMAL,
            "search": {
                "space": {
                    "growth.trigger.name": {"type": "categorical", "choices": ["schedule", "plateau"]},
                    "growth.trigger.patience": {
                        "type": "int",
                        "low": 1,
                        "high": 3,
                        "when": {"growth.trigger.name": "plateau"},
                    },
                    "growth.trigger.every_steps": {
                        "type": "int",
                        "low": 2,
                        "high": 9,
                        "when": {"growth.trigger.name": ["schedule"]},
                    },
                    "trainer.lr": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
                    "trainer.batch_size": {
                        "type": "int",
                        "low": 16,
                        "high": 64,
                        "step": 16,
                        "when": {"trainer.optimizer": "adam"},
                    },
                }
            },
        }
    )
    fn = SpaceFunction.from_experiment(exp)
    assert fn.fixed == {"trainer.optimizer": "adam"}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(20):
        trial = study.ask()
        fn(trial)
        params = trial.params
        name = params["growth.trigger.name"]
        seen.add(name)
        assert ("growth.trigger.patience" in params) == (name == "plateau")
        assert ("growth.trigger.every_steps" in params) == (name == "schedule")
        assert params["trainer.batch_size"] in (16, 32, 48, 64)
        exp.with_overrides(params)  # every sampled config is a valid experiment
        study.tell(trial, 0.0)
    assert seen == {"schedule", "plateau"}
    assert not active({"x": [1, 2]}, {"x": 3}, {})


def test_experiment_is_picklable_for_ray():
    import pickle

    exp = load_experiment(ROOT / "experiments" / "quickstart.yaml")
    again = pickle.loads(pickle.dumps(exp))
    assert isinstance(again, Experiment) and again == exp


@pytest.mark.parametrize(
    "scheduler, fragment",
    [
        ({"name": "pbt"}, "needs scheduler.mutate"),
        ({"name": "pbt", "mutate": ["trainer.momentum"]}, "not a search.space parameter"),
        ({"name": "pbt", "mutate": ["growth.trigger.patience"]}, "is conditional"),
    ],
)
def test_pbt_rules(scheduler, fragment):
    space = {
        "trainer.lr": {"type": "float", "low": 1e-3, "high": 1e-1, "log": True},
        "growth.trigger.name": {"type": "categorical", "choices": ["schedule", "plateau"]},
        "growth.trigger.patience": {"type": "int", "low": 1, "high": 3, "when": {"growth.trigger.name": "plateau"}},
    }
    with pytest.raises(ConfigError, match=fragment):
        validate_dict({**MINIMAL, "search": {"space": space, "scheduler": scheduler}})
    ok = validate_dict({**MINIMAL, "search": {"space": space, "scheduler": {"name": "pbt", "mutate": ["trainer.lr"]}}})
    assert ok.search.scheduler.perturbation_interval == 2


def test_every_scheduler_name_is_described_for_show_plugins():
    """``growray show plugins`` and the README list schedulers from SCHEDULERS: a name the
    schema accepts without a description there would be missing from both."""
    import typing

    from growray.config import SCHEDULERS, SchedulerConfig

    accepted = typing.get_args(SchedulerConfig.model_fields["name"].annotation)
    assert set(SCHEDULERS) == set(accepted)
    for name, (text, settings) in SCHEDULERS.items():
        assert text.endswith("."), name
        assert set(settings) <= set(SchedulerConfig.model_fields), name
