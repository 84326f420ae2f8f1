"""The NORTH toy task: many features, few of them linearly independent, binary labels.

A ``rank``-dimensional Gaussian latent ``z`` is mapped to ``n_features`` inputs by a random
``rank x n_features`` matrix with orthonormal rows, so the input matrix has rank exactly
``rank``. Labels come from a random one-hidden-layer tanh teacher on ``z``, thresholded at
its median so the two classes are balanced. Growth triggers that measure effective
dimension (NORTH*) should find ``rank`` directions in the inputs.
"""

# No `from __future__ import annotations` here: the config layer reads the registered
# function's parameter annotations as real types.

import numpy as np

from growray.checks import check_int, check_number
from growray.data._base import Dataset, check_fractions, split_indices, standardized_dataset
from growray.data._registry import DATASETS

__all__ = ["synthetic"]


def _teacher_labels(z: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Balanced 0/1 labels from a random tanh network on the latent."""
    k = z.shape[1]
    w1 = rng.standard_normal((k, 2 * k)) / np.sqrt(k)
    w2 = rng.standard_normal(2 * k)
    score = np.tanh(z @ w1) @ w2 + 0.5 * z @ rng.standard_normal(k) / np.sqrt(k)
    order = np.argsort(score, kind="stable")
    y = np.zeros(len(z), dtype=np.int64)
    y[order[len(z) // 2 :]] = 1
    return y


def _describe(**params: object) -> tuple[tuple[int, ...], int]:
    n_features = check_int("n_features", params.get("n_features", 64), minimum=1)
    rank = check_int("rank", params.get("rank", 16), minimum=1)
    if rank > n_features:
        raise ValueError(f"rank must be <= n_features ({n_features}); got rank={rank}")
    check_int("n_samples", params.get("n_samples", 2000), minimum=10)
    check_fractions(val_fraction=params.get("val_fraction", 0.15), test_fraction=params.get("test_fraction", 0.15))
    check_number("noise", params.get("noise", 0.0), low=0.0, high=0.5)
    return (n_features,), 2


@DATASETS.register("synthetic", describe=_describe)
def synthetic(
    seed: int,
    n_samples: int = 2000,
    n_features: int = 64,
    rank: int = 16,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    noise: float = 0.0,
) -> Dataset:
    """Binary classification on ``n_features`` inputs of which ``rank`` are independent.

    Args:
        seed: seeds the latent draws, the mixing matrix, the teacher and the split.
        n_samples: samples over all three splits.
        n_features: input width (the NORTH toy task uses 64).
        rank: number of linearly independent input directions, 1 <= rank <= n_features.
        val_fraction: share held out for validation, in (0, 1).
        test_fraction: share held out for testing, in (0, 1); the two sum below 1.
        noise: share of labels flipped (equally from both classes), in [0, 0.5];
            the inputs stay exactly rank ``rank``.
    """
    n_samples = check_int("n_samples", n_samples, minimum=10)
    n_features = check_int("n_features", n_features, minimum=1)
    rank = check_int("rank", rank, minimum=1)
    if rank > n_features:
        raise ValueError(f"rank must be <= n_features ({n_features}); got rank={rank}")
    check_fractions(val_fraction=val_fraction, test_fraction=test_fraction)
    noise = check_number("noise", noise, low=0.0, high=0.5)

    # independent streams: the noise level changes neither the inputs nor the split
    data_rng, split_rng, noise_rng = (np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3))
    z = data_rng.standard_normal((n_samples, rank))
    q, _ = np.linalg.qr(data_rng.standard_normal((n_features, rank)))  # orthonormal columns
    x = z @ q.T
    y = _teacher_labels(z, data_rng)
    train, parts = split_indices(y, {"test_fraction": test_fraction, "val_fraction": val_fraction}, split_rng)
    n_flip_each = round(noise * n_samples / 2)
    if n_flip_each:
        flip = np.concatenate([noise_rng.choice(np.flatnonzero(y == c), n_flip_each, replace=False) for c in (0, 1)])
        y[flip] = 1 - y[flip]
    if len(train) < rank:
        raise ValueError(
            f"n_samples={n_samples} leaves {len(train)} training samples, fewer than rank={rank}; "
            "raise n_samples so the training inputs can reach full rank"
        )
    val, test = parts["val_fraction"], parts["test_fraction"]
    return standardized_dataset(
        "synthetic",
        (x[train], y[train]),
        (x[val], y[val]),
        (x[test], y[test]),
        input_shape=(n_features,),
        n_classes=2,
        per_feature=True,
    )
