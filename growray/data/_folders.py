"""Datasets read from files: where they are searched, how a miss is reported, how they are fetched.

One implementation for every file-based dataset (``fashion_mnist``, ``mnist``, ``cifar10``,
``cifar100``), parametrised by a :class:`FileSource`: the file names, torchvision's folder
layout, how to read them and how torchvision fetches them. Folders searched, in order (the
first one holding every file wins):

1. ``root`` itself and ``root/<layout>``, when ``root`` is given;
2. ``$GROWRAY_DATA_ROOT/<name>`` and ``$GROWRAY_DATA_ROOT/<layout>``;
3. the dataset's system folders (Debian's ``/usr/share/datasets/fashion-mnist``);
4. ``~/.cache/growray/<layout>`` (where ``download: true`` puts it without a root), only
   when no ``root`` is given.

Nothing is fetched unless ``download: true``: a missing dataset is a
:class:`DatasetNotFoundError` naming every folder searched, the files expected and the fix.
Downloads go through torchvision, which checks every file's MD5.

:func:`load_official` turns an official train/test pair into a :class:`Dataset`: seeded
stratified subsets (``limit_train``, ``limit_test``), a stratified validation split of the
training subset, pixels scaled to [0, 1] and standardized per channel with the training
split's statistics (:func:`growray.data._base.standardize_channels`).
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from growray.checks import check_int
from growray.data._base import Dataset, DatasetNotFoundError, check_fractions, limited_splits, standardize_channels
from growray.data._registry import DATASETS

__all__ = ["CACHE_ROOT", "ENV_VAR", "FileSource", "Split", "find_files", "load_official", "search_folders"]

log = logging.getLogger(__name__)

ENV_VAR = "GROWRAY_DATA_ROOT"
CACHE_ROOT = Path("~/.cache/growray")

Split = tuple[np.ndarray, np.ndarray]


@dataclass(frozen=True)
class FileSource:
    """One dataset stored as files in torchvision's layout.

    Attributes:
        name: registered name (also the folder under ``$GROWRAY_DATA_ROOT``).
        layout: torchvision's folder under its root, e.g. ``"MNIST/raw"``.
        files: every file the dataset needs, e.g. ``("data_batch_1", ..., "test_batch")``.
        gz_ok: whether ``<file>.gz`` may stand in for a file (IDX files).
        kind: what the files are, for messages (``"IDX files"``, ``"pickled batches"``).
        obtain: how to get the files by hand, for the "not found" message.
        input_shape: ``(C, H, W)`` of one sample.
        n_classes: number of classes.
        read: ``files -> (train, test)``: uint8 images ``(n, C, H, W)`` and int64 labels
            of the official splits, from the path of each of ``files``.
        fetch: downloads the files with torchvision into a root folder (so that they
            land in ``root/<layout>``); imports torchvision itself.
        system_folders: folders a system package installs the files into.
    """

    name: str
    layout: str
    files: tuple[str, ...]
    gz_ok: bool
    kind: str
    obtain: str
    input_shape: tuple[int, int, int]
    n_classes: int
    read: Callable[[Mapping[str, Path]], tuple[Split, Split]]
    fetch: Callable[[Path], None]
    system_folders: tuple[Path, ...] = ()

    def describe(self, **params: object) -> tuple[tuple[int, ...], int]:
        """``(input_shape, n_classes)`` (the dataset's ``describe``), after the checks that need
        no files: the parameters' ranges, and that a given ``root`` exists (unless
        ``download``), so ``growray validate`` catches a mistyped folder instead of the search
        quietly going on to other folders.

        Raises:
            ValueError: a parameter out of range, or a ``root`` folder that does not exist.
        """
        check_fractions(val_fraction=params.get("val_fraction", 0.1))
        check_int("limit_train", params.get("limit_train"), minimum=2, optional=True)
        check_int("limit_test", params.get("limit_test"), minimum=1, optional=True)
        root, download = params.get("root"), params.get("download", False)
        if root is not None and not download and not Path(str(root)).expanduser().is_dir():
            raise ValueError(
                f"root {str(root)!r} is not a folder: give the folder that holds the {self.kind} (or their "
                f"{self.layout}/ folder), set download: true to fetch them there, or leave root out to search "
                "the default folders"
            )
        return self.input_shape, self.n_classes


def search_folders(source: FileSource, root: str | None) -> list[Path]:
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
    folders += list(source.system_folders)
    if root is None:
        folders.append(CACHE_ROOT.expanduser() / layout)
    return folders


def _files_in(source: FileSource, folder: Path) -> dict[str, Path] | None:
    """Every file of ``source`` in ``folder`` (uncompressed preferred), or None if one is missing."""
    found: dict[str, Path] = {}
    for stem in source.files:
        candidates = (folder / stem, folder / f"{stem}.gz") if source.gz_ok else (folder / stem,)
        hit = next((c for c in candidates if c.is_file()), None)
        if hit is None:
            return None
        found[stem] = hit
    return found


def find_files(source: FileSource, folders: list[Path]) -> dict[str, Path] | None:
    """The files of ``source`` from the first of ``folders`` that holds all of them, or None."""
    return next((files for files in (_files_in(source, f) for f in folders) if files is not None), None)


def _not_found(source: FileSource, folders: list[Path], extra: str = "") -> DatasetNotFoundError:
    listed = "\n".join(f"  - {f}" for f in folders)
    plain = ", plain or .gz" if source.gz_ok else ""
    return DatasetNotFoundError(
        f"{source.name}: the {source.kind} ({', '.join(source.files)}{plain}) are in none of the folders "
        f"searched:\n{listed}\n{extra}"
        f"{source.obtain}, so that the files sit in <root>/{source.layout}/, and set `root: <root>` (or "
        f"${ENV_VAR}=<root>); or set `download: true` where a network is reachable."
    )


def _download(source: FileSource, root: str | None, folders: list[Path]) -> dict[str, Path]:
    """Fetch with torchvision (checksummed) into ``root`` or the cache; the files it left."""
    target = Path(root).expanduser() if root is not None else CACHE_ROOT.expanduser()
    if importlib.util.find_spec("torchvision") is None:
        raise ImportError(f"{source.name} with `download: true` needs torchvision: pip install torchvision")
    log.info("%s: downloading through torchvision into %s", source.name, target)
    try:
        source.fetch(target)
    except (OSError, RuntimeError) as e:
        raise _not_found(source, folders, f"Downloading into {target} failed: {e}\n") from e
    folder = target.joinpath(*source.layout.split("/"))
    files = _files_in(source, folder)
    if files is None:
        raise _not_found(source, [*folders, folder], f"torchvision left no complete set in {folder}.\n")
    return files


def locate(source: FileSource, root: object, download: object) -> dict[str, Path]:
    """The path of each of ``source.files``: found in the folders searched, else downloaded.

    Raises:
        TypeError: ``root`` is not a path (or None), ``download`` not a bool.
        DatasetNotFoundError: no folder holds every file and ``download`` is false (or the
            download failed).
    """
    if root is not None and not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a folder path or null; got {root!r}")
    if not isinstance(download, bool):
        raise TypeError(f"download must be true or false; got {download!r}")
    root_s = None if root is None else os.fspath(root)
    folders = search_folders(source, root_s)
    files = find_files(source, folders)
    if files is None:
        if not download:
            raise _not_found(source, folders)
        files = _download(source, root_s, folders)
    log.debug("%s: reading %s", source.name, next(iter(files.values())).parent)
    return files


#: The Args/Raises part every official-files dataset's docstring shares.
OFFICIAL_PARAMETERS = """
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
"""


def official_dataset(
    name: str, source: Callable[[], FileSource], doc: str, format_error: str
) -> Callable[..., Dataset]:
    """The loader of a dataset read from its official train/test files, registered as ``name``.

    Every such dataset takes the same parameters (the config layer reads them from the
    signature below, which is why it is written out once here rather than per dataset).

    Args:
        name: the registered name (``data.name``).
        source: builds the dataset's :class:`FileSource` (per call, so folders are read when
            the data is loaded).
        doc: the docstring's summary and description; :data:`OFFICIAL_PARAMETERS` follow it.
        format_error: the docstring's last ``Raises`` line (the reader's format error).
    """

    def load(
        seed: int,
        root: str | None = None,
        val_fraction: float = 0.1,
        limit_train: int | None = None,
        limit_test: int | None = None,
        download: bool = False,
    ) -> Dataset:
        return load_official(
            source(),
            seed=seed,
            root=root,
            val_fraction=val_fraction,
            limit_train=limit_train,
            limit_test=limit_test,
            download=download,
        )

    load.__name__ = load.__qualname__ = name
    load.__doc__ = f"{doc.rstrip()}\n{OFFICIAL_PARAMETERS}        {format_error}\n"
    return DATASETS.register(name, describe=lambda **params: source().describe(**params))(load)


def load_official(
    source: FileSource,
    *,
    seed: int,
    root: object,
    val_fraction: float,
    limit_train: int | None,
    limit_test: int | None,
    download: bool,
) -> Dataset:
    """A :class:`Dataset` from ``source``'s official train/test files (see the module docstring).

    Raises:
        ValueError: a parameter out of range.
        TypeError: a ``root`` or ``download`` of the wrong type.
        DatasetNotFoundError: the files are not available (and not downloaded).
    """
    check_fractions(val_fraction=val_fraction)
    check_int("limit_train", limit_train, minimum=2, optional=True)
    check_int("limit_test", limit_test, minimum=1, optional=True)
    train_all, test_all = source.read(locate(source, root, download))
    train, val, test = limited_splits(
        train_all, test_all, seed=seed, val_fraction=val_fraction, limit_train=limit_train, limit_test=limit_test
    )
    x_train, x_val, x_test = standardize_channels(train[0], val[0], test[0])
    return Dataset(
        name=source.name,
        x_train=x_train,
        y_train=train[1],
        x_val=x_val,
        y_val=val[1],
        x_test=x_test,
        y_test=test[1],
        input_shape=source.input_shape,
        n_classes=source.n_classes,
    )
