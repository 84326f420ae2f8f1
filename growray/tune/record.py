"""The sweep record: what ``growray run`` leaves in ``latest_sweep.json`` for ``growray resume``.

Everything under ``output_dir`` is untrusted input (a shared folder, an object store, a
file someone edited): the record is read as JSON only, never unpickled, and every field is
checked for its type before anything uses it. A record with a missing, unknown or mistyped
key is refused with :class:`SweepRecordError`, naming the file, the key and what was
expected. No Ray, no MLflow: reading a record is cheap.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from growray.config import Experiment

__all__ = ["RECORD_FILE", "SweepRecord", "SweepRecordError", "find_sweep"]

RECORD_FILE = "latest_sweep.json"
_SWEEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")  # an experiment name plus a timestamp: one path element


class SweepRecordError(ValueError):
    """A sweep record that cannot be used: unreadable JSON, or missing, unknown or mistyped keys.

    Attributes:
        path: the record's file.
        problems: one line per problem, each naming the key and what was expected.
    """

    def __init__(self, path: Path, problems: list[str]) -> None:
        self.path = path
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(
            f"{path} is not a usable sweep record ({len(self.problems)} problem(s)):\n{lines}\n"
            f"it is written by `growray run`; start the sweep again with `growray run` if it was damaged"
        )


@dataclass(frozen=True)
class SweepRecord:
    """Where one sweep lives: its MLflow parent run, Tune's storage, the Optuna study.

    Attributes:
        sweep: the sweep's name (``<experiment>-<YYYYmmdd-HHMMSS>``): Tune's experiment
            folder, the Optuna study and the parent run's name.
        experiment: the resolved experiment (``Experiment.to_dict()``), validated again on resume.
        tracking_uri: the MLflow store, absolute.
        experiment_id: the MLflow experiment holding the parent run.
        parent_run_id: the sweep's MLflow parent run.
        storage_path: Tune's folder (or URI) for this sweep, what ``Tuner.restore`` takes.
        ray_root: Tune's ``storage_path`` for every sweep of the experiment.
        state_dir: the driver's folder (this record, the Optuna study), absolute.
        shared_storage: every node of a cluster reaches ``ray_root``.
        optuna_storage: the Optuna study's storage URI (``sqlite:///...``).
        provenance: tags every trial run carries (the git commit).
        growray_version: the growray that wrote the record.
        source: the file it was loaded from (None for a new record); not saved.
    """

    sweep: str
    experiment: dict[str, Any]
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    storage_path: str
    ray_root: str
    state_dir: str
    shared_storage: bool
    optuna_storage: str
    provenance: dict[str, str]
    growray_version: str
    source: Path | None = field(default=None, compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready data (every field but ``source``)."""
        return {name: getattr(self, name) for name in _field_names()}

    def save(self, folder: str | Path) -> Path:
        """Write the record as ``folder/latest_sweep.json`` (replaced atomically); returns its path."""
        path = Path(folder) / RECORD_FILE
        tmp = path.with_name(f".{RECORD_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1))
        os.replace(tmp, path)  # a driver killed mid-write leaves the previous record, never half of one
        return path

    @classmethod
    def load(cls, path: str | Path) -> SweepRecord:
        """Read and check a record written by :meth:`save`.

        Raises:
            FileNotFoundError: no file at ``path``.
            SweepRecordError: the file is not JSON, not an object, or has missing, unknown
                or mistyped keys (every problem is listed).
        """
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise SweepRecordError(path, [f"the file is not UTF-8 text ({exc.reason})"]) from None
        try:
            raw = json.loads(text, parse_constant=_reject_constant)
        except (json.JSONDecodeError, ValueError) as exc:
            raise SweepRecordError(path, [f"the file is not valid JSON ({exc})"]) from None
        return cls.from_dict(raw, path)

    @classmethod
    def from_dict(cls, raw: Any, path: Path) -> SweepRecord:
        """The record from parsed JSON, every key checked (``path`` names it in errors)."""
        if not isinstance(raw, dict):
            raise SweepRecordError(path, [f"the top level must be a JSON object; got {_kind(raw)}"])
        expected = set(_field_names())
        problems = [f"missing key {k!r} ({_EXPECTED[k]})" for k in sorted(expected - raw.keys())]
        problems += [
            f"unknown key {k!r}; a sweep record has only {', '.join(sorted(expected))}"
            for k in sorted(set(raw) - expected, key=str)
        ]
        for key in sorted(expected & raw.keys()):
            problem = _CHECKS[key](raw[key])
            if problem:
                problems.append(f"key {key!r}: expected {_EXPECTED[key]}; {problem}")
        if problems:
            raise SweepRecordError(path, problems)
        return cls(**raw, source=path)

    def load_experiment(self) -> Experiment:
        """The recorded experiment, validated again (as on the day it ran: the space is not re-read).

        Raises:
            growray.config.ConfigError: naming this record's file and every issue.
        """
        from growray.config import validate_dict

        where = f"{self.source} (key 'experiment')" if self.source else "the sweep record's experiment"
        return validate_dict(self.experiment, source=where, check_space=False)


def _field_names() -> list[str]:
    return [f.name for f in fields(SweepRecord) if f.name != "source"]


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _kind(value: Any) -> str:
    """``the number 3``, ``a list [1]``: what a JSON value is, for messages (cut to 60 characters)."""
    if value is None:
        return "null"
    text = json.dumps(value)
    text = text if len(text) <= 60 else text[:59] + "…"
    if isinstance(value, bool):
        return f"the boolean {text}"
    names = {dict: "an object", list: "a list", str: "the string", int: "the number", float: "the number"}
    return f"{names.get(type(value), type(value).__name__)} {text}"


def _string(value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return f"got {_kind(value)}"
    return None


def _sweep_name(value: Any) -> str | None:
    if not isinstance(value, str) or not _SWEEP_NAME.match(value):
        return f"got {_kind(value)}"
    return None


def _uri(value: Any) -> str | None:
    if not isinstance(value, str) or "://" not in value:
        return f"got {_kind(value)}"
    return None


def _boolean(value: Any) -> str | None:
    return None if isinstance(value, bool) else f"got {_kind(value)}"


def _object(value: Any) -> str | None:
    if not isinstance(value, dict) or not value:
        return f"got {_kind(value)}"
    return None


def _string_map(value: Any) -> str | None:
    if not isinstance(value, dict):
        return f"got {_kind(value)}"
    bad = [k for k, v in value.items() if not isinstance(v, str)]
    return f"the value of {bad[0]!r} is {_kind(value[bad[0]])}" if bad else None


_CHECKS = {
    "sweep": _sweep_name,
    "experiment": _object,
    "tracking_uri": _uri,
    "experiment_id": _string,
    "parent_run_id": _string,
    "storage_path": _string,
    "ray_root": _string,
    "state_dir": _string,
    "shared_storage": _boolean,
    "optuna_storage": _uri,
    "provenance": _string_map,
    "growray_version": _string,
}

_EXPECTED = {
    "sweep": "the sweep's name, letters, digits and _ . - (e.g. 'quickstart-20260101-120000')",
    "experiment": "the resolved experiment as a non-empty object",
    "tracking_uri": "the MLflow tracking URI, e.g. 'sqlite:////abs/mlflow.db'",
    "experiment_id": "the MLflow experiment id as a non-empty string",
    "parent_run_id": "the MLflow parent run id as a non-empty string",
    "storage_path": "Tune's folder or URI of the sweep as a non-empty string",
    "ray_root": "Tune's storage folder or URI as a non-empty string",
    "state_dir": "the driver's folder as a non-empty string",
    "shared_storage": "true or false",
    "optuna_storage": "the Optuna storage URI, e.g. 'sqlite:////abs/optuna.db'",
    "provenance": "an object of strings (e.g. {'mlflow.source.git.commit': '...'})",
    "growray_version": "the growray version as a non-empty string",
}


def find_sweep(target: str | Path) -> SweepRecord:
    """The record of the latest sweep of an experiment: from its YAML file, its output folder,
    or the record file itself.

    Raises:
        FileNotFoundError: there is no record there (no sweep was started).
        SweepRecordError: the record is damaged or was not written by ``growray run``.
        growray.config.ConfigError: ``target`` is an experiment file that does not validate.
        growray.tune.storage.SetupError: its ``output_dir`` is not a folder or URI.
    """
    target = Path(target)
    if target.is_file() and target.suffix in (".yaml", ".yml"):
        from growray.config import load_experiment

        from .storage import resolve_storage

        exp = load_experiment(target)
        target = resolve_storage(exp.output_dir, exp.name).state_dir
    record = target if target.name == RECORD_FILE else target / RECORD_FILE
    if not record.is_file():
        raise FileNotFoundError(f"no sweep to resume: {record} does not exist (run `growray run` first)")
    return SweepRecord.load(record)
