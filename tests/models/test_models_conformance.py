"""Every growable model (mlp, cnn; with and without BatchNorm) passes the model conformance suite."""

import pytest
import torch

from growray.testing.models import MODEL_CASES, ModelCase, ModelConformance

torch.set_num_threads(1)


def test_cases_cover_the_growable_models_with_and_without_batch_norm():
    covered = {(c.name, bool(c.params.get("batch_norm", c.name == "cnn"))) for c in MODEL_CASES}
    assert covered >= {("mlp", False), ("mlp", True), ("cnn", False), ("cnn", True)}


class TestGrowableModels(ModelConformance):
    @pytest.fixture(params=MODEL_CASES, ids=lambda c: c.id)
    def case(self, request: pytest.FixtureRequest) -> ModelCase:
        return request.param
