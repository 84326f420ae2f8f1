"""MlflowRecorder: the Recorder that writes one MLflow run through ``MlflowClient``.

Only ``MlflowClient`` is used, never the fluent API (``mlflow.start_run``,
``mlflow.set_experiment``): the fluent API keeps process-global state, and
``set_experiment`` leaks ``MLFLOW_EXPERIMENT_ID`` into Ray workers (STACK_NOTES §5).
mlflow is imported in the constructor, so importing this module stays cheap.
"""

from __future__ import annotations

import json
import logging
import math
import os
import posixpath
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from typing import IO, TYPE_CHECKING, Any, TypeVar

from ._recorder import _ClosingMixin, check_status, close_figure, flatten_params

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.store.artifact.artifact_repo import ArtifactRepository

__all__ = ["MlflowRecorder", "dict_text"]

_T = TypeVar("_T")

log = logging.getLogger(__name__)

# MLflow's limits (mlflow.utils.validation); read from MLflow when it has them.
_LIMIT_DEFAULTS = {
    "MAX_METRICS_PER_BATCH": 1000,
    "MAX_PARAMS_TAGS_PER_BATCH": 100,
    "MAX_PARAM_VAL_LENGTH": 6000,
    "MAX_TAG_VAL_LENGTH": 8000,
}

NONFINITE_TAG = "growray.n_nonfinite_metrics_skipped"


def _write_bytes(path: str, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def _limits() -> dict[str, int]:
    from mlflow.utils import validation

    return {k: int(getattr(validation, k, v)) for k, v in _LIMIT_DEFAULTS.items()}


def _chunks(items: list[_T], size: int) -> Iterator[list[_T]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def dict_text(obj: Any, artifact_file: str) -> str:
    """``obj`` as MLflow's ``log_dict`` writes it: YAML for a ``.yaml``/``.yml`` file, else JSON
    with ``indent=2`` (objects it cannot serialize as ``str``).

    YAML goes through libyaml's safe dumper when PyYAML has it (about 10x faster than the pure
    Python one), block style, sorted keys. One departure: a tuple is written as a list, which
    ``yaml.safe_load`` reads back (MLflow's full dumper writes ``!!python/tuple``, which it
    refuses). An object the safe dumper cannot represent at all is written by PyYAML's full
    dumper, as MLflow would."""
    if os.path.splitext(artifact_file)[1] not in (".yml", ".yaml"):
        return json.dumps(obj, indent=2, default=str)
    import yaml

    safe: Any = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
    try:
        return str(yaml.dump(obj, Dumper=safe, indent=2, default_flow_style=False))
    except yaml.representer.RepresenterError:
        return str(yaml.dump(obj, indent=2, default_flow_style=False))


class MlflowRecorder(_ClosingMixin):
    """Records one MLflow run: a new one, or an existing one continued by ``run_id``.

    Args:
        tracking_uri: e.g. ``sqlite:////abs/mlflow.db`` or ``http://127.0.0.1:5000``.
            Use an absolute sqlite path: Ray workers run in their own working directory.
        experiment_id: the experiment that holds the run (see ``get_or_create_experiment``).
        run_name: name of a new run (``mlflow.runName``); ignored when continuing.
        parent_run_id: the sweep's parent run; sets ``mlflow.parentRunId`` on a new run,
            which nests it under the parent in the UI.
        run_id: continue this existing run (a restored trial continues the SAME run): its
            status is set back to RUNNING and its params are read so that re-logging the
            same values is harmless.
        tags: set on the run at once.

    Metrics are buffered until :meth:`flush` and written with ``log_batch`` in chunks of at
    most 1000. NaN and +-inf values are skipped (MLflow's UI cannot plot them); their count
    is in :attr:`n_nonfinite` and, if non-zero, in the tag
    ``growray.n_nonfinite_metrics_skipped`` at close. Param values longer than MLflow's
    limit are truncated. Logging a param again with the same value is a no-op; with a
    different value it is skipped with a warning (MLflow would raise).

    Metric keys may contain ``/`` and ``.`` (``growth/width/hidden.0``); MLflow accepts
    letters, digits, ``_ - . / space`` and ``:``.

    Artifacts go straight to the run's artifact repository, opened once from the run's
    artifact URI (MLflow's client reads the whole run from the store to find it, on each
    run's first artifact); ``log_dict`` writes what MLflow's would.
    """

    def __init__(
        self,
        tracking_uri: str,
        experiment_id: str,
        *,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        run_id: str | None = None,
        tags: dict[str, str] | None = None,
    ) -> None:
        from mlflow import MlflowClient

        self.tracking_uri = tracking_uri
        self.experiment_id = str(experiment_id)
        self._client = MlflowClient(tracking_uri)
        self._limits = _limits()
        self._buffer: list[tuple[str, float, int, int]] = []  # key, value, timestamp ms, step
        self._closed = False
        self._repo: ArtifactRepository | None = None
        self.n_nonfinite = 0

        if run_id is not None:
            run = self._client.get_run(run_id)  # raises if it does not exist
            if run.info.experiment_id != self.experiment_id:
                raise ValueError(
                    f"run {run_id} belongs to experiment {run.info.experiment_id}, not "
                    f"{self.experiment_id}; pass the run's experiment id to continue it"
                )
            self.run_id: str = run_id
            self._artifact_uri: str = run.info.artifact_uri
            self._params = dict(run.data.params)
            prior = run.data.tags.get(NONFINITE_TAG)
            self.n_nonfinite = int(prior) if prior and prior.isdigit() else 0
            self._client.update_run(run_id, status="RUNNING")
            if tags:
                self.set_tags(tags)
        else:
            all_tags = {str(k): str(v) for k, v in (tags or {}).items()}
            if parent_run_id:
                all_tags["mlflow.parentRunId"] = parent_run_id
            if run_name:
                all_tags["mlflow.runName"] = run_name
            run = self._client.create_run(self.experiment_id, tags=all_tags, run_name=run_name)
            self.run_id = run.info.run_id
            self._artifact_uri = run.info.artifact_uri
            self._params = {}

    @property
    def client(self) -> MlflowClient:
        """The ``MlflowClient`` this recorder writes through."""
        return self._client

    # --- Recorder ---------------------------------------------------------------
    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        self._check_open()

        limit = self._limits["MAX_PARAM_VAL_LENGTH"]
        new: dict[str, str] = {}
        for key, value in flatten_params(params).items():
            if len(value) > limit:
                log.warning("param %r truncated from %d to %d characters", key, len(value), limit)
                value = value[:limit]
            old = self._params.get(key, new.get(key))
            if old is None:
                new[key] = value
            elif old != value:
                warnings.warn(
                    f"param {key!r} was already logged as {old!r} on run {self.run_id}; the "
                    f"new value {value!r} is skipped (MLflow params are immutable; log "
                    f"changing values as metrics or tags)",
                    stacklevel=2,
                )
        items = [Param(k, v) for k, v in new.items()]
        for chunk in _chunks(items, self._limits["MAX_PARAMS_TAGS_PER_BATCH"]):
            self._client.log_batch(self.run_id, params=chunk)
        self._params.update(new)

    def log_metrics(self, metrics: dict[str, float], step: int, timestamp_ms: int | None = None) -> None:
        """Buffer ``metrics`` at ``step`` (time: now, or ``timestamp_ms`` when they were measured)."""
        self._check_open()
        now = int(time.time() * 1000) if timestamp_ms is None else int(timestamp_ms)
        for key, value in metrics.items():
            value = float(value)
            if not math.isfinite(value):
                self.n_nonfinite += 1
                continue
            self._buffer.append((key, value, now, int(step)))

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        self._check_open()

        limit = self._limits["MAX_TAG_VAL_LENGTH"]
        items = [RunTag(str(k), str(v)[:limit]) for k, v in tags.items()]
        for chunk in _chunks(items, self._limits["MAX_PARAMS_TAGS_PER_BATCH"]):
            self._client.log_batch(self.run_id, tags=chunk)

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        """Write ``obj`` as YAML (``.yaml``/``.yml``) or else JSON to the run, as MLflow's
        ``log_dict`` does (JSON with ``indent=2``, objects it cannot serialize as ``str``)."""
        self.log_text(dict_text(obj, artifact_file), artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self._check_open()
        self._log_file(artifact_file, lambda f: f.write(text))

    def log_bytes(self, data: bytes, artifact_file: str) -> None:
        """Store ``data`` (a rendered figure, say) as ``artifact_file``."""
        self._check_open()
        self._log_path(artifact_file, lambda path: _write_bytes(path, data))

    def log_figure(self, fig: Any, artifact_file: str) -> None:
        """Save a matplotlib figure to the run (format from the extension), then close it."""
        self._check_open()
        try:
            if hasattr(fig, "savefig"):
                self._log_path(artifact_file, fig.savefig)
            else:  # a figure of another library: MLflow knows how to save it
                self._client.log_figure(self.run_id, fig, artifact_file)
        finally:
            close_figure(fig)

    def _log_file(self, artifact_file: str, write: Callable[[IO[str]], Any]) -> None:
        def save(path: str) -> None:
            with open(path, "w", encoding="utf-8") as f:
                write(f)

        self._log_path(artifact_file, save)

    def _log_path(self, artifact_file: str, save: Callable[[str], Any]) -> None:
        """``save(path)`` writes a file, which is stored as ``artifact_file`` (run-relative)."""
        norm = posixpath.normpath(artifact_file)
        folder = posixpath.dirname(norm) or None
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, posixpath.basename(norm))
            save(path)
            self._artifacts().log_artifact(path, folder)

    def _artifacts(self) -> ArtifactRepository:
        if self._repo is None:
            from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
            from mlflow.utils.uri import add_databricks_profile_info_to_artifact_uri

            uri = add_databricks_profile_info_to_artifact_uri(self._artifact_uri, self.tracking_uri)
            self._repo = get_artifact_repository(uri, tracking_uri=self.tracking_uri)
        return self._repo

    def flush(self) -> None:
        """Write the buffered metrics (``log_batch``, at most 1000 per call)."""
        from mlflow.entities import Metric

        size = self._limits["MAX_METRICS_PER_BATCH"]
        while self._buffer:
            chunk = self._buffer[:size]
            self._client.log_batch(self.run_id, metrics=[Metric(k, v, ts, s) for k, v, ts, s in chunk])
            del self._buffer[: len(chunk)]  # only what was written; a failure keeps the rest

    def close(self, status: str = "FINISHED") -> None:
        """Flush and end the run with ``status`` (FINISHED, FAILED or KILLED). Idempotent."""
        check_status(status)
        if self._closed:
            return
        self.flush()
        if self.n_nonfinite:
            self.set_tags({NONFINITE_TAG: str(self.n_nonfinite)})
        self._client.set_terminated(self.run_id, status)
        self._closed = True

    def discard_pending(self) -> int:
        """Drop buffered metrics (a crashed attempt's partial epoch, which its retry re-logs
        from the last checkpoint); returns how many were dropped."""
        n = len(self._buffer)
        self._buffer.clear()
        return n

    @property
    def n_pending(self) -> int:
        """Metrics buffered and not yet written."""
        return len(self._buffer)

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(
                f"MlflowRecorder for run {self.run_id} is closed; create a new "
                f"MlflowRecorder(..., run_id={self.run_id!r}) to continue the run"
            )

    def __repr__(self) -> str:
        return (
            f"MlflowRecorder(tracking_uri={self.tracking_uri!r}, "
            f"experiment_id={self.experiment_id!r}, run_id={self.run_id!r})"
        )
