"""The Python API; the ``growray`` command line is a thin layer over it.

    >>> import growray.api as gr
    >>> exp = gr.load("experiments/quickstart.yaml")        # raises ConfigError listing every problem
    >>> result = gr.run(exp)                                  # Ray Tune + Optuna sweep, recorded in MLflow
    >>> print(result.table()); result.best.mlflow_run_id

Loading, validating and the store queries (``list_sweeps``, ``pareto_front``) never import
Ray; ``run`` and ``resume`` import it when they start. Importing this module imports nothing
heavy: each function imports what it needs, and the names re-exported from other modules
(``ConfigError``, ``format_table``, ...) are imported on first use, so ``growray ls`` pays
neither for the config layer's pydantic models nor for torch.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from growray.catalog import PluginInfo

if TYPE_CHECKING:
    from growray.api._export import export
    from growray.config import ConfigError, ConfigIssue, Experiment, parse_overrides
    from growray.config.files import space_files
    from growray.kinds.nas import describe_genotype
    from growray.tracking import ParetoReport, UIProcess
    from growray.tracking.tables import format_table
    from growray.tune.orchestrate import SweepResult
    from growray.tune.record import SweepRecord
    from growray.tune.storage import NothingToResume, SetupError

    #: what ``run``/``resume`` raise for a problem found before any trial started (exit 2)
    NOTHING_STARTED: tuple[type[Exception], ...]

__all__ = [
    "NOTHING_STARTED",
    "ConfigError",
    "NothingToResume",
    "PluginInfo",
    "SetupError",
    "absolute_tracking_uri",
    "describe_genotype",
    "existing_store",
    "export",
    "find_sweep",
    "format_table",
    "growth_report",
    "list_sweeps",
    "load",
    "pareto_front",
    "parse_overrides",
    "plugins",
    "prepare_ray_env",
    "resource_issues",
    "resume",
    "retrain",
    "run",
    "space_files",
    "start_ui",
    "to_yaml",
]

#: names re-exported from the module that defines them, imported on first use (PEP 562)
_LAZY = {
    "ConfigError": "growray.config",
    "Experiment": "growray.config",
    "parse_overrides": "growray.config",
    "space_files": "growray.config.files",  # the search_spaces/ files: (name, description, keys)
    "export": "growray.api._export",
    "describe_genotype": "growray.kinds.nas",  # growray show GENOTYPE: a NAS-Bench-201 cell's table entry  # growray export: its own module (the API's largest command)
    "format_table": "growray.tracking.tables",
    "NothingToResume": "growray.tune.storage",
    "SetupError": "growray.tune.storage",
}


def __getattr__(name: str) -> Any:
    if name == "NOTHING_STARTED":
        return (__getattr__("SetupError"),)
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def prepare_ray_env(address: str | None) -> None:
    """Set what Ray reads at import time; call before ``import ray``.

    Ray 2.60 clusters use token authentication: joining one by explicit HOST:PORT needs
    ``RAY_AUTH_MODE=token``, or the connection retries ``InvalidAuthToken`` until it
    times out (STACK_NOTES §7). ``auto`` finds the token by itself.
    """
    import os

    if address and address != "auto":
        os.environ.setdefault("RAY_AUTH_MODE", "token")


def load(path: str | Path, overrides: dict[str, Any] | None = None) -> Experiment:
    """Read and validate an experiment file. Imports neither Ray nor MLflow."""
    from growray.config import load_experiment

    return load_experiment(path, overrides)


def resource_issues(exp: Experiment, address: str | None = None, *, local_only: bool = False) -> list[ConfigIssue]:
    """What of ``exp.resources`` one trial could never get: on this machine (a local Ray,
    checked without importing Ray), or, when ``address`` (or ``RAY_ADDRESS``) names a cluster,
    on that cluster's live nodes (joined for the check, then left; with ``local_only``, a
    cluster is not checked here). Empty: it fits."""
    from growray.config import ConfigIssue
    from growray.machine import joins_cluster, local_resources, resource_problems

    if not joins_cluster(address):
        problems = resource_problems(exp.resources.cpu, exp.resources.gpu, local_resources())
        return [ConfigIssue(path, message, value) for path, message, value in problems]
    if local_only:
        return []
    prepare_ray_env(address)
    from growray.tune.session import cluster_resource_problem  # imports Ray only now

    problem = cluster_resource_problem(exp.resources.cpu, exp.resources.gpu, address)
    return [ConfigIssue("resources", problem)] if problem else []


def absolute_tracking_uri(uri: str | None) -> str:
    """A tracking URI that works from any working directory (default ``sqlite:///mlflow.db``).

    Raises:
        ValueError: ``uri`` is not a URI (MLflow 3 no longer takes plain folders).
    """
    from growray.config import tracking_uri_problem
    from growray.tracking import absolute_tracking_uri as _absolute

    uri = uri or "sqlite:///mlflow.db"
    problem = tracking_uri_problem(uri)
    if problem:
        raise ValueError(f"--tracking-uri {uri!r}: {problem}")
    return _absolute(uri)


def run(
    experiment: Experiment | str | Path,
    *,
    overrides: dict[str, Any] | None = None,
    address: str | None = None,
    tracking_uri: str | None = None,
    verbose: bool = False,
    shared_storage: bool = False,
) -> SweepResult:
    """Validate (if given a path), then run the sweep; returns a ``growray.tune.SweepResult``.

    A trial this machine could never run is refused (``SetupError``) before anything is
    created; ``growray run`` checks it earlier still, with :func:`resource_issues`.

    On a multi-node cluster ``output_dir`` must be reachable from every node: a ``file:///``
    folder on a shared mount, an object-store URI, or a plain folder with ``shared_storage=True``.
    """
    from growray.config import Experiment

    exp = experiment if isinstance(experiment, Experiment) else load(experiment, overrides)
    if overrides and isinstance(experiment, Experiment):
        exp = exp.with_overrides(overrides)
    prepare_ray_env(address)
    from growray.data import DatasetNotFoundError
    from growray.tune.orchestrate import run_sweep  # imports Ray only now
    from growray.tune.storage import SetupError

    try:
        return run_sweep(
            exp, address=address, tracking_uri=tracking_uri, verbose=verbose, shared_storage=shared_storage
        )
    except DatasetNotFoundError as exc:  # found before Ray starts: nothing was started
        raise SetupError(str(exc)) from exc


def find_sweep(target: str | Path) -> SweepRecord:
    """The record of an experiment's latest sweep (its file, or its output folder)."""
    from growray.tune.orchestrate import find_sweep as _find

    return _find(target)


def resume(
    target: str | Path, *, address: str | None = None, verbose: bool = False, shared_storage: bool = False
) -> SweepResult:
    """Continue an interrupted or killed sweep from its checkpoints (same MLflow runs, same study)."""
    prepare_ray_env(address)
    from growray.tune.orchestrate import resume_sweep

    return resume_sweep(target, address=address, verbose=verbose, shared_storage=shared_storage)


def existing_store(tracking_uri: str | None) -> str:
    """The absolute URI of a store that exists: a read-only command never creates one.

    Raises:
        LookupError: a sqlite store whose file does not exist (the message says where it
            looked and how to point elsewhere).
    """
    from pathlib import Path

    uri = absolute_tracking_uri(tracking_uri)
    if uri.startswith("sqlite:///"):
        path = Path(uri[len("sqlite:///") :].split("?", 1)[0])
        if not path.is_file():
            raise LookupError(
                f"no MLflow store at {path}: run this in the folder that holds the sweep's mlflow.db, or pass "
                "--tracking-uri sqlite:////absolute/path/to/mlflow.db (or a server's http:// URL)"
            )
    return uri


def list_sweeps(tracking_uri: str | None = None, experiment: str | None = None) -> list[dict[str, Any]]:
    """Past sweeps in an existing MLflow store, newest first (LookupError: no store there)."""
    from growray.tracking import list_sweeps as _list

    return _list(existing_store(tracking_uri), experiment)


def pareto_front(
    experiment: str | Path, *, tracking_uri: str | None = None, run_id: str | None = None
) -> tuple[str, ParetoReport]:
    """``(sweep run id, front)`` of an experiment's latest multi-objective sweep (or ``run_id``),
    from MLflow alone. ``experiment`` is its file or its MLflow experiment name.

    Raises:
        LookupError: no sweep is recorded for the experiment.
        ValueError: the run is not a multi-objective sweep.
    """
    from growray.tracking import latest_sweep_run, sweep_front

    name = str(experiment)
    if Path(experiment).suffix in (".yaml", ".yml") and Path(experiment).is_file():
        from growray.config.experiment import recorded_where

        # the file's name and tracking section are enough, and read without importing any plug-in
        where = recorded_where(Path(experiment))
        if where is None:  # they do not validate: the whole file's errors (ConfigError)
            exp = load(experiment)
            where = exp.experiment_name, exp.tracking.uri
        name, tracking_uri = where[0], tracking_uri or where[1]
    uri = existing_store(tracking_uri)
    if run_id is None:
        run = latest_sweep_run(uri, name)
        if run is None:
            raise LookupError(f"no sweep recorded for experiment {name!r} in {uri}")
        run_id = str(run.info.run_id)
    return run_id, sweep_front(uri, run_id)


def growth_report(target: str | Path, *, tracking_uri: str | None = None) -> tuple[str, str]:
    """``(sweep run id, growth report as Markdown)`` of a growth sweep with baselines, from MLflow
    alone; ``target`` is the experiment file, its MLflow experiment name (the latest sweep), or a
    sweep's or trial's run id (ValueError: none of these)."""
    from growray.kinds.baselines import growth_report as _report
    from growray.tracking.growth_report import resolve_sweep_run

    name = str(target)
    if Path(target).suffix in (".yaml", ".yml") and Path(target).is_file():
        exp = load(target)
        name, tracking_uri = exp.experiment_name, tracking_uri or exp.tracking.uri
    uri = existing_store(tracking_uri)
    run_id = resolve_sweep_run(uri, name)
    return run_id, _report(uri, run_id)[0]


def start_ui(
    tracking_uri: str | None = None, *, host: str = "127.0.0.1", port: int = 5000, timeout: float = 120
) -> UIProcess:
    """Start ``mlflow server`` on the store (one worker, bound to ``host``) and wait until it
    answers; the caller stops it (``proc.stop()``).

    Raises:
        LookupError: no sqlite store at that path (the message says where it looked).
        OSError: the port is taken (``PortInUseError``).
        RuntimeError: the server exited before answering (its output is in the message), or
            another server answered on the port.
        TimeoutError: it did not answer within ``timeout`` seconds.
    """
    from growray.tracking import start_ui as _start
    from growray.tracking import wait_healthy

    proc = _start(existing_store(tracking_uri), host=host, port=port)  # never creates a store
    try:
        wait_healthy(proc.url, timeout=timeout, process=proc)
    except BaseException:
        proc.stop()
        raise
    return proc


def to_yaml(data: dict[str, Any]) -> str:
    """A resolved config as YAML, keys in their order (``growray show FILE``)."""
    import yaml

    return str(yaml.safe_dump(data, sort_keys=False))


def retrain(
    run_id: str, *, tracking_uri: str | None = None, overrides: dict[str, Any] | None = None
) -> tuple[str, dict[str, float]]:
    """Retrain what a recorded trial found (a NAS search run's genotype), on this machine,
    into a new MLflow run linked to it; returns (new run id, metrics).

    The run's own ``config.yaml`` is the experiment, with ``overrides`` applied; the active
    kind that can retrain does it (``Kind.retrain_run``).

    Raises:
        ConfigError: the overrides make the experiment invalid.
        ValueError: the run does not exist, or its kind has nothing to retrain.
    """
    from growray.config import apply_overrides, validate_dict
    from growray.kinds import KINDS, active_kinds, get_kind
    from growray.tracking import ensure_store, run_config

    uri = existing_store(tracking_uri)
    ensure_store(uri)
    raw = run_config(uri, run_id)
    exp = validate_dict(apply_overrides(raw, overrides or {}), check_space=False)
    able = [(kind, cfg) for kind, cfg in active_kinds(exp) if kind.retrains]
    if not able:
        names = [n for n in KINDS.names() if get_kind(n).retrains]
        raise ValueError(
            f"run {run_id} is a {exp.kind!r} trial: nothing to retrain (runs of these kinds can be: {', '.join(names)})"
        )
    kind, cfg = able[0]
    return kind.retrain_run(exp, cfg, uri, run_id)


def plugins() -> list[PluginInfo]:
    """Every registered plug-in: the experiment kinds, then every plug-in section (the core's
    and each kind's) and the kinds' other registries, with their parameters' defaults
    (``growray.catalog.plugin_infos``: cached while growray's sources are unchanged)."""
    from growray.catalog import plugin_infos

    return plugin_infos()
