"""Fashion-MNIST from the original IDX files in a local folder (torchvision only to download).

Folders searched, in order (each must hold all four files, ``.gz`` or uncompressed):

1. ``root`` and ``root/FashionMNIST/raw`` (torchvision's layout), when ``root`` is given;
2. ``$GROWRAY_DATA_ROOT/fashion_mnist`` and ``$GROWRAY_DATA_ROOT/FashionMNIST/raw``;
3. ``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist`` package);
4. ``~/.cache/growray/FashionMNIST/raw`` (where ``download: true`` puts it without a root).
"""

# No `from __future__ import annotations` here: the config layer reads the registered
# function's parameter annotations as real types.

import logging
import os
from pathlib import Path

import numpy as np

from growray.data._base import (
    Dataset,
    DatasetNotFoundError,
    check_fractions,
    check_positive_int,
    limited_splits,
    standardized_dataset,
)
from growray.data._idx import IMAGES_MAGIC, LABELS_MAGIC, IDXFormatError, read_idx
from growray.data._registry import DATASETS

__all__ = ["FILES", "fashion_mnist", "find_folder", "search_folders"]

log = logging.getLogger(__name__)

ENV_VAR = "GROWRAY_DATA_ROOT"
SYSTEM_FOLDERS: tuple[Path, ...] = (Path("/usr/share/datasets/fashion-mnist"),)
CACHE_ROOT = Path("~/.cache/growray")
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def search_folders(root: str | None) -> list[Path]:
    """Folders searched for the IDX files, in order (existing or not)."""
    folders: list[Path] = []
    if root is not None:
        base = Path(root).expanduser()
        folders += [base, base / "FashionMNIST" / "raw"]
    env = os.environ.get(ENV_VAR)
    if env:
        base = Path(env).expanduser()
        folders += [base / "fashion_mnist", base / "FashionMNIST" / "raw"]
    folders += list(SYSTEM_FOLDERS)
    if root is None:
        folders.append(CACHE_ROOT.expanduser() / "FashionMNIST" / "raw")
    return folders


def _files_in(folder: Path) -> dict[str, Path] | None:
    """The four files in ``folder`` (uncompressed preferred), or None if any is missing."""
    found: dict[str, Path] = {}
    for key, stem in FILES.items():
        for candidate in (folder / stem, folder / f"{stem}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            return None
    return found


def find_folder(folders: list[Path]) -> dict[str, Path] | None:
    """The four files from the first folder that holds all of them, or None."""
    for folder in folders:
        files = _files_in(folder)
        if files is not None:
            return files
    return None


def _not_found(folders: list[Path], extra: str = "") -> DatasetNotFoundError:
    listed = "\n".join(f"  - {f}" for f in folders)
    return DatasetNotFoundError(
        "fashion_mnist: the IDX files (" + ", ".join(FILES.values()) + ", plain or .gz) are "
        f"in none of the folders searched:\n{listed}\n{extra}"
        "Get them with `apt-get install dataset-fashion-mnist` (installs "
        f"{SYSTEM_FOLDERS[0]}), put them under `root` or ${ENV_VAR}/fashion_mnist, "
        "or set `download: true` where a network is reachable."
    )


def _download(root: str | None, folders: list[Path]) -> dict[str, Path]:
    target = Path(root).expanduser() if root is not None else CACHE_ROOT.expanduser()
    try:
        import torchvision.datasets
    except ImportError as e:
        raise ImportError("fashion_mnist with `download: true` needs torchvision: pip install torchvision") from e
    log.info("fashion_mnist: downloading through torchvision into %s", target)
    try:
        torchvision.datasets.FashionMNIST(str(target), train=True, download=True)
    except (OSError, RuntimeError) as e:
        raise _not_found(folders, f"Downloading into {target} failed: {e}\n") from e
    raw = target / "FashionMNIST" / "raw"
    files = _files_in(raw)
    if files is None:
        raise _not_found([*folders, raw], f"torchvision left no complete set in {raw}.\n")
    return files


def _load(files: dict[str, Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    arrays = {}
    for key, path in files.items():
        magic = IMAGES_MAGIC if key.endswith("images") else LABELS_MAGIC
        arrays[key] = read_idx(path, expected_magic=magic)
    for split in ("train", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        if images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise IDXFormatError(
                f"{files[f'{split}_images']}: expected images of shape (n, 28, 28) matching "
                f"{len(labels)} labels; got {images.shape}"
            )
        if len(labels) and labels.max() > 9:
            raise IDXFormatError(f"{files[f'{split}_labels']}: labels must lie in 0..9; got {labels.max()}")
    return arrays["train_images"], arrays["train_labels"], arrays["test_images"], arrays["test_labels"]


@DATASETS.register("fashion_mnist")
def fashion_mnist(
    seed: int,
    root: str | None = None,
    val_fraction: float = 0.1,
    limit_train: int | None = None,
    limit_test: int | None = None,
    download: bool = False,
) -> Dataset:
    """Fashion-MNIST (28x28 grey images, 10 classes) read from the original IDX files.

    Validation is a stratified, seeded split of the official training set; test is the
    official test set. Pixels are scaled to [0, 1], then standardized with the scalar mean
    and std of the training split.

    Args:
        seed: seeds the subsets and the validation split.
        root: folder holding the files (directly or in ``FashionMNIST/raw``); searched first.
        val_fraction: share of the (limited) official training set held out, in (0, 1).
        limit_train: use a stratified subset of this many official training samples
            (train + val together); null for all 60,000.
        limit_test: use a stratified subset of this many test samples; null for all 10,000.
        download: when no folder holds the files, fetch them with torchvision into ``root``
            (or ``~/.cache/growray``).

    Raises:
        DatasetNotFoundError: no folder holds the files and ``download`` is false.
        IDXFormatError: a file is corrupt.
    """
    check_fractions(val_fraction=val_fraction)
    check_positive_int("limit_train", limit_train, allow_none=True, minimum=2)
    check_positive_int("limit_test", limit_test, allow_none=True)
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise ValueError(f"root must be a folder path or null; got {root!r}")
    if not isinstance(download, bool):
        raise ValueError(f"download must be true or false; got {download!r}")

    folders = search_folders(None if root is None else os.fspath(root))
    files = find_folder(folders)
    if files is None:
        if not download:
            raise _not_found(folders)
        files = _download(None if root is None else os.fspath(root), folders)
    log.debug("fashion_mnist: reading %s", files["train_images"].parent)
    x_train_all, y_train_all, x_test, y_test = _load(files)

    train, val, test = limited_splits(
        (x_train_all, y_train_all.astype(np.int64)),
        (x_test, y_test.astype(np.int64)),
        seed=seed,
        val_fraction=val_fraction,
        limit_train=limit_train,
        limit_test=limit_test,
    )

    def scaled(split: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return (split[0].astype(np.float32) / np.float32(255.0))[:, None, :, :], split[1]

    return standardized_dataset(
        "fashion_mnist",
        scaled(train),
        scaled(val),
        scaled(test),
        input_shape=(1, 28, 28),
        n_classes=10,
        per_feature=False,
    )


def _describe(**params: object) -> tuple[tuple[int, ...], int]:
    return (1, 28, 28), 10


fashion_mnist.describe = _describe  # type: ignore[attr-defined]
