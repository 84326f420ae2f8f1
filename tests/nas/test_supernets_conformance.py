"""Every registered supernet passes the supernet conformance suite on a tiny config."""

import pytest
import torch

from growray.models import MODELS
from growray.nas import DartsSupernet
from growray.testing.supernets import SUPERNET_CASES, SupernetCase, SupernetConformance, peak_alphas, prepared

torch.set_num_threads(1)


def test_every_registered_supernet_has_a_case():
    supernets = {n for n in MODELS.names() if n.endswith("_supernet")}
    assert supernets == {case.name for case in SUPERNET_CASES.values()}


class TestRegisteredSupernets(SupernetConformance):
    @pytest.fixture(params=sorted(SUPERNET_CASES))
    def case(self, request: pytest.FixtureRequest) -> SupernetCase:
        return SUPERNET_CASES[request.param]


def test_peaked_alphas_discretize_to_their_genotype():
    """The DARTS case's premise: peak_alphas(g) makes genotype() return g."""
    model, genotype = prepared(SUPERNET_CASES["darts_supernet"], seed=3)
    assert isinstance(model, DartsSupernet) and model.genotype() == genotype
    with pytest.raises(ValueError, match="'none'"):
        peak_alphas(
            DartsSupernet((1, 8, 8), 3, channels=2, layers=1, nodes=1, multiplier=1, ops=["skip_connect"]), genotype
        )
