"""The dataset registry and the one entry point that builds from config.

A dataset is a function ``f(seed, **params) -> Dataset`` registered with its
``describe`` capability, ``describe(**params) -> (input_shape, n_classes)``, which answers
without loading anything::

    @DATASETS.register("digits", describe=_describe)
    def digits(seed: int, ...) -> Dataset: ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from growray.checks import check_int
from growray.data._base import Dataset
from growray.registry import Registry

__all__ = ["DATASETS", "Describe", "describe_dataset", "load_dataset"]

DATASETS: Registry[Dataset] = Registry("dataset", context_args=("seed",))

#: ``describe(**params) -> (input_shape, n_classes)`` of a registered dataset.
Describe = Callable[..., tuple[tuple[int, ...], int]]


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
    seed = check_int("seed", seed, minimum=0)
    if not isinstance(spec, (str, dict)):
        raise TypeError(f"a dataset spec is a name or a mapping with a 'name' key; got {type(spec).__name__}")
    dataset = DATASETS.build(spec, seed=seed)
    if not isinstance(dataset, Dataset):
        raise TypeError(f"dataset builder for {spec!r} returned {type(dataset).__name__}, not Dataset")
    return dataset


def describe_dataset(spec: dict[str, Any]) -> tuple[tuple[int, ...], int] | None:
    """``(input_shape, n_classes)`` of a dataset config without loading it (None if unknown).

    Lets ``growray validate`` build the model on the meta device and check growth settings
    against the real layer sizes before anything runs. Reads the ``describe`` capability
    the dataset was registered with.
    """
    describe: Describe | None = DATASETS.get(spec["name"]).capability("describe")
    return None if describe is None else describe(**{k: v for k, v in spec.items() if k != "name"})
