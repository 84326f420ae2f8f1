"""Export a run's final network as a deployable artifact: pt, ONNX (dynamic batch), TorchScript.

Pure torch + numpy; ``onnx``, ``onnxscript`` and ``onnxruntime`` (the ``export`` extra) are
imported only when an ONNX format, the output check of one, or latency is asked for, and
their absence is a :class:`MissingDependencyError` with the install line. No MLflow, no Ray:
``growray.api.export`` reads the run (``growray.tracking``) and calls this package.

The pieces, in the order an export runs them:

* :func:`decode_network` reads a run's ``network.json`` (:mod:`growray.export.weights`);
  :func:`find_checkpoint` finds its newest Ray checkpoint when it has none;
* :func:`rebuild` builds the network from its ArchSpec and state dict, masks folded in,
  supernets refused;
* :func:`export_network` writes the formats, checks each against PyTorch on held-out
  samples, and writes ``export.json``;
* :func:`measure_onnx_latency` times the ONNX model with onnxruntime under the run's
  latency protocol.
"""

from .artifact import MANIFEST, TOLERANCE, ExportReport, FormatCheck, export_network
from .errors import EXPORT_EXTRA, ExportError, MissingDependencyError, require
from .formats import FILES, FORMATS, INPUT_NAME, OUTPUT_NAME, load_pt, onnx_session, outputs_of, require_onnx
from .latency import latency_metrics, measure_onnx_latency, onnxruntime_version, protocol_from_params
from .network import fold_masks, is_supernet, rebuild
from .pipeline import export_weights, model_example, time_export
from .sources import checkpoint_network, find_checkpoint
from .weights import (
    NETWORK_ARTIFACT,
    NETWORK_FORMAT,
    NetworkWeights,
    decode_network,
    encode_network,
    final_network,
    hook_masks,
)

__all__ = [
    "EXPORT_EXTRA",
    "FILES",
    "FORMATS",
    "INPUT_NAME",
    "MANIFEST",
    "NETWORK_ARTIFACT",
    "NETWORK_FORMAT",
    "OUTPUT_NAME",
    "TOLERANCE",
    "ExportError",
    "ExportReport",
    "FormatCheck",
    "MissingDependencyError",
    "NetworkWeights",
    "checkpoint_network",
    "decode_network",
    "encode_network",
    "export_network",
    "export_weights",
    "final_network",
    "find_checkpoint",
    "fold_masks",
    "hook_masks",
    "is_supernet",
    "latency_metrics",
    "load_pt",
    "measure_onnx_latency",
    "model_example",
    "onnx_session",
    "onnxruntime_version",
    "outputs_of",
    "protocol_from_params",
    "rebuild",
    "require",
    "require_onnx",
    "time_export",
]
