"""The README's "write your own trigger, initializer or dataset" example runs as printed."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest

from growray.data import DATASETS
from growray.growth import INITIALIZERS, TRIGGERS

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()


@pytest.fixture
def example() -> str:
    section = README.split("### Write your own trigger, initializer or dataset", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    yield code
    for registry, name in ((TRIGGERS, "every_epoch"), (INITIALIZERS, "small_random"), (DATASETS, "xor")):
        if name in registry:
            registry.unregister(name)


def test_the_example_registers_and_trains(example: str) -> None:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(example, "README.md example", "exec"), {"__name__": "readme_example"})
    assert {"every_epoch" in TRIGGERS, "small_random" in INITIALIZERS, "xor" in DATASETS} == {True}
    val_acc, widths = out.getvalue().strip().split(" ", 1)
    assert 0.0 <= float(val_acc) <= 1.0
    assert widths == "{'hidden.0': 10}"  # 4 units + 3 epoch-end events x 2
