"""Where a run's final network is, when MLflow does not hold its ``network.json``.

Runs recorded before the trainer logged ``network.json``, and trials a scheduler stopped
early (they never reach the end of training), still have the checkpoints they reported to
Ray Tune: ``<output_dir>/<name>/ray/<sweep>/<trial folder>/checkpoint_<n>/`` with
``arch.json``, ``state.pt`` and ``meta.json``, whose ``mlflow_run_id`` names the run. The
newest checkpoint of the run is its final network. Everything under ``output_dir`` is
untrusted: ``meta.json`` is read as JSON and checked; ``state.pt`` is loaded by the caller
with ``weights_only=True`` (``growray.train.load_checkpoint``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .errors import ExportError
from .weights import NETWORK_ARTIFACT, NetworkWeights, hook_masks

__all__ = ["checkpoint_network", "find_checkpoint"]


def _position(meta_file: Path, run_id: str) -> tuple[int, int] | None:
    """``(epoch, step)`` of a checkpoint of run ``run_id``, or None (another run's, or unreadable)."""
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("mlflow_run_id") != run_id:
        return None
    epoch, step = meta.get("epoch"), meta.get("step")
    if isinstance(epoch, bool) or isinstance(step, bool) or not isinstance(epoch, int) or not isinstance(step, int):
        return None
    return epoch, step


def find_checkpoint(sweep_folder: str | Path, run_id: str) -> Path | None:
    """The newest checkpoint folder of MLflow run ``run_id`` in a sweep's Tune folder, or None.

    Args:
        sweep_folder: Tune's folder of the sweep (``<output_dir>/<name>/ray/<sweep>``).
        run_id: the trial's MLflow run.
    """
    root = Path(sweep_folder)
    if not root.is_dir():
        return None
    found = []
    for meta_file in root.glob("*/checkpoint_*/meta.json"):
        position = _position(meta_file, run_id)
        if position is not None and (meta_file.parent / "state.pt").is_file():
            found.append((position, str(meta_file.parent)))
    return Path(max(found)[1]) if found else None


def checkpoint_network(
    sweep_folder: str | None, run_id: str, load: Callable[[Path], Any], looked: str
) -> NetworkWeights:
    """The network of run ``run_id``'s newest checkpoint in ``sweep_folder``.

    Args:
        sweep_folder: Tune's folder of the run's sweep; None when it cannot be read from here
            (an object store, or a run without a sweep).
        run_id: the run.
        load: reads a checkpoint folder (``growray.train.load_checkpoint``: ``weights_only``).
        looked: where the message says it looked.

    Raises:
        ExportError: no checkpoint of the run there.
    """
    folder = find_checkpoint(sweep_folder, run_id) if sweep_folder else None
    if folder is None:
        raise ExportError(
            f"run {run_id} has no weights: no {NETWORK_ARTIFACT} in MLflow (runs log it when training ends) and no "
            f"checkpoint of it under {looked}; run the export in the folder the sweep ran in, or export another run"
        )
    ckpt = load(folder)
    return NetworkWeights(ckpt.spec, ckpt.model_state, hook_masks(ckpt.hook_tensors.values()))
