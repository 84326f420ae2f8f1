"""The Ray Tune trial: one sampled config -> one trained (growing) network -> one MLflow child run.

On a restore (worker died, ``FailureConfig``), Ray hands back the last checkpoint: the model
is rebuilt from the checkpoint's architecture spec, the optimizer and RNG states are
reloaded, and the *same* MLflow run continues. Metrics a dead attempt flushed after that
checkpoint are not logged a second time (their steps are skipped).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from growray.config import Experiment
    from growray.data import Dataset
    from growray.train import ReportFn, Trainer
    from growray.tune.writer import WriterHandle

__all__ = ["StepFilterRecorder", "SweepContext", "trial_main"]


@dataclass(frozen=True)
class SweepContext:
    """What every trial of a sweep needs to find its MLflow parent."""

    tracking_uri: str  # absolute: trials run in Ray's own working directories
    experiment_id: str
    parent_run_id: str
    sweep_name: str
    tags: dict[str, str] = field(default_factory=dict)  # provenance shared by every trial (git commit)
    writer: WriterHandle | None = None  # the sweep's MLflow writer (the driver); None: trials write directly


class StepFilterRecorder:
    """Wraps a recorder and drops metrics at or before ``through_step`` (already in MLflow)."""

    def __init__(self, inner: Any, through_step: int):
        self._inner = inner
        self.through_step = through_step

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        if step > self.through_step:
            self._inner.log_metrics(metrics, step)


def _find_run(sweep: SweepContext, trial_name: str) -> str | None:
    """The run this trial already created in this sweep (restarted before a checkpoint), or None."""
    if sweep.writer is not None:
        import ray

        return ray.get(sweep.writer.find_trial_run.remote(trial_name))
    from growray.tracking import find_trial_run

    return find_trial_run(sweep.tracking_uri, sweep.experiment_id, sweep.parent_run_id, trial_name)


def _continue_run(sweep: SweepContext, run_id: str) -> Any:
    """Reopen a trial's existing run; steps MLflow already holds are not logged again (the
    sweep's writer drops them; without one, a ``StepFilterRecorder`` here)."""
    if sweep.writer is not None:
        import ray

        from .writer import RemoteRecorder

        ray.get(sweep.writer.continue_run.remote(run_id))  # waited for: a failure to reopen is raised here
        return RemoteRecorder(sweep.writer, run_id)
    from growray.tracking import MlflowRecorder, clear_failure, max_logged_step

    clear_failure(sweep.tracking_uri, run_id)
    base = MlflowRecorder(sweep.tracking_uri, sweep.experiment_id, run_id=run_id)
    return StepFilterRecorder(base, max_logged_step(sweep.tracking_uri, run_id, "val/acc"))


def _open_run(
    sweep: SweepContext,
    exp: Any,
    dataset: Any,
    trial_name: str,
    config: dict[str, Any],
    tags: dict[str, str],
    restart_tags: dict[str, str],
) -> Any:
    """The trial's run when it starts without a checkpoint: the run it opened before in this
    sweep, continued (it restarted before its first checkpoint; the deterministic re-run's
    already stored steps are not logged again; ``restart_tags`` are set), or a new child run.

    With the sweep's writer this is one call that the trial does not wait for: the writer
    looks the trial up, and either opens the run with its tags, params and ``config.yaml`` or
    continues it and drops the rows it already holds."""
    if sweep.writer is None:
        if run_id := _find_run(sweep, trial_name):
            recorder = _continue_run(sweep, run_id)
            recorder.set_tags(restart_tags)
            return recorder
        return _new_run(sweep, exp, dataset, trial_name, config, tags)
    from .writer import RemoteRecorder

    all_tags, params = _run_records(sweep, exp, dataset, trial_name, config, tags)
    run = sweep.writer.open_trial_run.remote(trial_name, all_tags, params, exp.to_dict(), restart_tags)
    return RemoteRecorder(sweep.writer, run)  # the run id is fetched when first needed (the first report)


def _run_records(
    sweep: SweepContext, exp: Any, dataset: Any, trial_name: str, config: dict[str, Any], tags: dict[str, str]
) -> tuple[dict[str, str], dict[str, Any]]:
    """A new trial run's tags and params: searched values as ``search.<path>``, then a compact
    rest (the whole config is the ``config.yaml`` artifact)."""
    from growray import __version__
    from growray.tracking import flatten_params, trial_params

    all_tags = {
        "growray.kind": exp.kind,
        "growray.sweep": sweep.sweep_name,
        "growray.trial": trial_name,
        "growray.version": __version__,
        "growray.searched": json.dumps(config, sort_keys=True, default=str),
        **sweep.tags,
        **tags,
    }
    params = trial_params(exp.to_dict(), config)
    params.update(flatten_params({f"data.{k}": v for k, v in dataset.summary().items()}))
    return all_tags, params


def _new_run(
    sweep: SweepContext, exp: Any, dataset: Any, trial_name: str, config: dict[str, Any], tags: dict[str, str]
) -> Any:
    """The trial's child run under the sweep's parent, written directly (no sweep writer), with
    the resolved config as params (one write for the tags, one for the params, one artifact)."""
    from growray.tracking import MlflowRecorder

    all_tags, params = _run_records(sweep, exp, dataset, trial_name, config, tags)
    recorder = MlflowRecorder(
        sweep.tracking_uri, sweep.experiment_id, run_name=trial_name, parent_run_id=sweep.parent_run_id, tags=all_tags
    )
    recorder.log_params(params)
    recorder.log_dict(exp.to_dict(), "config.yaml")
    return recorder


def trial_main(config: dict[str, Any], *, experiment: Any, dataset: Any, sweep: SweepContext) -> None:
    """Ray Tune function trainable. ``config`` holds only the sampled (dotted-path) values."""
    import ray
    import torch
    from ray import tune

    from growray.train import TrainingDivergedError, build_trainer, resolve_device

    config = {k: v for k, v in config.items() if v is not None}  # None: inactive in this trial (PBT)
    exp = experiment.with_overrides(config)
    if any(k.split(".")[0] == "data" for k in config):  # a searched data parameter (data.rank): own data
        from growray.data import load_dataset

        dataset = load_dataset(exp.data, seed=exp.seed)
    simulated = _simulated_results(exp)
    if simulated is not None:  # a benchmark table's trial: looked up, not trained
        _simulated_trial(exp, config, simulated, dataset, sweep)
        return
    torch.set_num_threads(max(1, round(exp.resources.cpu)))
    trial_name = tune.get_context().get_trial_name()
    gpu_ids = ",".join(str(g) for g in ray.get_gpu_ids())
    where = {  # where this attempt runs
        "growray.device": str(resolve_device(exp)),
        "growray.pid": str(os.getpid()),
        "growray.node_id": ray.get_runtime_context().get_node_id(),
        "growray.gpu_ids": gpu_ids,
    }

    def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        payload = {**metrics, "mlflow_run_id": recorder.run_id, "gpu_ids": gpu_ids}
        for m in exp.search.metrics:  # Tune requires the objective in every result: a NAS search
            payload.setdefault(m, float("nan"))  # reports nas/retrain_val_acc only after retraining
        ckpt = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        tune.report(payload, checkpoint=ckpt)

    checkpoint = tune.get_checkpoint()
    if checkpoint is not None:
        with checkpoint.as_directory() as d:
            meta = json.loads((Path(d) / "meta.json").read_text())
            run_id = meta["mlflow_run_id"]
            donor = meta.get("trial_name")
            exploited = donor is not None and donor != trial_name
            if exploited:
                # PBT copied another trial's checkpoint (weights and grown architecture) and
                # config: this trial keeps its own MLflow run, and records where it came from.
                run_id = _find_run(sweep, trial_name) or run_id
            recorder: Any = _continue_run(sweep, run_id)
            restores = int(meta.get("restores", 0)) + (0 if exploited else 1)
            # an interrupted sweep stopped this trial inside report(): it is running again
            tags = {"growray.stopped_early": "false", **where}
            if exploited:
                tags.update(
                    {
                        "growray.exploited_from": donor,
                        "growray.exploited_at_epoch": str(meta["epoch"]),
                        "growray.searched_now": json.dumps(config, sort_keys=True, default=str),
                    }
                )
            else:
                tags["growray.restores"] = str(restores)
            recorder.set_tags(tags)
            trainer = build_trainer(exp, dataset, recorder=recorder, report=report, checkpoint_dir=d)
            trainer.meta_extra["restores"] = restores
            print(
                f"[growray] {trial_name}: restored at epoch {trainer.epoch}, step {trainer.step}, "
                f"widths {trainer.widths()}, MLflow run {run_id}",
                flush=True,
            )
    else:
        # a new run, or, restarted before its first checkpoint (worker died, or the sweep was
        # interrupted), the same run continued
        restarted = {"growray.restarted": "true", "growray.stopped_early": "false", **where}
        recorder = _open_run(sweep, exp, dataset, trial_name, config, where, restarted)
        trainer = build_trainer(exp, dataset, recorder=recorder, report=report)
    trainer.meta_extra["trial_name"] = trial_name  # lets a PBT recipient tell a donor's checkpoint
    if str(trainer.device) != where["growray.device"]:  # the trainer chose otherwise (never, today)
        recorder.set_tags({"growray.device": str(trainer.device)})

    try:
        final = trainer.fit()
    except SystemExit:
        # Tune ends a trial inside ``report`` (a scheduler stopped it, or it reached max_t):
        # not a failure. Ray gives the thread ~2 s before reusing or killing the actor, so only
        # close here; architecture.json and growth_events.json were written before the report.
        if not trainer.finished:  # a trainer that ended itself (request_stop) was not stopped early
            recorder.set_tags({"growray.stopped_early": "true", "growray.stopped_at_epoch": str(trainer.epoch)})
        recorder.close("FINISHED")
        raise
    except TrainingDivergedError as exc:
        # Not retried (it would diverge again from the same checkpoint): the run fails with the
        # reason, Optuna is told NaN (it marks the trial FAIL), and the sweep goes on.
        recorder.set_tags({"growray.failure": str(exc)})
        recorder.close("FAILED")
        nan = float("nan")
        tune.report(
            {
                **{m: nan for m in exp.search.metrics},
                "growray/diverged": 1.0,
                "epoch": float(trainer.epoch),
                "mlflow_run_id": recorder.run_id,
            }
        )
        return
    except BaseException as exc:  # a crash Ray may retry: the run stays resumable
        # Exactly once: MLflow keeps what was flushed at epoch boundaries (with each checkpoint);
        # the partial epoch is dropped, and the retry logs it again from the last checkpoint.
        recorder.discard_pending()
        recorder.set_tags({"growray.failure": f"{type(exc).__name__}: {exc}"[:5000]})
        recorder.close("FAILED")
        raise
    recorder.close("FINISHED")
    _after_fit_stages(exp, trainer, final, dataset, sweep, recorder.run_id, report)


def _simulated_results(exp: Experiment) -> list[dict[str, float]] | None:
    """The results an active kind gives without training (``Kind.simulate``), or None."""
    from growray.kinds import active_kinds

    for kind, cfg in active_kinds(exp):
        results = kind.simulate(exp, cfg)
        if results is not None:
            return results
    return None


def _simulated_trial(
    exp: Experiment, config: dict[str, Any], results: list[dict[str, float]], dataset: Any, sweep: SweepContext
) -> None:
    """Record and report results that need no training: the same MLflow run as any trial
    (params, tags, metrics at steps 1, 2, ...). A restarted trial continues its run; steps
    already stored are skipped.

    The run's close is sent to the sweep's writer before the reports and waited for after them
    (a trial that a scheduler or a budget stops inside a report waits for it there), so the
    writer stores the run while Tune takes the results, a sweep that a budget stops leaves no
    run open, and a close that fails still fails the trial. Without a writer it is closed first."""
    import ray
    from ray import tune

    from .writer import RemoteRecorder

    trial_name = tune.get_context().get_trial_name()
    where = {"growray.pid": str(os.getpid()), "growray.node_id": ray.get_runtime_context().get_node_id()}
    recorder = _open_run(sweep, exp, dataset, trial_name, config, where, {"growray.restarted": "true", **where})
    for step, metrics in enumerate(results, start=1):
        recorder.log_metrics(metrics, step)
    if isinstance(recorder, RemoteRecorder):
        recorder.send_close("FINISHED")
    else:
        recorder.close("FINISHED")
    try:
        for step, metrics in enumerate(results, start=1):
            tune.report({**metrics, "step": step, "mlflow_run_id": recorder.run_id})
    finally:
        recorder.close("FINISHED")  # waits for the close sent above


@dataclass(frozen=True)
class _Stage:
    """What a kind's ``after_fit`` sees of the finished trial (``growray.kinds.TrialStage``)."""

    trainer: Trainer
    final: Mapping[str, float]
    dataset: Dataset
    tracking_uri: str
    run_id: str


def _after_fit_stages(
    exp: Experiment,
    trainer: Trainer,
    final: dict[str, float],
    dataset: Dataset,
    sweep: SweepContext,
    run_id: str,
    report: ReportFn,
) -> None:
    """Each active kind's stage after training (the NAS kind retrains the architecture it
    found); what they return is reported once more, so the searcher sees it. A worker that
    dies here restarts from the last checkpoint, with nothing left to train, and reruns them."""
    from growray.kinds import active_kinds

    stage = _Stage(trainer, final, dataset, sweep.tracking_uri, run_id)
    added: dict[str, float] = {}
    for kind, cfg in active_kinds(exp):
        added.update(kind.after_fit(exp, cfg, stage))
    if added:
        report({**final, **added, "step": trainer.step}, None)
