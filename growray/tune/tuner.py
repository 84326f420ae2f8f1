"""The Ray Tune objects of a sweep: trainable, searcher, scheduler (ASHA, Pareto halving, PBT), Tuner."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ray import tune

from growray.search.samplers import build_sampler
from growray.search.space import SpaceFunction

from .record import SweepRecord
from .search import GrowrayOptunaSearch
from .signing import SigningCallback
from .table import LiveTrialTable
from .trial import SweepContext, trial_main

if TYPE_CHECKING:
    from ray.tune.schedulers import TrialScheduler

    from growray.config import Experiment
    from growray.config.schema import SearchParam
    from growray.tracking.tables import Column

__all__ = ["build_trainable", "build_tuner", "restore_tuner"]


def build_trainable(exp: Experiment, dataset: Any, ctx: SweepContext) -> Any:
    """``trial_main`` with the experiment, the dataset (put in the object store once, shared by
    every trial) and the sweep context bound, and the trial's resources."""
    trainable = tune.with_parameters(trial_main, experiment=exp, dataset=dataset, sweep=ctx)
    return tune.with_resources(trainable, {"cpu": exp.resources.cpu, "gpu": exp.resources.gpu})


def build_tuner(
    exp: Experiment,
    record: SweepRecord,
    trainable: Any,
    live_interval_s: float,
    extra_columns: Sequence[Column] = (),
) -> tune.Tuner:
    """The sweep's Tuner: OptunaSearch (and ASHA or Pareto halving), or PBT over a sampled population."""
    import optuna

    run_config = _run_config(exp, record, live_interval_s, extra_columns)
    if exp.search.scheduler.name == "pbt":
        return _pbt_tuner(exp, trainable, run_config)
    s = exp.search
    if s.scheduler.name == "bohb":
        return _bohb_tuner(exp, trainable, run_config)
    _prepare_study(record)
    search = GrowrayOptunaSearch(
        SpaceFunction.from_experiment(exp),
        # one objective: plain names; several: lists (STACK_NOTES §1)
        metric=s.metrics if s.multi_objective else s.metric,
        mode=s.modes if s.multi_objective else s.mode,
        sampler=build_sampler(s.sampler, exp.seed),
        storage=optuna.storages.RDBStorage(record.optuna_storage),
        study_name=record.sweep,
        constraints=s.constraints,
    )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=search,
            scheduler=_scheduler(exp),
            # Tune takes one metric (best result, ASHA); multi-objective lists stay on the searcher.
            metric=s.metrics[0],
            mode=s.modes[0],
            num_samples=s.num_samples,
            max_concurrent_trials=s.max_concurrent,
            reuse_actors=s.reuse_actors,
            time_budget_s=None if budget_metric(exp) else s.time_budget_s,
        ),
        run_config=run_config,
    )


def budget_metric(exp: Experiment) -> str | None:
    """The reported cost that ``search.time_budget_s`` counts when an active kind simulates
    its trials' time (``Kind.budget_metric``); None: the budget is wall-clock seconds."""
    from growray.kinds import active_kinds

    return next((k.budget_metric for k, _ in active_kinds(exp) if k.budget_metric), None)


def signatures_path(record: SweepRecord) -> Path:
    """Where the sweep's Ray Tune state signatures live: beside its record."""
    return Path(record.state_dir) / "resume_signatures.json"


def restore_tuner(record: SweepRecord, trainable: Any) -> tune.Tuner:
    """The interrupted sweep's Tuner, continuing its unfinished and errored trials."""
    _prepare_study(record, create=False)  # before the searcher is unpickled and reconnects
    return tune.Tuner.restore(record.storage_path, trainable=trainable, resume_unfinished=True, resume_errored=True)


def _prepare_study(record: SweepRecord, create: bool = True) -> None:
    """The study's sqlite file in WAL mode where that is safe (see :mod:`growray.tune.study`);
    ``create=False``: only a file that exists (a PBT or BOHB sweep has no study)."""
    from .study import prepare_study_file, study_file

    db = study_file(record.optuna_storage)
    if db is not None and (create or db.exists()):
        prepare_study_file(db)


def _scheduler(exp: Experiment) -> TrialScheduler | None:
    from growray.kinds import active_kinds

    cfg = exp.search.scheduler
    # a kind's stage after training (the NAS retrain) reports once more: a trial that reached its
    # last epoch must not be stopped at max_t before it
    epochs = exp.trainer.epochs + sum(kind.reports_after_fit(section) for kind, section in active_kinds(exp))
    grace = min(cfg.grace_period, exp.trainer.epochs)
    if cfg.name == "asha":
        return tune.schedulers.ASHAScheduler(
            time_attr="training_iteration", max_t=epochs, grace_period=grace, reduction_factor=cfg.reduction_factor
        )
    if cfg.name == "hyperband":
        from .schedulers import multi_fidelity

        scheduler, _ = multi_fidelity(
            "hyperband", exp.search.metric, exp.search.mode, epochs, cfg.reduction_factor, {}, exp.seed
        )
        return scheduler
    if cfg.name == "pareto":
        from .schedulers import ParetoHalvingScheduler

        return ParetoHalvingScheduler(
            metrics=exp.search.metrics,
            modes=exp.search.modes,
            time_attr="training_iteration",
            max_t=epochs,
            grace_period=grace,
            reduction_factor=cfg.reduction_factor,
        )
    return None


def _bohb_tuner(exp: Experiment, trainable: Any, run_config: tune.RunConfig) -> tune.Tuner:
    """BOHB: Ray Tune's TuneBOHB searcher (no Optuna study) with HyperBandForBOHB."""
    from growray.kinds import active_kinds

    from .schedulers import multi_fidelity

    s = exp.search
    epochs = exp.trainer.epochs + sum(kind.reports_after_fit(section) for kind, section in active_kinds(exp))
    scheduler, searcher = multi_fidelity(
        "bohb", s.metric, s.mode, epochs, s.scheduler.reduction_factor, dict(s.space), exp.seed
    )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=searcher,
            scheduler=scheduler,
            metric=s.metric,
            mode=s.mode,
            num_samples=s.num_samples,
            max_concurrent_trials=s.max_concurrent,
            reuse_actors=s.reuse_actors,
            time_budget_s=s.time_budget_s,
        ),
        run_config=run_config,
    )


def _bounds(name: str, p: SearchParam) -> tuple[float, float]:
    if p.low is None or p.high is None:  # the schema refuses it; kept for the type checker
        raise ValueError(f"search.space.{name}: a {p.type} parameter needs 'low' and 'high'")
    return p.low, p.high


def _mutations(exp: Experiment) -> dict[str, Any]:
    """PBT perturbation distributions, taken from the search space's own definitions."""
    out: dict[str, Any] = {}
    for name in exp.search.scheduler.mutate:
        p = exp.search.space[name]
        if p.type == "categorical":
            out[name] = list(p.choices or [])
            continue
        low, high = _bounds(name, p)
        if p.type == "int":
            out[name] = tune.lograndint(int(low), int(high) + 1) if p.log else tune.randint(int(low), int(high) + 1)
        else:
            out[name] = tune.loguniform(low, high) if p.log else tune.uniform(low, high)
    return out


def _pbt_tuner(exp: Experiment, trainable: Any, run_config: tune.RunConfig) -> tune.Tuner:
    from ray.tune.search.basic_variant import BasicVariantGenerator

    from growray.search.population import sample_population

    cfg = exp.search.scheduler
    population = sample_population(exp)
    keys = sorted({k for point in population for k in point})
    return tune.Tuner(
        trainable,
        # Every sampled key needs a base entry; None marks "inactive in this trial" (trial_main drops it).
        param_space={k: None for k in keys},
        tune_config=tune.TuneConfig(
            search_alg=BasicVariantGenerator(points_to_evaluate=population),
            scheduler=tune.schedulers.PopulationBasedTraining(
                time_attr="training_iteration",
                perturbation_interval=cfg.perturbation_interval,
                hyperparam_mutations=_mutations(exp),
                quantile_fraction=cfg.quantile_fraction,
                resample_probability=cfg.resample_probability,
            ),
            metric=exp.search.metric,
            mode=exp.search.mode,
            num_samples=exp.search.num_samples,
            max_concurrent_trials=exp.search.max_concurrent,
            reuse_actors=exp.search.reuse_actors,
            time_budget_s=exp.search.time_budget_s,
        ),
        run_config=run_config,
    )


def _run_config(
    exp: Experiment, record: SweepRecord, live_interval_s: float, extra_columns: Sequence[Column]
) -> tune.RunConfig:
    from .budget import CostBudgetStopper

    cost = budget_metric(exp)
    budget = exp.search.time_budget_s
    return tune.RunConfig(
        stop=CostBudgetStopper(cost, budget) if cost and budget else None,
        name=record.sweep,
        storage_path=record.ray_root,
        failure_config=tune.FailureConfig(max_failures=exp.search.max_failures),
        # Keep every checkpoint: a restored trial (and PBT, later) may need any of them.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
        callbacks=[
            LiveTrialTable.for_experiment(exp, interval_s=live_interval_s, extra_columns=extra_columns),
            # Tune's state is pickles: signed as it is written, checked before a resume loads it
            SigningCallback(str(signatures_path(record))),
        ],
        verbose=0,
    )
