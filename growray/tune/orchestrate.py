"""A validated Experiment -> a Ray Tune sweep with OptunaSearch, recorded under one MLflow parent run.

:func:`run_sweep` starts a sweep and writes its :class:`~growray.tune.record.SweepRecord`;
:func:`resume_sweep` continues one from that record. The pieces live beside this module:
``tuner`` (searcher, scheduler, Tuner), ``session`` (Ray, cluster storage, the parent run's
fate), ``finish`` (closing runs, the summary on the parent run), ``results`` (the summaries).

Importing this module does not import Ray (nor torch): the Ray-side modules are imported
when a sweep starts, so the commands that only read a store or a record stay light.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from growray import __version__
from growray.tracking import absolute_tracking_uri

from .record import SweepRecord, SweepRecordError, find_sweep
from .results import SweepResult, TrialSummary
from .storage import NothingToResume, SetupError, SweepStorage, check_storage_reachable, resolve_storage

if TYPE_CHECKING:
    from growray.config import Experiment
    from growray.tracking.tables import Column

__all__ = [
    "NothingToResume",
    "SetupError",
    "SweepRecord",
    "SweepRecordError",
    "SweepResult",
    "SweepStorage",
    "TrialSummary",
    "absolute_tracking_uri",
    "find_sweep",
    "resume_sweep",
    "run_sweep",
]


def run_sweep(
    exp: Experiment,
    *,
    address: str | None = None,
    tracking_uri: str | None = None,
    verbose: bool = False,
    live_interval_s: float = 15.0,
    shared_storage: bool = False,
    extra_columns: Sequence[Column] | None = None,
) -> SweepResult:
    """Run the experiment's sweep to completion and record it; returns the trial summaries.

    Args:
        exp: the validated experiment.
        address: a Ray cluster to join (``auto`` or ``HOST:PORT``); None starts Ray locally.
        tracking_uri: the MLflow store, instead of ``tracking.uri``.
        verbose: forward the trials' logs to this terminal.
        live_interval_s: how often the live trial table is printed while trials run.
        shared_storage: a plain ``output_dir`` folder is mounted at the same path on every
            node of the cluster; without it (or a URI), a multi-node cluster is refused.
        extra_columns: columns added to the live and the final tables (default: the active
            experiment kinds' columns, ``Kind.columns``).

    Raises:
        SetupError: something the user can fix (the store, ``output_dir``), found before any trial.
    """
    from growray.data import load_dataset
    from growray.tracking import (
        CONSTRAINTS_TAG,
        OBJECTIVES_TAG,
        MlflowRecorder,
        create_sweep_run,
        ensure_store,
        get_or_create_experiment,
        sweep_params,
    )

    from ._writer_process import writer_in_own_process
    from .finish import finish_sweep
    from .session import (
        check_cluster_resources,
        check_cluster_storage,
        check_machine_resources,
        git_commit,
        init_ray,
        quiet_noise,
        sweep_session,
    )
    from .signing import sign_folder
    from .trial import SweepContext
    from .tuner import build_trainable, build_tuner, signatures_path
    from .writer import start_writer

    t0 = time.perf_counter()
    quiet_noise(verbose)
    check_machine_resources(exp.resources.cpu, exp.resources.gpu, address)  # before anything exists
    storage = resolve_storage(exp.output_dir, exp.name, shared=shared_storage)
    check_storage_reachable(storage)
    sweep_name = f"{exp.name}-{time.strftime('%Y%m%d-%H%M%S')}"

    # Everything that can fail cheaply fails before Ray starts: the store, then the data.
    try:
        uri = absolute_tracking_uri(tracking_uri or exp.tracking.uri)
        ensure_store(uri, journal=True)  # WAL on a local disk (growray.journal)
    except (ConnectionError, ValueError) as exc:
        raise SetupError(f"tracking.uri: {exc}") from None
    dataset = load_dataset(exp.data, seed=exp.seed)
    started_ray = init_ray(address, verbose)
    # a refused sweep leaves no MLflow experiment, parent run or study behind
    check_cluster_storage(storage, started_ray)
    check_cluster_resources(exp.resources.cpu, exp.resources.gpu, started_ray)
    experiment_id = get_or_create_experiment(uri, exp.experiment_name)

    provenance = {"mlflow.source.git.commit": commit} if (commit := git_commit()) else {}
    parent_id = create_sweep_run(
        uri,
        experiment_id,
        run_name=sweep_name,
        tags={
            "growray.sweep": sweep_name,
            "growray.trial_kind": exp.kind,
            OBJECTIVES_TAG: json.dumps(
                [{"metric": m, "mode": d} for m, d in zip(exp.search.metrics, exp.search.modes)]
            ),
            CONSTRAINTS_TAG: json.dumps([c.model_dump() for c in exp.search.constraints]),
            **provenance,
        },
        searched=list(exp.search.space),
    )
    parent = MlflowRecorder(uri, experiment_id, run_id=parent_id)
    parent.log_params(sweep_params(exp.to_dict()))  # the searched paths: their distributions
    parent.log_dict(exp.to_dict(), "config.yaml")

    record = SweepRecord(
        sweep=sweep_name,
        experiment=exp.to_dict(),
        tracking_uri=uri,
        experiment_id=experiment_id,
        parent_run_id=parent_id,
        storage_path=storage.sweep_path(sweep_name),
        ray_root=storage.ray_root,
        state_dir=str(storage.state_dir),
        shared_storage=storage.shared,
        optuna_storage=f"sqlite:///{storage.state_dir / 'optuna.db'}",
        provenance=provenance,
        growray_version=__version__,
    )
    record.save(storage.state_dir)
    own = writer_in_own_process(exp.tracking.writer, exp.search.num_samples)
    writer = start_writer(uri, experiment_id, parent_id, fresh=True, own_process=own)  # warms up meanwhile
    with sweep_session(parent, started_ray, writer):
        ctx = SweepContext(uri, experiment_id, parent_id, sweep_name, provenance, writer)
        columns = kind_columns(exp) if extra_columns is None else tuple(extra_columns)
        tuner = build_tuner(exp, record, build_trainable(exp, dataset, ctx), live_interval_s, columns)
        sign_folder(record.storage_path, signatures_path(record))  # tuner.pkl, written straight to storage
        results = tuner.fit()
        sign_folder(record.storage_path, signatures_path(record))  # the state Tune left at the end
        return finish_sweep(exp, record, results, parent, t0, columns)


def resume_sweep(
    target: str | Path,
    *,
    address: str | None = None,
    verbose: bool = False,
    live_interval_s: float = 15.0,
    shared_storage: bool = False,
    extra_columns: Sequence[Column] | None = None,
) -> SweepResult:
    """Continue an interrupted or killed sweep: unfinished and errored trials resume from their
    checkpoints (the same MLflow runs), the Optuna study continues, the parent run is reused.

    Args:
        target: the experiment file, its output folder, or the sweep record (see :func:`find_sweep`).
        address, verbose, live_interval_s, extra_columns: as in :func:`run_sweep`.
        shared_storage: as in :func:`run_sweep` (a sweep started with it keeps it).

    Raises:
        FileNotFoundError: no sweep record, or no restorable Tune experiment where it points.
        SweepRecordError: the record is damaged (it is untrusted input: JSON only, every key checked).
        growray.config.ConfigError: the recorded experiment no longer validates.
        SetupError: the cluster cannot reach the sweep's storage or run its trials.
        NothingToResume: the sweep finished.
    """
    from ray import tune

    from growray.data import load_dataset
    from growray.tracking import MlflowRecorder, ensure_store, run_status, run_tags

    from ._writer_process import writer_in_own_process
    from .finish import finish_sweep
    from .session import (
        check_cluster_resources,
        check_cluster_storage,
        check_machine_resources,
        init_ray,
        quiet_noise,
        sweep_session,
    )
    from .signing import resume_key_path, sign_folder, verify_folder
    from .trial import SweepContext
    from .tuner import build_trainable, restore_tuner, signatures_path
    from .writer import start_writer

    t0 = time.perf_counter()
    quiet_noise(verbose)
    record = find_sweep(target)
    exp = record.load_experiment()
    columns = kind_columns(exp) if extra_columns is None else tuple(extra_columns)
    if not tune.Tuner.can_restore(record.storage_path):
        raise FileNotFoundError(f"Ray Tune has no restorable experiment at {record.storage_path}")
    problems = verify_folder(record.storage_path, signatures_path(record))
    if problems:  # nothing of Tune's state is loaded: it is pickles
        listed = "\n  - ".join(problems)
        raise SetupError(
            f"will not resume {record.sweep}: Ray Tune's state (pickles, which could run code) is not as this sweep "
            f"wrote it:\n  - {listed}\nstart a new sweep with growray run (finished trials stay in MLflow); the "
            f"signing key is {resume_key_path()}"
        )
    check_machine_resources(exp.resources.cpu, exp.resources.gpu, address)
    uri = record.tracking_uri
    ensure_store(uri, journal=True)
    tags = run_tags(uri, record.parent_run_id)
    if run_status(uri, record.parent_run_id) == "FINISHED" and tags.get("growray.interrupted") != "true":
        raise NothingToResume(
            f"sweep {record.sweep} finished (MLflow parent run {record.parent_run_id}): nothing to resume; "
            "start another with growray run"
        )
    dataset = load_dataset(exp.data, seed=exp.seed)
    started_ray = init_ray(address, verbose)
    storage = SweepStorage(
        exp.output_dir,
        Path(record.state_dir),
        record.ray_root,
        shared_storage or record.shared_storage or "://" in record.ray_root,
    )
    check_cluster_storage(storage, started_ray)
    check_cluster_resources(exp.resources.cpu, exp.resources.gpu, started_ray)
    resumed = int(tags.get("growray.resumed", 0))
    parent = MlflowRecorder(uri, record.experiment_id, run_id=record.parent_run_id)
    parent.set_tags({"growray.resumed": str(resumed + 1)})
    own = writer_in_own_process(exp.tracking.writer, exp.search.num_samples)
    writer = start_writer(uri, record.experiment_id, record.parent_run_id, own_process=own)
    with sweep_session(parent, started_ray, writer):
        ctx = SweepContext(uri, record.experiment_id, record.parent_run_id, record.sweep, record.provenance, writer)
        tuner = restore_tuner(record, build_trainable(exp, dataset, ctx))
        sign_folder(record.storage_path, signatures_path(record))  # the rewritten tuner.pkl
        results = tuner.fit()
        sign_folder(record.storage_path, signatures_path(record))
        return finish_sweep(exp, record, results, parent, t0, columns)


def kind_columns(exp: Experiment) -> tuple[Column, ...]:
    """The table columns of the experiment's active kinds (``Kind.columns``), in kind order."""
    from growray.kinds import active_kinds

    return tuple(column for kind, _ in active_kinds(exp) for column in kind.columns)
