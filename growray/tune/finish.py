"""After ``Tuner.fit``: close what the trials left open, and record the sweep on its parent run."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

from .record import SweepRecord
from .results import SweepResult, paired_test_metric, summaries, trial_statuses

if TYPE_CHECKING:
    from ray.tune import ResultGrid

    from growray.config import Experiment
    from growray.tracking import Recorder
    from growray.tracking.tables import Column

__all__ = ["fail_orphaned_optuna_trials", "finish_sweep"]


def finish_sweep(
    exp: Experiment,
    record: SweepRecord,
    results: ResultGrid,
    parent: Recorder,
    t0: float,
    extra_columns: Sequence[Column] = (),
) -> SweepResult:
    """Summaries, child-run statuses, best trial and Pareto front on the parent run, which is closed.

    Args:
        exp: the sweep's experiment.
        record: the sweep's record (MLflow ids, the Optuna study).
        results: what ``Tuner.fit`` returned.
        parent: the parent run's recorder.
        t0: ``time.perf_counter()`` when the sweep (or the resume) started.
        extra_columns: the experiment kind's columns in the summary table.
    """
    from growray.tracking import child_run_statuses, finalize_child_run, record_front

    uri = record.tracking_uri
    trials = summaries(results, exp.search.metrics[0], exp.trainer.epochs, trial_statuses(results))
    result = SweepResult(
        name=record.sweep,
        output_dir=record.state_dir,
        storage_path=record.storage_path,
        tracking_uri=uri,
        experiment_id=record.experiment_id,
        parent_run_id=record.parent_run_id,
        metric=exp.search.metrics[0],
        mode=exp.search.modes[0],
        trials=trials,
        seconds=time.perf_counter() - t0,
        # SIGINT makes fit() return normally (STACK_NOTES §3): unfinished trials, or fewer trials
        # than asked for without a time budget, are how we tell.
        interrupted=results.num_terminated + results.num_errors < len(results)
        or (exp.search.time_budget_s is None and len(results) < exp.search.num_samples),
        extra_columns=tuple(extra_columns),
        objectives=tuple(zip(exp.search.metrics, exp.search.modes, strict=True)),
    )
    if result.interrupted and exp.search.scheduler.name == "fifo":
        # Ctrl-C ends the running trials as TERMINATED in Ray (measured, Ray 2.60): with no
        # scheduler to stop a trial, one short of its epochs was interrupted, not stopped.
        for t in trials:
            if t.status == "STOPPED":
                t.status, t.stopped_early = "INTERRUPTED", False
    # Tune ends trials inside report() and may tear their actor down before the trial's own
    # close reaches MLflow (finished trials too); an errored one may not have closed either.
    statuses = {} if result.interrupted else child_run_statuses(uri, record.experiment_id, record.parent_run_id)
    for t in trials:
        if t.mlflow_run_id and not result.interrupted:
            finalize_child_run(
                uri,
                t.mlflow_run_id,
                failed=t.status == "ERROR",
                stopped_early=t.stopped_early,
                stopped_at_epoch=t.epochs if t.stopped_early else None,
                error=t.error,
                status=statuses.get(t.mlflow_run_id),  # None: not found under the parent, read it
            )
    _log_summary(result, parent)
    if not result.interrupted and exp.search.scheduler.name not in ("pbt", "bohb"):  # no Optuna study
        fail_orphaned_optuna_trials(record.sweep, record.optuna_storage)
    if exp.search.multi_objective and not result.interrupted:
        result.pareto = record_front(uri, record.parent_run_id, parent)  # sweep/pareto_size, sweep/n_ranked
    parent.log_text(result.table() + "\n", "trials.txt")
    parent.log_dict([asdict(t) for t in trials], "trials.json")
    if not result.interrupted:
        _log_kind_artifacts(exp, result, parent)
    if result.interrupted:
        parent.set_tags({"growray.interrupted": "true"})
        parent.close("KILLED")  # `growray resume` reopens it
    else:
        from growray.tracking import delete_run_tag

        delete_run_tag(uri, record.parent_run_id, "growray.interrupted")  # a resume that finished
        parent.close("FAILED" if trials and result.n_errors == len(trials) else "FINISHED")
    return result


def _log_summary(result: SweepResult, parent: Recorder) -> None:
    """The summary numbers on the parent run, the same as the final table's and ``growray ls``'s:
    ``sweep/n_trials`` (trials, not retrain runs) and a count per status; for one objective the
    best trial's ``best/<objective>`` and the matching test accuracy (``best/test_acc``, a NAS
    sweep's ``best/nas_retrain_test_acc``); a multi-objective sweep has no best trial, its
    front is recorded by ``record_front``."""
    counts = {f"sweep/n_{s.lower()}": float(result.count(s)) for s in ("STOPPED", "INTERRUPTED", "DIVERGED")}
    parent.log_metrics(
        {"sweep/n_trials": float(len(result.trials)), "sweep/n_errors": float(result.n_errors), **counts}, step=0
    )
    best = result.best
    if best is None or best.metric is None:
        return
    metrics = {f"best/{result.metric.replace('/', '_')}": best.metric}
    if best.test_acc is not None:
        metrics[f"best/{paired_test_metric(result.metric).replace('/', '_')}"] = best.test_acc
    parent.log_metrics(metrics, step=0)
    parent.set_tags({"growray.best_run_id": best.mlflow_run_id or "", "growray.best_trial": best.trial_id})


def _outcome_status(status: str) -> str:
    """A summary's status as ``TrialOutcome`` states it: STOPPED trials are TERMINATED there
    (kinds read ``stopped_early`` semantics from their own metrics, e.g. ``test/acc``)."""
    return "TERMINATED" if status == "STOPPED" else status


def _log_kind_artifacts(exp: Experiment, result: SweepResult, parent: Recorder) -> None:
    """Each active kind's sweep report (``Kind.sweep_artifacts``) on the parent run."""
    from growray.kinds import TrialOutcome, active_kinds

    outcomes = [
        # the protocol's statuses (TERMINATED, ERROR, DIVERGED): a stopped trial ended normally
        TrialOutcome(
            t.trial_id, _outcome_status(t.status), dict(t.config), dict(t.metrics), t.mlflow_run_id, result.tracking_uri
        )
        for t in result.trials
    ]
    for kind, cfg in active_kinds(exp):
        for path, artifact in kind.sweep_artifacts(exp, cfg, outcomes).items():
            if isinstance(artifact, str):
                parent.log_text(artifact, path)
            elif isinstance(artifact, dict | list):
                parent.log_dict(artifact, path)
            else:
                parent.log_figure(artifact, path)


def fail_orphaned_optuna_trials(study_name: str, storage: str) -> int:
    """Record as FAIL every Optuna trial of the study still RUNNING; returns how many.

    After a finished sweep, such a trial was asked by a driver that was killed before Tune
    saved it (the resumed searcher never knew it): failing it lets the study account for
    every trial.

    Args:
        study_name: the sweep's name (the study's name).
        storage: the study's storage URI.
    """
    import optuna

    # the sweep's searcher created (and version-checked) this storage: opening it again skips
    # those checks, which cost 50-130 ms per sweep on these machines
    rdb = optuna.storages.RDBStorage(storage, skip_compatibility_check=True, skip_table_creation=True)
    study = optuna.load_study(study_name=study_name, storage=rdb)
    orphans = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for t in orphans:
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    return len(orphans)
