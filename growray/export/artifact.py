"""One export: the formats written into a folder, each checked against PyTorch, and ``export.json``.

The folder is self-contained: the model files and ``export.json``, which says what a consumer
needs to feed it (input name, shape with a dynamic batch, dtype), what comes out (logits, the
class count), the preprocessing, where the network came from (run, sweep, trial) and what
was measured (each format's output error against PyTorch on held-out samples, and, when
asked, onnxruntime latency under the run's latency protocol).

Every format is written into a staging folder, read back from disk and compared with the
rebuilt PyTorch network on the held-out batch and on a batch of one (the batch dimension is
dynamic); only when every format is within ``tolerance`` are the files moved into place, so a
failed export leaves nothing half-written.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from growray.cost import LatencyProtocol, LatencyResult
from growray.models import ArchSpec

from .errors import ExportError
from .formats import FORMATS, INPUT_NAME, OUTPUT_NAME, outputs_of, write_format

__all__ = ["MANIFEST", "TOLERANCE", "ExportReport", "FormatCheck", "export_network"]

MANIFEST = "export.json"
#: max |exported - PyTorch| / max(1, |PyTorch|) allowed on any logit of the held-out samples
TOLERANCE = 1e-5


@dataclass(frozen=True)
class FormatCheck:
    """How one written format compares with the PyTorch network.

    Attributes:
        format: ``pt``, ``onnx`` or ``torchscript``.
        files: the files it wrote (names in the export folder).
        max_abs_error: max |exported - PyTorch| over every logit of the held-out batch and a
            batch of one.
        max_scaled_error: max |exported - PyTorch| / max(1, |PyTorch|), what ``tolerance``
            bounds: absolute for logits within +-1, relative beyond (float32 holds about 7
            digits: a logit of 52 has neighbours 3.8e-6 apart, so two roundings differ by more
            than 1e-5 once logits pass ~100).
        argmax_agreement: share of held-out samples whose predicted class is the same.
        n_samples: held-out samples compared.
    """

    format: str
    files: tuple[str, ...]
    max_abs_error: float
    max_scaled_error: float
    argmax_agreement: float
    n_samples: int


@dataclass
class ExportReport:
    """What an export wrote and measured (``export.json`` holds the same)."""

    folder: Path
    manifest: dict[str, Any]
    checks: list[FormatCheck]
    latency: list[LatencyResult] = field(default_factory=list)
    run_id: str | None = None  # the MLflow run exported (set by growray.api.export)
    via: str | None = None  # how it was reached ("best trial of sweep ...")
    model_uri: str | None = None  # the MLflow model logged from it
    registered: tuple[str, str] | None = None  # (registered model name, version)
    training_latency_ms: float | None = None  # the run's cost/latency_ms, for the side-by-side
    samples: np.ndarray = field(default_factory=lambda: np.zeros((0,), np.float32), repr=False)  # held-out inputs

    def record_latency(self, results: Sequence[LatencyResult], protocol: LatencyProtocol, runtime: str) -> None:
        """Add onnxruntime latency to the report and to ``export.json``."""
        self.latency = list(results)
        self.manifest["latency"] = {
            "runtime": runtime,
            "protocol": {**asdict(protocol), "batch_sizes": list(protocol.batch_sizes)},
            "results": [asdict(r) for r in results],
        }
        self.write_manifest()

    def write_manifest(self) -> Path:
        path = self.folder / MANIFEST
        path.write_text(json.dumps(self.manifest, indent=1) + "\n")
        return path


def _errors(got: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """``(max |got - ref|, max |got - ref| / max(1, |ref|))``; inf for a wrong shape, NaN stays NaN."""
    if got.shape != ref.shape:
        return float("inf"), float("inf")
    if not got.size:
        return 0.0, 0.0
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    return float(np.max(diff)), float(np.max(diff / np.maximum(1.0, np.abs(ref.astype(np.float64)))))


def export_network(
    model: nn.Module,
    spec: ArchSpec,
    out: str | Path,
    formats: Sequence[str],
    samples: np.ndarray,
    *,
    about: dict[str, Any],
    tolerance: float = TOLERANCE,
) -> ExportReport:
    """Write ``model`` in every format of ``formats`` into ``out`` and check each one.

    Args:
        model: the rebuilt network (``growray.export.rebuild``), in eval mode, on the CPU.
        spec: its ArchSpec.
        out: the export folder (created; files of an earlier export there are replaced).
        formats: some of ``pt``, ``onnx``, ``torchscript``.
        samples: held-out inputs, float32 of shape ``(n >= 2, *input_shape)``.
        about: what ``export.json`` says beyond the network: ``source`` (run, sweep, trial),
            ``preprocessing``, ``inputs`` (where the samples came from).
        tolerance: the largest ``max_scaled_error`` accepted (1e-5: absolute for logits within
            +-1, relative beyond).

    Raises:
        ExportError: an unknown format, fewer than two samples, a format that cannot express
            the network, or outputs that differ by more than ``tolerance``.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ExportError(f"formats must be some of {', '.join(FORMATS)}; got {list(formats)}")
    x = np.ascontiguousarray(samples, dtype=np.float32)
    if x.ndim < 2 or len(x) < 2:
        raise ExportError(f"the output check needs at least 2 held-out samples; got an array of shape {x.shape}")
    with torch.no_grad():
        reference = model(torch.from_numpy(x)).numpy()
        one = model(torch.from_numpy(x[:1])).numpy()
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    checks: list[FormatCheck] = []
    with tempfile.TemporaryDirectory(prefix=".growray-export-", dir=folder) as tmp:
        staging = Path(tmp)
        for fmt in dict.fromkeys(formats):  # each once, in the order asked
            files = write_format(fmt, model, spec, torch.from_numpy(x[:2].copy()), staging)
            got, got_one = outputs_of(fmt, staging, x), outputs_of(fmt, staging, x[:1])
            (a1, s1), (a2, s2) = _errors(got, reference), _errors(got_one, one)
            error, scaled = float(np.max([a1, a2])), float(np.max([s1, s2]))  # NaN stays NaN
            agree = float(np.mean(got.argmax(1) == reference.argmax(1))) if got.shape == reference.shape else 0.0
            checks.append(FormatCheck(fmt, tuple(p.name for p in files), error, scaled, agree, len(x)))
        bad = [c for c in checks if not c.max_scaled_error <= tolerance]
        if bad:
            detail = "; ".join(
                f"{c.format}: max |error| {c.max_abs_error:.3g}, / max(1, |logit|) {c.max_scaled_error:.3g}"
                for c in bad
            )
            raise ExportError(
                f"the exported {spec.kind!r} network does not match the PyTorch network within {tolerance:g} on "
                f"{len(x)} held-out samples ({detail}); nothing was written to {folder}"
            )
        for check in checks:
            for name in check.files:
                os.replace(staging / name, folder / name)
    for stale in folder.glob(".growray-export-*"):  # a staging folder of an export that was killed
        shutil.rmtree(stale, ignore_errors=True)
    from growray import __version__

    manifest = {
        "growray_version": __version__,
        "architecture": spec.to_dict(),
        "input": {"name": INPUT_NAME, "shape": ["batch", *x.shape[1:]], "dtype": "float32"},
        "output": {
            "name": OUTPUT_NAME,
            "shape": ["batch", int(reference.shape[1])],
            "meaning": "unnormalised class scores (logits); the predicted class is the argmax",
        },
        "n_classes": int(reference.shape[1]),
        **about,
        "formats": {
            c.format: {
                "files": list(c.files),
                "max_abs_error": c.max_abs_error,
                "max_scaled_error": c.max_scaled_error,
                "argmax_agreement": c.argmax_agreement,
            }
            for c in checks
        },
        "check": {
            "tolerance": tolerance,
            "criterion": "max |exported - PyTorch| / max(1, |PyTorch|) <= tolerance, every logit",
            "n_samples": len(x),
            "batch_sizes": [len(x), 1],
        },
    }
    report = ExportReport(folder, manifest, checks, samples=x)
    report.write_manifest()
    return report
