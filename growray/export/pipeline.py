"""One run's export, given its network and its experiment's data section: the steps between
reading the run (``growray.api.export``, through ``growray.tracking``) and recording on it.

Held-out samples are the test split of the run's own dataset (the same split and seed as the
trial): never trained on, and in the distribution the network saw. Where the dataset is not
on this machine, standard normal samples stand in (the models take standardized inputs) and
``export.json`` says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from growray.config import LatencyConfig
from growray.cost import LatencyProtocol

from .artifact import ExportReport, export_network
from .formats import FILES, outputs_of
from .latency import latency_metrics, measure_onnx_latency, onnxruntime_version, protocol_from_params
from .network import rebuild
from .weights import NetworkWeights

__all__ = ["export_weights", "model_example", "time_export"]

_STANDARDIZATION = (
    "inputs are standardized with the training split's mean and std (per feature, or per channel for images) "
    "before the network: the model takes standardized inputs"
)


def _held_out(data: dict[str, Any], seed: int, shape: tuple[int, ...], n: int) -> tuple[np.ndarray, str, Any]:
    """``(samples, where they came from, the dataset's normalization statistics or None)``."""
    from growray.data import DatasetNotFoundError, load_dataset

    try:
        dataset = load_dataset(data, seed=seed)
    except DatasetNotFoundError as exc:
        x = np.random.default_rng(0).standard_normal((n, *shape)).astype(np.float32)
        return x, f"standard normal samples (the dataset is not on this machine: {str(exc).splitlines()[0]})", None
    x = dataset.x_test[:n]
    stats = getattr(dataset, "normalization", None)  # the training split's, once growray.data keeps them
    return x, f"the first {len(x)} samples of the {dataset.name} test split (seed {seed})", stats


def export_weights(
    weights: NetworkWeights,
    name: str,
    folder: Path,
    formats: Sequence[str],
    *,
    data: dict[str, Any],
    seed: int,
    source: dict[str, str],
    tolerance: float,
    n_samples: int,
) -> ExportReport:
    """Rebuild the network, write and check ``formats`` in ``folder`` (``export_network``).

    Args:
        weights: the run's network.
        name: how messages name it (``run 0a1b...``).
        folder: the export folder.
        formats: some of ``pt``, ``onnx``, ``torchscript``.
        data: the run's ``data`` section (dataset name and parameters).
        seed: the run's seed (its data split).
        source: provenance for ``export.json`` (run, sweep, trial, store).
        tolerance: largest |exported - PyTorch| / max(1, |PyTorch|) accepted.
        n_samples: held-out samples compared.
    """
    model = rebuild(weights, name)
    shape = tuple(int(d) for d in weights.spec.params.get("input_shape", ()))
    x, inputs, stats = _held_out(data, seed, shape, n_samples)
    about = {
        "source": source,
        "preprocessing": {"dataset": data, "seed": seed, "standardization": _STANDARDIZATION, "statistics": stats},
        "inputs": inputs,
    }
    return export_network(model, weights.spec, folder, formats, x, about=about, tolerance=tolerance)


def time_export(
    report: ExportReport, params: dict[str, str], configured: LatencyConfig, cpus: float
) -> tuple[dict[str, float], dict[str, str]]:
    """Time the report's ONNX model under the run's latency protocol: its ``cost.latency.*``
    params, else its ``costs.latency`` section with the trial's ``cpus`` as threads (what the
    trial measured with). Returns the metrics and tags to record on the run."""
    threads = configured.threads or max(1, round(cpus))
    fallback = LatencyProtocol(
        tuple(configured.batch_sizes), configured.dtype, threads, configured.warmup, configured.min_run_time
    )
    protocol = protocol_from_params(params, fallback)
    runtime = onnxruntime_version()
    shape = tuple(int(d) for d in report.manifest["input"]["shape"][1:])
    report.record_latency(measure_onnx_latency(report.folder / FILES["onnx"][0], shape, protocol), protocol, runtime)
    tags = {"growray.export.latency_runtime": runtime, "growray.export.latency_protocol": str(protocol)}
    return latency_metrics(report.latency), tags


def model_example(report: ExportReport, n: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """A few held-out inputs and the exported ONNX model's logits on them (the MLflow model's
    input example and signature)."""
    x = np.ascontiguousarray(report.samples[:n], dtype=np.float32)
    return x, outputs_of("onnx", report.folder, x)
