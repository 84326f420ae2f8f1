"""Inference latency under a recorded protocol (``torch.utils.benchmark``)."""

from __future__ import annotations

import contextlib
import copy
import timeit
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from growray.checks import check_choice, check_int, check_number
from growray.cost.static import check_input_shape

if TYPE_CHECKING:
    from torch.utils.benchmark import Timer

__all__ = ["LatencyProtocol", "LatencyResult", "measure_latency"]

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_HALF = {"float16", "bfloat16"}


def _is_int(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


@dataclass(frozen=True)
class LatencyProtocol:
    """How latency is measured; logged with the result so numbers stay comparable.

    Args:
        batch_sizes: batch sizes to time, each >= 1; the first is the headline
            ``cost/latency_ms``. A list is accepted and stored as a tuple.
        dtype: ``float32``, or ``float16``/``bfloat16`` (CUDA only).
        threads: torch intra-op threads during the measurement (restored afterwards),
            or None to keep the current count.
        warmup: untimed forward passes per batch size before timing, >= 0.
        min_run_time: seconds of timed runs per batch size and repeat, passed to
            ``Timer.blocked_autorange(min_run_time=...)``; > 0.
        repeats: independent ``blocked_autorange`` measurements per batch size, >= 1; their
            medians' spread (``LatencyResult.spread``) tells a quiet measurement from one
            that shared its cores with other work (another trial), where a single
            measurement looks just as precise. The statistics pool every repeat's times.
    """

    batch_sizes: tuple[int, ...] = (1,)
    dtype: str = "float32"
    threads: int | None = None
    warmup: int = 10
    min_run_time: float = 0.2
    repeats: int = 3

    def __post_init__(self) -> None:
        bs = self.batch_sizes
        if isinstance(bs, (list, tuple)) and bs and all(_is_int(b) and b >= 1 for b in bs):
            object.__setattr__(self, "batch_sizes", tuple(bs))
        else:
            raise ValueError(f"batch_sizes must be a non-empty list of ints >= 1, e.g. [1, 32]; got {bs!r}")
        check_choice("dtype", self.dtype, sorted(_DTYPES))
        check_int("threads", self.threads, minimum=1, optional=True)  # null: keep torch's current count
        check_int("warmup", self.warmup, minimum=0)
        check_int("repeats", self.repeats, minimum=1)
        object.__setattr__(
            self, "min_run_time", check_number("min_run_time", self.min_run_time, low=0.0, low_open=True)
        )

    def as_params(self, device: str | torch.device | None = None) -> dict[str, str]:
        """Flat ``cost.latency.*`` strings for MLflow params; ``device`` adds ``cost.latency.device``.

        ``threads`` None is written ``"inherit"``; ``LatencyResult.n_threads`` has the count used.
        """
        params = {
            "cost.latency.batch_sizes": ",".join(str(b) for b in self.batch_sizes),
            "cost.latency.dtype": self.dtype,
            "cost.latency.threads": "inherit" if self.threads is None else str(self.threads),
            "cost.latency.warmup": str(self.warmup),
            "cost.latency.min_run_time": repr(self.min_run_time),
            "cost.latency.repeats": str(self.repeats),
        }
        if device is not None:
            params["cost.latency.device"] = str(device)
        return params


@dataclass(frozen=True)
class LatencyResult:
    """Latency of one forward pass of a whole batch, in milliseconds.

    ``median_ms``, ``p95_ms`` and ``iqr_ms`` are statistics over the Measurement's
    per-call times: each is the mean over one block of calls of ``blocked_autorange``
    (so p95 is the 95th percentile of block means, not of single calls), pooled over the
    protocol's repeats. ``spread`` is ``(max - min) / min`` of the repeats' medians (0.0 for
    one repeat): on a quiet core a few percent; trials sharing cores measured 2-5x.
    """

    batch_size: int
    median_ms: float
    p95_ms: float
    iqr_ms: float
    n_measurements: int
    device: str
    n_threads: int = 1
    spread: float = 0.0


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    prior = torch.get_num_threads()
    try:
        torch.set_num_threads(n)
        yield
    finally:
        torch.set_num_threads(prior)


def _resolve_device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    if device is None:
        ref = next(iter(model.parameters()), None)
        return ref.device if ref is not None else torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be a torch device such as 'cpu' or 'cuda:0'; got {device!r}") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {str(dev)!r} was asked for but CUDA is not available; use device='cpu'")
    if dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", torch.cuda.current_device())
    return dev


def _timer(model: nn.Module, x: torch.Tensor, n_threads: int) -> Timer:
    """A ``Timer`` of ``model(x)``. Its default clock synchronises any available accelerator
    (creating a CUDA context on a GPU machine), so a CPU measurement reads the plain clock."""
    # Imported here: torch.utils.benchmark pulls in cpp_extension (slow, and it warns on
    # CPU-only machines), which importing growray.cost should not.
    from torch.utils.benchmark import Timer

    stmt_globals = {"model": model, "x": x}
    if x.device.type == "cpu":
        return Timer(stmt="model(x)", globals=stmt_globals, num_threads=n_threads, timer=timeit.default_timer)
    return Timer(stmt="model(x)", globals=stmt_globals, num_threads=n_threads)


def measure_latency(
    model: nn.Module,
    input_shape: tuple[int, ...],
    protocol: LatencyProtocol = LatencyProtocol(),
    device: str | torch.device | None = None,
) -> list[LatencyResult]:
    """Inference latency of ``model`` for each of ``protocol.batch_sizes``, in that order.

    The forward pass runs in eval mode under ``torch.no_grad``; the model's mode is
    restored and nothing in it changes (weights, BatchNorm statistics). When ``device``
    (default: the model's) or ``protocol.dtype`` differ from the model's, a deep copy is
    moved and timed, so the original stays where it is. Inputs are drawn from a private
    generator: the global RNG is untouched.

    Timing uses ``torch.utils.benchmark.Timer(...).blocked_autorange(min_run_time=...)``
    after ``protocol.warmup`` untimed passes, with ``protocol.threads`` torch threads
    (the count is restored afterwards). On CUDA no explicit synchronisation is needed:
    the Timer's default clock (``torch.utils.benchmark.utils.timer.timer``) calls
    ``torch.accelerator.synchronize()`` before every reading, so each block of calls is
    timed to completion of its kernels. The plain ``timeit`` clock is
    used on CPU, so a CPU measurement never initialises CUDA.

    Raises:
        ValueError: a bad ``input_shape`` or ``device``, or a half dtype on a non-CUDA device.
    """
    if not isinstance(protocol, LatencyProtocol):
        raise TypeError(f"protocol must be a LatencyProtocol; got {type(protocol).__name__}")
    shape = check_input_shape(input_shape)
    dev = _resolve_device(model, device)
    if protocol.dtype in _HALF and dev.type != "cuda":
        raise ValueError(
            f"LatencyProtocol dtype={protocol.dtype!r} is measured on CUDA only, but the device is {str(dev)!r}; "
            f"use dtype='float32' on CPU or pass device='cuda'"
        )
    dtype = _DTYPES[protocol.dtype]
    floats = [t for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()]
    if any(t.device != dev or t.dtype != dtype for t in floats):
        model_run = copy.deepcopy(model).to(device=dev, dtype=dtype)
    else:
        model_run = model
    n_threads = protocol.threads if protocol.threads is not None else torch.get_num_threads()
    gen = torch.Generator().manual_seed(0)

    was_training = model.training
    model.eval()
    model_run.eval()
    results = []
    try:
        with torch.no_grad(), _torch_threads(n_threads):
            for bs in protocol.batch_sizes:
                x = torch.randn((bs, *shape), generator=gen).to(device=dev, dtype=dtype)
                for _ in range(protocol.warmup):
                    model_run(x)
                timer = _timer(model_run, x, n_threads)
                runs = [timer.blocked_autorange(min_run_time=protocol.min_run_time) for _ in range(protocol.repeats)]
                times = torch.tensor([t for m in runs for t in m.times], dtype=torch.float64)
                medians = [m.median for m in runs]
                q1, q3 = times.quantile(0.25).item(), times.quantile(0.75).item()
                results.append(
                    LatencyResult(
                        batch_size=bs,
                        median_ms=times.median().item() * 1e3 if len(runs) > 1 else runs[0].median * 1e3,
                        p95_ms=times.quantile(0.95).item() * 1e3,
                        iqr_ms=(q3 - q1) * 1e3 if len(runs) > 1 else runs[0].iqr * 1e3,
                        n_measurements=len(times),
                        device=str(dev),
                        n_threads=n_threads,
                        spread=(max(medians) - min(medians)) / min(medians) if min(medians) > 0 else 0.0,
                    )
                )
    finally:
        model.train(was_training)
    return results
