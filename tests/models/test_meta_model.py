"""``meta_model``: one meta-device build per (spec, input shape, class count), shared."""

from __future__ import annotations

import pytest

from growray.models.meta import meta_model


def test_the_same_spec_is_built_once_and_on_the_meta_device():
    spec = {"name": "mlp", "hidden": [7, 5]}
    first = meta_model(spec, (64,), 10)
    assert meta_model(dict(spec), [64], 10) is first
    assert all(p.is_meta for p in first.parameters())
    assert first.widths() == {"hidden.0": 7, "hidden.1": 5}


def test_a_different_spec_shape_or_class_count_is_another_model():
    spec = {"name": "mlp", "hidden": [7]}
    base = meta_model(spec, (64,), 10)
    others = [
        meta_model({"name": "mlp", "hidden": [8]}, (64,), 10),
        meta_model(spec, (32,), 10),
        meta_model(spec, (64,), 3),
    ]
    assert all(o is not base for o in others)
    assert sum(p.numel() for p in others[2].parameters()) < sum(p.numel() for p in base.parameters())


def test_a_spec_that_cannot_be_built_raises_every_time():
    spec = {"name": "cnn", "channels": [4]}
    for _ in range(2):
        with pytest.raises((ValueError, TypeError)):
            meta_model(spec, (64,), 10)  # a CNN needs image inputs
