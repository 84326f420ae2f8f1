"""Every registered mask updater passes the conformance suite (growray.testing.updaters),
with its defaults and with the non-default settings that change its behaviour."""

import pytest
import torch

from growray.sparse import UPDATERS
from growray.testing.updaters import UpdaterConformance

torch.set_num_threads(1)


class TestRegisteredUpdaters(UpdaterConformance):
    @pytest.fixture(params=UPDATERS.names())
    def updater_factory(self, request):
        return lambda: UPDATERS.build(request.param)


class TestUpdaterVariants(UpdaterConformance):
    @pytest.fixture(
        params=[
            {"name": "rigl", "regrow": "random"},
            {"name": "srigl", "regrow": "random"},
            {"name": "srigl", "ablation": False},
            {"name": "srigl", "gamma_sal": 0.9},
        ],
        ids=lambda p: "-".join(str(v) for v in p.values()),
    )
    def updater_factory(self, request):
        return lambda: UPDATERS.build(dict(request.param))
