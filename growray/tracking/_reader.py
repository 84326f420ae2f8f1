"""Read-only queries of a store for ``growray ls`` and ``growray pareto``, without MLflow where
the store is a sqlite file.

Importing MLflow costs more than a second and a few hundred MB (STACK_NOTES §2); these
commands only read experiments, runs, their tags and their latest metrics. For a
``sqlite:///`` store that exists, :class:`SqliteReader` reads MLflow's tables directly,
opened read-only (it never creates or migrates a store); every other store (``http://``
servers, other databases) goes through MLflow's client (:class:`MlflowReader`). Both
return the same small records, with the fields MLflow's entities would give:
``run.info.run_id``, ``run.data.metrics`` (each metric's latest value, as MLflow's
``Run.data.metrics``), ``run.data.tags``.

The sqlite tables read are MLflow's stable core (``experiments``, ``runs``, ``tags``,
``latest_metrics``); a database that lacks them or cannot be read falls back to MLflow.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["Experiment", "MlflowReader", "Run", "RunData", "RunInfo", "SqliteReader", "StoreReader", "reader"]


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    lifecycle_stage: str


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    experiment_id: str
    run_name: str
    status: str
    start_time: int | None
    end_time: int | None


@dataclass(frozen=True)
class RunData:
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    info: RunInfo
    data: RunData


class StoreReader(Protocol):
    def search_experiments(self) -> list[Experiment]:
        """The active experiments."""
        ...

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        """The experiment of that name (also a deleted one), or None."""
        ...

    def get_run(self, run_id: str) -> Run:
        """One run; LookupError when there is none."""
        ...

    def runs_tagged(
        self, experiment_ids: list[str], key: str, value: str, *, newest_first: bool, limit: int | None = None
    ) -> list[Run]:
        """The active runs of the experiments whose tag ``key`` is ``value``, by start time."""
        ...


class SqliteReader:
    """MLflow's sqlite tables, read directly (read-only)."""

    def __init__(self, path: Path):
        self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        self._db.execute("SELECT 1 FROM experiments, runs, tags, latest_metrics LIMIT 0")

    def search_experiments(self) -> list[Experiment]:
        rows = self._db.execute(
            "SELECT experiment_id, name, lifecycle_stage FROM experiments WHERE lifecycle_stage = 'active' "
            "ORDER BY creation_time DESC, experiment_id"  # MLflow's default order
        )
        return [Experiment(str(i), n, s) for i, n, s in rows]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        row = self._db.execute(
            "SELECT experiment_id, name, lifecycle_stage FROM experiments WHERE name = ?", (name,)
        ).fetchone()
        return Experiment(str(row[0]), row[1], row[2]) if row else None

    _RUN_COLUMNS = "run_uuid, experiment_id, name, status, start_time, end_time"

    def get_run(self, run_id: str) -> Run:
        row = self._db.execute(f"SELECT {self._RUN_COLUMNS} FROM runs WHERE run_uuid = ?", (run_id,)).fetchone()
        if row is None:
            raise LookupError(f"no run {run_id!r} in this store")
        return self._runs([row])[0]

    def runs_tagged(
        self, experiment_ids: list[str], key: str, value: str, *, newest_first: bool, limit: int | None = None
    ) -> list[Run]:
        if not experiment_ids:
            return []
        marks = ", ".join("?" * len(experiment_ids))
        # MLflow orders by the requested column, then by run id; a run without a start time last
        order = "DESC" if newest_first else "ASC"
        rows = self._db.execute(
            f"SELECT {self._RUN_COLUMNS} FROM runs WHERE lifecycle_stage = 'active' AND experiment_id IN ({marks}) "
            "AND run_uuid IN (SELECT run_uuid FROM tags WHERE key = ? AND value = ?) "
            f"ORDER BY start_time IS NULL, start_time {order}, run_uuid" + (" LIMIT ?" if limit is not None else ""),
            [*(int(e) for e in experiment_ids), key, value, *([limit] if limit is not None else [])],
        ).fetchall()
        return self._runs(rows)

    def _runs(self, rows: list[Any]) -> list[Run]:
        if not rows:
            return []
        ids = [r[0] for r in rows]
        marks = ", ".join("?" * len(ids))
        tags: dict[str, dict[str, str]] = {i: {} for i in ids}
        for run_id, k, v in self._db.execute(f"SELECT run_uuid, key, value FROM tags WHERE run_uuid IN ({marks})", ids):
            tags[run_id][k] = v
        metrics: dict[str, dict[str, float]] = {i: {} for i in ids}
        for run_id, k, v, is_nan in self._db.execute(
            f"SELECT run_uuid, key, value, is_nan FROM latest_metrics WHERE run_uuid IN ({marks})", ids
        ):
            metrics[run_id][k] = float("nan") if is_nan else float(v)
        return [
            Run(RunInfo(i, str(e), n or "", s, t0, t1), RunData(metrics[i], tags[i])) for i, e, n, s, t0, t1 in rows
        ]


class MlflowReader:
    """The same queries through MLflow's client (servers and other databases)."""

    def __init__(self, tracking_uri: str):
        from mlflow import MlflowClient

        self._client: MlflowClient = MlflowClient(tracking_uri)

    def search_experiments(self) -> list[Experiment]:
        return [Experiment(e.experiment_id, e.name, e.lifecycle_stage) for e in self._client.search_experiments()]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        e = self._client.get_experiment_by_name(name)
        return Experiment(e.experiment_id, e.name, e.lifecycle_stage) if e is not None else None

    def get_run(self, run_id: str) -> Run:
        from mlflow.exceptions import MlflowException

        try:
            return _from_mlflow(self._client.get_run(run_id))
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                raise LookupError(f"no run {run_id!r} in this store") from None
            raise

    def runs_tagged(
        self, experiment_ids: list[str], key: str, value: str, *, newest_first: bool, limit: int | None = None
    ) -> list[Run]:
        if not experiment_ids:
            return []
        runs: list[Run] = []
        token = None
        while True:
            page = self._client.search_runs(
                experiment_ids,
                filter_string=f"tags.`{key}` = '{value}'",
                max_results=min(limit, 1000) if limit is not None else 1000,
                order_by=[f"attributes.start_time {'DESC' if newest_first else 'ASC'}"],
                page_token=token,
            )
            runs += [_from_mlflow(r) for r in page]
            token = page.token
            if not token or (limit is not None and len(runs) >= limit):
                return runs[:limit] if limit is not None else runs


def _from_mlflow(run: Any) -> Run:
    i = run.info
    info = RunInfo(i.run_id, i.experiment_id, i.run_name or "", i.status, i.start_time, i.end_time)
    return Run(info, RunData(dict(run.data.metrics), dict(run.data.tags)))


def reader(tracking_uri: str) -> StoreReader:
    """The cheapest reader of the store: sqlite directly when it is a readable MLflow file."""
    from ._store import _sqlite_path

    path = _sqlite_path(tracking_uri)
    if path is not None and path.is_file():
        try:
            return SqliteReader(path)
        except sqlite3.Error:
            pass  # not MLflow's schema (or unreadable): MLflow's client says what is wrong
    return MlflowReader(tracking_uri)
