"""continual_mlp: specs rebuild the same network; columns, laterals, heads, unit births."""

from __future__ import annotations

import torch

from growray.continual import CL_METHODS, ContinualMLP, TaskSequence
from growray.models import build_model

SEQ = TaskSequence.of([[0, 1], [2, 3], [4, 5]], "task", 10)


def _progressive(laterals: bool) -> ContinualMLP:
    torch.manual_seed(0)
    method = CL_METHODS.build({"name": "progressive", "laterals": laterals})
    model = build_model(method.initial_spec(ContinualMLP((8,), 10, hidden=[5, 4]).spec(), SEQ))
    for t in (1, 2):
        method.extend(model, t, SEQ)
    return model


def test_spec_rebuilds_the_same_parameters_in_the_same_order():
    model = _progressive(laterals=True)
    again = build_model(model.spec())
    assert [(k, p.shape, p.requires_grad) for k, p in model.named_parameters()] == [
        (k, p.shape, p.requires_grad) for k, p in again.named_parameters()
    ]
    again.load_state_dict(model.state_dict())
    x = torch.randn(3, 8)
    for t in range(3):
        model.set_task(t)
        again.set_task(t)
        assert torch.equal(model(x), again(x))


def test_progressive_columns_are_frozen_and_laterals_feed_the_new_column():
    model = _progressive(laterals=True)
    assert model.n_columns == 3 and model.frozen_columns == 2
    frozen = [k for k, p in model.named_parameters() if not p.requires_grad]
    assert all(k.split(".")[1] in ("0", "1") for k in frozen if k.startswith(("columns", "lateral")))
    model.set_task(2)
    x = torch.randn(4, 8)
    before = model(x)
    with torch.no_grad():
        model.columns[0][0].weight.add_(1.0)  # column 0 feeds column 2 through the laterals
    assert not torch.allclose(before, model(x))


def test_without_laterals_the_columns_are_independent():
    model = _progressive(laterals=False)
    assert sum(len(lat) for lat in model.lateral) == 0
    model.set_task(2)
    x = torch.randn(4, 8)
    before = model(x)
    with torch.no_grad():
        model.columns[0][0].weight.add_(1.0)
    assert torch.equal(before, model(x))


def test_units_born_later_are_invisible_to_earlier_tasks():
    torch.manual_seed(0)
    model = ContinualMLP((6,), 4, hidden=[3], heads=[[0, 2], [0, 2]], task_heads=True, births=[[0, 0, 0]])
    x = torch.randn(5, 6)
    model.set_task(0)
    before = model(x)
    model.resize_units(0, torch.arange(3), torch.randn(2, 6), torch.randn(2), [torch.randn(2, 2), torch.randn(2, 2)], 1)
    assert model.births == [[0, 0, 0, 1, 1]] and model.widths()["c0.h0"] == 5
    assert torch.allclose(before, model(x), atol=1e-6)  # task 0 masks the units born at task 1
    model.set_task(1)
    assert model(x).shape == (5, 2)
