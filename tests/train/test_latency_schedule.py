"""Latency is measured when the protocol says so (issue 15, 'tests that pin the wiring'):
after ``warmup`` untimed passes, at the epochs ``costs.every_epochs`` allows (and the last),
and only when the architecture changed since the last measurement."""

from __future__ import annotations

import json

import torch

import growray.cost.latency as latency_mod
import growray.train.costs as costs_mod
from growray.config import validate_dict
from growray.cost import LatencyProtocol, measure_latency
from growray.data import load_dataset
from growray.models import GrowableMLP
from growray.tracking import MemoryRecorder
from growray.train import build_trainer

torch.set_num_threads(1)


def test_warmup_passes_come_before_the_timer(monkeypatch):
    model = GrowableMLP((4,), 3, hidden=[5])
    calls = {"forward": 0, "at_timer": []}
    model.register_forward_pre_hook(lambda *_: calls.__setitem__("forward", calls["forward"] + 1))
    real = latency_mod._timer

    def spy(*args, **kwargs):
        calls["at_timer"].append(calls["forward"])
        return real(*args, **kwargs)

    monkeypatch.setattr(latency_mod, "_timer", spy)
    measure_latency(model, (4,), LatencyProtocol(batch_sizes=(1, 2), warmup=7, min_run_time=0.001))
    first, second = calls["at_timer"]
    assert first == 7, "7 untimed passes before the first batch size is timed"
    assert second - first >= 7 + 1, "the second batch size gets its own warm-up after the first's timed calls"


def test_latency_follows_every_epochs_and_the_architecture(monkeypatch):
    exp = validate_dict(
        {
            "name": "lat",
            "seed": 0,
            "data": {"name": "digits"},
            "model": {"name": "mlp", "hidden": [4]},
            "trainer": {"epochs": 7, "batch_size": 128, "lr": 0.01},
            # 10 steps per epoch: growth at steps 15, 30 and 45 (epochs 2, 3 and 5), nothing after 50
            "growth": {"trigger": {"name": "schedule", "every_steps": 15, "n_units": 2, "stop_step": 50}},
            "costs": {"every_epochs": 2, "latency": {"batch_sizes": [1], "warmup": 1, "min_run_time": 0.001}},
        }
    )
    rec = MemoryRecorder()
    measured: list[tuple[int, int]] = []  # (epoch, width) of each measurement
    real = costs_mod.measure_latency

    def spy(model, *args, **kwargs):
        epoch = len(rec.metrics.get("epoch", [])) + 1  # this epoch's metrics are flushed after it
        measured.append((epoch, json.loads(model.spec().to_json())["hidden"][0]))
        return real(model, *args, **kwargs)

    monkeypatch.setattr(costs_mod, "measure_latency", spy)
    trainer = build_trainer(exp, load_dataset(exp.data, seed=0), recorder=rec)
    trainer.fit()
    epoch_steps = [step for step, _ in rec.metrics["epoch"]]
    widths = dict(rec.metrics["growth/width/hidden.0"])
    arch_at = [int(widths[s]) for s in epoch_steps]  # the width at each epoch's end
    expected, last = [], None
    for epoch, width in enumerate(arch_at, start=1):
        due = epoch == len(arch_at) or epoch % 2 == 0 or not expected
        if due and width != last:
            expected.append((epoch, width))
            last = width
    assert measured == expected, f"latency measured at (epoch, width) {measured}; the protocol says {expected}"
    assert len(set(arch_at)) == 4 and len(measured) < len(arch_at)
