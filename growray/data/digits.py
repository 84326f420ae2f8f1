"""scikit-learn's bundled 8x8 handwritten digits: 1,797 samples, 10 classes, no download."""

# No `from __future__ import annotations` here: the config layer reads the registered
# function's parameter annotations as real types.

import numpy as np

from growray.checks import check_bool
from growray.data._base import Dataset, check_fractions, split_indices, standardized_dataset
from growray.data._registry import DATASETS

__all__ = ["digits"]


def _shape(image: object) -> tuple[int, ...]:
    return (1, 8, 8) if check_bool("image", image) else (64,)


def _describe(**params: object) -> tuple[tuple[int, ...], int]:
    check_fractions(val_fraction=params.get("val_fraction", 0.15), test_fraction=params.get("test_fraction", 0.15))
    return _shape(params.get("image", False)), 10


@DATASETS.register("digits", describe=_describe, requires=("sklearn",))
def digits(seed: int, val_fraction: float = 0.15, test_fraction: float = 0.15, image: bool = False) -> Dataset:
    """8x8 digits as 64 features (or 1x8x8 images), with stratified seeded train/val/test splits.

    Pixels (0..16) are scaled to [0, 1], then standardized per feature with statistics of
    the training split.

    Args:
        seed: seeds the split.
        val_fraction: share of the samples held out for validation, in (0, 1).
        test_fraction: share held out for testing, in (0, 1); the two sum below 1.
        image: give samples as 1x8x8 images (for convolutional models and supernets).
    """
    from sklearn.datasets import load_digits

    check_fractions(val_fraction=val_fraction, test_fraction=test_fraction)
    x, y = load_digits(return_X_y=True)
    x = (x / 16.0).astype(np.float32)
    shape = _shape(image)
    x = x.reshape(len(x), *shape)
    y = y.astype(np.int64)
    train, parts = split_indices(
        y, {"test_fraction": test_fraction, "val_fraction": val_fraction}, np.random.default_rng(seed)
    )
    val, test = parts["val_fraction"], parts["test_fraction"]
    return standardized_dataset(
        "digits",
        (x[train], y[train]),
        (x[val], y[val]),
        (x[test], y[test]),
        input_shape=shape,
        n_classes=10,
        per_feature=True,
    )
