"""``growray export``: the final network of recorded runs as deployable files and MLflow models.

Part of :mod:`growray.api` (re-exported there as ``export``); imports nothing heavy at import
time, like the rest of the API.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from growray import api

if TYPE_CHECKING:
    from collections.abc import Sequence

    from growray.export import ExportReport
    from growray.tracking import LoggedModel

__all__ = ["export"]


def export(
    target: str | Path,
    *,
    formats: Sequence[str] = ("onnx",),
    out: str | Path | None = None,
    tracking_uri: str | None = None,
    pareto: bool = False,
    latency: bool = False,
    log_model: bool = False,
    register: str | None = None,
    tolerance: float = 1e-5,
    n_samples: int = 256,
) -> list[ExportReport]:
    """Export the final network of recorded runs as deployable files (``growray export``).

    ``target``: a trial or retrain run id, a sweep's parent run (its best trial; with ``pareto``
    its Pareto front) or an experiment file (its latest sweep); a NAS search run stands for its
    retrain run. ``out``: the folder of one run (default ``exports/<run id>``), else the parent
    of ``<run id>`` folders. ``latency`` times the ONNX model with onnxruntime under the run's
    latency protocol (``export/latency_ms`` on the run); ``log_model`` logs it as the run's
    MLflow model; ``register`` also registers it, tagged with sweep, trial and run. Files and
    the output check (``tolerance``, ``n_samples``): ``growray.export``.

    Raises:
        ExportError (a ValueError, as MissingDependencyError): no weights, a supernet, an
            architecture a format cannot express, outputs beyond ``tolerance``, a missing package.
        ValueError: no such run, a sweep without a best trial or front.
        LookupError: no store, or no sweep recorded for the experiment file.
    """
    from growray import export as ex
    from growray.tracking import ensure_store, export_targets, latest_sweep_run, register_model

    fmts = list(dict.fromkeys([*formats, *(["onnx"] if latency or log_model or register else [])]))
    if not fmts or any(f not in ex.FORMATS for f in fmts):
        raise ex.ExportError(f"--format must be some of {', '.join(ex.FORMATS)}; got {list(formats)}")
    if "onnx" in fmts:
        ex.require_onnx(latency)  # a missing package is said before any work
    run_id = str(target)
    if Path(target).suffix in (".yaml", ".yml") and Path(target).is_file():
        exp = api.load(target)
        uri = api.existing_store(tracking_uri or exp.tracking.uri)
        if (sweep := latest_sweep_run(uri, exp.experiment_name)) is None:
            raise LookupError(f"no sweep recorded for experiment {exp.experiment_name!r} in {uri}; run it first")
        run_id = str(sweep.info.run_id)
    else:
        uri = api.existing_store(tracking_uri)
    ensure_store(uri)
    targets = export_targets(uri, run_id, pareto=pareto)
    reports = []
    for t in targets:
        folder = Path(out) if out is not None and len(targets) == 1 else Path(out or "exports") / t.run_id
        report, logged = _export_run(
            uri, t.run_id, folder, fmts, latency, log_model or bool(register), tolerance, n_samples
        )
        report.via = t.via
        if register and logged is not None:
            tags = {k: v for k, v in report.manifest["source"].items() if k.startswith("growray.")}
            report.registered = (register, str(register_model(uri, register, logged, t.run_id, tags).version))
        reports.append(report)
    return reports


def _export_run(
    uri: str, run_id: str, folder: Path, fmts: list[str], latency: bool, log_model: bool, tol: float, n: int
) -> tuple[ExportReport, LoggedModel | None]:
    """One run: its network (``network.json``, else its newest checkpoint), the files, the latency, the MLflow model."""
    from growray import export as ex
    from growray.config import ConfigError, validate_dict
    from growray.plugins import load_plugins
    from growray.tracking import log_onnx_model, read_export_source, record_export_latency
    from growray.train import load_checkpoint
    from growray.tune.storage import resolve_storage

    src = read_export_source(uri, run_id)
    try:
        exp = validate_dict(src.config, check_space=False)
    except ConfigError as exc:
        raise ex.ExportError(f"run {run_id}: its config.yaml does not validate with this growray:\n{exc}") from None
    load_plugins()  # a plug-in's model rebuilds too
    if src.network is not None:
        weights = ex.decode_network(src.network, f"run {run_id} {ex.NETWORK_ARTIFACT}")
    else:  # stopped early, or recorded before runs logged network.json: the newest checkpoint
        storage, sweep = resolve_storage(exp.output_dir, exp.name), src.tags.get("growray.sweep")
        where = storage.sweep_path(sweep) if sweep and not storage.is_uri else None
        weights = ex.checkpoint_network(where, run_id, load_checkpoint, where or storage.ray_root)
    source = {**src.provenance, "growray.run_id": run_id, "tracking_uri": uri}
    report = ex.export_weights(
        weights, f"run {run_id}", folder, fmts, data=exp.data, seed=exp.seed, source=source, tolerance=tol, n_samples=n
    )
    report.run_id, report.training_latency_ms, logged = run_id, src.latency_ms, None
    if latency:
        record_export_latency(uri, run_id, *ex.time_export(report, src.params, exp.costs.latency, exp.resources.cpu))
    if log_model:
        x, logits = ex.model_example(report)
        tags = {k: v for k, v in source.items() if k.startswith("growray.")}
        logged = log_onnx_model(
            uri, run_id, folder / ex.FILES["onnx"][0], input_example=x, output_example=logits,
            output_name=ex.OUTPUT_NAME, metadata={"growray": report.manifest}, tags=tags,
        )  # fmt: skip
        report.model_uri = logged.model_uri
    return report, logged
