"""Conformance suite for registered datasets, with writers of small generated dataset files.

Every case (:data:`DATASET_CASES`) is a registered dataset with small, offline parameters:
``digits`` and ``synthetic`` need nothing; ``mnist``, ``cifar10``, ``cifar100`` and a
``fashion_mnist`` copy read files generated into a temporary folder by the writers below
(which know the formats, not growray's readers); the real ``fashion_mnist`` is read where
its files exist (Debian's ``dataset-fashion-mnist``) and skipped with the "not found"
message otherwise. For each case the suite checks that it builds; that its ``describe``
capability (what ``growray validate`` builds models from on the meta device) agrees with
the built dataset; that the same seed gives identical splits and another seed different
ones; that train, validation and test share no sample; that labels lie in range (every
class in the training split); and that the training split is standardized as documented.

Usage (see ``tests/data/test_datasets_conformance.py``)::

    class TestMine(DatasetConformance):
        @pytest.fixture
        def case(self):
            return DatasetCase("mine", {"name": "mine", "n": 100}, standardized="feature")
"""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from growray.data import DATASETS, Dataset, DatasetNotFoundError, describe_dataset, load_dataset

__all__ = [
    "DATASET_CASES",
    "DatasetCase",
    "DatasetConformance",
    "cifar_images",
    "write_cifar10_files",
    "write_cifar100_files",
    "write_idx",
    "write_mnist_files",
]

_IDX_LABELS = 0x00000801  # uint8, 1-d
_IDX_IMAGES = 0x00000803  # uint8, 3-d


# --- writers ---------------------------------------------------------------------------------


def write_idx(path: Path, array: np.ndarray, magic: int, *, compress: bool = False) -> Path:
    """Write a uint8 IDX file by hand: big-endian magic, one uint32 per dimension, the bytes.

    With ``compress`` the file is ``<path>.gz``. Returns the path written.
    """
    if array.dtype != np.uint8 or array.ndim != magic & 0xFF:
        raise ValueError(
            f"write_idx writes uint8 arrays with {magic & 0xFF} dimensions; got {array.dtype} {array.shape}"
        )
    payload = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape) + array.tobytes()
    if compress:
        path, payload = path.with_name(path.name + ".gz"), gzip.compress(payload)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(payload)
    return path


def write_mnist_files(
    folder: Path, *, n_train: int = 40, n_test: int = 20, compress: bool = False, seed: int = 7
) -> None:
    """The four IDX files of the MNIST layout (MNIST, Fashion-MNIST) in ``folder``.

    Train pixels are 0 or 255 (30% bright, seeded), every test pixel is 255; labels cycle
    through 0..9.
    """
    rng = np.random.default_rng(seed)
    parts = {
        "train-images-idx3-ubyte": ((rng.random((n_train, 28, 28)) < 0.3).astype(np.uint8) * 255, _IDX_IMAGES),
        "train-labels-idx1-ubyte": ((np.arange(n_train) % 10).astype(np.uint8), _IDX_LABELS),
        "t10k-images-idx3-ubyte": (np.full((n_test, 28, 28), 255, np.uint8), _IDX_IMAGES),
        "t10k-labels-idx1-ubyte": ((np.arange(n_test) % 10).astype(np.uint8), _IDX_LABELS),
    }
    for name, (array, magic) in parts.items():
        write_idx(folder / name, array, magic, compress=compress)


def _protocol_2(obj: object) -> bytes:
    return pickle.dumps(obj, protocol=2)


def cifar_images(n: int, rng: np.random.Generator) -> np.ndarray:
    """``(n, 3072)`` uint8 rows, channel-major; channel c of every image is 60 * c + noise."""
    base = np.repeat(np.array([0, 60, 120], np.uint8), 1024)[None, :]
    return (base + rng.integers(0, 50, (n, 3072)).astype(np.uint8)).astype(np.uint8)


def write_cifar10_files(
    folder: Path, *, per_batch: int = 10, n_test: int = 20, dumps: Callable[[object], bytes] = _protocol_2
) -> None:
    """``data_batch_1`` .. ``data_batch_5`` and ``test_batch`` as the CIFAR-10 site ships them
    (dicts with bytes keys, ``labels`` cycling through 0..9), pickled with ``dumps``."""
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for i, name in enumerate(names):
        n = n_test if name == "test_batch" else per_batch
        batch = {
            b"batch_label": f"batch {i + 1} of 5".encode(),
            b"labels": [int(j % 10) for j in range(n)],
            b"data": cifar_images(n, rng),
            b"filenames": [f"img_{i}_{j}.png".encode() for j in range(n)],
        }
        (folder / name).write_bytes(dumps(batch))


def write_cifar100_files(
    folder: Path, *, n_train: int = 200, n_test: int = 100, dumps: Callable[[object], bytes] = _protocol_2
) -> None:
    """``train`` and ``test`` as the CIFAR-100 site ships them (``fine_labels`` cycling
    through 0..99, ``coarse_labels`` through 0..19), pickled with ``dumps``."""
    rng = np.random.default_rng(5)
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train", n_train), ("test", n_test)):
        batch = {
            b"filenames": [f"{name}_{j}.png".encode() for j in range(n)],
            b"batch_label": name.encode(),
            b"fine_labels": [int(j % 100) for j in range(n)],
            b"coarse_labels": [int(j % 20) for j in range(n)],
            b"data": cifar_images(n, rng),
        }
        (folder / name).write_bytes(dumps(batch))


# --- cases -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetCase:
    """One registered dataset with small, offline parameters.

    Attributes:
        id: test id.
        spec: ``{"name": ..., **params}`` as in YAML (without ``root`` when files are generated).
        standardized: ``"feature"`` (every input feature has train mean 0 and std 1) or
            ``"channel"`` (every image channel does).
        write_files: writes the dataset's files under the folder given, which is then
            passed as ``root``; None when the dataset needs no files (or uses real ones).
        real_files: the dataset reads files that may be absent: a DatasetNotFoundError
            skips the checks, with its message (the folders searched and the fix) as reason.
        disjoint: no sample occurs in two splits (checked on the rows: every case's
            samples are distinct rows, so equal rows would be one sample twice).
    """

    id: str
    spec: dict[str, Any]
    standardized: str
    write_files: Callable[[Path], None] | None = None
    real_files: bool = False
    disjoint: bool = True

    def __post_init__(self) -> None:
        if self.standardized not in ("feature", "channel"):
            raise ValueError(f"standardized must be 'feature' or 'channel'; got {self.standardized!r}")


#: Every registered dataset with small, offline parameters.
DATASET_CASES: list[DatasetCase] = [
    DatasetCase("digits", {"name": "digits"}, "feature"),
    DatasetCase("digits_image", {"name": "digits", "image": True}, "feature"),
    DatasetCase("synthetic", {"name": "synthetic", "n_samples": 300, "rank": 8}, "feature"),
    DatasetCase(
        "fashion_mnist_generated",
        {"name": "fashion_mnist", "val_fraction": 0.2},
        "channel",
        write_files=lambda root: write_mnist_files(root / "FashionMNIST" / "raw", n_train=100, n_test=30, seed=123),
    ),
    DatasetCase(
        "fashion_mnist",
        {"name": "fashion_mnist", "limit_train": 300, "limit_test": 100},
        "channel",
        real_files=True,
    ),
    DatasetCase(
        "mnist",
        {"name": "mnist", "val_fraction": 0.25},
        "channel",
        write_files=lambda root: write_mnist_files(root / "MNIST" / "raw", compress=True),
    ),
    DatasetCase(
        "cifar10",
        {"name": "cifar10", "val_fraction": 0.2},
        "channel",
        write_files=lambda root: write_cifar10_files(root / "cifar-10-batches-py"),
    ),
    DatasetCase(
        "cifar100",
        {"name": "cifar100", "val_fraction": 0.1},
        "channel",
        write_files=lambda root: write_cifar100_files(root / "cifar-100-python"),
    ),
    # the continual-learning task sequences (growray.data.tasks): every class in some task, so the
    # union of the tasks is the base dataset and keeps its standardization
    DatasetCase("split_digits", {"name": "split_digits"}, "feature"),
    DatasetCase(
        "split_fashion_mnist_generated",
        {"name": "split_fashion_mnist", "val_fraction": 0.2, "setting": "class"},
        "channel",
        write_files=lambda root: write_mnist_files(root / "FashionMNIST" / "raw", n_train=100, n_test=30, seed=123),
    ),
    DatasetCase(
        "split_mnist_generated",
        {"name": "split_mnist", "val_fraction": 0.25, "classes_per_task": 5},
        "channel",
        write_files=lambda root: write_mnist_files(root / "MNIST" / "raw", compress=True),
    ),
    DatasetCase(
        "permuted_fashion_mnist_generated",
        {"name": "permuted_fashion_mnist", "n_tasks": 2, "val_fraction": 0.2},
        "channel",
        write_files=lambda root: write_mnist_files(root / "FashionMNIST" / "raw", n_train=100, n_test=30, seed=123),
    ),
]


def _rows(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in x.reshape(len(x), -1)}


def _splits(d: Dataset) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    return {"train": (d.x_train, d.y_train), "val": (d.x_val, d.y_val), "test": (d.x_test, d.y_test)}


class DatasetConformance:
    """Builds, describe, determinism, disjoint splits, labels and standardization of ``case``."""

    @pytest.fixture
    def case(self) -> DatasetCase:
        raise NotImplementedError("subclasses define the `case` fixture")

    @pytest.fixture
    def spec(self, case: DatasetCase, tmp_path: Path) -> dict[str, Any]:
        """``case.spec``, with ``root`` pointing at generated files where the case has them."""
        spec = dict(case.spec)
        if case.write_files is not None:
            case.write_files(tmp_path / "data")
            spec["root"] = str(tmp_path / "data")
        if case.real_files:
            try:
                load_dataset(spec, seed=0)
            except DatasetNotFoundError as e:
                pytest.skip(f"{case.id}: files absent; {e}")
        return spec

    def test_is_registered(self, case: DatasetCase) -> None:
        assert case.spec["name"] in DATASETS.names()

    def test_builds_and_describe_agrees(self, spec: dict[str, Any]) -> None:
        d = load_dataset(spec, seed=0)
        assert isinstance(d, Dataset) and d.name == spec["name"]
        assert describe_dataset(spec) == (d.input_shape, d.n_classes)
        for split, (x, y) in _splits(d).items():
            assert len(y) > 0, f"{split} split is empty"
            assert x.shape == (len(y), *d.input_shape) and x.dtype == np.float32, split
            assert np.isfinite(x).all(), split

    def test_same_seed_same_splits_other_seed_others(self, spec: dict[str, Any]) -> None:
        a, b, c = (load_dataset(spec, seed=s) for s in (0, 0, 1))
        for (x_a, y_a), (x_b, y_b) in zip(_splits(a).values(), _splits(b).values()):
            np.testing.assert_array_equal(x_a, x_b)
            np.testing.assert_array_equal(y_a, y_b)
        assert not np.array_equal(a.x_val, c.x_val) or not np.array_equal(a.x_train, c.x_train)

    def test_splits_are_disjoint(self, case: DatasetCase, spec: dict[str, Any]) -> None:
        if not case.disjoint:
            pytest.skip(f"{case.id} does not promise disjoint splits")
        rows = {name: _rows(x) for name, (x, _) in _splits(load_dataset(spec, seed=0)).items()}
        assert not rows["train"] & rows["val"], "a sample is in train and val"
        assert not rows["train"] & rows["test"], "a sample is in train and test"
        assert not rows["val"] & rows["test"], "a sample is in val and test"

    def test_labels_in_range(self, spec: dict[str, Any]) -> None:
        d = load_dataset(spec, seed=0)
        for split, (_, y) in _splits(d).items():
            assert y.dtype == np.int64 and y.min() >= 0 and y.max() < d.n_classes, split
        assert set(np.unique(d.y_train)) == set(range(d.n_classes)), "a class is missing from the training split"

    def test_training_split_is_standardized(self, case: DatasetCase, spec: dict[str, Any]) -> None:
        x = load_dataset(spec, seed=0).x_train.astype(np.float64)
        axes = (0,) if case.standardized == "feature" else (0, *range(2, x.ndim))
        mean, std = x.mean(axis=axes), x.std(axis=axes)
        varying = std > 0  # a constant feature is only centred
        np.testing.assert_allclose(mean, 0.0, atol=1e-5)
        np.testing.assert_allclose(std[varying], 1.0, atol=1e-4)
        assert varying.any()
