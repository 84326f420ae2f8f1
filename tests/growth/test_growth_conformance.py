"""Every registered initializer and trigger runs the conformance suites (default params)."""

import pytest
import torch

from growray.growth import INITIALIZERS, TRIGGERS
from growray.testing.initializers import InitializerConformance
from growray.testing.triggers import TriggerConformance

torch.set_num_threads(1)


class TestRegisteredInitializers(InitializerConformance):
    @pytest.fixture(params=INITIALIZERS.names())
    def initializer(self, request):
        return INITIALIZERS.build(request.param)


class TestNoisyNet2Wider(InitializerConformance):
    @pytest.fixture
    def initializer(self):
        return INITIALIZERS.build({"name": "net2wider", "noise": 0.1})


class TestRegisteredTriggers(TriggerConformance):
    @pytest.fixture(params=TRIGGERS.names())
    def trigger_factory(self, request):
        return lambda: TRIGGERS.build(request.param)


class TestSmallTriggers(TriggerConformance):
    """Settings that fire often on the standard contexts, so round trips cross firings."""

    @pytest.fixture(
        params=[
            {"name": "schedule", "every_steps": 7, "start_step": 20, "stop_step": 500},
            {"name": "plateau", "patience": 1, "cooldown": 2},
            {"name": "north_act", "check_every": 7, "epsilon": 0.1},
            {"name": "north_weight", "check_every": 7, "gamma": 0.5},
            {"name": "gradient", "check_every": 7, "threshold_scale": 0.01},
        ],
        ids=lambda p: p["name"],
    )
    def trigger_factory(self, request):
        return lambda: TRIGGERS.build(dict(request.param))

    def test_fires_on_the_standard_contexts(self, trigger_factory):
        """Otherwise determinism and round trips would be checked on empty decisions."""
        from growray.testing.triggers import standard_contexts

        trigger = trigger_factory()
        assert any(trigger.check(ctx) for ctx in standard_contexts())
