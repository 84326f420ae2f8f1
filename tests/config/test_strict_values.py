"""Values that pydantic's lax mode would coerce are refused at their YAML path: true/false is
not a number, NaN and infinity are not numbers, a seed is not negative, a dataset's own
ranges are checked without loading it, and a given data root must exist."""

from __future__ import annotations

import copy

import pytest

from growray.config import ConfigError, validate_dict

BASE = {
    "name": "x",
    "data": {"name": "digits"},
    "model": {"name": "mlp", "hidden": [4]},
    "growth": {"trigger": {"name": "schedule"}},
}


def _with(path: str, value: object) -> dict:
    raw = copy.deepcopy(BASE)
    cur = raw
    parts = path.split(".")
    for part in parts[:-1]:
        cur = cur.setdefault(part, {})
    cur[parts[-1]] = value
    return raw


def _issue(raw: dict) -> str:
    with pytest.raises(ConfigError) as info:
        validate_dict(raw)
    return str(info.value)


@pytest.mark.parametrize(
    ("path", "value", "expected"),
    [
        ("trainer.lr", True, "trainer.lr: Input should be a valid number (got True)"),
        ("trainer.epochs", True, "trainer.epochs: Input should be a valid integer (got True)"),
        ("growth.max_width", False, "growth.max_width: Input should be a valid integer (got False)"),
        ("growth.trigger.every_steps", True, "growth.trigger.every_steps: Input should be a valid integer (got True)"),
        ("model.hidden", [True], "model.hidden[0]: Input should be a valid integer (got True)"),
        ("search.num_samples", True, "search.num_samples: Input should be a valid integer (got True)"),
        ("trainer.lr", float("nan"), "trainer.lr: Input should be a finite number (got nan)"),
        ("resources.gpu", float("inf"), "resources.gpu: Input should be a finite number (got inf)"),
        ("growth.trigger.every_steps", 2.5, "growth.trigger.every_steps: Input should be a valid integer (got 2.5)"),
        ("seed", -1, "seed: Input should be greater than or equal to 0 (got -1)"),
        ("data.val_fraction", 1.5, "data.val_fraction: val_fraction must be a finite number in (0, 1); got 1.5"),
        ("data.test_fraction", 0.9, "data.val_fraction: val_fraction + test_fraction must sum to less than 1"),
    ],
)
def test_refused_at_its_path(path, value, expected):
    assert expected in _issue(_with(path, value))


def test_an_int_is_still_a_float_and_resolves_as_one():
    exp = validate_dict(_with("trainer.lr", 1))
    assert exp.trainer.lr == 1.0 and isinstance(exp.to_dict()["trainer"]["lr"], float)


def test_a_missing_data_root_is_refused_unless_downloading(tmp_path):
    raw = {**BASE, "data": {"name": "fashion_mnist", "root": str(tmp_path / "nope")}}
    assert f"data.root: root '{tmp_path / 'nope'}' is not a folder" in _issue(raw)
    raw["data"]["download"] = True
    validate_dict(raw)
    (tmp_path / "nope").mkdir()
    raw["data"]["download"] = False
    validate_dict(raw)
