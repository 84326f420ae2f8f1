"""The three deployable formats, each written from the rebuilt network and read back for the check.

=============  =========================  ===================================================
format         files                      loaded by
=============  =========================  ===================================================
``pt``         ``model.pt``,              ``growray.export.load_pt(folder)``: the ArchSpec and
               ``architecture.json``      the state dict (``torch.load(weights_only=True)``)
``onnx``       ``model.onnx``             any ONNX runtime; input ``input`` (batch, *shape),
                                          output ``logits`` (batch, classes), batch dynamic
``torchscript`` ``model.torchscript``     ``torch.jit.load`` (also from C++/libtorch)
=============  =========================  ===================================================

ONNX goes through ``torch.onnx.export(dynamo=True)``, PyTorch's supported exporter (the
TorchScript-based one is deprecated): it needs ``onnx`` and ``onnxscript``; the check and the
latency run it with ``onnxruntime``. TorchScript is traced (``torch.jit.trace``) from a batch
of held-out samples; PyTorch marks ``torch.jit`` deprecated too, so prefer ``pt`` or ``onnx``
where a consumer allows.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from growray.models import ArchSpec

from .errors import ExportError, require
from .network import rebuild
from .weights import NetworkWeights

__all__ = [
    "FILES",
    "FORMATS",
    "INPUT_NAME",
    "OUTPUT_NAME",
    "load_pt",
    "onnx_session",
    "outputs_of",
    "require_onnx",
    "write_format",
]

FORMATS = ("pt", "onnx", "torchscript")
FILES: dict[str, tuple[str, ...]] = {
    "pt": ("model.pt", "architecture.json"),
    "onnx": ("model.onnx",),
    "torchscript": ("model.torchscript",),
}
INPUT_NAME, OUTPUT_NAME = "input", "logits"


def require_onnx(latency: bool = False) -> None:
    """Raise ``MissingDependencyError`` unless ONNX export (and onnxruntime) can run."""
    purpose = "measuring latency with onnxruntime" if latency else "ONNX export"
    for module in ("onnx", "onnxscript", "onnxruntime"):
        require(module, purpose)


@contextlib.contextmanager
def _quiet() -> Iterator[io.StringIO]:
    """Keep the exporters' progress lines and deprecation notices off the user's terminal."""
    out = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(out):
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        # a shape the trace fixed (a channel count): the check on batches of N and 1 catches a wrong one
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        yield out


def _short(exc: BaseException) -> str:
    """The line of an exporter's error that names the cause (its messages run for pages)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in lines:
        if "No ONNX function found" in ln or "Could not guard on data-dependent" in ln or "Unsupported" in ln:
            return ln[:500]
    return f"{type(exc).__name__}: {lines[0][:500] if lines else ''}"


def write_format(fmt: str, model: nn.Module, spec: ArchSpec, example: torch.Tensor, folder: Path) -> list[Path]:
    """Write ``model`` in format ``fmt`` into ``folder``; returns the files written.

    Args:
        fmt: one of :data:`FORMATS`.
        model: the rebuilt network, in eval mode, on the CPU.
        spec: its ArchSpec (the ``pt`` format stores it beside the weights).
        example: a batch of at least two real inputs (ONNX traces with it; batch size stays dynamic).
        folder: where the files go.

    Raises:
        ExportError: the architecture cannot be expressed in the format.
        MissingDependencyError: ``onnx``/``onnxscript`` are missing (ONNX).
    """
    if fmt not in FORMATS:
        raise ExportError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    files = [folder / name for name in FILES[fmt]]
    if fmt == "pt":
        torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, files[0])
        files[1].write_text(json.dumps(spec.to_dict(), indent=1, sort_keys=True) + "\n")
    elif fmt == "onnx":
        _write_onnx(model, spec, example, files[0])
    else:
        try:
            with _quiet(), torch.no_grad():
                traced = torch.jit.trace(model, (example,), check_trace=False)
                torch.jit.save(traced, str(files[0]))
        except Exception as exc:  # the tracer raises many types; each means "cannot trace this forward"
            raise ExportError(
                f"the {spec.kind!r} network cannot be traced to TorchScript ({_short(exc)}); export it as pt or onnx"
            ) from None
    return files


def _write_onnx(model: nn.Module, spec: ArchSpec, example: torch.Tensor, path: Path) -> None:
    require_onnx()
    import onnx

    batch = torch.export.Dim("batch")
    try:
        with _quiet(), torch.no_grad():
            torch.onnx.export(
                model,
                (example,),
                str(path),
                dynamo=True,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAME],
                dynamic_shapes=({0: batch},),
                external_data=False,
                verbose=False,
            )
    except Exception as exc:  # torch.export and the ONNX translation raise many types
        raise ExportError(
            f"ONNX cannot express the {spec.kind!r} network ({_short(exc)}); export it with --format pt or "
            "--format torchscript instead"
        ) from None
    onnx.checker.check_model(str(path))


def onnx_session(path: Path, threads: int | None = None) -> Any:
    """An onnxruntime CPU session on ``path`` (``threads``: intra-op threads; None: its default)."""
    ort = require("onnxruntime", "running the ONNX model")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])


def load_pt(folder: str | Path) -> nn.Module:
    """The network of a ``pt`` export: ``architecture.json`` and ``model.pt`` (``weights_only``)."""
    folder = Path(folder)
    try:
        spec = ArchSpec.from_json((folder / "architecture.json").read_text())
        state = torch.load(folder / "model.pt", map_location="cpu", weights_only=True)
    except (OSError, ValueError, TypeError, RuntimeError) as exc:
        raise ExportError(f"{folder} is not a growray pt export (architecture.json + model.pt): {exc}") from None
    if not isinstance(state, dict):
        raise ExportError(f"{folder}/model.pt must hold a state dict; got {type(state).__name__}")
    return rebuild(NetworkWeights(spec, state), str(folder))


def outputs_of(fmt: str, folder: Path, x: np.ndarray) -> np.ndarray:
    """What the written artifact of ``fmt`` in ``folder`` computes on ``x`` (read back from disk)."""
    if fmt == "onnx":
        return np.asarray(onnx_session(folder / FILES["onnx"][0]).run([OUTPUT_NAME], {INPUT_NAME: x})[0])
    if fmt == "torchscript":
        with _quiet():
            module = torch.jit.load(str(folder / FILES["torchscript"][0]), map_location="cpu")
    else:
        module = load_pt(folder)
    with torch.no_grad():
        return module(torch.from_numpy(x)).numpy()
