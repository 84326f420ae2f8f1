"""MLflow side of retraining a searched architecture: read a search run, open a linked run.

The retrained network gets its own run, nested under the same sweep as the search run and
linked both ways: ``growray.search_run_id`` on the retrain run, ``growray.retrain_run_id``
on the search run (which also receives ``nas/retrain_val_acc`` so the UI compares searches
by their retrained accuracy).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ._mlflow import MlflowRecorder

__all__ = ["SearchRun", "link_retrain", "load_search_run", "open_retrain_run", "run_config", "search_run_in_hand"]


class SearchRun:
    """What a retrain needs from a finished (or stopped) NAS trial's run."""

    def __init__(self, run: Any, config: dict[str, Any], genotype: dict[str, Any]):
        self.run = run
        self.config = config
        self.genotype = genotype

    @property
    def run_id(self) -> str:
        return self.run.info.run_id

    @property
    def experiment_id(self) -> str:
        return self.run.info.experiment_id

    @property
    def parent_run_id(self) -> str | None:
        return self.run.data.tags.get("mlflow.parentRunId")


def _read_artifacts(tracking_uri: str, run_id: str, names: tuple[str, ...], why: str) -> tuple[Any, dict[str, str]]:
    """``(run, {name: text})`` of small artifacts of a run; ValueError naming what is missing."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # small files
    client = MlflowClient(tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise ValueError(f"no MLflow run {run_id!r} in {tracking_uri}: {exc.message}") from None
    listed = {a.path for a in client.list_artifacts(run_id)}
    missing = [n for n in names if n not in listed]
    if missing:
        kind = run.data.tags.get("growray.kind", "?")
        raise ValueError(f"run {run_id} (growray.kind={kind}) has no {' or '.join(missing)}: {why}")
    with tempfile.TemporaryDirectory() as d:
        return run, {n: Path(client.download_artifacts(run_id, n, d)).read_text() for n in names}


def load_search_run(tracking_uri: str, run_id: str) -> SearchRun:
    """The run's ``config.yaml`` and ``genotype.json`` artifacts; clear errors when absent."""
    run, texts = _read_artifacts(
        tracking_uri,
        run_id,
        ("config.yaml", "genotype.json"),
        "only DARTS/ENAS search runs can be retrained (they log the genotype at every checkpoint)",
    )
    return SearchRun(run, yaml.safe_load(texts["config.yaml"]), json.loads(texts["genotype.json"]))


def run_config(tracking_uri: str, run_id: str) -> dict[str, Any]:
    """The resolved experiment a trial (or sweep) run logged as its ``config.yaml`` artifact.

    Raises:
        ValueError: the run does not exist, has no ``config.yaml``, or it is not a YAML mapping.
    """
    _, texts = _read_artifacts(tracking_uri, run_id, ("config.yaml",), "it is not a growray trial or sweep run")
    cfg = yaml.safe_load(texts["config.yaml"])
    if not isinstance(cfg, dict):
        raise ValueError(f"run {run_id}: config.yaml does not hold a mapping")
    return cfg


def search_run_in_hand(tracking_uri: str, run_id: str, config: dict[str, Any], genotype: dict[str, Any]) -> SearchRun:
    """A search run whose config and genotype the caller already holds (the trial that just
    searched): only the run's record is read, not its artifacts."""
    from mlflow import MlflowClient

    return SearchRun(MlflowClient(tracking_uri).get_run(run_id), config, genotype)


def open_retrain_run(tracking_uri: str, search: SearchRun) -> MlflowRecorder:
    """A new run for the retrained network, nested under the search run's sweep."""
    from growray import __version__

    name = search.run.data.tags.get("mlflow.runName") or search.run_id[:8]
    tags = {
        "growray.kind": "retrain",
        "growray.search_run_id": search.run_id,
        "growray.version": __version__,
    }
    sweep = search.run.data.tags.get("growray.sweep")
    if sweep:
        tags["growray.sweep"] = sweep
    return MlflowRecorder(
        tracking_uri, search.experiment_id, run_name=f"retrain-{name}", parent_run_id=search.parent_run_id, tags=tags
    )


def link_retrain(
    tracking_uri: str, search_run_id: str, retrain_run_id: str, metrics: dict[str, float], step: int
) -> None:
    """Tag the search run with its retrain run and copy the retrained accuracy onto it."""
    import time

    from mlflow import MlflowClient
    from mlflow.entities import Metric, RunTag

    now = int(time.time() * 1000)
    MlflowClient(tracking_uri).log_batch(
        search_run_id,
        metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()],
        tags=[RunTag("growray.retrain_run_id", retrain_run_id)],
    )
