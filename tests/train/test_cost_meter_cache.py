"""CostMeter counts an architecture's forward FLOPs once per process: a reused Ray actor's
next trial of the same architecture takes the count; another architecture is counted."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import growray.train.costs as costs
from growray.cost import forward_flops
from growray.models import MODELS
from growray.train.costs import CostMeter

SHAPE = (64,)


@pytest.fixture()
def counted(monkeypatch):
    calls: list[str] = []

    def counting(model: nn.Module, input_shape, **kw):
        calls.append(type(model).__name__)
        return forward_flops(model, input_shape, **kw)

    monkeypatch.setattr(costs, "forward_flops", counting)
    monkeypatch.setattr(costs, "_PROCESS_FLOPS", {})
    return calls


def _mlp(hidden: list[int], activation: str = "relu") -> nn.Module:
    return MODELS.build({"name": "mlp", "hidden": hidden, "activation": activation}, input_shape=SHAPE, n_classes=10)


def _static(model: nn.Module) -> dict[str, float]:
    return CostMeter(None, SHAPE, torch.device("cpu")).static(model, dict(model.widths()))  # type: ignore[operator]


def test_a_second_trial_of_the_same_architecture_takes_the_count(counted):
    first = _static(_mlp([8, 8]))
    assert counted == ["GrowableMLP"]
    second = _static(_mlp([8, 8]))
    assert counted == ["GrowableMLP"] and second == first
    assert first["cost/flops"] == 2 * (64 * 8 + 8 * 8 + 8 * 10)


def test_another_architecture_or_spec_is_counted(counted):
    base = _static(_mlp([8, 8]))
    wider = _static(_mlp([8, 16]))
    assert wider["cost/flops"] > base["cost/flops"]
    _static(_mlp([8, 8], activation="tanh"))  # same parameter shapes, another spec
    assert len(counted) == 3


def test_a_model_without_a_spec_is_counted_per_meter(counted):
    model = nn.Sequential(nn.Linear(64, 4))
    for _ in range(2):
        meter = CostMeter(None, SHAPE, torch.device("cpu"))
        meter.add_eval(model, 10)
        meter.add_eval(model, 10)
        assert meter.eval_flops == 2 * 10 * 2 * 64 * 4
    assert len(counted) == 2


def test_the_process_cache_is_bounded(counted, monkeypatch):
    monkeypatch.setattr(costs, "_PROCESS_FLOPS_MAX", 2)
    for width in (4, 5, 6):
        _static(_mlp([width]))
    assert len(costs._PROCESS_FLOPS) == 2
    _static(_mlp([4]))  # the oldest was evicted: counted again
    assert len(counted) == 4
