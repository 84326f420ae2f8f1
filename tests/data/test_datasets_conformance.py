"""Every registered dataset passes the dataset conformance suite on small, offline parameters."""

import pytest

from growray.data import DATASETS
from growray.testing.datasets import DATASET_CASES, DatasetCase, DatasetConformance


def test_every_registered_dataset_has_a_case():
    assert {c.spec["name"] for c in DATASET_CASES} == set(DATASETS.names())


class TestRegisteredDatasets(DatasetConformance):
    @pytest.fixture(params=DATASET_CASES, ids=lambda c: c.id)
    def case(self, request: pytest.FixtureRequest) -> DatasetCase:
        return request.param
