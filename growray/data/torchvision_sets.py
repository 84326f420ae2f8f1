"""MNIST, CIFAR-10 and CIFAR-100 read from torchvision's on-disk layout in a local folder.

Nothing is fetched unless ``download: true``: these machines reach no dataset host, so a
missing dataset is a :class:`DatasetNotFoundError` that names the folders searched, the
files expected and how to get them. Folders searched, in order (the first one holding every
file wins):

1. ``root`` itself and ``root/<layout>`` (torchvision's layout), when ``root`` is given;
2. ``$GROWRAY_DATA_ROOT/<name>`` and ``$GROWRAY_DATA_ROOT/<layout>``;
3. ``~/.cache/growray/<layout>`` (where ``download: true`` puts it without a root), only
   when no ``root`` is given;

with ``<layout>`` = ``MNIST/raw`` (the four IDX files, plain or ``.gz``),
``cifar-10-batches-py`` (``data_batch_1`` .. ``data_batch_5``, ``test_batch``) or
``cifar-100-python`` (``train``, ``test``; the 100 fine labels are used).

**CIFAR pickles are read with a restricted unpickler.** The batches are Python pickles, and
``pickle.load`` runs whatever callable a file names. :class:`_RestrictedUnpickler` resolves
only numpy's array-rebuilding functions (``numpy.core.multiarray._reconstruct`` and its
numpy 2 name, ``numpy.ndarray``, ``numpy.dtype``, ``numpy._core.numeric._frombuffer`` for
protocol-5 pickles) and ``_codecs.encode`` (how Python 3 writes bytes at protocol 2);
anything else is refused with :class:`CIFARFormatError` before it is called. Plain
containers, strings, bytes and numbers need no globals. The arrays must then be uint8.

Preprocessing: pixels scaled to [0, 1], then standardized per channel with the mean and
std of the training split only (for MNIST's one channel this is fashion_mnist's scalar
standardization). Random-crop, flip or cutout augmentation is out of scope: the arrays are
fixed tensors, as for every growray dataset.
"""

# No `from __future__ import annotations` here: the config layer reads the registered
# function's parameter annotations as real types.

import io
import logging
import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from growray.data._base import (
    Dataset,
    DatasetNotFoundError,
    check_fractions,
    check_positive_int,
    limited_splits,
)
from growray.data._idx import IMAGES_MAGIC, LABELS_MAGIC, IDXFormatError, read_idx
from growray.data._registry import DATASETS

__all__ = ["SOURCES", "CIFARFormatError", "cifar10", "cifar100", "load_cifar_batch", "mnist", "search_folders"]

log = logging.getLogger(__name__)

ENV_VAR = "GROWRAY_DATA_ROOT"
CACHE_ROOT = Path("~/.cache/growray")


class CIFARFormatError(ValueError):
    """A CIFAR batch that is not a well-formed pickle of the expected content, or that names
    a global outside the allow-list of :class:`_RestrictedUnpickler`."""


@dataclass(frozen=True)
class _Source:
    """Where one dataset lives on disk and how torchvision fetches it.

    Attributes:
        name: registered name (also the folder under ``$GROWRAY_DATA_ROOT``).
        layout: torchvision's folder under its root, e.g. ``"MNIST/raw"``.
        train_files: files holding the official training set, in order.
        test_files: files holding the official test set.
        gz_ok: whether ``<file>.gz`` may stand in for a file (IDX only).
        archive: torchvision's archive name, for the "how to get it" hint.
        input_shape: shape of one sample.
        n_classes: number of classes.
    """

    name: str
    layout: str
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    gz_ok: bool
    archive: str
    input_shape: tuple[int, int, int]
    n_classes: int

    @property
    def files(self) -> tuple[str, ...]:
        return self.train_files + self.test_files


SOURCES: dict[str, _Source] = {
    "mnist": _Source(
        "mnist",
        "MNIST/raw",
        ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
        True,
        "the four *-ubyte.gz files",
        (1, 28, 28),
        10,
    ),
    "cifar10": _Source(
        "cifar10",
        "cifar-10-batches-py",
        tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",),
        False,
        "cifar-10-python.tar.gz",
        (3, 32, 32),
        10,
    ),
    "cifar100": _Source(
        "cifar100",
        "cifar-100-python",
        ("train",),
        ("test",),
        False,
        "cifar-100-python.tar.gz",
        (3, 32, 32),
        100,
    ),
}


# --- finding the files ----------------------------------------------------------------------


def search_folders(source: _Source, root: str | None) -> list[Path]:
    """Folders searched for ``source``'s files, in order (existing or not)."""
    layout = Path(*source.layout.split("/"))
    folders: list[Path] = []
    if root is not None:
        base = Path(root).expanduser()
        folders += [base, base / layout]
    env = os.environ.get(ENV_VAR)
    if env:
        base = Path(env).expanduser()
        folders += [base / source.name, base / layout]
    if root is None:
        folders.append(CACHE_ROOT.expanduser() / layout)
    return folders


def _files_in(source: _Source, folder: Path) -> dict[str, Path] | None:
    """Every file of ``source`` in ``folder`` (uncompressed preferred), or None if one is missing."""
    found: dict[str, Path] = {}
    for stem in source.files:
        candidates = (folder / stem, folder / f"{stem}.gz") if source.gz_ok else (folder / stem,)
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            return None
        found[stem] = hit
    return found


def _not_found(source: _Source, folders: list[Path], extra: str = "") -> DatasetNotFoundError:
    listed = "\n".join(f"  - {f}" for f in folders)
    kind = "IDX files" if source.gz_ok else "pickled batches"
    plain = ", plain or .gz" if source.gz_ok else ""
    return DatasetNotFoundError(
        f"{source.name}: the {kind} ({', '.join(source.files)}{plain}) are in none of the folders "
        f"searched:\n{listed}\n{extra}"
        f"Get {source.archive} from the dataset's site on a machine with a network, extract it so "
        f"that the files sit in <root>/{source.layout}/, and set `root: <root>` (or "
        f"${ENV_VAR}=<root>); or set `download: true` where a network is reachable."
    )


def _download(source: _Source, root: str | None, folders: list[Path]) -> dict[str, Path]:
    """Fetch with torchvision's downloader (checksummed) into ``root`` or the cache."""
    target = Path(root).expanduser() if root is not None else CACHE_ROOT.expanduser()
    try:
        import torchvision.datasets
        from torchvision.datasets import utils as tv_utils
    except ImportError as e:
        raise ImportError(f"{source.name} with `download: true` needs torchvision: pip install torchvision") from e
    log.info("%s: downloading through torchvision into %s", source.name, target)
    try:
        if source.name == "mnist":  # the class knows the mirrors; IDX files involve no unpickling
            torchvision.datasets.MNIST(str(target), train=True, download=True)
        else:  # archive only (md5-checked), so torchvision never unpickles the batches itself
            cls = torchvision.datasets.CIFAR10 if source.name == "cifar10" else torchvision.datasets.CIFAR100
            tv_utils.download_and_extract_archive(cls.url, str(target), filename=cls.filename, md5=cls.tgz_md5)
    except (OSError, RuntimeError) as e:
        raise _not_found(source, folders, f"Downloading into {target} failed: {e}\n") from e
    folder = target.joinpath(*source.layout.split("/"))
    files = _files_in(source, folder)
    if files is None:
        raise _not_found(source, [*folders, folder], f"torchvision left no complete set in {folder}.\n")
    return files


# --- reading ---------------------------------------------------------------------------------


def _numpy_attr(*paths: str) -> Callable[..., Any]:
    """The first importable ``module.attr`` of ``paths`` (numpy 1 and 2 name some differently)."""
    import importlib

    for path in paths:
        module, _, attr = path.rpartition(".")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {', '.join(paths)} is importable with numpy {np.__version__}")


_RECONSTRUCT = ("numpy._core.multiarray._reconstruct", "numpy.core.multiarray._reconstruct")
_FROMBUFFER = ("numpy._core.numeric._frombuffer", "numpy.core.numeric._frombuffer")
_ALLOWED: dict[tuple[str, str], tuple[str, ...]] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): ("numpy.ndarray",),
    ("numpy", "dtype"): ("numpy.dtype",),
    ("_codecs", "encode"): ("_codecs.encode",),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a CIFAR batch needs (see the module doc).

    Every other ``module.name`` (``os.system``, ``builtins.eval``, ...) raises
    :class:`CIFARFormatError` at lookup, so it is never called. The original batches are
    Python 2 pickles: load them with ``encoding="latin1"``.
    """

    def find_class(self, module: str, name: str) -> Any:
        paths = _ALLOWED.get((module, name))
        if paths is None:
            allowed = ", ".join(f"{m}.{n}" for m, n in _ALLOWED)
            raise CIFARFormatError(f"refusing to load global {module}.{name}: a CIFAR batch only needs {allowed}")
        return _numpy_attr(*paths)


def load_cifar_batch(path: str | Path) -> dict[str, Any]:
    """Read one CIFAR batch with the restricted unpickler; keys come back as ``str``.

    Raises:
        CIFARFormatError: not a pickle, not a dict, or a global outside the allow-list.
        FileNotFoundError: the file does not exist.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except CIFARFormatError as e:
        raise CIFARFormatError(f"{path}: {e}") from e
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as e:
        raise CIFARFormatError(f"{path}: not a readable CIFAR pickle ({type(e).__name__}: {e}); fetch it again") from e
    if not isinstance(obj, dict):
        raise CIFARFormatError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _read_cifar(source: _Source, paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, 3, 32, 32)`` uint8 and labels of the batches in ``paths``, concatenated."""
    label_key = "labels" if source.name == "cifar10" else "fine_labels"
    images, labels = [], []
    for path in paths:
        batch = load_cifar_batch(path)
        if "data" not in batch or label_key not in batch:
            raise CIFARFormatError(f"{path}: expected keys 'data' and {label_key!r}; got {sorted(map(str, batch))}")
        data, y = batch["data"], np.asarray(batch[label_key])
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            shape = getattr(data, "shape", None)
            raise CIFARFormatError(f"{path}: 'data' must be a uint8 array of shape (n, 3072); got {shape}")
        if y.shape != (len(data),) or not np.issubdtype(y.dtype, np.integer):
            raise CIFARFormatError(f"{path}: {label_key!r} must hold {len(data)} integers; got shape {y.shape}")
        if len(y) and (y.min() < 0 or y.max() >= source.n_classes):
            raise CIFARFormatError(f"{path}: labels must lie in 0..{source.n_classes - 1}; got {y.min()}..{y.max()}")
        images.append(data.reshape(len(data), 3, 32, 32))  # rows are 1024 R, 1024 G, 1024 B, row-major
        labels.append(y.astype(np.int64))
    return np.concatenate(images), np.concatenate(labels)


def _read_mnist(files: dict[str, Path], split: str) -> tuple[np.ndarray, np.ndarray]:
    prefix = "train" if split == "train" else "t10k"
    images_path, labels_path = files[f"{prefix}-images-idx3-ubyte"], files[f"{prefix}-labels-idx1-ubyte"]
    images = read_idx(images_path, expected_magic=IMAGES_MAGIC)
    labels = read_idx(labels_path, expected_magic=LABELS_MAGIC)
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise IDXFormatError(
            f"{images_path}: expected images of shape (n, 28, 28) matching {len(labels)} labels; got {images.shape}"
        )
    if len(labels) and labels.max() > 9:
        raise IDXFormatError(f"{labels_path}: labels must lie in 0..9; got {labels.max()}")
    return images[:, None, :, :], labels.astype(np.int64)


def _standardize_channels(train: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """uint8 images -> float32 in [0, 1] -> per-channel (x - mean) / std with train statistics."""
    out = [a.astype(np.float32) / np.float32(255.0) for a in (train, *others)]
    mean = out[0].mean(axis=(0, 2, 3), dtype=np.float64, keepdims=True)[0]
    std = out[0].std(axis=(0, 2, 3), dtype=np.float64, keepdims=True)[0]
    std = np.where(std > 0, std, 1.0)
    for a in out:  # in place: CIFAR-10 in float32 is 600 MB already
        a -= mean.astype(np.float32)
        a /= std.astype(np.float32)
    return out


def _load(
    source: _Source,
    seed: int,
    root: object,
    val_fraction: float,
    limit_train: int | None,
    limit_test: int | None,
    download: bool,
) -> Dataset:
    check_fractions(val_fraction=val_fraction)
    check_positive_int("limit_train", limit_train, allow_none=True, minimum=2)
    check_positive_int("limit_test", limit_test, allow_none=True)
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder path or null; got {root!r}")
    if not isinstance(download, bool):
        raise TypeError(f"download must be true or false; got {download!r}")

    root_s = None if root is None else os.fspath(root)
    folders = search_folders(source, root_s)
    files = next((f for f in (_files_in(source, d) for d in folders) if f is not None), None)
    if files is None:
        if not download:
            raise _not_found(source, folders)
        files = _download(source, root_s, folders)
    log.debug("%s: reading %s", source.name, next(iter(files.values())).parent)
    if source.gz_ok:
        (x_all, y_all), (x_test, y_test) = _read_mnist(files, "train"), _read_mnist(files, "test")
    else:
        x_all, y_all = _read_cifar(source, [files[f] for f in source.train_files])
        x_test, y_test = _read_cifar(source, [files[f] for f in source.test_files])

    train, val, test = limited_splits(
        (x_all, y_all),
        (x_test, y_test),
        seed=seed,
        val_fraction=val_fraction,
        limit_train=limit_train,
        limit_test=limit_test,
    )
    xs = _standardize_channels(train[0], val[0], test[0])
    return Dataset(
        name=source.name,
        x_train=xs[0],
        y_train=train[1],
        x_val=xs[1],
        y_val=val[1],
        x_test=xs[2],
        y_test=test[1],
        input_shape=source.input_shape,
        n_classes=source.n_classes,
    )


# --- registered datasets -------------------------------------------------------------------------


@DATASETS.register("mnist")
def mnist(
    seed: int,
    root: str | None = None,
    val_fraction: float = 0.1,
    limit_train: int | None = None,
    limit_test: int | None = None,
    download: bool = False,
) -> Dataset:
    """MNIST (28x28 grey digits, 10 classes) from the IDX files in ``MNIST/raw``.

    Validation is a stratified, seeded split of the official training set; test is the
    official test set. Pixels are scaled to [0, 1], then standardized per channel with the
    training split's statistics. No augmentation (random crop, flip, cutout).

    Args:
        seed: seeds the subsets and the validation split.
        root: folder holding the files (directly or in torchvision's layout); searched first.
        val_fraction: share of the (limited) official training set held out, in (0, 1).
        limit_train: use a stratified subset of this many official training samples
            (train + val together); null for all.
        limit_test: use a stratified subset of this many test samples; null for all.
        download: when no folder holds the files, fetch them with torchvision into ``root``
            (or ``~/.cache/growray``).

    Raises:
        DatasetNotFoundError: no folder holds the files and ``download`` is false.
        IDXFormatError: a file is corrupt.
    """
    return _load(SOURCES["mnist"], seed, root, val_fraction, limit_train, limit_test, download)


@DATASETS.register("cifar10")
def cifar10(
    seed: int,
    root: str | None = None,
    val_fraction: float = 0.1,
    limit_train: int | None = None,
    limit_test: int | None = None,
    download: bool = False,
) -> Dataset:
    """CIFAR-10 (32x32 colour images, 10 classes) from the pickled batches in ``cifar-10-batches-py``.

    Same parameters, splits and preprocessing as :func:`mnist`; 50,000 training and 10,000
    test images. The batches are read with the restricted unpickler (module docstring).

    Raises:
        DatasetNotFoundError: no folder holds the files and ``download`` is false.
        CIFARFormatError: a batch is corrupt, or names a global the unpickler refuses.
    """
    return _load(SOURCES["cifar10"], seed, root, val_fraction, limit_train, limit_test, download)


@DATASETS.register("cifar100")
def cifar100(
    seed: int,
    root: str | None = None,
    val_fraction: float = 0.1,
    limit_train: int | None = None,
    limit_test: int | None = None,
    download: bool = False,
) -> Dataset:
    """CIFAR-100 (32x32 colour images, 100 fine classes) from ``cifar-100-python``.

    Same parameters, splits and preprocessing as :func:`mnist`; 50,000 training and 10,000
    test images; the 20 coarse labels are not used. Read with the restricted unpickler.

    Raises:
        DatasetNotFoundError: no folder holds the files and ``download`` is false.
        CIFARFormatError: a batch is corrupt, or names a global the unpickler refuses.
    """
    return _load(SOURCES["cifar100"], seed, root, val_fraction, limit_train, limit_test, download)


def _describer(source: _Source) -> Callable[..., tuple[tuple[int, ...], int]]:
    def describe(**params: object) -> tuple[tuple[int, ...], int]:
        return source.input_shape, source.n_classes

    return describe


for _fn in (mnist, cifar10, cifar100):
    _fn.describe = _describer(SOURCES[_fn.__name__])  # type: ignore[attr-defined]
