"""The MLflow store on the driver: schema, experiments, sweep (parent) runs, listings.

Call :func:`ensure_store` on the driver before any trial starts: concurrent first use of
a new sqlite file by several workers corrupts its schema (STACK_NOTES §5, pitfall 1).
"""

from __future__ import annotations

import re
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from ._recorder import check_status

__all__ = [
    "absolute_tracking_uri",
    "child_runs",
    "clear_failure",
    "create_sweep_run",
    "default_artifact_location",
    "ensure_store",
    "finalize_child_run",
    "find_trial_run",
    "finish_run",
    "get_or_create_experiment",
    "latest_sweep_run",
    "list_sweeps",
    "max_logged_step",
    "run_tags",
    "set_run_tags",
]

SWEEP_KIND = "sweep"
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
    """
    path = _sqlite_path(tracking_uri)
    if path is None or path.is_absolute():
        return tracking_uri
    query = tracking_uri.split("?", 1)[1] if "?" in tracking_uri else ""
    return f"sqlite:///{path.resolve()}" + (f"?{query}" if query else "")


def _client(tracking_uri: str):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri)


def ensure_store(tracking_uri: str) -> None:
    """Make sure the store exists and answers; create the sqlite schema if needed.

    For sqlite, the parent folders of the database file are created and the schema is
    migrated here, once, on the driver. For ``http(s)`` URIs the server's ``/health`` is
    checked. Raises ``ConnectionError`` naming the URI when the server does not answer.
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
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    _client(tracking_uri).search_experiments(max_results=1)


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


def create_sweep_run(tracking_uri: str, experiment_id: str, *, run_name: str, tags: dict[str, str]) -> str:
    """Create the parent run of a sweep and return its id.

    The run carries ``growray.kind=sweep``, ``growray.sweep=<run_name>`` and
    ``growray.version`` in addition to ``tags`` (which cannot override the kind).
    """
    from growray import __version__

    all_tags = {"growray.version": __version__, "growray.sweep": run_name}
    all_tags.update({str(k): str(v) for k, v in tags.items()})
    all_tags["growray.kind"] = SWEEP_KIND
    all_tags["mlflow.runName"] = run_name
    run = _client(tracking_uri).create_run(str(experiment_id), tags=all_tags, run_name=run_name)
    return run.info.run_id


def finish_run(tracking_uri: str, run_id: str, status: str = "FINISHED") -> None:
    """End a run (typically the sweep's parent) with FINISHED, FAILED or KILLED."""
    _client(tracking_uri).set_terminated(run_id, check_status(status))


def _search_all(client, experiment_ids: list[str], filter_string: str, order_by: list[str]):
    runs, token = [], None
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


def child_runs(tracking_uri: str, parent_run_id: str) -> list[Any]:
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

    Args:
        tracking_uri: the store.
        experiment: an experiment name; None lists the sweeps of every active experiment.

    Returns:
        dicts with ``experiment``, ``experiment_id``, ``run_id``, ``name``, ``status``,
        ``start_time`` and ``end_time`` (local ``YYYY-mm-dd HH:MM:SS`` or None),
        ``n_trials`` (child runs) and ``best_val_acc`` (the parent's ``best/val_acc``
        metric, or None).

    Raises:
        ValueError: ``experiment`` does not exist; the message lists the names that do.
    """
    client = _client(tracking_uri)
    if experiment is None:
        experiments = client.search_experiments()
    else:
        exp = client.get_experiment_by_name(experiment)
        if exp is None or exp.lifecycle_stage == "deleted":
            names = sorted(e.name for e in client.search_experiments())
            raise ValueError(
                f"no experiment {experiment!r} in {tracking_uri}; existing: {', '.join(names) or '(none)'}"
            )
        experiments = [exp]
    if not experiments:
        return []
    names = {e.experiment_id: e.name for e in experiments}
    parents = _search_all(
        client,
        list(names),
        f"tags.`growray.kind` = '{SWEEP_KIND}'",
        ["attributes.start_time DESC"],
    )
    out = []
    for run in parents:
        info = run.info
        out.append(
            {
                "experiment": names.get(info.experiment_id, info.experiment_id),
                "experiment_id": info.experiment_id,
                "run_id": info.run_id,
                "name": info.run_name,
                "status": info.status,
                "start_time": _fmt_time(info.start_time),
                "end_time": _fmt_time(info.end_time),
                "n_trials": len(child_runs(tracking_uri, info.run_id)),
                "best_val_acc": run.data.metrics.get("best/val_acc"),
            }
        )
    return out


def finalize_child_run(tracking_uri: str, run_id: str, *, failed: bool, error: str | None = None) -> None:
    """Close a trial's run from the driver after the sweep.

    A trial stopped early by the scheduler never reaches its own ``close``, and one whose
    worker died may have none either: a run still RUNNING gets FINISHED (tag
    ``growray.stopped_early``) or FAILED (tag ``growray.failure``) from Ray's verdict.
    """
    client = _client(tracking_uri)
    run = client.get_run(run_id)
    if failed:
        if error:
            client.set_tag(run_id, "growray.failure", error[:5000])
        if run.info.status != "FAILED":
            client.set_terminated(run_id, status="FAILED")
    elif run.info.status == "RUNNING":
        client.set_tag(run_id, "growray.stopped_early", "true")
        client.set_terminated(run_id, status="FINISHED")


def max_logged_step(tracking_uri: str, run_id: str, key: str) -> int:
    """The largest step at which ``key`` was logged in the run (-1 if never)."""
    history = _client(tracking_uri).get_metric_history(run_id, key)
    return max((m.step for m in history), default=-1)


def set_run_tags(tracking_uri: str, run_id: str, tags: dict[str, str]) -> None:
    """Set tags on an existing run (e.g. ``growray.pareto`` on the trials of a front)."""
    from mlflow.entities import RunTag

    _client(tracking_uri).log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def latest_sweep_run(tracking_uri: str, experiment: str) -> Any:
    """The newest sweep (parent) run of an MLflow experiment, or None."""
    client = _client(tracking_uri)
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        names = sorted(e.name for e in client.search_experiments())
        raise ValueError(
            f"no MLflow experiment {experiment!r} in {tracking_uri}; experiments: {', '.join(names) or '(none)'}"
        )
    runs = client.search_runs(
        [exp.experiment_id],
        f"tags.`growray.kind` = '{SWEEP_KIND}'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    return runs[0] if runs else None


def run_tags(tracking_uri: str, run_id: str) -> dict[str, str]:
    """The tags of a run."""
    return dict(_client(tracking_uri).get_run(run_id).data.tags)


def find_trial_run(tracking_uri: str, experiment_id: str, parent_run_id: str, trial_name: str) -> str | None:
    """The run a trial of this sweep already created (a trial restarted without a checkpoint
    continues it instead of opening a second one), or None."""
    runs = _client(tracking_uri).search_runs(
        [experiment_id],
        f"tags.mlflow.parentRunId = '{parent_run_id}' and tags.`growray.trial` = '{trial_name}'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None


def clear_failure(tracking_uri: str, run_id: str) -> None:
    """A retried trial that continues its run: keep an earlier attempt's ``growray.failure``
    as ``growray.recovered_failure``, so a finished run does not look failed."""
    client = _client(tracking_uri)
    tags = client.get_run(run_id).data.tags
    if "growray.failure" in tags:
        client.set_tag(run_id, "growray.recovered_failure", tags["growray.failure"])
        client.delete_tag(run_id, "growray.failure")
