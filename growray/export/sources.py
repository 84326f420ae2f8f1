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
from pathlib import Path

__all__ = ["find_checkpoint"]


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
