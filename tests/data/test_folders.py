"""The one folder search shared by every file dataset: same folders, same order, same message."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from growray.data import DatasetNotFoundError, load_dataset
from growray.testing.datasets import write_cifar10_files, write_mnist_files

folders = importlib.import_module("growray.data._folders")
fm = importlib.import_module("growray.data.fashion_mnist")

FILE_DATASETS = [
    ("fashion_mnist", "FashionMNIST/raw", "train-images-idx3-ubyte"),
    ("mnist", "MNIST/raw", "t10k-labels-idx1-ubyte"),
    ("cifar10", "cifar-10-batches-py", "data_batch_3"),
    ("cifar100", "cifar-100-python", "test"),
]


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An env root, a fake system folder for Fashion-MNIST and a private cache."""
    monkeypatch.setenv(folders.ENV_VAR, str(tmp_path / "env"))
    monkeypatch.setattr(fm, "SYSTEM_FOLDERS", (tmp_path / "system",))
    monkeypatch.setattr(folders, "CACHE_ROOT", tmp_path / "cache")
    return tmp_path


def _listed(name: str, root: Path | None) -> tuple[list[str], str]:
    spec = {"name": name} if root is None else {"name": name, "root": str(root)}
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset(spec, seed=0)
    msg = str(info.value)
    return [line[len("  - ") :] for line in msg.splitlines() if line.startswith("  - ")], msg


@pytest.mark.parametrize(("name", "layout", "a_file"), FILE_DATASETS)
def test_every_file_dataset_searches_the_same_folders_in_the_same_order(
    isolated: Path, name: str, layout: str, a_file: str
) -> None:
    env, system = isolated / "env", [isolated / "system"] if name == "fashion_mnist" else []
    root = isolated / "root"
    listed, msg = _listed(name, root)
    assert listed == [str(p) for p in (root, root / layout, env / name, env / layout, *system)]
    listed, _ = _listed(name, None)  # no root: the cache comes last
    assert listed == [str(p) for p in (env / name, env / layout, *system, isolated / "cache" / layout)]
    # the message names the files expected and the fix
    assert a_file in msg and f"<root>/{layout}/" in msg and "download: true" in msg
    assert msg.startswith(f"{name}: the ")


def test_the_first_folder_holding_every_file_wins(isolated: Path) -> None:
    write_mnist_files(isolated / "env" / "mnist", n_train=60)
    write_mnist_files(isolated / "root" / "MNIST" / "raw", n_train=40)
    spec = {"name": "mnist", "val_fraction": 0.5}
    assert len(load_dataset({**spec, "root": str(isolated / "root")}, seed=0).y_train) == 20
    assert len(load_dataset(spec, seed=0).y_train) == 30  # without a root: the env folder
    # an incomplete folder is passed over
    (isolated / "root" / "MNIST" / "raw" / "t10k-images-idx3-ubyte").unlink()
    assert len(load_dataset({**spec, "root": str(isolated / "root")}, seed=0).y_train) == 30


def test_gz_stands_in_for_idx_files_only(isolated: Path) -> None:
    write_mnist_files(isolated / "root" / "MNIST" / "raw", compress=True)
    assert len(load_dataset({"name": "mnist", "root": str(isolated / "root")}, seed=0).y_test) == 20
    folder = isolated / "root" / "cifar-10-batches-py"
    write_cifar10_files(folder)
    (folder / "test_batch").rename(folder / "test_batch.gz")
    with pytest.raises(DatasetNotFoundError, match="test_batch"):
        load_dataset({"name": "cifar10", "root": str(isolated / "root")}, seed=0)
