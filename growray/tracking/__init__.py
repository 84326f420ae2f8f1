"""Tracking: the Recorder protocol the trainer logs through, MLflow on the driver, plots.

This is the only growray package that imports mlflow, and it does so inside functions,
so ``import growray.tracking`` stays cheap (no mlflow, no matplotlib).

Metric keys follow DESIGN.md (``train/loss``, ``growth/width/hidden.0``, ...); MLflow
accepts ``/`` and ``.`` in keys.
"""

from ._mlflow import MlflowRecorder
from ._pareto import CONSTRAINTS_TAG, OBJECTIVES_TAG, ParetoReport, record_front, sweep_front
from ._recorder import MemoryRecorder, NullRecorder, Recorder, flatten_params
from ._server import UIProcess, start_ui, ui_command, wait_healthy
from ._store import (
    absolute_tracking_uri,
    child_runs,
    clear_failure,
    create_sweep_run,
    default_artifact_location,
    ensure_store,
    finalize_child_run,
    find_trial_run,
    finish_run,
    get_or_create_experiment,
    latest_sweep_run,
    list_sweeps,
    max_logged_step,
    run_tags,
    set_run_tags,
)
from .plots import growth_timeline_figure, pareto_figure

__all__ = [
    "CONSTRAINTS_TAG",
    "OBJECTIVES_TAG",
    "MemoryRecorder",
    "MlflowRecorder",
    "NullRecorder",
    "ParetoReport",
    "Recorder",
    "UIProcess",
    "absolute_tracking_uri",
    "child_runs",
    "clear_failure",
    "create_sweep_run",
    "default_artifact_location",
    "ensure_store",
    "finalize_child_run",
    "find_trial_run",
    "finish_run",
    "flatten_params",
    "get_or_create_experiment",
    "growth_timeline_figure",
    "latest_sweep_run",
    "list_sweeps",
    "max_logged_step",
    "pareto_figure",
    "record_front",
    "run_tags",
    "set_run_tags",
    "start_ui",
    "sweep_front",
    "ui_command",
    "wait_healthy",
]
