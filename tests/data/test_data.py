"""Tests for growray.data: registry, splits, standardization, IDX reading, the three datasets."""

from __future__ import annotations

import gzip
import importlib
import inspect
import pickle
import struct
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import ClassVar

import numpy as np
import pytest
import torch

from growray.data import DATASETS, Dataset, DatasetNotFoundError, TensorSplits, load_dataset
from growray.data._base import split_indices, standardize, stratified_subset
from growray.data._idx import IMAGES_MAGIC, LABELS_MAGIC, IDXFormatError, read_idx
from growray.testing.datasets import write_idx, write_mnist_files

fm = importlib.import_module("growray.data.fashion_mnist")
folders = importlib.import_module("growray.data._folders")

DEBIAN_FOLDER = Path("/usr/share/datasets/fashion-mnist")
# real types the config layer validates; list[int] | None: the task sequences' class_order
SIMPLE_TYPES = {int, float, bool, str, str | None, int | None, list[int] | None}


# --- helpers -------------------------------------------------------------------------------


def write_fashion_files(folder: Path, *, compress: bool) -> None:
    """Fake Fashion-MNIST: 100 train and 30 test samples; train pixels are 0 or 255, every test pixel is 255."""
    write_mnist_files(folder, n_train=100, n_test=30, compress=compress, seed=123)


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No env var, no system folder, a private cache: only what a test writes is found."""
    monkeypatch.delenv(folders.ENV_VAR, raising=False)
    monkeypatch.setattr(fm, "SYSTEM_FOLDERS", (tmp_path / "system" / "fashion-mnist",))
    monkeypatch.setattr(folders, "CACHE_ROOT", tmp_path / "cache")
    return tmp_path


def row_hashes(x: np.ndarray) -> set[bytes]:
    return {row.tobytes() for row in x.reshape(len(x), -1)}


@pytest.fixture(scope="module")
def digits0() -> Dataset:
    return load_dataset({"name": "digits"}, seed=0)


# --- registry ------------------------------------------------------------------------------


def test_registered_names_and_parameter_schema() -> None:
    assert {"digits", "fashion_mnist", "synthetic"} <= set(DATASETS.names())
    for name in DATASETS.names():
        params = DATASETS.user_parameters(name)
        assert "seed" not in params
        for p in params.values():
            assert p.default is not inspect.Parameter.empty, f"{name}.{p.name} needs a default"
            ann = p.annotation  # a real type, not a string: the config layer reads it as is
            assert ann in SIMPLE_TYPES, f"{name}.{p.name}: {ann} is not a simple type"


def test_unknown_name_suggests_closest() -> None:
    with pytest.raises(KeyError, match="did you mean 'digits'"):
        load_dataset({"name": "digit"}, seed=0)


def test_unknown_parameter_is_rejected() -> None:
    with pytest.raises(TypeError, match="val_frac"):
        load_dataset({"name": "digits", "val_frac": 0.2}, seed=0)


def test_name_string_spec_works(digits0: Dataset) -> None:
    again = load_dataset("digits", seed=0)
    np.testing.assert_array_equal(again.x_train, digits0.x_train)


# --- splitting and standardization helpers ---------------------------------------------------


def test_split_indices_disjoint_cover_and_stratified() -> None:
    y = np.repeat(np.arange(4), [50, 100, 150, 200])
    train, parts = split_indices(y, {"a": 0.2, "b": 0.1}, np.random.default_rng(0))
    a, b = parts["a"], parts["b"]
    assert (len(a), len(b), len(train)) == (100, 50, 350)
    assert np.array_equal(np.sort(np.concatenate([train, a, b])), np.arange(len(y)))
    for part, share in ((a, 0.2), (b, 0.1)):
        counts = np.bincount(y[part], minlength=4)
        assert np.all(np.abs(counts - share * np.array([50, 100, 150, 200])) <= 1)


def test_stratified_subset_is_seeded_and_balanced() -> None:
    y = np.repeat(np.arange(10), 100)
    s1 = stratified_subset(y, 50, np.random.default_rng(1))
    s2 = stratified_subset(y, 50, np.random.default_rng(1))
    s3 = stratified_subset(y, 50, np.random.default_rng(2))
    assert np.array_equal(s1, s2) and not np.array_equal(s1, s3)
    assert np.all(np.bincount(y[s1], minlength=10) == 5)
    assert np.array_equal(stratified_subset(y, 5000, np.random.default_rng(0)), np.arange(1000))


def test_standardize_uses_train_statistics_only() -> None:
    train = np.array([[0.0, 1.0], [2.0, 1.0]], dtype=np.float32)
    other = np.array([[4.0, 3.0]], dtype=np.float32)
    tr, ot = standardize(train, other)
    np.testing.assert_allclose(tr, [[-1.0, 0.0], [1.0, 0.0]])
    np.testing.assert_allclose(ot, [[3.0, 2.0]])  # constant feature: centred only
    tr, ot = standardize(train, other, per_feature=False)
    assert abs(tr.mean()) < 1e-6 and abs(tr.std() - 1.0) < 1e-6
    assert tr.dtype == ot.dtype == np.float32


# --- digits --------------------------------------------------------------------------------


def test_digits_shapes_dtypes_and_sizes(digits0: Dataset) -> None:
    d = digits0
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (1257, 270, 270)
    assert d.input_shape == (64,) and d.n_classes == 10
    for x, y in ((d.x_train, d.y_train), (d.x_val, d.y_val), (d.x_test, d.y_test)):
        assert x.dtype == np.float32 and y.dtype == np.int64 and x.shape == (len(y), 64)
    assert d.summary() == {
        "dataset": "digits",
        "n_train": 1257,
        "n_val": 270,
        "n_test": 270,
        "input_shape": "64",
        "n_classes": 10,
    }


def test_digits_splits_are_disjoint(digits0: Dataset) -> None:
    # load_digits has no duplicate rows and one affine map is applied to every split,
    # so a row in two splits would show up as equal hashes.
    tr, va, te = (row_hashes(x) for x in (digits0.x_train, digits0.x_val, digits0.x_test))
    assert len(tr) + len(va) + len(te) == 1797
    assert not (tr & va) and not (tr & te) and not (va & te)


def test_digits_stratified(digits0: Dataset) -> None:
    full = np.bincount(np.concatenate([digits0.y_train, digits0.y_val, digits0.y_test]))
    for y in (digits0.y_val, digits0.y_test):
        assert np.all(np.abs(np.bincount(y, minlength=10) - full * len(y) / full.sum()) <= 1.5)


def test_digits_deterministic_per_seed(digits0: Dataset) -> None:
    same = load_dataset({"name": "digits"}, seed=0)
    other = load_dataset({"name": "digits"}, seed=1)
    for attr in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(same, attr), getattr(digits0, attr))
    assert row_hashes(other.x_val) != row_hashes(digits0.x_val)


def test_digits_standardized_on_train_only(digits0: Dataset) -> None:
    x = digits0.x_train
    varying = x.std(axis=0) > 0
    np.testing.assert_allclose(x.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(x.std(axis=0)[varying], 1.0, atol=1e-4)
    # statistics of val were not used: its means are not all ~0
    assert np.abs(digits0.x_val.mean(axis=0)[varying]).max() > 0.05


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"val_fraction": 0.0}, r"^val_fraction must be a finite number in \(0, 1\); got 0\.0$"),
        ({"test_fraction": 1.5}, r"^test_fraction .*1\.5"),
        ({"val_fraction": 0.6, "test_fraction": 0.5}, r"val_fraction \+ test_fraction .*less than 1"),
        ({"val_fraction": True}, "val_fraction"),
    ],
)
def test_digits_fraction_validation(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_dataset({"name": "digits", **params}, seed=0)


# --- IDX reader ----------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [False, True])
def test_read_idx_roundtrip(tmp_path: Path, compress: bool) -> None:
    images = np.random.default_rng(0).integers(0, 256, (7, 28, 28), dtype=np.uint8)
    path = write_idx(tmp_path / "imgs-idx3-ubyte", images, IMAGES_MAGIC, compress=compress)
    np.testing.assert_array_equal(read_idx(path, expected_magic=IMAGES_MAGIC), images)


def test_read_idx_bad_magic(tmp_path: Path) -> None:
    path = tmp_path / "bad"
    path.write_bytes(b"\x12\x34\x08\x01" + struct.pack(">I", 3) + b"\x00\x01\x02")
    with pytest.raises(IDXFormatError, match="magic"):
        read_idx(path)


def test_read_idx_wrong_kind_and_truncated(tmp_path: Path) -> None:
    labels = np.arange(10, dtype=np.uint8)
    path = write_idx(tmp_path / "labels", labels, LABELS_MAGIC, compress=False)
    with pytest.raises(IDXFormatError, match="expected 0x00000803"):
        read_idx(path, expected_magic=IMAGES_MAGIC)
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(IDXFormatError, match="truncated"):
        read_idx(path)
    gz = tmp_path / "broken.gz"
    gz.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + b"\x00" * 40)[:20])
    with pytest.raises(IDXFormatError, match="gzip"):
        read_idx(gz)


# --- fashion_mnist -------------------------------------------------------------------------


@pytest.mark.skipif(
    not DEBIAN_FOLDER.is_dir(), reason=f"{DEBIAN_FOLDER} absent (apt-get install dataset-fashion-mnist)"
)
def test_fashion_mnist_real_files(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(folders.ENV_VAR, raising=False)
    spec = {"name": "fashion_mnist", "limit_train": 300, "limit_test": 100}
    d = load_dataset(spec, seed=0)
    assert (d.x_train.shape, d.x_val.shape, d.x_test.shape) == ((270, 1, 28, 28), (30, 1, 28, 28), (100, 1, 28, 28))
    assert d.input_shape == (1, 28, 28) and d.n_classes == 10
    assert set(np.unique(d.y_train)) == set(range(10)) and set(np.unique(d.y_test)) == set(range(10))
    assert abs(float(d.x_train.mean())) < 1e-4 and abs(float(d.x_train.std()) - 1.0) < 1e-4
    np.testing.assert_array_equal(load_dataset(spec, seed=0).x_val, d.x_val)


@pytest.mark.parametrize("compress", [False, True])
def test_fashion_mnist_from_root_torchvision_layout(isolated: Path, compress: bool) -> None:
    root = isolated / "data"
    write_fashion_files(root / "FashionMNIST" / "raw", compress=compress)
    d = load_dataset({"name": "fashion_mnist", "root": str(root), "val_fraction": 0.2}, seed=3)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (80, 20, 30)
    assert np.all(np.bincount(d.y_val, minlength=10) == 2)
    # train pixels are 0/255, test pixels all 255: with train statistics, 255 maps to the
    # largest standardized train value, and the train split is exactly mean 0 / std 1.
    assert abs(float(d.x_train.mean())) < 1e-5 and abs(float(d.x_train.std()) - 1.0) < 1e-5
    np.testing.assert_allclose(d.x_test, d.x_train.max(), rtol=1e-6)
    assert set(np.unique(d.x_val)) <= set(np.unique(d.x_train))


def test_fashion_mnist_limits_and_env_var(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_fashion_files(isolated / "env" / "fashion_mnist", compress=True)
    monkeypatch.setenv(folders.ENV_VAR, str(isolated / "env"))
    d = load_dataset({"name": "fashion_mnist", "limit_train": 50, "limit_test": 10, "val_fraction": 0.2}, seed=0)
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (40, 10, 10)
    assert np.all(np.bincount(d.y_test, minlength=10) == 1)


def test_fashion_mnist_corrupt_file_is_reported(isolated: Path) -> None:
    raw = isolated / "data" / "FashionMNIST" / "raw"
    write_fashion_files(raw, compress=False)
    (raw / "train-labels-idx1-ubyte").write_bytes(b"\xde\xad\xbe\xef" + b"\x00" * 20)
    with pytest.raises(IDXFormatError, match=r"train-labels-idx1-ubyte.*magic"):
        load_dataset({"name": "fashion_mnist", "root": str(isolated / "data")}, seed=0)


def test_fashion_mnist_not_found_lists_folders(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(folders.ENV_VAR, str(isolated / "env"))
    root = isolated / "missing"
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset({"name": "fashion_mnist", "root": str(root)}, seed=0)
    msg = str(info.value)
    for folder in (
        root,
        root / "FashionMNIST" / "raw",
        isolated / "env" / "fashion_mnist",
        isolated / "env" / "FashionMNIST" / "raw",
        isolated / "system" / "fashion-mnist",
    ):
        assert str(folder) in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "download: true" in msg
    assert isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize(
    ("params", "match"),
    [({"limit_train": 0}, "limit_train"), ({"limit_test": -1}, "limit_test"), ({"val_fraction": 1.0}, "val_fraction")],
)
def test_fashion_mnist_parameter_validation(isolated: Path, params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_dataset({"name": "fashion_mnist", **params}, seed=0)


class FakeFashionMNIST:
    """Stands in for torchvision.datasets.FashionMNIST: 'downloads' generated files."""

    calls: ClassVar[list[tuple[str, bool]]] = []

    def __init__(self, root: str, train: bool = True, download: bool = False, **_: object) -> None:
        FakeFashionMNIST.calls.append((root, download))
        if download:
            write_fashion_files(Path(root) / "FashionMNIST" / "raw", compress=True)


def test_fashion_mnist_download_branch(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torchvision_datasets = pytest.importorskip("torchvision.datasets")
    monkeypatch.setattr(torchvision_datasets, "FashionMNIST", FakeFashionMNIST)
    FakeFashionMNIST.calls = []
    root = isolated / "dl"
    d = load_dataset({"name": "fashion_mnist", "root": str(root), "download": True}, seed=0)
    assert FakeFashionMNIST.calls == [(str(root), True)]
    assert len(d.y_train) + len(d.y_val) == 100 and len(d.y_test) == 30
    # without a root it goes to the cache, and a later load finds it there without downloading
    load_dataset({"name": "fashion_mnist", "download": True}, seed=0)
    assert FakeFashionMNIST.calls[-1] == (str(isolated / "cache"), True)
    load_dataset({"name": "fashion_mnist"}, seed=0)
    assert len(FakeFashionMNIST.calls) == 2


def test_fashion_mnist_download_failure(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    torchvision_datasets = pytest.importorskip("torchvision.datasets")

    class Offline:
        def __init__(self, *args: object, **kwargs: object) -> None:
            raise RuntimeError("Error downloading train-images-idx3-ubyte.gz")

    monkeypatch.setattr(torchvision_datasets, "FashionMNIST", Offline)
    with pytest.raises(DatasetNotFoundError, match="Error downloading"):
        load_dataset({"name": "fashion_mnist", "root": str(isolated / "dl"), "download": True}, seed=0)


# --- synthetic -----------------------------------------------------------------------------


@pytest.mark.parametrize("rank", [1, 16, 64])
def test_synthetic_rank_and_labels(rank: int) -> None:
    d = load_dataset({"name": "synthetic", "rank": rank}, seed=0)
    assert d.input_shape == (64,) and d.n_classes == 2
    assert (len(d.y_train), len(d.y_val), len(d.y_test)) == (1400, 300, 300)
    assert np.linalg.matrix_rank(d.x_train) == rank
    assert set(np.unique(d.y_train)) == {0, 1}
    for y in (d.y_train, d.y_val, d.y_test):
        assert 0.45 <= y.mean() <= 0.55


def test_synthetic_deterministic_and_noise() -> None:
    a = load_dataset({"name": "synthetic", "n_samples": 400}, seed=5)
    b = load_dataset({"name": "synthetic", "n_samples": 400}, seed=5)
    c = load_dataset({"name": "synthetic", "n_samples": 400}, seed=6)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)
    noisy = load_dataset({"name": "synthetic", "n_samples": 400, "noise": 0.2}, seed=5)
    np.testing.assert_array_equal(noisy.x_train, a.x_train)  # same inputs, some labels flipped
    flipped = np.mean(noisy.y_train != a.y_train)
    assert 0.1 < flipped < 0.3


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"rank": 65}, r"rank must be <= n_features \(64\); got rank=65"),
        ({"rank": 0}, "rank"),
        ({"noise": 0.7}, "noise"),
        ({"n_samples": 20, "rank": 16}, "n_samples"),
    ],
)
def test_synthetic_validation(params: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        load_dataset({"name": "synthetic", **params}, seed=0)


# --- container -----------------------------------------------------------------------------


DEVICES = ["cpu", torch.device("cpu"), "meta"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", DEVICES, ids=str)
def test_to_tensors(digits0: Dataset, device: str | torch.device) -> None:
    t = digits0.to_tensors(device)
    assert isinstance(t, TensorSplits) and t.input_shape == (64,) and t.n_classes == 10
    for (x, y), n in ((t.train, 1257), (t.val, 270), (t.test, 270)):
        assert x.dtype == torch.float32 and y.dtype == torch.int64
        assert x.shape == (n, 64) and y.shape == (n,)
        assert x.device.type == torch.device(device).type


def test_to_tensors_copies_read_only_arrays(digits0: Dataset) -> None:
    d = pickle.loads(pickle.dumps(digits0))
    for arr in (d.x_train, d.y_train):
        arr.flags.writeable = False  # as Ray's object store hands them out
    t = d.to_tensors()
    t.train[0].zero_()
    assert d.x_train.any()
    np.testing.assert_array_equal(d.y_train, digits0.y_train)


def test_dataset_rejects_inconsistent_arrays() -> None:
    x = np.zeros((4, 3), dtype=np.float32)
    y = np.zeros(4, dtype=np.int64)
    with pytest.raises(ValueError, match="float32"):
        Dataset("bad", x.astype(np.float64), y, x, y, x, y, (3,), 2)
    with pytest.raises(ValueError, match=r"expected \(n, \*\(5,\)\)"):
        Dataset("bad", x, y, x, y, x, y, (5,), 2)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        Dataset("bad", x, y + 3, x, y, x, y, (3,), 2)


def test_import_is_pure() -> None:
    code = (
        "import sys, growray.data; "
        "bad = [m for m in ('ray', 'mlflow', 'yaml', 'optuna', 'torchvision', 'sklearn') if m in sys.modules]; "
        "print(','.join(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"growray.data imported {out.stdout.strip()} at import time"


def test_digits_has_no_duplicate_rows() -> None:
    # guards the disjointness test's premise: load_digits has no duplicate rows
    from sklearn.datasets import load_digits

    x, _ = load_digits(return_X_y=True)
    assert max(Counter(row.tobytes() for row in x).values()) == 1
