"""The driver's side of a sweep: start or join Ray, refuse storage the cluster cannot reach,
and end the sweep's parent run, writer and Ray together."""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
from collections.abc import Iterator
from typing import Any

import ray

from growray.machine import joins_cluster, local_resources, resource_problems
from growray.tracking import Recorder

from .storage import SetupError, SweepStorage, require_shared_storage
from .writer import WriterHandle, stop_writer

__all__ = [
    "check_cluster_resources",
    "check_cluster_storage",
    "check_machine_resources",
    "cluster_resource_problem",
    "git_commit",
    "init_ray",
    "quiet_noise",
    "sweep_session",
]

_DISK_FULL = ("No space left on device", "database or disk is full")

# What Ray, Optuna and MLflow print that growray says better, or that does not apply: hidden
# unless --verbose. Keyed by logger, the messages' distinctive parts.
_NOISE = {
    # every fresh local ray.init (Ray 2.59+): token auth stays on, only the notice goes
    "ray._private.authentication.authentication_token_setup": ("Token authentication is enabled",),
    # on Ctrl-C: growray prints its own `growray resume ...` line and the INTERRUPTED trials
    "ray.tune.tune": ("Tuner.restore(", "has been interrupted", "Trials did not complete"),
    # a trial that failed on a full disk: growray says "the disk is full" once, at the end
    "ray.tune.execution.tune_controller": _DISK_FULL,
    # the same full disk, when Tune's background copy of a checkpoint into the run's storage
    # failed: a warning with the copy's whole traceback in its message
    "ray.train._internal.syncer": _DISK_FULL,
}


class _DropMessages(logging.Filter):
    """Drops records whose message or attached exception contains one of ``needles``."""

    def __init__(self, needles: tuple[str, ...]) -> None:
        super().__init__()
        self.needles = needles

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += logging.Formatter().formatException(record.exc_info)
        return not any(n in message for n in self.needles)


def quiet_noise(verbose: bool) -> None:
    """Hide Ray's, Optuna's and MLflow's chatter about things growray reports itself, unless
    ``verbose``: the token-auth notice, Ray's experiment box and TensorBoard hint (the
    ``RAY_AIR_NEW_OUTPUT=0`` output engine, which prints nothing at ``verbose=0``), Ray's
    "Unhandled error" tracebacks of calls nobody waited for (``RAY_IGNORE_UNHANDLED_ERRORS``), Ray's
    ``Tuner.restore(...)`` advice on Ctrl-C, Optuna's "A new study created in RDB" and MLflow's
    "Creating initial MLflow database tables". Warnings and errors of these libraries otherwise stay.
    An explicit ``RAY_AIR_NEW_OUTPUT`` in the environment is respected."""
    if verbose:
        return
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")
    # Ray prints a traceback for each failed call whose result nobody fetched: the writer's
    # calls that a trial sends without waiting (their errors reach the trial at its next
    # flush, or the trial failed first and Tune reports it): one full disk printed 2 tracebacks
    os.environ.setdefault("RAY_IGNORE_UNHANDLED_ERRORS", "1")
    for name, needles in _NOISE.items():
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropMessages) for f in logger.filters):
            logger.addFilter(_DropMessages(needles))
    # WARNING hides "Creating initial MLflow database tables"; CRITICAL its "SQLAlchemy database
    # error" log with a traceback, always followed by the exception growray reports (full disk)
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)


def init_ray(address: str | None, verbose: bool) -> bool:
    """Start or join Ray; returns True when this call started it (and should shut it down).

    Raises:
        ConnectionError: the cluster at ``address`` cannot be joined; the message says how
            token authentication (Ray 2.60) is set up.
    """
    # Tune snapshots the sweep's state at most this often; a killed driver loses what came after
    # (default >= 10 s, STACK_NOTES §3). The state is small: snapshot often.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": verbose, "logging_level": "WARNING"}
    if not address:
        # Without an address, ray.init() joins RAY_ADDRESS, or else the cluster a `ray start`
        # (or ray.cluster_utils) on this machine last recorded in /tmp/ray/ray_current_cluster:
        # a sweep run without --address would then land silently on someone else's cluster,
        # unchecked for shared storage and resources. "local" always starts this sweep's own Ray.
        ray.init(address=None if joins_cluster(None) else "local", **kwargs)
        return True
    try:
        ray.init(address=address, **kwargs)
    except ConnectionError as exc:
        raise ConnectionError(
            f"could not join the Ray cluster at {address!r}: {exc}. Ray 2.60 clusters use token "
            "authentication: run with RAY_AUTH_MODE=token and the head's token available on this machine "
            "(~/.ray/auth_token, or RAY_AUTH_TOKEN / RAY_AUTH_TOKEN_PATH); check the address with `ray status`."
        ) from exc
    return True


def check_cluster_storage(storage: SweepStorage, started_ray: bool) -> None:
    """On a cluster whose trials may run away from the driver, refuse a local ``output_dir``
    (before any run or trial exists); Ray is shut down again if this process started it.

    Raises:
        SetupError: from :func:`~growray.tune.storage.require_shared_storage`.
    """
    try:
        require_shared_storage(storage, ray.nodes(), ray.get_runtime_context().get_node_id())
    except SetupError:
        if started_ray:
            ray.shutdown()
        raise


def check_machine_resources(cpu: float, gpu: float, address: str | None) -> None:
    """Refuse, before anything exists (Ray, the store, the output folder), a trial that a local
    Ray on this machine could never run (:mod:`growray.machine`; what ``growray validate``
    checks). Nothing is checked here when the sweep joins a cluster or Ray is already running:
    :func:`check_cluster_resources` checks the live nodes then.

    Raises:
        SetupError: naming the YAML path, what the trial asks for and what this machine has.
    """
    if ray.is_initialized() or joins_cluster(address):
        return
    problems = resource_problems(cpu, gpu, local_resources())
    if problems:
        raise SetupError("; ".join(f"{path}: {message} (got {value:g})" for path, message, value in problems))


def check_cluster_resources(cpu: float, gpu: float, started_ray: bool) -> None:
    """Refuse a sweep whose trials no node of the cluster could ever run (they would wait
    PENDING forever), before any run or study exists; Ray is shut down again if this process
    started it.

    Args:
        cpu: ``resources.cpu`` of one trial.
        gpu: ``resources.gpu`` of one trial.
        started_ray: this process started Ray (:func:`init_ray` returned True).

    Raises:
        SetupError: naming what one trial asks for and what each node has.
    """
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if any(r.get("CPU", 0.0) >= cpu and r.get("GPU", 0.0) >= gpu for r in nodes):
        return
    have = "; ".join(f"{r.get('CPU', 0.0):g} CPU, {r.get('GPU', 0.0):g} GPU" for r in nodes) or "no live node"
    if started_ray:
        ray.shutdown()
    raise SetupError(
        f"resources: a trial asks for {cpu:g} CPU and {gpu:g} GPU, but no node of this Ray cluster has that much "
        f"(nodes: {have}); lower resources.cpu / resources.gpu, or run on a cluster with such a node (--address)"
    )


def cluster_resource_problem(cpu: float, gpu: float, address: str | None) -> str | None:
    """Join the cluster at ``address`` (``growray validate --address``), check that a node can
    run one trial (:func:`check_cluster_resources`), and leave it; the problem, or None."""
    started = init_ray(address, verbose=False)
    try:
        check_cluster_resources(cpu, gpu, started_ray=False)
    except SetupError as exc:
        return str(exc).removeprefix("resources: ")
    finally:
        if started:
            ray.shutdown()
    return None


def git_commit() -> str | None:
    """The commit of the working directory's git checkout, for provenance (None outside git)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], check=False, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


@contextlib.contextmanager
def sweep_session(parent: Recorder, started_ray: bool, writer: WriterHandle) -> Iterator[None]:
    """The parent run fails with the sweep; the sweep's writer stops with it; Ray is shut down
    only if this process started it.

    Args:
        parent: the sweep's parent run.
        started_ray: this process started Ray (:func:`init_ray` returned True).
        writer: the sweep's writer (:func:`~growray.tune.writer.start_writer`).
    """
    try:
        yield
    except BaseException:
        # the sweep's own error is the one to report: closing the run may fail for the same
        # reason (a full disk, a store gone away), and must not replace it
        with contextlib.suppress(Exception):
            parent.close("FAILED")
        raise
    finally:
        stop_writer(writer)
        if started_ray:
            ray.shutdown()
