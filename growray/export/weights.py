"""The final network of a run as one JSON document: its ArchSpec and its weights.

The trainer logs it at the end of training as the run's ``network.json`` artifact
(:data:`NETWORK_ARTIFACT`), so ``growray export RUN_ID`` finds the network in MLflow alone,
wherever the run's Ray checkpoints went. The document is plain JSON, never a pickle: each
tensor is its dtype, its shape and its little-endian bytes in base64, so reading one runs no
code at all (safer even than ``torch.load(weights_only=True)``), and every field of a
document read back is checked (it comes from an artifact store: untrusted input).

    {"format": "growray.network/1",
     "architecture": {"kind": "mlp", "hidden": [12, 8], ...},
     "tensors": {"layers.0.weight": {"dtype": "float32", "shape": [12, 64], "data": "<base64>"}, ...},
     "masks": {"hidden.0": {...}}}

``masks`` holds the masks that hooks apply on top of the weights (the Grow-vs-Prune unit
masks, ``{site: 0/1 per unit}``, or weight masks keyed like the state dict); rebuilding folds
them into the weights (:func:`growray.export.rebuild`), so the exported network computes what
the trial's masked network computed.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from growray.models import ArchSpec

from .errors import ExportError

__all__ = [
    "NETWORK_ARTIFACT",
    "NETWORK_FORMAT",
    "NetworkWeights",
    "decode_network",
    "encode_network",
    "final_network",
    "hook_masks",
]

NETWORK_ARTIFACT = "network.json"
NETWORK_FORMAT = "growray.network/1"

_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float64": torch.float64,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "int64": torch.int64,
    "int32": torch.int32,
    "int16": torch.int16,
    "int8": torch.int8,
    "uint8": torch.uint8,
    "bool": torch.bool,
}
_NAMES = {v: k for k, v in _DTYPES.items()}


@dataclass(frozen=True)
class NetworkWeights:
    """A network to rebuild: its spec, its state dict and the masks its hooks applied.

    Attributes:
        spec: the ArchSpec the network is built from (never a trial config).
        state: the model's state dict (CPU tensors).
        masks: ``{site or state-dict key: mask}`` to fold into the weights (may be empty).
    """

    spec: ArchSpec
    state: dict[str, torch.Tensor]
    masks: dict[str, torch.Tensor] = field(default_factory=dict)


def _encode_tensor(t: torch.Tensor) -> dict[str, Any]:
    t = t.detach().cpu().contiguous()
    if t.dtype not in _NAMES:
        raise TypeError(f"cannot write a {t.dtype} tensor into {NETWORK_ARTIFACT}; supported: {sorted(_DTYPES)}")
    raw = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
    return {"dtype": _NAMES[t.dtype], "shape": list(t.shape), "data": base64.b64encode(raw).decode("ascii")}


def _decode_tensor(obj: Any, where: str) -> torch.Tensor:
    if not isinstance(obj, dict) or set(obj) != {"dtype", "shape", "data"}:
        raise ExportError(f"{where} must be an object with the keys dtype, shape and data")
    dtype, shape, data = obj["dtype"], obj["shape"], obj["data"]
    if dtype not in _DTYPES:
        raise ExportError(f"{where}: dtype must be one of {sorted(_DTYPES)}; got {dtype!r}")
    if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape):
        raise ExportError(f"{where}: shape must be a list of ints >= 0; got {shape!r}")
    if not isinstance(data, str):
        raise ExportError(f"{where}: data must be a base64 string")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ExportError(f"{where}: data is not valid base64") from None
    torch_dtype = _DTYPES[dtype]
    n = math.prod(shape)
    expected = n * torch.empty((), dtype=torch_dtype).element_size()
    if len(raw) != expected:
        raise ExportError(f"{where}: {len(raw)} bytes of data for a {dtype} tensor of shape {shape} ({expected} bytes)")
    if n == 0:
        return torch.empty(shape, dtype=torch_dtype)
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).view(torch_dtype).reshape(shape).clone()


def encode_network(
    spec: ArchSpec, state: Mapping[str, torch.Tensor], masks: Mapping[str, torch.Tensor] | None = None
) -> dict[str, Any]:
    """The JSON document of a network (see the module docstring)."""
    doc: dict[str, Any] = {
        "format": NETWORK_FORMAT,
        "architecture": spec.to_dict(),
        "tensors": {k: _encode_tensor(v) for k, v in state.items()},
    }
    if masks:
        doc["masks"] = {k: _encode_tensor(v) for k, v in masks.items()}
    return doc


def decode_network(doc: Any, source: str) -> NetworkWeights:
    """Read a document written by :func:`encode_network`, checking every field.

    Args:
        doc: the parsed JSON.
        source: where it came from, for the messages (``run 0a1b... network.json``).

    Raises:
        ExportError: not a network document, or a field is missing or malformed.
    """
    if not isinstance(doc, dict) or doc.get("format") != NETWORK_FORMAT:
        got = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ExportError(f"{source} is not a growray network document (format {NETWORK_FORMAT!r}); got {got!r}")
    unknown = set(doc) - {"format", "architecture", "tensors", "masks"}
    if unknown:
        raise ExportError(f"{source}: unknown keys {sorted(unknown)}")
    arch, tensors, masks = doc.get("architecture"), doc.get("tensors"), doc.get("masks", {})
    if not isinstance(arch, dict):
        raise ExportError(f"{source}: 'architecture' must be an object (an ArchSpec)")
    try:
        spec = ArchSpec.from_dict(arch)
    except (TypeError, ValueError) as exc:
        raise ExportError(f"{source}: 'architecture' is not an ArchSpec: {exc}") from None
    if not isinstance(tensors, dict):
        raise ExportError(f"{source}: 'tensors' must be an object of tensors")
    if not isinstance(masks, dict):
        raise ExportError(f"{source}: 'masks' must be an object of tensors")
    return NetworkWeights(
        spec=spec,
        state={str(k): _decode_tensor(v, f"{source}: tensor {k!r}") for k, v in tensors.items()},
        masks={str(k): _decode_tensor(v, f"{source}: mask {k!r}") for k, v in masks.items()},
    )


def hook_masks(hook_states: Iterable[Mapping[str, Any]]) -> dict[str, torch.Tensor]:
    """The masks hooks keep under ``"masks"`` in their tensor state (``Hook.tensor_state``),
    combined (a unit masked by any hook is masked)."""
    out: dict[str, torch.Tensor] = {}
    for state in hook_states:
        masks = state.get("masks")
        if not isinstance(masks, Mapping):
            continue
        for key, mask in masks.items():
            if isinstance(mask, torch.Tensor):
                mask = mask.detach().cpu()
                out[key] = out[key] * mask if key in out and out[key].shape == mask.shape else mask.clone()
    return out


def final_network(spec: ArchSpec, model: nn.Module, hook_states: Iterable[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The document the trainer logs as ``network.json`` when training ends, or None for a
    supernet (not deployable as such: its retrain run is what gets exported).

    Args:
        spec: the model's current ArchSpec.
        model: the trained model.
        hook_states: every hook's ``tensor_state()``; the masks among them are kept.
    """
    if callable(getattr(model, "discretized", None)):
        return None
    return encode_network(spec, model.state_dict(), hook_masks(hook_states))
