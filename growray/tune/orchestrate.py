"""A validated Experiment -> a Ray Tune sweep with OptunaSearch, recorded under one MLflow parent run."""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray import tune

from growray import __version__
from growray.config import Experiment
from growray.data import load_dataset
from growray.search.population import sample_population
from growray.search.samplers import build_sampler
from growray.search.space import SpaceFunction

from .search import GrowrayOptunaSearch
from .storage import (
    SetupError,
    SweepStorage,
    check_storage_reachable,
    require_shared_storage,
    resolve_storage,
)
from .table import LiveTrialTable, format_table, short_params
from .trial import SweepContext, trial_main
from .writer import start_writer

__all__ = [
    "SetupError",
    "SweepResult",
    "SweepStorage",
    "TrialSummary",
    "absolute_tracking_uri",
    "find_sweep",
    "resume_sweep",
    "run_sweep",
]


@dataclass
class TrialSummary:
    trial_id: str
    status: str
    config: dict[str, Any]
    metric: float | None
    best_val_acc: float | None
    test_acc: float | None
    params: int | None
    widths: dict[str, int]
    epochs: int
    mlflow_run_id: str | None
    error: str | None = None


@dataclass
class SweepResult:
    name: str
    output_dir: str
    storage_path: str
    tracking_uri: str
    experiment_id: str
    parent_run_id: str
    metric: str
    mode: str
    trials: list[TrialSummary] = field(default_factory=list)
    seconds: float = 0.0
    interrupted: bool = False
    pareto: Any = None  # tracking.ParetoReport after a multi-objective sweep

    @property
    def best(self) -> TrialSummary | None:
        scored = [t for t in self.trials if t.metric is not None and t.metric == t.metric]  # NaN: diverged
        if not scored:
            return None
        return (max if self.mode == "max" else min)(scored, key=lambda t: t.metric)  # type: ignore[arg-type]

    @property
    def n_errors(self) -> int:
        return sum(t.status in ("ERROR", "DIVERGED") for t in self.trials)

    def table(self) -> str:
        rows = []
        for t in self.trials:
            rows.append(
                {
                    "trial": t.trial_id,
                    "status": t.status,
                    "epochs": t.epochs,
                    self.metric: "" if t.metric is None else f"{t.metric:.4f}",
                    "best val/acc": "" if t.best_val_acc is None else f"{t.best_val_acc:.4f}",
                    "test/acc": "" if t.test_acc is None else f"{t.test_acc:.4f}",
                    "params": t.params if t.params is not None else "",
                    "widths": "[" + ",".join(str(w) for w in t.widths.values()) + "]" if t.widths else "",
                    "config": short_params(t.config, limit=70),
                    "mlflow run": t.mlflow_run_id or "",
                }
            )
        cols = [
            "trial",
            "status",
            "epochs",
            self.metric,
            "best val/acc",
            "test/acc",
            "params",
            "widths",
            "config",
            "mlflow run",
        ]
        return format_table(rows, cols)


def absolute_tracking_uri(uri: str) -> str:
    """``sqlite:///mlflow.db`` -> ``sqlite:////abs/cwd/mlflow.db`` (trials run in other working dirs)."""
    from growray.tracking import absolute_tracking_uri as _absolute

    if "://" not in uri:
        raise ValueError(
            f"tracking.uri must be a URI such as sqlite:///mlflow.db or http://127.0.0.1:5000; got {uri!r} "
            "(MLflow 3 no longer supports plain folders)"
        )
    return _absolute(uri)


def _storage(exp: Experiment, shared: bool) -> SweepStorage:
    """The sweep's folders (Ray results, checkpoints, Optuna study), checked writable up front."""
    storage = resolve_storage(exp.output_dir, exp.name, shared=shared)
    check_storage_reachable(storage)
    return storage


def _check_cluster_storage(storage: SweepStorage, started_ray: bool) -> None:
    """On a cluster whose trials may run away from the driver, a local ``output_dir`` is refused
    (before any run or trial exists); Ray is shut down again if this process started it."""
    try:
        require_shared_storage(storage, ray.nodes(), ray.get_runtime_context().get_node_id())
    except SetupError:
        if started_ray:
            ray.shutdown()
        raise


def _git_commit() -> str | None:
    """The commit of the working directory's git checkout, for provenance (None outside git)."""
    import subprocess

    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], check=False, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _init_ray(address: str | None, verbose: bool) -> bool:
    """Start or join Ray; returns True when this call started it (and should shut it down)."""
    # Tune snapshots the sweep's state at most this often; a killed driver loses what came after
    # (default >= 10 s, STACK_NOTES §3). The state is small: snapshot often.
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": verbose, "logging_level": "WARNING"}
    if not address:
        ray.init(**kwargs)
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


def _scheduler(exp: Experiment) -> Any:
    cfg, epochs = exp.search.scheduler, exp.trainer.epochs
    grace = min(cfg.grace_period, epochs)
    if cfg.name == "asha":
        return tune.schedulers.ASHAScheduler(
            time_attr="training_iteration", max_t=epochs, grace_period=grace, reduction_factor=cfg.reduction_factor
        )
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


def _summaries(results: Any, metric: str) -> list[TrialSummary]:
    out = []
    for r in results:
        m = r.metrics or {}
        widths = {k.removeprefix("growth/width/"): int(v) for k, v in m.items() if k.startswith("growth/width/")}
        trial_id = m.get("trial_id") or Path(r.path).name.split("_")[1]
        out.append(
            TrialSummary(
                trial_id=trial_id,
                status="ERROR" if r.error else ("DIVERGED" if m.get("growray/diverged") else "TERMINATED"),
                config=dict(r.config or {}),
                metric=m.get(metric),
                best_val_acc=m.get("best/val_acc"),
                test_acc=m.get("test/acc"),
                params=int(m["cost/params"]) if "cost/params" in m else None,
                widths=widths,
                epochs=int(m.get("epoch", 0)),
                mlflow_run_id=m.get("mlflow_run_id"),
                error=str(r.error).strip().splitlines()[-1][:300] if r.error else None,
            )
        )
    return out


def _trainable(exp: Experiment, dataset: Any, ctx: SweepContext) -> Any:
    trainable = tune.with_parameters(
        trial_main,
        experiment=exp,
        dataset=dataset,  # put in the object store once, shared by every trial
        sweep=ctx,
    )
    return tune.with_resources(trainable, {"cpu": exp.resources.cpu, "gpu": exp.resources.gpu})


def _mutations(exp: Experiment) -> dict[str, Any]:
    """PBT perturbation distributions, taken from the search space's own definitions."""
    out: dict[str, Any] = {}
    for name in exp.search.scheduler.mutate:
        p = exp.search.space[name]  # type: ignore[index]
        if p.type == "categorical":
            out[name] = list(p.choices or [])
        elif p.type == "int":
            out[name] = (
                tune.lograndint(int(p.low), int(p.high) + 1) if p.log else tune.randint(int(p.low), int(p.high) + 1)
            )
        else:
            out[name] = tune.loguniform(p.low, p.high) if p.log else tune.uniform(p.low, p.high)
    return out


def _pbt_tuner(exp: Experiment, meta: dict[str, Any], trainable: Any, live_interval_s: float) -> Any:
    from ray.tune.search.basic_variant import BasicVariantGenerator

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
        run_config=_run_config(exp, meta, live_interval_s),
    )


def _tuner(exp: Experiment, meta: dict[str, Any], trainable: Any, live_interval_s: float) -> Any:
    import optuna

    if exp.search.scheduler.name == "pbt":
        return _pbt_tuner(exp, meta, trainable, live_interval_s)
    s = exp.search
    search = GrowrayOptunaSearch(
        SpaceFunction.from_experiment(exp),
        # one objective: plain names; several: lists (STACK_NOTES §1)
        metric=s.metrics if s.multi_objective else s.metric,
        mode=s.modes if s.multi_objective else s.mode,
        sampler=build_sampler(s.sampler, exp.seed),
        storage=optuna.storages.RDBStorage(meta["optuna_storage"]),
        study_name=meta["sweep"],
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
            time_budget_s=s.time_budget_s,
        ),
        run_config=_run_config(exp, meta, live_interval_s),
    )


def _run_config(exp: Experiment, meta: dict[str, Any], live_interval_s: float) -> Any:
    return tune.RunConfig(
        name=meta["sweep"],
        storage_path=meta.get("ray_root") or str(Path(meta["storage_path"]).parent),
        failure_config=tune.FailureConfig(max_failures=exp.search.max_failures),
        # Keep every checkpoint: a restored trial (and PBT, later) may need any of them.
        checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
        callbacks=[LiveTrialTable(exp.search.metrics[0], interval_s=live_interval_s)],
        verbose=0,
    )


def _finish(exp: Experiment, meta: dict[str, Any], results: Any, parent: Any, t0: float) -> SweepResult:
    """Summaries, child-run statuses, best trial and Pareto front on the parent run."""
    from growray.tracking import finalize_child_run, record_front

    uri = meta["tracking_uri"]
    trials = _summaries(results, exp.search.metrics[0])
    result = SweepResult(
        name=meta["sweep"],
        output_dir=meta.get("state_dir") or str(Path(meta["storage_path"]).parent.parent),
        storage_path=meta["storage_path"],
        tracking_uri=uri,
        experiment_id=meta["experiment_id"],
        parent_run_id=meta["parent_run_id"],
        metric=exp.search.metrics[0],
        mode=exp.search.modes[0],
        trials=trials,
        seconds=time.perf_counter() - t0,
        # SIGINT makes fit() return normally (STACK_NOTES §3): unfinished trials, or fewer trials
        # than asked for without a time budget, are how we tell.
        interrupted=results.num_terminated + results.num_errors < len(results)
        or (exp.search.time_budget_s is None and len(results) < exp.search.num_samples),
    )
    # A trial stopped early by the scheduler never closes its run; an errored one may not have.
    for t in trials:
        if t.mlflow_run_id and not result.interrupted:
            finalize_child_run(uri, t.mlflow_run_id, failed=t.status == "ERROR", error=t.error)
    best = result.best
    if best is not None and best.metric is not None:
        parent.log_metrics({f"best/{result.metric.replace('/', '_')}": best.metric}, step=0)
        if best.best_val_acc is not None:
            parent.log_metrics({"best/val_acc": best.best_val_acc}, step=0)
        parent.set_tags({"growray.best_run_id": best.mlflow_run_id or "", "growray.best_trial": best.trial_id})
    parent.log_metrics({"sweep/n_trials": float(len(trials)), "sweep/n_errors": float(result.n_errors)}, step=0)
    if not result.interrupted and exp.search.scheduler.name != "pbt":  # PBT runs without an Optuna study
        _fail_orphaned_optuna_trials(meta)
    if exp.search.multi_objective and not result.interrupted:
        result.pareto = record_front(uri, meta["parent_run_id"], parent)
    parent.log_text(result.table() + "\n", "trials.txt")
    parent.log_dict([asdict(t) for t in trials], "trials.json")
    if result.interrupted:
        parent.set_tags({"growray.interrupted": "true"})
        parent.close("KILLED")  # `growray resume` reopens it
    else:
        parent.close("FAILED" if trials and result.n_errors == len(trials) else "FINISHED")
    return result


def _fail_orphaned_optuna_trials(meta: dict[str, Any]) -> int:
    """After a finished sweep, an Optuna trial still RUNNING was asked by a driver that was
    killed before Tune saved it (the resumed searcher never knew it): record it as FAIL so
    the study accounts for every trial. Returns how many."""
    import optuna

    study = optuna.load_study(study_name=meta["sweep"], storage=meta["optuna_storage"])
    orphans = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,))
    for t in orphans:
        study.tell(t.number, state=optuna.trial.TrialState.FAIL)
    return len(orphans)


def run_sweep(
    exp: Experiment,
    *,
    address: str | None = None,
    tracking_uri: str | None = None,
    verbose: bool = False,
    live_interval_s: float = 15.0,
    shared_storage: bool = False,
) -> SweepResult:
    """Run the experiment's sweep to completion and record it; returns the trial summaries.

    ``shared_storage`` states that a plain ``output_dir`` folder is mounted at the same path on
    every node of the cluster; without it (or a URI), a multi-node cluster is refused.
    """
    from growray.tracking import (
        CONSTRAINTS_TAG,
        OBJECTIVES_TAG,
        MlflowRecorder,
        create_sweep_run,
        ensure_store,
        flatten_params,
        get_or_create_experiment,
    )

    t0 = time.perf_counter()
    storage = _storage(exp, shared_storage)
    out = storage.state_dir
    sweep_name = f"{exp.name}-{time.strftime('%Y%m%d-%H%M%S')}"
    uri = absolute_tracking_uri(tracking_uri or exp.tracking.uri)

    # Everything that can fail cheaply fails before Ray starts: the store, then the data.
    try:
        ensure_store(uri)
    except (ConnectionError, ValueError) as exc:
        raise SetupError(f"tracking.uri: {exc}") from None
    experiment_id = get_or_create_experiment(uri, exp.experiment_name)
    dataset = load_dataset(exp.data, seed=exp.seed)
    started_ray = _init_ray(address, verbose)
    _check_cluster_storage(storage, started_ray)  # a refused sweep leaves no parent run behind

    provenance = {"mlflow.source.git.commit": commit} if (commit := _git_commit()) else {}
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
    )
    parent = MlflowRecorder(uri, experiment_id, run_id=parent_id)
    parent.log_params(flatten_params(exp.to_dict()))
    parent.log_dict(exp.to_dict(), "config.yaml")

    meta = {
        "sweep": sweep_name,
        "experiment": exp.to_dict(),
        "tracking_uri": uri,
        "experiment_id": experiment_id,
        "parent_run_id": parent_id,
        "storage_path": storage.sweep_path(sweep_name),
        "ray_root": storage.ray_root,
        "state_dir": str(out),
        "shared_storage": storage.shared,
        "optuna_storage": f"sqlite:///{out / 'optuna.db'}",
        "provenance": provenance,
        "growray_version": __version__,
    }
    (out / "latest_sweep.json").write_text(json.dumps(meta, indent=1))
    writer = start_writer(uri, experiment_id, parent_id)  # warms up while Tune starts the trials
    with _session(parent, started_ray, writer):
        ctx = SweepContext(uri, experiment_id, parent_id, sweep_name, provenance, writer)
        results = _tuner(exp, meta, _trainable(exp, dataset, ctx), live_interval_s).fit()
        return _finish(exp, meta, results, parent, t0)


def find_sweep(target: str | Path) -> dict[str, Any]:
    """The record of the latest sweep of an experiment: its file, its output folder, or the record itself."""
    from growray.config import load_experiment

    target = Path(target)
    if target.is_file() and target.suffix in (".yaml", ".yml"):
        exp = load_experiment(target)
        target = resolve_storage(exp.output_dir, exp.name).state_dir
    record = target if target.name == "latest_sweep.json" else target / "latest_sweep.json"
    if not record.is_file():
        raise FileNotFoundError(f"no sweep to resume: {record} does not exist (run `growray run` first)")
    return json.loads(record.read_text())


def resume_sweep(
    target: str | Path,
    *,
    address: str | None = None,
    verbose: bool = False,
    live_interval_s: float = 15.0,
    shared_storage: bool = False,
) -> SweepResult:
    """Continue an interrupted or killed sweep: unfinished and errored trials resume from their
    checkpoints (the same MLflow runs), the Optuna study continues, the parent run is reused.
    ``shared_storage`` as in :func:`run_sweep` (a sweep started with it keeps it)."""
    from growray.config import validate_dict
    from growray.tracking import MlflowRecorder, ensure_store, run_tags

    t0 = time.perf_counter()
    meta = find_sweep(target)
    exp = validate_dict(meta["experiment"], check_space=False)
    if not tune.Tuner.can_restore(meta["storage_path"]):
        raise FileNotFoundError(f"Ray Tune has no restorable experiment at {meta['storage_path']}")
    ensure_store(meta["tracking_uri"])
    dataset = load_dataset(exp.data, seed=exp.seed)
    started_ray = _init_ray(address, verbose)
    ray_root = meta.get("ray_root") or str(Path(meta["storage_path"]).parent)
    storage = SweepStorage(
        exp.output_dir,
        Path(meta.get("state_dir") or Path(ray_root).parent),
        ray_root,
        shared_storage or bool(meta.get("shared_storage")) or "://" in ray_root,
    )
    _check_cluster_storage(storage, started_ray)
    resumed = int(run_tags(meta["tracking_uri"], meta["parent_run_id"]).get("growray.resumed", 0))
    parent = MlflowRecorder(meta["tracking_uri"], meta["experiment_id"], run_id=meta["parent_run_id"])
    parent.set_tags({"growray.resumed": str(resumed + 1)})
    writer = start_writer(meta["tracking_uri"], meta["experiment_id"], meta["parent_run_id"])
    with _session(parent, started_ray, writer):
        ctx = SweepContext(
            meta["tracking_uri"],
            meta["experiment_id"],
            meta["parent_run_id"],
            meta["sweep"],
            meta.get("provenance", {}),
            writer,
        )
        tuner = tune.Tuner.restore(
            meta["storage_path"],
            trainable=_trainable(exp, dataset, ctx),
            resume_unfinished=True,
            resume_errored=True,
        )
        return _finish(exp, meta, tuner.fit(), parent, t0)


@contextlib.contextmanager
def _session(parent: Any, started_ray: bool, writer: Any) -> Iterator[None]:
    """The parent run fails with the sweep; the sweep's writer stops with it; Ray is shut down
    only if this process started it."""
    try:
        yield
    except BaseException:
        parent.close("FAILED")
        raise
    finally:
        ray.kill(writer)
        if started_ray:
            ray.shutdown()
