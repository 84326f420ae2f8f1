"""The orchestration at scale: N tabular trials (NAS-Bench-201 lookups), growray vs raw Ray Tune.

The same N trials go through both paths on one Ray instance, one after the other, with the same
Tune settings (``max_concurrent_trials``, ``reuse_actors=True``, 1 CPU per trial, TPE over the
table's 6 categorical parameters, an sqlite Optuna storage). A trial is one table lookup
(``growray.kinds.tabular``), reported once; nothing trains, so what is measured is the
orchestration itself:

* **growray**: ``run_sweep`` on ``experiments/nb201_tabular.yaml`` (no time budget): every trial
  re-validates its experiment, opens an MLflow child run (tags, params, ``config.yaml``) through
  the sweep's writer (the driver), logs its metrics, closes the run, reports; the sweep ends with the
  parent run's summary.
* **raw**: a function trainable that does the same lookup and calls ``tune.report`` once: no
  tracking.

Printed: wall time and trials/s of each, Tune's ``time_total_s`` per trial (inside the
trainable; median and p95) and growray's per-trial overhead over raw (the difference of those),
the ratio of wall times, and the checks: N child runs in MLflow, each with ``val/acc`` logged
exactly once and equal to the trial's reported value; N complete trials in the Optuna study.
The machine's load (``os.getloadavg``) is printed before and after: these machines are shared.

    python benchmarks/tabular_scale.py [--n 1000] [--max-concurrent 2]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")

EXPERIMENT = Path(__file__).resolve().parents[1] / "experiments" / "nb201_tabular.yaml"
OPS = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]


def raw_space(trial: Any) -> None:
    """The table's space, as growray's experiment generates it (module level: Tune pickles it)."""
    for i in range(6):
        trial.suggest_categorical(f"tabular.config.Op{i}", OPS)


def raw_trial(config: dict[str, Any]) -> None:
    """The same lookup as a growray tabular trial, reported once."""
    from ray import tune

    from growray.kinds.tabular import TabularConfig
    from growray.kinds.tabular.run import lookup_result

    cell = {k.rsplit(".", 1)[1]: v for k, v in config.items()}
    tune.report(lookup_result(TabularConfig(config=cell, cost_scale=0.06)))


def _experiment(work: Path, n: int, max_concurrent: int, writer: str) -> Any:
    from growray.config import load_experiment

    return load_experiment(
        EXPERIMENT,
        {
            "output_dir": str(work / "runs"),
            "tracking.uri": f"sqlite:///{work / 'mlflow.db'}",
            "search.num_samples": n,
            "search.max_concurrent": max_concurrent,
            "search.time_budget_s": None,
            "search.sampler": {"name": "tpe", "n_startup_trials": 10},
            "tracking.writer": writer,
        },
    )


def run_raw(work: Path, n: int, max_concurrent: int) -> tuple[float, list[float]]:
    from orchestration_overhead import fit_raw_tune  # the same hand-written baseline (benchmarks/)
    from ray import tune

    trainable = tune.with_resources(raw_trial, {"cpu": 1, "gpu": 0})
    seconds, results, _ = fit_raw_tune(trainable, raw_space, work, n=n, max_concurrent=max_concurrent, seed=0)
    return seconds, [float(r.metrics["time_total_s"]) for r in results]


def run_growray(work: Path, n: int, max_concurrent: int, writer: str) -> tuple[float, list[float], Any]:
    from growray.tune.orchestrate import run_sweep

    work.mkdir(parents=True, exist_ok=True)
    exp = _experiment(work, n, max_concurrent, writer)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):
        result = run_sweep(exp, live_interval_s=3600)
    seconds = time.perf_counter() - t0
    if result.n_errors or len(result.trials) != n:
        raise RuntimeError(f"growray: {len(result.trials)} trials, {result.n_errors} errors")
    inside = []  # Tune's time_total_s of every trial, from its result.json
    for f in Path(result.storage_path).glob("*/result.json"):
        lines = f.read_text().strip().splitlines()
        if lines:
            inside.append(float(json.loads(lines[-1])["time_total_s"]))
    return seconds, inside, result


def check_records(result: Any, n: int) -> str:
    """N child runs, val/acc once each and equal to the reported value; N complete Optuna trials."""
    import optuna
    from mlflow import MlflowClient

    from growray.tune.record import find_sweep

    client = MlflowClient(result.tracking_uri)
    runs = client.search_runs(
        [result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'", max_results=50000
    )
    by_id = {r.info.run_id: r for r in runs}
    problems = []
    if len(runs) != n:
        problems.append(f"{len(runs)} child runs, not {n}")
    for t in result.trials:
        history = client.get_metric_history(t.mlflow_run_id, "val/acc") if t.mlflow_run_id in by_id else []
        if len(history) != 1 or abs(history[0].value - t.metrics["val/acc"]) > 1e-9:
            problems.append(f"trial {t.trial_id}: val/acc history {[m.value for m in history]}")
    record = find_sweep(result.output_dir)
    study = optuna.load_study(study_name=record.sweep, storage=record.optuna_storage)
    complete = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    if len(complete) != n:
        problems.append(f"{len(complete)} complete Optuna trials, not {n}")
    ok = "OK" if not problems else "PROBLEMS: " + "; ".join(problems[:5])
    return f"{len(runs)} MLflow child runs, {len(complete)} complete Optuna trials, val/acc once per run: {ok}"


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20)[-1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--max-concurrent", type=int, default=2)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument(
        "--writer",
        choices=["auto", "driver", "process"],
        default="auto",
        help="growray's tracking.writer: where the trials' MLflow calls run (default: auto)",
    )
    parser.add_argument(
        "--growray-only", action="store_true", help="only the growray sweep and its record checks (no ratio)"
    )
    args = parser.parse_args()

    import ray

    root = Path(tempfile.mkdtemp(prefix="gr-scale-"))
    print(f"load before: {os.getloadavg()}", flush=True)
    t0 = time.perf_counter()
    ray.init(
        num_cpus=args.cpus,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="WARNING",
        _temp_dir=str(root / "r"),
    )
    print(
        f"ray.init {time.perf_counter() - t0:.1f} s; {args.n} trials, max_concurrent={args.max_concurrent}, "
        f"tracking.writer={args.writer}",
        flush=True,
    )
    try:
        if args.growray_only:
            raw_s, raw_inside = float("nan"), [float("nan")]
        else:
            raw_s, raw_inside = run_raw(root / "raw", args.n, args.max_concurrent)
            print(f"  raw tune: {raw_s:.1f} s", flush=True)
        gr_s, gr_inside, result = run_growray(root / "growray", args.n, args.max_concurrent, args.writer)
        print(f"  growray:  {gr_s:.1f} s", flush=True)
        checks = check_records(result, args.n)
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)
    print(f"load after: {os.getloadavg()}")
    if args.growray_only:
        print(f"growray: {gr_s:.1f} s, {args.n / gr_s:.2f} trials/s, trial s median {statistics.median(gr_inside):.4f}")
        print(checks)
        return
    print(f"\n{'variant':<9}  {'wall s':>7}  {'trials/s':>8}  {'trial s median':>14}  {'trial s p95':>11}")
    for name, s, inside in (("raw tune", raw_s, raw_inside), ("growray", gr_s, gr_inside)):
        print(f"{name:<9}  {s:>7.1f}  {args.n / s:>8.2f}  {statistics.median(inside):>14.4f}  {_p95(inside):>11.4f}")
    over = [g - statistics.median(raw_inside) for g in gr_inside]
    print(
        f"growray per-trial overhead inside the trainable: median {statistics.median(over) * 1000:.0f} ms, "
        f"p95 {_p95(over) * 1000:.0f} ms; wall per trial: growray {gr_s / args.n * 1000:.0f} ms, "
        f"raw {raw_s / args.n * 1000:.0f} ms"
    )
    print(f"growray / raw tune (wall): {gr_s / raw_s:.2f}x; target <= 1.10")
    print(checks)
    print(json.dumps({"n": args.n, "raw_s": raw_s, "growray_s": gr_s, "ratio": gr_s / raw_s}))


if __name__ == "__main__":
    main()
