"""search_spaces/growth_strategies.yaml offers every registered trigger and initializer, and
every trigger x initializer pair (with the settings its conditions switch on) is a valid
experiment on the file that uses it (experiments/fashion_mnist_growth.yaml)."""

from pathlib import Path

import pytest

from growray.config import ConfigError
from growray.config.overrides import apply_overrides
from growray.config.validate import load_experiment, validate_dict
from growray.growth import INITIALIZERS, TRIGGERS

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def experiment():
    return load_experiment(ROOT / "experiments" / "fashion_mnist_growth.yaml")


def _choices(exp, key):
    return list(exp.search.space[key].choices or [])


def test_every_registered_trigger_and_initializer_is_offered(experiment):
    assert sorted(_choices(experiment, "growth.trigger.name")) == TRIGGERS.names()
    assert sorted(_choices(experiment, "growth.initializer.name")) == INITIALIZERS.names()


def _switched_on(space, trial, base):
    """Each parameter whose conditions hold for ``trial`` at its first candidate value."""
    out = dict(trial)
    for key, p in space.items():
        when = p.when or {}
        if key in out or not when:
            continue
        if all(out.get(path, base) in (v if isinstance(v, list) else [v]) for path, v in when.items()):
            first = (p.choices or [None])[0] if p.type == "categorical" else p.low
            out[key] = int(first) if p.type == "int" else first
    return out


def test_every_combination_is_valid(experiment):
    space = experiment.search.space
    base = experiment.to_dict()
    bad = []
    for trigger in _choices(experiment, "growth.trigger.name"):
        for init in _choices(experiment, "growth.initializer.name"):
            trial = _switched_on(space, {"growth.trigger.name": trigger, "growth.initializer.name": init}, object())
            try:
                validate_dict(apply_overrides(base, trial), check_space=False)
            except ConfigError as exc:
                bad.append((trigger, init, [f"{i.path}: {i.message}" for i in exc.issues]))
    assert bad == []


def test_validate_checks_a_choice_with_the_settings_it_switches_on(experiment):
    """``growray validate`` checks ``initializer.name: north_weight`` together with the sites
    its condition restricts growth to (conv.0's fan-in of 9 is below max_width 48)."""
    from growray.config.space_checks import check_space

    assert check_space(experiment) == []
    without = experiment.to_dict()
    without["search"]["space"] = {k: v for k, v in without["search"]["space"].items() if k != "growth.sites"}
    with pytest.raises(ConfigError, match="north_weight needs width < fan-in"):
        validate_dict(without)
