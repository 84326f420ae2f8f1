"""MLflow side of the growth report: linked baseline runs, and every arm's run of a sweep read back.

``growray report`` and the sweep's end build the same report from what this module reads
(:func:`sweep_arm_runs`): one :class:`ArmRun` per child run of the sweep's parent run, with
its last metrics, its best accuracies, the curves the report plots (validation accuracy and
cumulative training FLOPs by step, the training loss by step) and its growth events.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._mlflow import MlflowRecorder

__all__ = [
    "ArmRun",
    "finished_baseline",
    "link_baseline",
    "open_baseline_run",
    "resolve_sweep_run",
    "sweep_arm_runs",
]

#: tag of a linked baseline run: its arm (dense_target, compute_matched, static_sparse)
BASELINE_TAG = "growray.baseline"
#: tag of a linked baseline run: the grown run it was trained from
GROWN_TAG = "growray.grown_run_id"
_CURVES = ("val/acc", "train/acc", "cost/train_flops", "train/loss")
_RUN_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class ArmRun:
    """One run of a growth sweep, as the growth report sees it.

    Attributes:
        run_id: the MLflow run.
        status: the run's MLflow status.
        arm: small_static | grown | random_expansion | dense_target | compute_matched | static_sparse
            (``baselines.arm``).
        variant: the searched values besides the arm and the seed (``growth.trigger.start_step=40``);
            a linked run has its grown run's.
        seed: the experiment seed.
        grown_run_id: for a linked arm, the grown run it belongs to.
        metrics: each metric's last value.
        curves: ``key -> [(step, value), ...]`` for val/acc, train/acc, cost/train_flops, train/loss.
        events: the run's growth events (``growth_events.json``), oldest first.
        wall_seconds: the run's wall time (end - start), None while it runs.
    """

    run_id: str
    status: str
    arm: str
    variant: str
    seed: str
    grown_run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    wall_seconds: float | None = None


def open_baseline_run(tracking_uri: str, grown_run_id: str, arm: str) -> MlflowRecorder:
    """A new run for a linked baseline ``arm`` of ``grown_run_id``, nested under the same sweep."""
    from mlflow import MlflowClient

    from growray import __version__

    grown = MlflowClient(tracking_uri).get_run(grown_run_id)
    tags = {
        "growray.kind": "baseline",
        BASELINE_TAG: arm,
        GROWN_TAG: grown_run_id,
        "growray.version": __version__,
    }
    for key in ("growray.sweep", "growray.searched"):
        if key in grown.data.tags:
            tags[key] = grown.data.tags[key]
    name = grown.data.tags.get("mlflow.runName") or grown_run_id[:8]
    return MlflowRecorder(
        tracking_uri,
        grown.info.experiment_id,
        run_name=f"{arm}-{name}",
        parent_run_id=grown.data.tags.get("mlflow.parentRunId"),
        tags=tags,
    )


def link_baseline(tracking_uri: str, grown_run_id: str, arm: str, run_id: str, metrics: dict[str, float]) -> None:
    """Tag the grown run with its linked baseline run and copy the baseline's accuracies onto it."""
    import time

    from mlflow import MlflowClient
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    MlflowClient(tracking_uri).log_batch(
        grown_run_id,
        metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items()],
        tags=[RunTag(f"growray.{arm}_run_id", run_id)],
    )


def finished_baseline(tracking_uri: str, grown_run_id: str, arm: str) -> dict[str, float] | None:
    """The ``baselines/<arm>/*`` metrics a finished linked run of ``grown_run_id`` already copied
    onto it, or None (a trial that restarts after its fit does not train that arm twice)."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    grown = client.get_run(grown_run_id)
    linked = grown.data.tags.get(f"growray.{arm}_run_id")
    if not linked or client.get_run(linked).info.status != "FINISHED":
        return None
    prefix = f"baselines/{arm}/"
    got = {k: float(v) for k, v in grown.data.metrics.items() if k.startswith(prefix)}
    return got or None


def resolve_sweep_run(tracking_uri: str, target: str) -> str:
    """The sweep (parent) run id of ``target``: a sweep run id, a trial's run id (its parent),
    or an MLflow experiment name (its newest sweep).

    Raises:
        ValueError: no such run or experiment, or the experiment has no sweep.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from ._store import latest_sweep_run

    client = MlflowClient(tracking_uri)
    if _RUN_ID.match(target):
        try:
            run = client.get_run(target)
        except MlflowException:
            raise ValueError(f"no MLflow run {target!r} in {tracking_uri}") from None
        return run.data.tags.get("mlflow.parentRunId") or run.info.run_id
    sweep = latest_sweep_run(tracking_uri, target)
    if sweep is None:
        raise ValueError(f"MLflow experiment {target!r} in {tracking_uri} has no sweep run yet")
    return str(sweep.info.run_id)


def _searched(tags: dict[str, str]) -> dict[str, Any]:
    """The values the searcher chose for a trial (its ``growray.searched`` tag)."""
    try:
        values = json.loads(tags.get("growray.searched") or "{}")
    except json.JSONDecodeError:
        return {}
    return values if isinstance(values, dict) else {}


def _value(path: str, searched: dict[str, Any], params: dict[str, str]) -> str | None:
    """A run's value of config ``path``: searched, else its param (plain, or ``search.<path>``)."""
    if path in searched:
        return str(searched[path])
    return params.get(path, params.get(f"search.{path}"))


def _variant(searched: dict[str, Any]) -> str:
    skip = {"seed", "baselines.arm"}
    return ", ".join(f"{k}={v}" for k, v in sorted(searched.items()) if k not in skip)


def _events(client: Any, run_id: str) -> list[dict[str, Any]]:
    names = {a.path for a in client.list_artifacts(run_id)}
    if "growth_events.json" not in names:
        return []
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    with tempfile.TemporaryDirectory() as d:
        data = json.loads(Path(client.download_artifacts(run_id, "growth_events.json", d)).read_text())
    return [e for e in data if isinstance(e, dict)] if isinstance(data, list) else []


def sweep_arm_runs(tracking_uri: str, parent_run_id: str) -> list[ArmRun]:
    """Every child run of the sweep ``parent_run_id`` with a ``baselines`` arm, oldest first."""
    from mlflow import MlflowClient

    from ._store import child_runs

    client = MlflowClient(tracking_uri)
    out = []
    for run in child_runs(tracking_uri, parent_run_id):
        tags, params = run.data.tags, run.data.params
        searched = _searched(tags)
        arm = tags.get(BASELINE_TAG) or _value("baselines.arm", searched, params)
        if not arm:
            continue
        rid = run.info.run_id
        curves = {key: [(int(m.step), float(m.value)) for m in client.get_metric_history(rid, key)] for key in _CURVES}
        out.append(
            ArmRun(
                run_id=rid,
                status=run.info.status,
                arm=arm,
                variant=_variant(searched),
                seed=_value("seed", searched, params) or "?",
                grown_run_id=tags.get(GROWN_TAG),
                metrics={k: float(v) for k, v in run.data.metrics.items()},
                curves={k: sorted(v) for k, v in curves.items()},
                events=_events(client, rid),
                wall_seconds=(run.info.end_time - run.info.start_time) / 1000 if run.info.end_time else None,
            )
        )
    return out
