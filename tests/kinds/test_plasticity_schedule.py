"""Grow vs Prune over 5 cycles: the units edited at each boundary follow
k = min(q, ceil(q / max(1, T - t)), a) exactly (issue 15, 'tests that pin the wiring')."""

from __future__ import annotations

import math

import pytest
import torch

from growray.config import validate_dict
from growray.data import load_dataset
from growray.tracking import MemoryRecorder
from growray.train import build_trainer

torch.set_num_threads(1)
CYCLES, WIDTH, TARGET = 5, 20, 10


def _expected(start: int) -> list[int]:
    """Active units after each cycle, by the schedule written out by hand."""
    active, out = start, []
    for t in range(1, CYCLES + 1):
        if t < CYCLES:  # an edit at each boundary between two cycles
            q = abs(TARGET - active)
            k = min(q, math.ceil(q / max(1, CYCLES - t)))
            active += k if active < TARGET else -k
        out.append(active)
    return out


@pytest.mark.parametrize(("arm", "start"), [("grow", 2), ("prune", WIDTH)])
def test_units_edited_per_boundary(arm, start):
    exp = validate_dict(
        {
            "name": "gvp",
            "seed": 1,
            "data": {"name": "digits"},
            "model": {"name": "mlp", "hidden": [WIDTH]},
            "trainer": {"epochs": CYCLES, "batch_size": 256, "optimizer": "sgd", "lr": 0.05},
            "plasticity": {
                "arm": arm,
                "cycles": CYCLES,
                "compactness": TARGET / WIDTH,
                "initial_fraction": start / WIDTH,
                "winning_ticket": False,
            },
            "costs": {"latency": {"enabled": False}},
        }
    )
    rec = MemoryRecorder()
    build_trainer(exp, load_dataset(exp.data, seed=0), recorder=rec).fit()
    epoch_steps = [s for s, _ in rec.metrics["epoch"]]
    units = dict(rec.metrics["plasticity/active_units"])
    assert [int(units[s]) for s in epoch_steps] == _expected(start)
    assert _expected(start)[-1] == TARGET
