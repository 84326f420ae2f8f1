"""random_expansion (random fan-in and fan-out) and net2wider's symmetry-breaking noise default."""

import math

import pytest
import torch

from growray.growth import (
    INITIALIZERS,
    GrowthStrategy,
    Net2WiderInitializer,
    RandomExpansionInitializer,
    ScheduleTrigger,
    TriggerContext,
    widen,
)
from growray.models import GrowableMLP
from growray.testing.initializers import PRESERVATION_TOL, InitializerConformance, make_probe_model

torch.set_num_threads(1)
X = torch.randn(64, 2, 3, generator=torch.Generator().manual_seed(3))


class TestRandomExpansionConformance(InitializerConformance):
    @pytest.fixture
    def initializer(self):
        return INITIALIZERS.build("random_expansion")


@pytest.mark.parametrize("batch_norm", [False, True])
def test_random_expansion_does_not_preserve_the_function(batch_norm):
    init = RandomExpansionInitializer()
    assert not init.preserves_function
    model = make_probe_model(batch_norm).eval()
    torch.manual_seed(0)
    with torch.no_grad():
        before = model(X)
    p = init.propose(model, "hidden.0", 5)
    widen(model, "hidden.0", p)
    with torch.no_grad():
        err = (model(X) - before).abs().max().item()
    assert err > 100 * PRESERVATION_TOL  # the new fan-out is not zero: the output moves
    # torch's default bounds: producer fan-in 6 (2x3 inputs), consumer fan-in after growth 7 + 5
    assert 0 < p.fan_in.abs().max() <= 1 / math.sqrt(6)
    assert p.bias is not None and 0 < p.bias.abs().max() <= 1 / math.sqrt(6)
    assert 0 < p.fan_out.abs().max() <= 1 / math.sqrt(12)
    assert p.incumbent_fan_out is None  # incumbents untouched


def test_growth_event_reports_the_change():
    """At run time the strategy measures the change on the held-out probe and says so."""
    torch.manual_seed(0)
    model = GrowableMLP((2, 3), 4, hidden=[4, 3]).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    probe = (torch.randn(32, 2, 3), torch.randint(0, 4, (32,)))
    strategy = GrowthStrategy(
        ScheduleTrigger(every_steps=1, n_units=3), RandomExpansionInitializer(), initializer_name="random_expansion"
    )
    events = strategy.step(model, opt, TriggerContext(1, 0, "step", model.widths(), train_loss=1.0), probe)
    assert events and all(not e.preserves_function for e in events)
    assert max(e.preservation_error for e in events) > 1e-3


def test_net2wider_default_noise_breaks_the_symmetry_under_sgd():
    """Noiseless copies stay identical to their source under plain SGD; the default's drift apart."""

    def copy_distance(init: Net2WiderInitializer) -> tuple[float, float]:
        torch.manual_seed(0)
        model = GrowableMLP((2, 3), 4, hidden=[3]).train()
        with torch.no_grad():
            before = model(X)
        proposal = init.propose(model, "hidden.0", 1)
        w = model.site_modules("hidden.0").producer.weight
        src = int((w - proposal.fan_in).abs().sum(1).argmin())
        widen(model, "hidden.0", proposal)
        with torch.no_grad():
            change = (model(X) - before).abs().max().item()
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        y = torch.randint(0, 4, (64,), generator=torch.Generator().manual_seed(4))
        for _ in range(20):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(X), y).backward()
            opt.step()
        w = model.site_modules("hidden.0").producer.weight.detach()
        return float((w[3] - w[src]).abs().max()), change

    assert Net2WiderInitializer().noise == 0.01
    d0, c0 = copy_distance(Net2WiderInitializer(noise=0.0))
    d, c = copy_distance(Net2WiderInitializer())
    # identical forever (the issue measured 0.0 here; after a shape change another CPU's kernels may
    # round the two rows apart by a few ulps, never by the default noise's 1e-3)
    assert d0 < 1e-6 and c0 < 1e-5
    assert d > 1e-3  # the default's copy separated
    assert 1e-6 < c < 0.05  # and the function moved only a little at the event
