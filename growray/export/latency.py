"""Latency of an exported ONNX model with onnxruntime on the CPU, under a ``LatencyProtocol``.

The protocol and the statistics are those of ``cost/latency_ms`` (``growray.cost.measure_latency``):
for each batch size, ``warmup`` untimed runs, then ``torch.utils.benchmark.Timer(...)
.blocked_autorange(min_run_time=...)`` around one ``session.run``; the median, the 95th
percentile of the block means and the IQR, in milliseconds. Threads: onnxruntime's intra-op
pool gets ``protocol.threads`` (inter-op 1), as torch's did for the training-time number, so
the two can be read side by side. Inputs are standard normal (the models take standardized
inputs) from a fixed seed.
"""

from __future__ import annotations

import timeit
from pathlib import Path

import numpy as np
import torch

from growray.cost import LatencyProtocol, LatencyResult

from .errors import ExportError
from .formats import INPUT_NAME, OUTPUT_NAME, onnx_session, require_onnx

__all__ = ["latency_metrics", "measure_onnx_latency", "onnxruntime_version", "protocol_from_params"]


def onnxruntime_version() -> str:
    """``onnxruntime <version> CPUExecutionProvider`` (what the numbers were measured with)."""
    require_onnx(latency=True)
    import onnxruntime

    return f"onnxruntime {onnxruntime.__version__} CPUExecutionProvider"


def measure_onnx_latency(
    path: str | Path, input_shape: tuple[int, ...], protocol: LatencyProtocol
) -> list[LatencyResult]:
    """Latency of the ONNX model at ``path`` for each of ``protocol.batch_sizes``, in that order.

    Raises:
        ExportError: the protocol asks for a half dtype (onnxruntime here runs float32 on the CPU).
        MissingDependencyError: onnxruntime is not installed.
    """
    from torch.utils.benchmark import Timer

    require_onnx(latency=True)
    if protocol.dtype != "float32":
        raise ExportError(
            f"the run's latency protocol uses dtype {protocol.dtype!r} (measured on CUDA); onnxruntime latency is "
            "measured on the CPU in float32 only"
        )
    threads = protocol.threads if protocol.threads is not None else torch.get_num_threads()
    session = onnx_session(Path(path), threads=threads)
    rng = np.random.default_rng(0)
    results = []
    for bs in protocol.batch_sizes:
        feed = {INPUT_NAME: rng.standard_normal((bs, *input_shape)).astype(np.float32)}
        for _ in range(protocol.warmup):
            session.run([OUTPUT_NAME], feed)
        timer = Timer(
            stmt="session.run(names, feed)",
            globals={"session": session, "names": [OUTPUT_NAME], "feed": feed},
            num_threads=threads,
            timer=timeit.default_timer,
        )
        m = timer.blocked_autorange(min_run_time=protocol.min_run_time)
        times = torch.tensor(m.times, dtype=torch.float64)
        results.append(
            LatencyResult(
                batch_size=bs,
                median_ms=m.median * 1e3,
                p95_ms=times.quantile(0.95).item() * 1e3,
                iqr_ms=m.iqr * 1e3,
                n_measurements=len(m.times),
                device="cpu",
                n_threads=threads,
            )
        )
    return results


def protocol_from_params(params: dict[str, str], fallback: LatencyProtocol) -> LatencyProtocol:
    """The latency protocol a run logged as ``cost.latency.*`` params (``LatencyProtocol.as_params``),
    or ``fallback`` when the run logged none (latency was off) or a value does not parse."""
    p = {k[len("cost.latency.") :]: v for k, v in params.items() if k.startswith("cost.latency.")}
    if not p:
        return fallback
    try:
        threads = p.get("threads", "inherit")
        return LatencyProtocol(
            batch_sizes=tuple(int(b) for b in p["batch_sizes"].split(",")),
            dtype=p.get("dtype", fallback.dtype),
            threads=None if threads == "inherit" else int(threads),
            warmup=int(p.get("warmup", fallback.warmup)),
            min_run_time=float(p.get("min_run_time", fallback.min_run_time)),
        )
    except (KeyError, ValueError):
        return fallback


def latency_metrics(results: list[LatencyResult]) -> dict[str, float]:
    """``export/latency_ms`` (the first batch size), ``export/latency_p95_ms``,
    ``export/latency_ms/bs<N>`` for the others: the names of ``cost/latency_*`` under ``export/``."""
    if not results:
        return {}
    head = results[0]
    out = {"export/latency_ms": head.median_ms, "export/latency_p95_ms": head.p95_ms}
    out.update({f"export/latency_ms/bs{r.batch_size}": r.median_ms for r in results[1:]})
    return out
