"""MLflow side of ``growray export``: which runs to export, what they hold, the MLflow model,
the registry, and the deployment-time latency recorded beside the training-time one.

The MLflow model is MLflow's ONNX flavour: loading it (``mlflow.pyfunc.load_model``) reads a
protobuf and starts an onnxruntime session, so nothing from the artifact store is unpickled
or executed (a pickled or "model from code" pyfunc would run code found in the store). It
carries a signature (``input``: float32 ``(-1, *input_shape)`` -> ``logits``: float32
``(-1, n_classes)``), an input example from held-out samples, and the export's
``export.json`` as metadata (preprocessing, provenance, measured errors).

Every call uses ``MlflowClient`` on the given store; ``mlflow.onnx.log_model`` and the
registry's resolution of a ``models:/<id>`` source read MLflow's process-wide tracking URI
as well, so :func:`_tracking_uri` points it at the store for those calls and puts back what
was there.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._retrain import run_config
from ._store import SWEEP_KIND, _client, child_runs

__all__ = [
    "ExportSource",
    "ExportTarget",
    "LoggedModel",
    "export_targets",
    "log_onnx_model",
    "read_export_source",
    "record_export_latency",
    "register_model",
]

NETWORK_FILE = "network.json"  # growray.export.NETWORK_ARTIFACT (tracking does not import export)


@dataclass(frozen=True)
class ExportTarget:
    """A run to export, and how it was reached from what the user named."""

    run_id: str
    via: str | None = None  # "best trial of sweep ...", "retrain run of search run ..."


@dataclass(frozen=True)
class ExportSource:
    """What an export reads from a trial's (or retrain) run.

    Attributes:
        run_id: the run.
        tags: its tags (``growray.sweep``, ``growray.trial``, ``growray.kind``, ...).
        params: its params (``cost.latency.*`` is the training-time latency protocol).
        config: its ``config.yaml`` (the resolved experiment), parsed with ``yaml.safe_load``.
        network: its ``network.json`` parsed as JSON (untrusted: ``growray.export.decode_network``
            checks it), or None when the run has none.
        latency_ms: its last ``cost/latency_ms`` (training-time latency), or None.
    """

    run_id: str
    tags: dict[str, str]
    params: dict[str, str]
    config: dict[str, Any]
    network: Any = None
    latency_ms: float | None = None
    provenance: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class LoggedModel:
    """An MLflow model logged on a run (``models:/<model_id>``), and its registry version."""

    model_id: str
    model_uri: str
    registered_name: str | None = None
    version: str | None = None


def _get_run(tracking_uri: str, run_id: str) -> Any:
    from mlflow.exceptions import MlflowException

    try:
        return _client(tracking_uri).get_run(run_id)
    except MlflowException as exc:
        raise ValueError(
            f"no MLflow run {run_id!r} in {tracking_uri}: {exc.message}; "
            "`growray ls` lists the sweeps, the UI their trials"
        ) from None


def _retrained(run: Any, via: str | None) -> ExportTarget:
    """A NAS search run's deployable network is its retrain run's."""
    retrain = run.data.tags.get("growray.retrain_run_id")
    if retrain:
        note = f"retrain run of search run {run.info.run_id}"
        return ExportTarget(retrain, f"{note} ({via})" if via else note)
    return ExportTarget(run.info.run_id, via)


def export_targets(tracking_uri: str, run_id: str, *, pareto: bool = False) -> list[ExportTarget]:
    """The runs ``growray export RUN_ID`` exports.

    A trial or retrain run is itself; a sweep's parent run stands for its best trial
    (``growray.best_run_id``), or with ``pareto`` for every trial tagged ``growray.pareto=true``;
    a NAS search run stands for its retrain run (``growray.retrain_run_id``) when it has one.

    Raises:
        ValueError: no such run; a sweep without a best trial or a front; ``pareto`` for a
            run that is not a sweep.
    """
    run = _get_run(tracking_uri, run_id)
    tags = run.data.tags
    if tags.get("growray.kind") != SWEEP_KIND:
        if pareto:
            raise ValueError(
                f"run {run_id} is a trial (growray.kind={tags.get('growray.kind', '?')}); --pareto takes the run id "
                "of a multi-objective sweep (its parent run, printed by `growray run` and `growray ls`)"
            )
        return [_retrained(run, None)]
    sweep = tags.get("growray.sweep", run_id)
    if pareto:
        front = [r for r in child_runs(tracking_uri, run_id) if r.data.tags.get("growray.pareto") == "true"]
        if not front:
            raise ValueError(
                f"sweep {sweep} (run {run_id}) has no trial tagged growray.pareto=true: it is not a multi-objective "
                "sweep, or it did not finish; export its best trial without --pareto"
            )
        return [_retrained(r, f"Pareto front of sweep {sweep}") for r in front]
    best = tags.get("growray.best_run_id")
    if not best:
        raise ValueError(
            f"sweep {sweep} (run {run_id}) recorded no best trial (interrupted, or every trial failed); "
            "export a trial's run id instead (`growray ui` lists them)"
        )
    return [_retrained(_get_run(tracking_uri, best), f"best trial of sweep {sweep}")]


def read_export_source(tracking_uri: str, run_id: str) -> ExportSource:
    """The run's tags, params, ``config.yaml`` and (when it has one) ``network.json``.

    Raises:
        ValueError: no such run, no ``config.yaml`` (not a growray run), or a ``network.json``
            that is not JSON.
    """
    run = _get_run(tracking_uri, run_id)
    config = run_config(tracking_uri, run_id)
    client = _client(tracking_uri)
    network = None
    if NETWORK_FILE in {a.path for a in client.list_artifacts(run_id)}:
        os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
        with tempfile.TemporaryDirectory() as d:
            text = Path(client.download_artifacts(run_id, NETWORK_FILE, d)).read_text(encoding="utf-8")
        try:
            network = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"run {run_id}: {NETWORK_FILE} is not JSON ({exc})") from None
    latency = run.data.metrics.get("cost/latency_ms")
    return ExportSource(
        run_id=run_id,
        tags=dict(run.data.tags),
        params=dict(run.data.params),
        config=config,
        network=network,
        latency_ms=float(latency) if latency is not None else None,
        provenance={
            "run_id": run_id,
            "experiment_id": str(run.info.experiment_id),
            **{k: v for k, v in run.data.tags.items() if k in _PROVENANCE},
        },
    )


_PROVENANCE = ("growray.sweep", "growray.trial", "growray.kind", "growray.search_run_id", "mlflow.source.git.commit")


@contextlib.contextmanager
def _tracking_uri(uri: str) -> Iterator[None]:
    """MLflow's process-wide tracking URI is ``uri`` inside the block (the flavours' ``log_model``
    read it), and afterwards what it was: the environment variable when nothing set one in
    code, else ``mlflow.set_tracking_uri`` back to the previous value."""
    import mlflow

    saved = os.environ.get("MLFLOW_TRACKING_URI")
    os.environ["MLFLOW_TRACKING_URI"] = uri
    previous = None
    try:
        if mlflow.get_tracking_uri() != uri:  # this process set one with mlflow.set_tracking_uri
            previous = mlflow.get_tracking_uri()
            mlflow.set_tracking_uri(uri)
        yield
    finally:
        if previous is not None:
            mlflow.set_tracking_uri(previous)
        if saved is None:
            os.environ.pop("MLFLOW_TRACKING_URI", None)
        else:
            os.environ["MLFLOW_TRACKING_URI"] = saved


def log_onnx_model(
    tracking_uri: str,
    run_id: str,
    onnx_path: str | Path,
    *,
    input_example: Any,
    output_example: Any,
    output_name: str,
    metadata: dict[str, Any],
    tags: dict[str, str],
) -> LoggedModel:
    """Log the ONNX file as an MLflow model (ONNX flavour) of run ``run_id``.

    Args:
        tracking_uri: the store.
        run_id: the trial's run; the model is its output (the run's status is unchanged).
        onnx_path: the exported ``model.onnx``.
        input_example: a few held-out inputs (numpy, float32).
        output_example: the logits they give (numpy), for the signature.
        output_name: the ONNX output's name.
        metadata: stored in the MLmodel file (the export's ``export.json``).
        tags: the logged model's tags.
    """
    import mlflow
    import mlflow.onnx
    import onnx
    from mlflow.models import infer_signature

    signature = infer_signature(input_example, {output_name: output_example})
    # created here, in the run's experiment: left to itself, log_model files a model under the
    # process's default experiment ("0", artifacts in ./mlruns of the working directory)
    client = _client(tracking_uri)
    experiment_id = _get_run(tracking_uri, run_id).info.experiment_id
    created = client.create_logged_model(experiment_id, name="model", source_run_id=run_id, tags=tags)
    with _tracking_uri(tracking_uri):
        info = mlflow.onnx.log_model(
            onnx.load(str(onnx_path)),
            name="model",
            run_id=run_id,
            model_id=created.model_id,
            signature=signature,
            input_example=input_example,
            metadata=metadata,
            pip_requirements=mlflow.onnx.get_default_pip_requirements(),
            save_as_external_data=False,
        )
    return LoggedModel(model_id=str(info.model_id), model_uri=f"models:/{info.model_id}")


def register_model(tracking_uri: str, name: str, model: LoggedModel, run_id: str, tags: dict[str, str]) -> LoggedModel:
    """A new version of registered model ``name`` (created if new) from ``model``, tagged.

    Raises:
        ValueError: MLflow refuses the name.
    """
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_ALREADY_EXISTS, ErrorCode

    client = _client(tracking_uri)
    try:
        client.create_registered_model(name, description="registered by growray export")
    except MlflowException as exc:
        if exc.error_code != ErrorCode.Name(RESOURCE_ALREADY_EXISTS):
            raise ValueError(f"--register {name!r}: MLflow refused the name: {exc.message}") from None
    with _tracking_uri(tracking_uri):  # the store resolves models:/<id> through the process-wide URI
        version = client.create_model_version(
            name, source=model.model_uri, run_id=run_id, tags=tags, model_id=model.model_id
        )
    return LoggedModel(model.model_id, model.model_uri, name, str(version.version))


def record_export_latency(tracking_uri: str, run_id: str, metrics: dict[str, float], tags: dict[str, str]) -> None:
    """Log the exported model's latency on the run, at the step of its last ``cost/latency_ms``
    (so the UI shows the two side by side), with tags saying how it was measured (tags, not
    params: a later export may measure again); the run's status is unchanged."""
    import time

    from mlflow.entities import Metric, RunTag

    client = _client(tracking_uri)
    history = client.get_metric_history(run_id, "cost/latency_ms")
    step = max((m.step for m in history), default=0)
    now = int(time.time() * 1000)
    client.log_batch(
        run_id,
        metrics=[Metric(k, float(v), now, step) for k, v in metrics.items()],
        tags=[RunTag(k, v) for k, v in tags.items()],
    )
