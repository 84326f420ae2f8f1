"""The MLflow store on the driver: URIs, schema, experiments, and the listings of sweeps.

Call :func:`ensure_store` on the driver before any trial starts: concurrent first use of
a new sqlite file by several workers corrupts its schema (STACK_NOTES §5, pitfall 1).
"""

from __future__ import annotations

import fcntl
import json
import re
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from growray.journal import set_journal_mode

from ._reader import reader

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

    from ._reader import Run as ReadRun

__all__ = [
    "SWEEP_KIND",
    "absolute_tracking_uri",
    "child_runs",
    "default_artifact_location",
    "ensure_store",
    "get_or_create_experiment",
    "latest_sweep_run",
    "list_sweeps",
]

SWEEP_KIND = "sweep"
#: how long the journal-mode change waits for a file another process holds (``mlflow ui`` reading)
JOURNAL_LOCK_TIMEOUT_S = 1.0
_PAGE = 1000


def _sqlite_path(tracking_uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other URIs and in-memory dbs)."""
    if not tracking_uri.startswith("sqlite:///"):
        return None
    path = tracking_uri[len("sqlite:///") :].split("?", 1)[0]
    if path in ("", ":memory:"):
        return None
    return Path(path)


def _is_http(tracking_uri: str) -> bool:
    return tracking_uri.startswith(("http://", "https://"))


def absolute_tracking_uri(tracking_uri: str) -> str:
    """Make a relative sqlite URI absolute (``sqlite:///mlflow.db`` -> ``sqlite:////cwd/mlflow.db``).

    Ray workers run in their own working directory, so a relative sqlite path would give
    every trial a private database. Other URIs are returned unchanged.

    Raises:
        ValueError: ``tracking_uri`` is a plain folder or file name, not a URI.
    """
    if "://" not in tracking_uri:
        raise ValueError(
            f"tracking.uri (--tracking-uri) must be a URI such as sqlite:///mlflow.db or http://127.0.0.1:5000; "
            f"got {tracking_uri!r} "
            "(MLflow 3 no longer supports plain folders)"
        )
    path = _sqlite_path(tracking_uri)
    if path is None or path.is_absolute():
        return tracking_uri
    query = tracking_uri.split("?", 1)[1] if "?" in tracking_uri else ""
    return f"sqlite:///{path.resolve()}" + (f"?{query}" if query else "")


def _client(tracking_uri: str) -> MlflowClient:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri)


def ensure_store(tracking_uri: str, *, journal: bool = False) -> None:
    """Make sure the store exists and answers; create the sqlite schema if needed.

    For sqlite, the parent folders of the database file are created and the schema is
    migrated here, once, on the driver. With ``journal`` (a sweep's driver) the file is also
    put in WAL mode on a local filesystem, the rollback journal elsewhere
    (:mod:`growray.journal`): each of a trial's commits then syncs one file instead of two.

    For ``http(s)`` URIs the server's ``/health`` is checked. Raises ``ConnectionError``
    naming the URI when the server does not answer.
    """
    if _is_http(tracking_uri):
        url = tracking_uri.rstrip("/") + "/health"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                if resp.status != 200:
                    raise ConnectionError(f"HTTP {resp.status}")
        except (OSError, ConnectionError) as exc:
            raise ConnectionError(
                f"the MLflow tracking server at {tracking_uri} does not answer ({exc}); "
                f"start it (e.g. `growray ui`) or pass another --tracking-uri"
            ) from exc
        return
    plain_path = "://" not in tracking_uri and not tracking_uri.startswith("databricks")
    if tracking_uri.startswith("file:") or plain_path:
        raise ValueError(
            f"tracking URI {tracking_uri!r} is a file store, which MLflow 3 keeps in "
            f"maintenance mode; use a database, e.g. 'sqlite:///mlflow.db', or a server URL"
        )
    path = _sqlite_path(tracking_uri)
    if path is None:
        _client(tracking_uri).search_experiments(max_results=1)
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # two processes opening a brand-new sqlite file both run MLflow's schema migration and
        # one fails ("table ... already exists"): the first to take the lock creates the schema
        with open(path.with_name(path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                # the journal mode is set before this process opens the file where it exists
                # (leaving WAL needs the file to itself), else once MLflow has made its schema
                existed = path.exists()
                if journal and existed:
                    set_journal_mode(path, "the MLflow store", lock_timeout_s=JOURNAL_LOCK_TIMEOUT_S)
                _client(tracking_uri).search_experiments(max_results=1)
                if journal and not existed:
                    set_journal_mode(path, "the MLflow store", lock_timeout_s=JOURNAL_LOCK_TIMEOUT_S)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
    except OSError as exc:
        raise ValueError(
            f"cannot open the MLflow store {path}: {exc.strerror or exc} (a read-only or full disk?)"
        ) from exc


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "experiment"


def default_artifact_location(tracking_uri: str, experiment_name: str) -> str | None:
    """Where an experiment's artifacts go: ``file://<db dir>/mlartifacts/<name>`` for sqlite.

    Absolute, so that trials in Ray's working directories and ``mlflow server`` started
    anywhere agree. None for other stores (a server decides for itself).
    """
    path = _sqlite_path(tracking_uri)
    if path is None:
        return None
    return (path.resolve().parent / "mlartifacts" / _slug(experiment_name)).as_uri()


def get_or_create_experiment(tracking_uri: str, name: str) -> str:
    """The id of the active experiment ``name``, created if missing.

    Raises:
        ValueError: an experiment of that name exists but is deleted (MLflow keeps the
            name reserved); the message says how to restore it or to pick another name.
    """
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=default_artifact_location(tracking_uri, name))
        except MlflowException as exc:  # created concurrently by someone else
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise exc
    if exp.lifecycle_stage == "deleted":
        raise ValueError(
            f"experiment {name!r} (id {exp.experiment_id}) in {tracking_uri} is deleted, and "
            f"MLflow keeps its name reserved; restore it with `mlflow experiments restore "
            f"--experiment-id {exp.experiment_id}` (MLFLOW_TRACKING_URI={tracking_uri}) "
            f"or choose another experiment name"
        )
    return exp.experiment_id


def _search_all(client: MlflowClient, experiment_ids: list[str], filter_string: str, order_by: list[str]) -> list[Run]:
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            experiment_ids,
            filter_string=filter_string,
            max_results=_PAGE,
            order_by=order_by,
            page_token=token,
        )
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def child_runs(tracking_uri: str, parent_run_id: str) -> list[Run]:
    """The runs nested under ``parent_run_id`` (``mlflow.entities.Run``), oldest first.

    Children are looked up in the parent's experiment.
    """
    client = _client(tracking_uri)
    parent = client.get_run(parent_run_id)
    return _search_all(
        client,
        [parent.info.experiment_id],
        f"tags.mlflow.parentRunId = '{parent_run_id}'",
        ["attributes.start_time ASC"],
    )


def _fmt_time(ms: int | None) -> str | None:
    if not ms:
        return None
    return datetime.fromtimestamp(ms / 1000).strftime("%Y-%m-%d %H:%M:%S")


def list_sweeps(tracking_uri: str, experiment: str | None = None) -> list[dict[str, Any]]:
    """One dict per sweep (parent run), newest first, for ``growray ls``.

    The numbers are the ones the sweep's final table and its parent run show (one source:
    the parent run's ``best/*`` and ``sweep/*`` metrics, written by the sweep's end).

    Args:
        tracking_uri: the store.
        experiment: an experiment name; None lists the sweeps of every active experiment.

    Returns:
        dicts with ``experiment``, ``experiment_id``, ``run_id``, ``name``, ``status``,
        ``start_time`` and ``end_time`` (local ``YYYY-mm-dd HH:MM:SS`` or None),
        ``objectives`` (``[(metric, mode), ...]`` from the ``growray.objectives`` tag),
        ``n_trials`` (the trial runs, not the retrain runs nested beside them), ``best``
        (one objective: the parent's ``best/<objective>`` metric, or None), ``pareto_size``
        (several objectives: the parent's ``sweep/pareto_size``, or None) and ``result`` (the
        text ``growray ls`` shows: ``val/acc=0.8444``, ``front 3 (val/acc max, cost/params min)``).

    Raises:
        ValueError: ``experiment`` does not exist; the message lists the names that do.
    """
    store = reader(tracking_uri)  # sqlite without importing MLflow (``growray ls`` stays light)
    if experiment is None:
        experiments = store.search_experiments()
    else:
        exp = store.get_experiment_by_name(experiment)
        if exp is None or exp.lifecycle_stage == "deleted":
            existing = sorted(e.name for e in store.search_experiments())
            raise ValueError(
                f"no experiment {experiment!r} in {tracking_uri}; existing: {', '.join(existing) or '(none)'}"
            )
        experiments = [exp]
    if not experiments:
        return []
    names = {e.experiment_id: e.name for e in experiments}
    parents = store.runs_tagged(list(names), "growray.kind", SWEEP_KIND, newest_first=True)
    out = []
    for run in parents:
        info = run.info
        objectives = _objectives(run)
        metrics = run.data.metrics
        trials = [
            c
            for c in store.runs_tagged([info.experiment_id], "mlflow.parentRunId", info.run_id, newest_first=False)
            if c.data.tags.get("growray.kind") != "retrain"
        ]
        best = metrics.get(f"best/{objectives[0][0].replace('/', '_')}") if len(objectives) == 1 else None
        pareto_size = metrics.get("sweep/pareto_size") if len(objectives) > 1 else None
        out.append(
            {
                "experiment": names.get(info.experiment_id, info.experiment_id),
                "experiment_id": info.experiment_id,
                "run_id": info.run_id,
                "name": info.run_name,
                "status": info.status,
                "start_time": _fmt_time(info.start_time),
                "end_time": _fmt_time(info.end_time),
                "objectives": objectives,
                "n_trials": len(trials),
                "best": best,
                "pareto_size": pareto_size,
                "result": _result_text(objectives, best, pareto_size),
            }
        )
    return out


def _objectives(run: Run | ReadRun) -> list[tuple[str, str]]:
    """A sweep's ``(metric, mode)`` objectives from its ``growray.objectives`` tag (a sweep
    recorded before the tag: ``val/acc max``)."""
    raw = run.data.tags.get("growray.objectives")
    try:
        parsed = json.loads(raw) if raw else []
        objectives = [(str(o["metric"]), str(o["mode"])) for o in parsed]
    except (ValueError, TypeError, KeyError):
        objectives = []
    return objectives or [("val/acc", "max")]


def _result_text(objectives: list[tuple[str, str]], best: float | None, pareto_size: float | None) -> str:
    if len(objectives) > 1:
        described = ", ".join(f"{m} {d}" for m, d in objectives)
        return f"front {int(pareto_size)} ({described})" if pareto_size is not None else f"no front ({described})"
    return f"{objectives[0][0]}={best:.4f}" if best is not None else ""


def latest_sweep_run(tracking_uri: str, experiment: str) -> ReadRun | None:
    """The newest sweep (parent) run of an MLflow experiment, or None."""
    store = reader(tracking_uri)
    exp = store.get_experiment_by_name(experiment)
    if exp is None:
        names = sorted(e.name for e in store.search_experiments())
        raise ValueError(
            f"no MLflow experiment {experiment!r} in {tracking_uri}; experiments: {', '.join(names) or '(none)'}"
        )
    runs = store.runs_tagged([exp.experiment_id], "growray.kind", SWEEP_KIND, newest_first=True, limit=1)
    return runs[0] if runs else None
