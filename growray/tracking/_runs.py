"""Single MLflow runs on the driver: a sweep's parent run, trial runs closed after the sweep,
the tags and metrics the orchestration reads back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ._params import SEARCHED_PREFIX
from ._recorder import check_status
from ._store import SWEEP_KIND, _client

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = [
    "EXPERIMENT_KIND_TAG",
    "MODEL_TRAINING_KIND",
    "RUNS_VIEW_KEY",
    "SHARED_VIEW_TAG",
    "clear_failure",
    "create_sweep_run",
    "delete_run_tag",
    "experiment_links",
    "finalize_child_run",
    "find_trial_run",
    "finish_run",
    "last_metric",
    "mark_model_training",
    "max_logged_step",
    "run_status",
    "run_tags",
    "runs_view_url",
    "set_run_tags",
    "set_runs_view",
]

#: MLflow's experiment type (``mlflow.experimentKind``); 3.17's UI also needs
#: ``workflowType=machine_learning`` in the address (``runs_view_url``)
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
MODEL_TRAINING_KIND = "custom_model_development"
#: MLflow's shared runs views: an experiment tag per view key
SHARED_VIEW_TAG = "mlflow.sharedViewState."
RUNS_VIEW_KEY = "growray"


def create_sweep_run(
    tracking_uri: str, experiment_id: str, *, run_name: str, tags: dict[str, str], searched: Sequence[str] = ()
) -> str:
    """Create the parent run of a sweep and return its id.

    The run carries ``growray.kind=sweep``, ``growray.sweep=<run_name>`` and
    ``growray.version`` in addition to ``tags`` (which cannot override the kind). The
    experiment is marked as a model-training one and gets the runs view ``growray`` (see
    :func:`set_runs_view`): this sweep's ``searched`` paths and objectives as columns.
    """
    from growray import __version__

    all_tags = {"growray.version": __version__, "growray.sweep": run_name}
    all_tags.update({str(k): str(v) for k, v in tags.items()})
    all_tags["growray.kind"] = SWEEP_KIND
    all_tags["mlflow.runName"] = run_name
    from ._pareto import OBJECTIVES_TAG  # _pareto imports this module

    client = _client(tracking_uri)
    mark_model_training(client, str(experiment_id))
    objectives = [o["metric"] for o in json.loads(all_tags.get(OBJECTIVES_TAG, "[]"))]
    set_runs_view(client, str(experiment_id), searched, objectives or ["val/acc"])
    run = client.create_run(str(experiment_id), tags=all_tags, run_name=run_name)
    return run.info.run_id


def mark_model_training(client: MlflowClient, experiment_id: str) -> None:
    """Tag the experiment as a model-training one, so that MLflow's UI opens it on its runs.

    MLflow 3.17's UI reads the experiment tag ``mlflow.experimentKind``: without it an
    experiment opens on the GenAI overview (traces, an assistant panel), with
    ``custom_model_development`` ("Machine learning" in its experiment-type menu) on the runs
    table. A kind the user chose (set in the UI) is kept.
    """
    exp = client.get_experiment(experiment_id)
    if EXPERIMENT_KIND_TAG not in exp.tags:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, MODEL_TRAINING_KIND)


def set_runs_view(client: MlflowClient, experiment_id: str, searched: Sequence[str], metrics: Sequence[str]) -> None:
    """Store the experiment's runs view ``growray``: runs grouped by sweep (the parent run and
    its trials together, expanded), the searched params and the objectives as the first
    columns. MLflow 3.17 opens it at ``#/experiments/<id>/runs?viewStateShareKey=growray``
    (:func:`runs_view_url`); it is MLflow's "shared view", an experiment tag
    ``mlflow.sharedViewState.<key>`` holding the view as JSON. MLflow keeps each browser's own
    view apart; a shared view cannot expand nested runs, so the runs are grouped instead."""
    columns = [f"params.`{SEARCHED_PREFIX}{p}`" for p in searched] + [f"metrics.`{m}`" for m in metrics]
    view = {
        "groupBy": {"aggregateFunction": "max", "groupByKeys": [{"mode": "tag", "groupByData": "growray.sweep"}]},
        "groupsExpanded": {},
        "selectedColumns": columns,
    }
    client.set_experiment_tag(experiment_id, f"{SHARED_VIEW_TAG}{RUNS_VIEW_KEY}", json.dumps(view))


def runs_view_url(ui_url: str, experiment_id: str) -> str:
    """The UI address that opens an experiment on its runs, in the view of :func:`set_runs_view`
    (``workflowType=machine_learning``: MLflow 3.17 otherwise opens its GenAI overview)."""
    return (
        f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs"
        f"?workflowType=machine_learning&viewStateShareKey={RUNS_VIEW_KEY}"
    )


def experiment_links(tracking_uri: str, ui_url: str) -> list[tuple[str, str]]:
    """``(experiment name, address)`` of every experiment with growray's runs view, the most
    recently updated first: where ``growray ui`` sends the user."""
    client = _client(tracking_uri)
    view = f"{SHARED_VIEW_TAG}{RUNS_VIEW_KEY}"
    experiments = client.search_experiments(order_by=["last_update_time DESC"])
    return [(e.name, runs_view_url(ui_url, e.experiment_id)) for e in experiments if view in e.tags]


def finish_run(tracking_uri: str, run_id: str, status: str = "FINISHED") -> None:
    """End a run (typically the sweep's parent) with FINISHED, FAILED or KILLED."""
    _client(tracking_uri).set_terminated(run_id, check_status(status))


def finalize_child_run(
    tracking_uri: str,
    run_id: str,
    *,
    failed: bool,
    stopped_early: bool = False,
    stopped_at_epoch: int | None = None,
    error: str | None = None,
    status: str | None = None,
) -> None:
    """Close a trial's run from the driver after the sweep, from Ray's verdict on the trial.

    Tune ends a trial inside its ``report`` (a scheduler stopped it, or it reached ``max_t``)
    and gives the trial's thread little or no time before the actor is reused or killed, so
    the trial's own ``close`` may never reach MLflow; a trial whose worker died may have none
    either. A run still RUNNING is therefore closed here: FAILED (tag ``growray.failure``) when
    the trial failed, else FINISHED. Whether it stopped early is the caller's verdict, from the
    trial's last result, never inferred from the run being left open: a trial that completed
    every epoch can be left open too.

    Args:
        tracking_uri: the store.
        run_id: the trial's run.
        failed: Ray reports the trial as errored.
        stopped_early: the trial's last result is from before its last epoch (a scheduler
            stopped it); tags ``growray.stopped_early=true`` on a run left open.
        stopped_at_epoch: with ``stopped_early``, tagged as ``growray.stopped_at_epoch``.
        error: the failure, tagged as ``growray.failure``.
        status: the run's status, when the caller read it already (:func:`child_run_statuses`);
            a FINISHED run of a trial that did not fail is then left as it is without a read.
    """
    if status is None:
        status = str(_client(tracking_uri).get_run(run_id).info.status)
    elif not failed and status != "RUNNING":
        return  # nothing to change (the common case: the trial closed its run)
    client = _client(tracking_uri)
    if failed:
        if error:
            client.set_tag(run_id, "growray.failure", error[:5000])
        if status != "FAILED":
            client.set_terminated(run_id, status="FAILED")
    elif status == "RUNNING":
        if stopped_early:
            tags = {"growray.stopped_early": "true"}
            if stopped_at_epoch is not None:
                tags["growray.stopped_at_epoch"] = str(stopped_at_epoch)
            set_run_tags(tracking_uri, run_id, tags)
        client.set_terminated(run_id, status="FINISHED")


def child_run_statuses(tracking_uri: str, experiment_id: str, parent_run_id: str) -> dict[str, str]:
    """``{run id: status}`` of every run nested under ``parent_run_id`` (one query for a sweep's
    trials, read from sqlite directly when the store is a local file)."""
    from ._reader import reader

    runs = reader(tracking_uri).runs_tagged([experiment_id], "mlflow.parentRunId", parent_run_id, newest_first=False)
    return {r.info.run_id: r.info.status for r in runs}


def max_logged_step(tracking_uri: str, run_id: str, key: str) -> int:
    """The largest step at which ``key`` was logged in the run (-1 if never)."""
    history = _client(tracking_uri).get_metric_history(run_id, key)
    return max((m.step for m in history), default=-1)


def last_metric(tracking_uri: str, run_id: str, key: str) -> float | None:
    """The value of metric ``key`` at the run's largest step (the latest logged of those,
    when one step holds several), or None if the run never logged it.

    Raises:
        ValueError: the store has no run ``run_id``.
    """
    from mlflow.exceptions import MlflowException

    client = _client(tracking_uri)
    try:
        client.get_run(run_id)  # the history of an unknown run is empty, not an error
    except MlflowException as exc:
        raise ValueError(f"no MLflow run {run_id!r} in {tracking_uri}: {exc.message}") from None
    history = client.get_metric_history(run_id, key)
    if not history:
        return None
    return float(max(history, key=lambda m: (m.step, m.timestamp)).value)


def set_run_tags(tracking_uri: str, run_id: str, tags: dict[str, str]) -> None:
    """Set tags on an existing run (e.g. ``growray.pareto`` on the trials of a front)."""
    from mlflow.entities import RunTag

    _client(tracking_uri).log_batch(run_id, tags=[RunTag(k, str(v)) for k, v in tags.items()])


def run_tags(tracking_uri: str, run_id: str) -> dict[str, str]:
    """The tags of a run."""
    return dict(_client(tracking_uri).get_run(run_id).data.tags)


def run_status(tracking_uri: str, run_id: str) -> str:
    """A run's status: RUNNING, FINISHED, FAILED or KILLED."""
    return str(_client(tracking_uri).get_run(run_id).info.status)


def delete_run_tag(tracking_uri: str, run_id: str, key: str) -> None:
    """Remove tag ``key`` from a run, if it has it."""
    client = _client(tracking_uri)
    if key in client.get_run(run_id).data.tags:
        client.delete_tag(run_id, key)


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
