import json

import pytest
import torch

from growray.cost import TrainingCompute, compute, training_flops_per_sample
from growray.growth import RandomInitializer, widen
from growray.models import GrowableMLP


@pytest.fixture
def counted(monkeypatch):
    calls = []
    real = compute.training_flops_per_sample

    def spy(model, input_shape):
        calls.append(tuple(input_shape))
        return real(model, input_shape)

    monkeypatch.setattr(compute, "training_flops_per_sample", spy)
    return calls


def test_accumulates_and_recounts_only_on_architecture_change(counted):
    torch.manual_seed(0)
    m = GrowableMLP((6,), 3, hidden=[4])
    small = training_flops_per_sample(m, (6,))
    assert small == 2 * (6 * 4 + 4 * 3) * 2 + 2 * 4 * 3
    tc = TrainingCompute()
    for _ in range(3):
        tc.add_step(m, (6,), 32)
    tc.add_step(m, (6,), 10)  # a short last batch
    assert len(counted) == 1
    assert tc.total_flops == small * 106 and tc.n_samples == 106 and tc.n_steps == 4

    widen(m, "hidden.0", RandomInitializer().propose(m, "hidden.0", 2))
    big = training_flops_per_sample(m, (6,))
    assert big == 2 * (6 * 6 + 6 * 3) * 2 + 2 * 6 * 3
    tc.add_step(m, (6,), 32)
    tc.add_step(m, (6,), 32)
    assert len(counted) == 2 and tc.n_counts == 2
    assert tc.total_flops == small * 106 + big * 64 and tc.flops_per_sample == big

    m.head.weight.requires_grad_(False)  # freezing changes the backward pass
    tc.add_step(m, (6,), 1)
    assert len(counted) == 3


def test_state_round_trip(counted):
    m = GrowableMLP((6,), 3, hidden=[4])
    tc = TrainingCompute()
    tc.add_step(m, (6,), 8)
    tc.add_step(m, (6,), 8)
    state = json.loads(json.dumps(tc.state_dict()))
    restored = TrainingCompute()
    restored.load_state_dict(state)
    assert restored.state_dict() == tc.state_dict()
    restored.add_step(m, (6,), 8)
    tc.add_step(m, (6,), 8)
    assert restored.total_flops == tc.total_flops and restored.n_steps == 3


def test_bad_inputs():
    tc = TrainingCompute()
    m = GrowableMLP((6,), 3, hidden=[4])
    with pytest.raises(ValueError, match="n_samples must be an int >= 0"):
        tc.add_step(m, (6,), -1)
    with pytest.raises(ValueError, match="input_shape"):
        tc.add_step(m, (), 1)
    with pytest.raises(ValueError, match="exactly the keys"):
        tc.load_state_dict({"total_flops": 1})
    bad = {**tc.state_dict(), "n_steps": -2}
    with pytest.raises(ValueError, match=r"state\['n_steps'\] must be an int >= 0"):
        tc.load_state_dict(bad)
