"""The Recorder protocol the trainer logs through, and two recorders without a backend.

The trainer never sees MLflow: it receives a :class:`Recorder`. Metrics are buffered
until :meth:`Recorder.flush` (the trainer flushes once per epoch), everything else is
written at once. :class:`NullRecorder` drops everything; :class:`MemoryRecorder` keeps
everything in plain Python containers, for notebooks and for unit tests of the trainer.
"""

from __future__ import annotations

import copy
import io
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol, TypeVar, runtime_checkable

__all__ = [
    "RUN_STATUSES",
    "MemoryRecorder",
    "NullRecorder",
    "ProgressRecorder",
    "Recorder",
    "check_status",
    "close_figure",
    "flatten_params",
]

_R = TypeVar("_R", bound="_ClosingMixin")

RUN_STATUSES = ("FINISHED", "FAILED", "KILLED")


@runtime_checkable
class Recorder(Protocol):
    """The only logging handle the trainer sees.

    ``log_metrics`` is buffered until ``flush``; ``close`` flushes and ends the run.
    ``run_id`` is read-only here: the id of the run being recorded, None for a recorder
    without a backend run.
    """

    @property
    def run_id(self) -> str | None: ...

    def log_params(self, params: dict[str, Any]) -> None: ...

    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    def set_tags(self, tags: dict[str, str]) -> None: ...

    def log_dict(self, obj: Any, artifact_file: str) -> None: ...

    def log_text(self, text: str, artifact_file: str) -> None: ...

    def log_figure(self, fig: Any, artifact_file: str) -> None: ...

    def flush(self) -> None: ...

    def close(self, status: str = "FINISHED") -> None: ...


def flatten_params(cfg: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Flatten a nested config into dotted keys with string values.

    Args:
        cfg: a (possibly nested) mapping; nested mappings become dotted keys, every other
            value is converted with ``str`` (lists stay readable: ``"[16, 16]"``).
        prefix: prepended to every key, joined with a dot.

    Returns:
        ``{"trainer.lr": "0.01", "model.hidden": "[16, 16]", ...}``. An empty nested
        mapping is kept as ``"{}"`` so that it is not silently lost.
    """
    if not isinstance(cfg, dict):
        raise TypeError(f"flatten_params expects a dict, got {type(cfg).__name__}: {cfg!r}")
    out: dict[str, str] = {}
    for key, value in cfg.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value:
            out.update(flatten_params(value, name))
        else:
            out[name] = str(value)
    return out


def check_status(status: str) -> str:
    """Return ``status`` if it is a terminal MLflow run status, else raise ValueError."""
    if status not in RUN_STATUSES:
        raise ValueError(f"run status must be one of {', '.join(RUN_STATUSES)}; got {status!r}")
    return status


class _ClosingMixin:
    """``with recorder:`` closes it, FAILED on an exception, KILLED on Ctrl-C."""

    def close(self, status: str = "FINISHED") -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self: _R) -> _R:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.close("FINISHED")
        elif issubclass(exc_type, KeyboardInterrupt):
            self.close("KILLED")
        else:
            self.close("FAILED")


class NullRecorder(_ClosingMixin):
    """A recorder that records nothing (the trainer used from plain code)."""

    run_id: str | None = None

    def log_params(self, params: dict[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def set_tags(self, tags: dict[str, str]) -> None:
        pass

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        pass

    def log_text(self, text: str, artifact_file: str) -> None:
        pass

    def log_figure(self, fig: Any, artifact_file: str) -> None:
        close_figure(fig)

    def flush(self) -> None:
        pass

    def close(self, status: str = "FINISHED") -> None:
        check_status(status)


class MemoryRecorder(_ClosingMixin):
    """Keeps everything that is logged in memory.

    Attributes:
        params: flattened params, ``{"trainer.lr": "0.01"}`` (strings, as MLflow stores them).
        metrics: flushed metrics, ``{key: [(step, value), ...]}`` in logging order.
            Non-finite values are kept here (MLflow would skip them).
        pending: metrics logged but not flushed yet, ``[(key, step, value), ...]``.
        tags: ``{name: value}`` (strings).
        artifacts: ``{artifact_file: object}``: the dict for ``log_dict`` (a deep copy),
            the string for ``log_text``, PNG/SVG/PDF bytes for ``log_figure``.
        status: None while open, then the status given to ``close``.
        n_flushes: how many times ``flush`` was called.
    """

    def __init__(self, run_id: str | None = "memory") -> None:
        self.run_id = run_id
        self.params: dict[str, str] = {}
        self.metrics: dict[str, list[tuple[int, float]]] = {}
        self.pending: list[tuple[str, int, float]] = []
        self.tags: dict[str, str] = {}
        self.artifacts: dict[str, Any] = {}
        self.status: str | None = None
        self.n_flushes = 0

    def log_params(self, params: dict[str, Any]) -> None:
        self.params.update(flatten_params(params))

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self.pending.extend((k, int(step), float(v)) for k, v in metrics.items())

    def set_tags(self, tags: dict[str, str]) -> None:
        self.tags.update({str(k): str(v) for k, v in tags.items()})

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        self.artifacts[artifact_file] = copy.deepcopy(obj)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.artifacts[artifact_file] = str(text)

    def log_figure(self, fig: Any, artifact_file: str) -> None:
        buf = io.BytesIO()
        fmt = artifact_file.rsplit(".", 1)[-1] if "." in artifact_file else "png"
        fig.savefig(buf, format=fmt)
        self.artifacts[artifact_file] = buf.getvalue()
        close_figure(fig)

    def flush(self) -> None:
        for key, step, value in self.pending:
            self.metrics.setdefault(key, []).append((step, value))
        self.pending.clear()
        self.n_flushes += 1

    def close(self, status: str = "FINISHED") -> None:
        check_status(status)
        self.flush()
        self.status = status

    # convenience for tests and notebooks
    def last(self, key: str) -> float:
        """The last flushed value of metric ``key`` (KeyError lists the known keys)."""
        if key not in self.metrics:
            raise KeyError(f"no metric {key!r} was flushed; known: {sorted(self.metrics)}")
        return self.metrics[key][-1][1]


class ProgressRecorder(_ClosingMixin):
    """Passes everything to ``inner`` and, at each flush that follows an epoch's metrics,
    writes one line: ``epoch 3/20  train/loss 0.412  val/acc 0.8125  (41 s)``.

    For commands that train in the foreground (``growray retrain``); the trainer flushes once
    per epoch, after logging ``epoch`` among that epoch's metrics.
    """

    SHOWN = ("train/loss", "train/acc", "val/loss", "val/acc", "test/acc")

    def __init__(self, inner: Recorder, epochs: int, write: Callable[[str], Any] = print) -> None:
        self.inner, self.epochs, self.write = inner, int(epochs), write
        self._epoch: float | None = None
        self._latest: dict[str, float] = {}
        self._t0 = time.perf_counter()

    @property
    def run_id(self) -> str | None:
        return self.inner.run_id

    def log_params(self, params: dict[str, Any]) -> None:
        self.inner.log_params(params)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._latest.update({k: float(v) for k, v in metrics.items() if k in self.SHOWN})
        if "epoch" in metrics:
            self._epoch = float(metrics["epoch"])
        self.inner.log_metrics(metrics, step)

    def set_tags(self, tags: dict[str, str]) -> None:
        self.inner.set_tags(tags)

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        self.inner.log_dict(obj, artifact_file)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.inner.log_text(text, artifact_file)

    def log_figure(self, fig: Any, artifact_file: str) -> None:
        self.inner.log_figure(fig, artifact_file)

    def flush(self) -> None:
        self.inner.flush()
        if self._epoch is None:
            return
        shown = "  ".join(f"{k} {self._latest[k]:.4f}" for k in self.SHOWN if k in self._latest)
        elapsed = time.perf_counter() - self._t0
        self.write(f"epoch {int(self._epoch)}/{self.epochs}  {shown}  ({elapsed:.0f} s)")
        self._epoch = None

    def close(self, status: str = "FINISHED") -> None:
        self.inner.close(status)


def close_figure(fig: Any) -> None:
    """Close a matplotlib figure, whether pyplot manages it or not (pyplot is not imported)."""
    import sys

    plt = sys.modules.get("matplotlib.pyplot")  # only if the caller already uses pyplot
    if plt is not None:
        plt.close(fig)
