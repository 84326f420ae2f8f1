"""Conformance suite for growth triggers.

Subclasses define a ``trigger_factory`` fixture returning a zero-argument callable that
builds a fresh trigger (two instances must behave the same on the same contexts).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable

import pytest
import torch

from growray.growth import TRIGGERS, GrowthRequest, Trigger, TriggerContext
from growray.models import GrowableMLP
from growray.testing.initializers import check_registered_parameters

__all__ = ["TriggerConformance", "standard_contexts"]

WIDTHS = {"hidden.0": 8, "hidden.1": 6}


@functools.lru_cache(maxsize=1)
def probe_model_and_batch() -> tuple[GrowableMLP, tuple[torch.Tensor, torch.Tensor]]:
    """A fixed small MLP (sites as in ``WIDTHS``) and a batch of 48 training samples, so
    data-driven triggers (NORTH*, gradient) really evaluate on the standard contexts."""
    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = GrowableMLP((10,), 3, hidden=list(WIDTHS.values()), activation="tanh")
    x = torch.randn(48, 10, generator=gen)
    y = torch.randint(0, 3, (48,), generator=gen)
    return model, (x, y)


VAL_LOSSES = [1.0, 0.8, 0.8, 0.8, 0.79995, 0.7, 0.7, 0.7, 0.7, 0.7, 0.65, 0.65]


def standard_contexts(steps_per_epoch: int = 50) -> list[TriggerContext]:
    """Step contexts for every optimizer step plus an epoch context after each epoch,
    with a validation loss that improves, plateaus, and improves again."""
    model, batch = probe_model_and_batch()
    out: list[TriggerContext] = []
    step = 0
    for epoch, val in enumerate(VAL_LOSSES):
        for _ in range(steps_per_epoch):
            step += 1
            out.append(
                TriggerContext(step, epoch, "step", dict(WIDTHS), train_loss=val + 0.1 / step, model=model, batch=batch)
            )
        out.append(
            TriggerContext(step, epoch, "epoch", dict(WIDTHS), train_loss=val, val_loss=val, model=model, batch=batch)
        )
    return out


def _run(trigger: Trigger, contexts: list[TriggerContext]) -> list[list[GrowthRequest]]:
    return [trigger.check(ctx) for ctx in contexts]


class TriggerConformance:
    """Determinism on the same contexts, and a state_dict round trip that continues the
    same future behaviour."""

    @pytest.fixture
    def trigger_factory(self) -> Callable[[], Trigger]:
        raise NotImplementedError("subclasses define the `trigger_factory` fixture")

    def test_requests_are_well_formed(self, trigger_factory: Callable[[], Trigger]) -> None:
        trigger = trigger_factory()
        assert isinstance(trigger, Trigger)
        for ctx, reqs in zip(standard_contexts(), _run(trigger, standard_contexts())):
            assert isinstance(reqs, list)
            for r in reqs:
                assert isinstance(r, GrowthRequest)
                assert r.site in ctx.widths
                assert isinstance(r.n_units, int) and r.n_units >= 1
                assert r.score is None or isinstance(r.score, float)

    def test_deterministic(self, trigger_factory: Callable[[], Trigger]) -> None:
        contexts = standard_contexts()
        assert _run(trigger_factory(), contexts) == _run(trigger_factory(), contexts)

    @pytest.mark.parametrize("split", [1, 120, 255, 400])
    def test_state_dict_round_trip(self, trigger_factory: Callable[[], Trigger], split: int) -> None:
        contexts = standard_contexts()
        a = trigger_factory()
        _run(a, contexts[:split])
        state = json.loads(json.dumps(a.state_dict()))  # must be JSON-able
        b = trigger_factory()
        b.load_state_dict(state)
        assert _run(b, contexts[split:]) == _run(a, contexts[split:])

    def test_registered_parameters_have_defaults(self, trigger_factory: Callable[[], Trigger]) -> None:
        check_registered_parameters(TRIGGERS)
