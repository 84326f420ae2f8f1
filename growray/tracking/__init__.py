"""Tracking: the Recorder protocol the trainer logs through, MLflow on the driver, plots.

This is the only growray package that imports mlflow, and it does so inside functions,
so ``import growray.tracking`` stays cheap (no mlflow, no matplotlib).

Metric keys follow DESIGN.md (``train/loss``, ``growth/width/hidden.0``, ...); MLflow
accepts ``/`` and ``.`` in keys.
"""

from ._mlflow import MlflowRecorder, dict_text
from ._models import (
    ExportSource,
    ExportTarget,
    LoggedModel,
    export_targets,
    log_onnx_model,
    read_export_source,
    record_export_latency,
    register_model,
)
from ._params import SEARCHED_PREFIX, describe_param, param_value, sweep_params, trial_params
from ._pareto import CONSTRAINTS_TAG, OBJECTIVES_TAG, ParetoReport, record_front, sweep_front
from ._recorder import MemoryRecorder, NullRecorder, ProgressRecorder, Recorder, close_figure, flatten_params
from ._retrain import SearchRun, link_retrain, load_search_run, open_retrain_run, run_config, search_run_in_hand
from ._runs import (
    RUNS_VIEW_KEY,
    child_run_statuses,
    clear_failure,
    create_sweep_run,
    delete_run_tag,
    finalize_child_run,
    find_trial_run,
    finish_run,
    last_metric,
    max_logged_step,
    run_status,
    run_tags,
    runs_view_url,
    set_run_tags,
    set_runs_view,
)
from ._server import PortInUseError, UIProcess, check_port_free, serves_port, start_ui, ui_command, wait_healthy
from ._store import (
    absolute_tracking_uri,
    child_runs,
    default_artifact_location,
    ensure_store,
    get_or_create_experiment,
    latest_sweep_run,
    list_sweeps,
)
from .plots import growth_timeline_figure, pareto_figure

__all__ = [
    "CONSTRAINTS_TAG",
    "OBJECTIVES_TAG",
    "RUNS_VIEW_KEY",
    "SEARCHED_PREFIX",
    "ExportSource",
    "ExportTarget",
    "LoggedModel",
    "MemoryRecorder",
    "MlflowRecorder",
    "NullRecorder",
    "ParetoReport",
    "PortInUseError",
    "ProgressRecorder",
    "Recorder",
    "SearchRun",
    "UIProcess",
    "absolute_tracking_uri",
    "check_port_free",
    "child_run_statuses",
    "child_runs",
    "clear_failure",
    "close_figure",
    "create_sweep_run",
    "default_artifact_location",
    "delete_run_tag",
    "describe_param",
    "dict_text",
    "ensure_store",
    "export_targets",
    "finalize_child_run",
    "find_trial_run",
    "finish_run",
    "flatten_params",
    "get_or_create_experiment",
    "growth_timeline_figure",
    "last_metric",
    "latest_sweep_run",
    "link_retrain",
    "list_sweeps",
    "load_search_run",
    "log_onnx_model",
    "max_logged_step",
    "open_retrain_run",
    "param_value",
    "pareto_figure",
    "read_export_source",
    "record_export_latency",
    "record_front",
    "register_model",
    "run_config",
    "run_status",
    "run_tags",
    "runs_view_url",
    "search_run_in_hand",
    "serves_port",
    "set_run_tags",
    "set_runs_view",
    "start_ui",
    "sweep_front",
    "sweep_params",
    "trial_params",
    "ui_command",
    "wait_healthy",
]
