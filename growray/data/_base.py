"""The dataset container, its tensor view, and the helpers every dataset shares.

A :class:`Dataset` holds host-side numpy arrays: it is cheap to pickle, so a sweep puts it
in Ray's object store once and every trial turns it into tensors on its own device with
:meth:`Dataset.to_tensors`.

Splits are stratified and seeded (:func:`split_indices`, :func:`stratified_subset`);
standardization statistics come from the training split only (:func:`standardize`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from growray.checks import check_number

__all__ = [
    "Dataset",
    "DatasetNotFoundError",
    "TensorSplits",
    "check_fractions",
    "limited_splits",
    "split_indices",
    "standardize",
    "standardize_channels",
    "standardized_dataset",
    "stratified_order",
    "stratified_subset",
]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset's files are in none of the folders searched; the message lists them and the fix."""


@dataclass(frozen=True)
class TensorSplits:
    """A dataset as ``(inputs, targets)`` tensor pairs on one device.

    Attributes:
        train: float32 inputs of shape ``(n, *input_shape)`` and int64 class ids.
        val: same layout as ``train``.
        test: same layout as ``train``.
        input_shape: shape of one sample.
        n_classes: number of classes; targets lie in ``[0, n_classes)``.
    """

    train: tuple[torch.Tensor, torch.Tensor]
    val: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    input_shape: tuple[int, ...]
    n_classes: int


@dataclass(frozen=True, eq=False)
class Dataset:
    """Train/val/test arrays of a classification task, standardized with train statistics.

    Attributes:
        name: registered dataset name.
        x_train: float32 array of shape ``(n_train, *input_shape)``.
        y_train: int64 class ids of shape ``(n_train,)``.
        x_val: validation inputs, same layout as ``x_train``.
        y_val: validation class ids.
        x_test: test inputs, same layout as ``x_train``.
        y_test: test class ids.
        input_shape: shape of one sample, e.g. ``(64,)`` or ``(1, 28, 28)``.
        n_classes: number of classes.

    Raises:
        ValueError: when the arrays disagree with each other or with ``input_shape``.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    input_shape: tuple[int, ...]
    n_classes: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "input_shape", tuple(int(d) for d in self.input_shape))
        for split, (x, y) in self._splits().items():
            if x.dtype != np.float32 or y.dtype != np.int64:
                raise ValueError(
                    f"dataset {self.name!r}: {split} split must be float32 inputs and int64 "
                    f"targets; got {x.dtype} and {y.dtype}"
                )
            if x.shape[1:] != self.input_shape or y.shape != (len(x),):
                raise ValueError(
                    f"dataset {self.name!r}: {split} split has inputs {x.shape} and targets "
                    f"{y.shape}; expected (n, *{self.input_shape}) and (n,)"
                )
            if len(y) and (y.min() < 0 or y.max() >= self.n_classes):
                raise ValueError(
                    f"dataset {self.name!r}: {split} targets must lie in [0, {self.n_classes}); "
                    f"got [{y.min()}, {y.max()}]"
                )

    def _splits(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        return {
            "train": (self.x_train, self.y_train),
            "val": (self.x_val, self.y_val),
            "test": (self.x_test, self.y_test),
        }

    def to_tensors(self, device: str | torch.device = "cpu") -> TensorSplits:
        """Copy every split to ``device`` as float32 inputs and int64 targets.

        The tensors never share memory with the arrays (which may be read-only when they
        come out of Ray's object store).

        Args:
            device: a torch device or its name, e.g. ``"cpu"`` or ``"cuda:0"``.
        """
        dev = torch.device(device)

        def pair(x: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
            return (
                torch.tensor(x, dtype=torch.float32, device=dev),
                torch.tensor(y, dtype=torch.int64, device=dev),
            )

        s = self._splits()
        return TensorSplits(
            train=pair(*s["train"]),
            val=pair(*s["val"]),
            test=pair(*s["test"]),
            input_shape=self.input_shape,
            n_classes=self.n_classes,
        )

    def summary(self) -> dict[str, Any]:
        """Flat description for logging as run parameters (sizes, sample shape, classes)."""
        return {
            "dataset": self.name,
            "n_train": len(self.y_train),
            "n_val": len(self.y_val),
            "n_test": len(self.y_test),
            "input_shape": "x".join(str(d) for d in self.input_shape),
            "n_classes": self.n_classes,
        }


# --- parameter checks -------------------------------------------------------------------


def check_fractions(**fractions: object) -> dict[str, float]:
    """Each fraction as a float in (0, 1), and together below 1 (the rest is the training split).

    Raises:
        ValueError: ``"val_fraction must be a finite number in (0, 1); got 0.0"``, or
            ``"val_fraction + test_fraction must sum to less than 1 ..."``.
    """
    values = {
        name: check_number(name, value, low=0.0, high=1.0, low_open=True, high_open=True)
        for name, value in fractions.items()
    }
    total = sum(values.values())
    if len(values) > 1 and total >= 1.0:
        names = " + ".join(values)
        raise ValueError(f"{names} must sum to less than 1 (the rest is the training split); got {total:g}")
    return values


# --- splitting ---------------------------------------------------------------------------


def stratified_order(y: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random permutation of ``range(len(y))`` whose every prefix is stratified.

    Each sample gets a key ``(rank within its class + u) / class size`` with ``u`` uniform in
    [0, 1) over a random within-class order; sorting by the key interleaves the classes so
    that any prefix of length m holds about ``m * class share`` samples of each class.
    """
    n = len(y)
    perm = rng.permutation(n)
    by_class = np.argsort(y[perm], kind="stable")  # positions in perm, grouped by class
    _, counts = np.unique(y, return_counts=True)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    sizes = np.repeat(counts, counts)
    key = np.empty(n)
    key[by_class] = (np.arange(n) - starts + rng.random(n)) / sizes
    return perm[np.argsort(key, kind="stable")]


def stratified_subset(y: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of a seeded, stratified subset of ``n`` samples (all when n >= len(y))."""
    if n >= len(y):
        return np.arange(len(y))
    return np.sort(stratified_order(y, rng)[:n])


def limited_splits(
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    seed: int,
    val_fraction: float,
    limit_train: int | None,
    limit_test: int | None,
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """An official train/test pair -> (train, val, test): stratified seeded subsets of
    ``limit_train`` / ``limit_test`` samples (None: all), then a stratified validation split
    of ``val_fraction`` of the training subset."""
    rng = np.random.default_rng(seed)
    (x_all, y_all), (x_test, y_test) = train, test
    keep = stratified_subset(y_all, limit_train or len(y_all), rng)
    x_all, y_all = x_all[keep], y_all[keep]
    keep = stratified_subset(y_test, limit_test or len(y_test), rng)
    x_test, y_test = x_test[keep], y_test[keep]
    tr, parts = split_indices(y_all, {"val_fraction": val_fraction}, rng)
    val = parts["val_fraction"]
    return (x_all[tr], y_all[tr]), (x_all[val], y_all[val]), (x_test, y_test)


def split_indices(
    y: np.ndarray, fractions: dict[str, float], rng: np.random.Generator
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Stratified, seeded split into a remainder and one part per named fraction.

    Args:
        y: class ids of every sample.
        fractions: share of the samples for each named part, e.g. ``{"val_fraction": 0.15}``.
        rng: random generator; the same state gives the same split.

    Returns:
        The sorted indices left over (the training split) and, for each name, its sorted
        indices. The parts are disjoint and together cover ``range(len(y))``.

    Raises:
        ValueError: when a part (or the remainder) would be empty.
    """
    n = len(y)
    order = stratified_order(y, rng)
    parts: dict[str, np.ndarray] = {}
    start = 0
    for name, fraction in fractions.items():
        size = math.floor(fraction * n + 0.5)
        if size < 1:
            raise ValueError(f"{name}={fraction:g} of {n} samples leaves that split empty; use a larger value")
        parts[name] = np.sort(order[start : start + size])
        start += size
    if start >= n:
        raise ValueError(f"{' + '.join(fractions)} leave no training samples out of {n}; use smaller values")
    return np.sort(order[start:]), parts


# --- standardization -----------------------------------------------------------------------


def standardize(train: np.ndarray, *others: np.ndarray, per_feature: bool = True) -> tuple[np.ndarray, ...]:
    """Shift and scale every array with the mean and std of ``train`` only.

    Args:
        train: training inputs, shape ``(n, ...)``; the statistics come from here.
        *others: further arrays (validation, test) transformed with the same statistics.
        per_feature: one mean/std per feature (axis 0 reduced) or one scalar pair (images).

    Returns:
        ``train`` and then ``others``, standardized, as float32. A constant feature (std 0)
        is only centred.
    """
    arrays = [np.asarray(a, dtype=np.float32) for a in (train, *others)]
    if per_feature:
        mean = arrays[0].mean(axis=0, dtype=np.float64)
        std = arrays[0].std(axis=0, dtype=np.float64)
        std = np.where(std > 0, std, 1.0)
        return tuple(((a - mean) / std).astype(np.float32) for a in arrays)
    mean_s = float(arrays[0].mean(dtype=np.float64))
    std_s = float(arrays[0].std(dtype=np.float64)) or 1.0
    return tuple(((a - np.float32(mean_s)) / np.float32(std_s)).astype(np.float32, copy=False) for a in arrays)


def standardize_channels(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """uint8 images ``(n, C, H, W)`` -> float32 in [0, 1] -> per-channel ``(x - mean) / std``
    with the statistics of ``train`` only (a constant channel is only centred).

    For one channel (MNIST, Fashion-MNIST) this is the scalar standardization of
    ``standardize(..., per_feature=False)``.
    """
    out = [a.astype(np.float32) / np.float32(255.0) for a in (train, *others)]
    mean = out[0].mean(axis=(0, 2, 3), dtype=np.float64, keepdims=True)[0]
    std = out[0].std(axis=(0, 2, 3), dtype=np.float64, keepdims=True)[0]
    std = np.where(std > 0, std, 1.0)
    for a in out:  # in place: CIFAR-10 in float32 is 600 MB already
        a -= mean.astype(np.float32)
        a /= std.astype(np.float32)
    return out


def standardized_dataset(
    name: str,
    train: tuple[np.ndarray, np.ndarray],
    val: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    *,
    input_shape: tuple[int, ...],
    n_classes: int,
    per_feature: bool,
) -> Dataset:
    """A Dataset from ``(x, y)`` splits, inputs standardized with the training split's statistics."""
    x_train, x_val, x_test = standardize(train[0], val[0], test[0], per_feature=per_feature)
    return Dataset(
        name=name,
        x_train=x_train,
        y_train=train[1],
        x_val=x_val,
        y_val=val[1],
        x_test=x_test,
        y_test=test[1],
        input_shape=input_shape,
        n_classes=n_classes,
    )
