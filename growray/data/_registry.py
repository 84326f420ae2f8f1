"""The dataset registry and the one entry point that builds from config."""

from __future__ import annotations

from typing import Any

import numpy as np

from growray.data._base import Dataset
from growray.registry import Registry

__all__ = ["DATASETS", "describe_dataset", "load_dataset"]

DATASETS: Registry[Dataset] = Registry("dataset", context_args=("seed",))


def load_dataset(spec: dict[str, Any] | str, *, seed: int) -> Dataset:
    """Build a registered dataset.

    Args:
        spec: a registered name, or ``{"name": ..., **params}`` as written in YAML.
        seed: seeds every random choice (splits, subsets, synthetic draws).

    Returns:
        The dataset, standardized with statistics of its training split.

    Raises:
        UnknownNameError: the name is not registered (the message suggests the closest).
        TypeError: a parameter the dataset does not accept.
        ValueError: a parameter value out of range.
        DatasetNotFoundError: the files are not available locally.
    """
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    if not isinstance(spec, (str, dict)):
        raise TypeError(f"a dataset spec is a name or a mapping with a 'name' key; got {type(spec).__name__}")
    dataset = DATASETS.build(spec, seed=int(seed))
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset builder for {spec!r} returned {type(dataset).__name__}, not Dataset")
    return dataset


def describe_dataset(spec: dict[str, Any]) -> tuple[tuple[int, ...], int] | None:
    """``(input_shape, n_classes)`` of a dataset config without loading it (None if unknown).

    Lets ``growray validate`` build the model on the meta device and check growth settings
    against the real layer sizes before anything runs.
    """
    describe = getattr(DATASETS.get(spec["name"]).obj, "describe", None)
    return None if describe is None else describe(**{k: v for k, v in spec.items() if k != "name"})
