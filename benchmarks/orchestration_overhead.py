"""What does growray's orchestration cost over raw Ray Tune + OptunaSearch? One run, one Ray.

The same N trivial trials go through both paths, on the same Ray instance, with the same Tune
settings (``max_concurrent_trials``, ``reuse_actors=True``, 1 CPU per trial, TPE over the
same two parameters, an sqlite Optuna storage, the data passed through the object store
with ``tune.with_parameters``). A trial is the same tiny training in both: digits (64
features, ~1,250 training samples), an MLP with one hidden layer of 4 units built by
``growray.models``, one epoch of mini-batches of 64, then validation and test accuracy.

* **growray**: ``run_sweep`` on an experiment with no growth and latency measurement off.
* **raw**: a function trainable that trains the same model and calls ``tune.report`` once.
* **tune+mlflow**: the raw trainable with Ray's ``MLflowLoggerCallback`` (one MLflow run per
  trial with its params and results, logged from the driver): what a user writes by hand.

The difference is growray's orchestration, which consists of:

* per sweep, on the driver: the MLflow store check and experiment lookup, the parent run
  (tags, flattened config as params, ``config.yaml``), ``git rev-parse`` for provenance,
  ``latest_sweep.json``, and at the end one ``finalize_child_run`` per trial plus the
  parent's metrics, ``trials.txt``/``trials.json`` artifacts and the live table callback;
* per sweep, a small mailbox actor (Ray only, no MLflow) through which the trials' records
  reach a thread of the driver, which writes them with the MLflow store it has open;
* per trial, in the worker: applying the sampled overrides to the validated experiment,
  sending the MLflow child run's records (tags, ~45 params, ``config.yaml``, the trainer's
  metrics: train/loss every 10 steps, architecture and cost metrics at step 0 and per
  epoch, test metrics, ``architecture.json``) in three calls through the mailbox (opening
  the run, the flush before the report, the close) and waiting for the last two,
  FLOP counting of the architecture, and a checkpoint (``state.pt`` + spec + meta) written
  for the final report, which Tune copies into the trial's storage folder;
* per trial, in the driver: writing those records to MLflow (about 0.1 s of CPU each), and
  the two Optuna user attributes (``growray.trial_id``, ``growray.mlflow_run_id``);
* data: both paths fetch the same dataset from the object store; growray's trainer copies
  it to tensors once per trial, as the raw trainable does.

Every growray round records into the same MLflow database, and every tune+mlflow round into
another (each created by its warm-up round; a fresh sqlite store costs a few more seconds
once, for its schema): growray's sweeps put their store in WAL mode, a hand-written sweep
keeps MLflow's rollback journal. Each variant's wall time
covers everything from its driver-side setup (loading the data,
creating the Optuna storage) until ``fit()`` returns. The Ray start-up (a few seconds) is
outside both. ``trial s`` is the median of Tune's ``time_total_s`` (time inside the
trainable, from its start to its last report). ``driver CPU`` is this process's CPU time
during the variant (all its threads: Tune's loop, the Optuna searcher, growray's MLflow
writer), ``ray CPU`` the CPU time of every other Ray process (the trial actors, growray's
mailbox, the raylet and GCS), polled from ``/proc`` (Linux; elsewhere not shown). On a
machine whose cores are all busy the wall time follows their sum, so these two columns say
where an overhead goes.
Target (issue 6): growray / raw <= 1.1.

    python benchmarks/orchestration_overhead.py [--n 16] [--max-concurrent 2] [--repeats 3]
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

LR = (1e-3, 1e-1)
OPTIMIZERS = ["adam", "sgd"]
HIDDEN = [4]
BATCH = 64
SEED = 0


# ----------------------------------------------------------------------------- raw Ray Tune
def raw_space(trial: Any) -> None:
    """The same two parameters growray's experiment searches (module level: Tune pickles it)."""
    trial.suggest_float("lr", *LR, log=True)
    trial.suggest_categorical("optimizer", OPTIMIZERS)


def raw_trial(config: dict[str, Any], *, dataset: Any) -> None:
    """One epoch of the same MLP on the same arrays, then one report: no tracking, no checkpoint."""
    import torch
    import torch.nn.functional as F
    from ray import tune

    from growray.models import MODELS

    torch.set_num_threads(1)
    splits = dataset.to_tensors("cpu")
    torch.manual_seed(SEED)
    model = MODELS.build(
        {"name": "mlp", "hidden": HIDDEN}, input_shape=dataset.input_shape, n_classes=dataset.n_classes
    )
    if config["optimizer"] == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(model.parameters(), lr=config["lr"], momentum=0.9)
    else:
        opt = torch.optim.Adam(model.parameters(), lr=config["lr"])
    x, y = splits.train
    gen = torch.Generator().manual_seed(SEED)
    perm = torch.randperm(len(x), generator=gen)
    model.train()
    for i in range(0, len(x), BATCH):
        idx = perm[i : i + BATCH]
        loss = F.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    @torch.no_grad()
    def accuracy(split: tuple[torch.Tensor, torch.Tensor]) -> tuple[float, float]:
        model.eval()
        logits = model(split[0])
        return F.cross_entropy(logits, split[1]).item(), (logits.argmax(1) == split[1]).float().mean().item()

    val_loss, val_acc = accuracy(splits.val)
    test_loss, test_acc = accuracy(splits.test)
    tune.report({"val/acc": val_acc, "val/loss": val_loss, "test/acc": test_acc, "test/loss": test_loss, "epoch": 1})


def run_raw_mlflow(work: Path, n: int, max_concurrent: int) -> tuple[float, Path]:
    """Raw Tune with Ray's own ``MLflowLoggerCallback``: what a user would write by hand to get
    the trials into MLflow (one run per trial, params and every reported result, on the driver)."""
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    callback = MLflowLoggerCallback(
        # its own store: growray's sweeps put theirs in WAL mode (growray.journal), and a
        # hand-written sweep keeps MLflow's default rollback journal
        tracking_uri=f"sqlite:///{work.parent / 'mlflow-callback.db'}",
        experiment_name="overhead-mlflow-callback",
        save_artifact=False,
    )
    return run_raw(work, n, max_concurrent, callbacks=[callback])


def fit_raw_tune(
    trainable: Any,
    space: Any,
    work: Path,
    *,
    n: int,
    max_concurrent: int,
    seed: int,
    callbacks: list[Any] | None = None,
) -> tuple[float, Any, str]:
    """Ray Tune + OptunaSearch as a user writes them by hand (growray's TPE settings, the study in
    sqlite, ``max_failures=2``): ``(seconds, results, experiment name)``; raises when a trial failed.
    Shared with ``tabular_scale.py``, so both benchmarks compare against the same baseline."""
    import optuna
    from ray import tune
    from ray.tune.search.optuna import OptunaSearch

    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    name = f"raw-{time.strftime('%H%M%S')}"
    search = OptunaSearch(
        space,
        metric="val/acc",
        mode="max",
        sampler=optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=10, multivariate=True, group=True, constant_liar=True
        ),
        storage=optuna.storages.RDBStorage(f"sqlite:///{work / 'optuna.db'}"),
        study_name=name,
    )
    tuner = tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=search,
            metric="val/acc",
            mode="max",
            num_samples=n,
            max_concurrent_trials=max_concurrent,
            reuse_actors=True,
        ),
        run_config=tune.RunConfig(
            name=name,
            storage_path=str(work / "ray"),
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=2),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=None),
            callbacks=callbacks,
        ),
    )
    with contextlib.redirect_stdout(io.StringIO()):  # Tune's closing summary box
        results = tuner.fit()
    seconds = time.perf_counter() - t0
    errors = [r.error for r in results if r.error]
    if errors or len(results) != n:
        raise RuntimeError(f"raw Tune: {len(results)} results, errors: {errors[:2]}")
    return seconds, results, name


def run_raw(work: Path, n: int, max_concurrent: int, callbacks: list[Any] | None = None) -> tuple[float, Path]:
    from ray import tune

    from growray.config import validate_dict
    from growray.data import load_dataset

    t0 = time.perf_counter()
    dataset = load_dataset(validate_dict(_experiment_dict(work, n, max_concurrent)).data, seed=SEED)
    trainable = tune.with_resources(tune.with_parameters(raw_trial, dataset=dataset), {"cpu": 1, "gpu": 0})
    load_s = time.perf_counter() - t0
    seconds, _, name = fit_raw_tune(
        trainable, raw_space, work, n=n, max_concurrent=max_concurrent, seed=SEED, callbacks=callbacks
    )
    return load_s + seconds, work / "ray" / name


# ----------------------------------------------------------------------------- growray
def _experiment_dict(work: Path, n: int, max_concurrent: int) -> dict[str, Any]:
    return {
        "name": "overhead",
        "seed": SEED,
        "output_dir": str(work / "runs"),
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": HIDDEN},
        "trainer": {"epochs": 1, "batch_size": BATCH, "lr": 0.01},
        "search": {
            "space": {
                "trainer.lr": {"type": "float", "low": LR[0], "high": LR[1], "log": True},
                "trainer.optimizer": {"type": "categorical", "choices": OPTIMIZERS},
            },
            "sampler": {"name": "tpe", "n_startup_trials": 10},
            "metric": "val/acc",
            "mode": "max",
            "num_samples": n,
            "max_concurrent": max_concurrent,
            "reuse_actors": True,
        },
        "resources": {"cpu": 1},
        "costs": {"latency": {"enabled": False}},
        # one MLflow database for every round, as a user's sweeps share one: its schema is created once
        "tracking": {"uri": f"sqlite:///{work.parent / 'mlflow.db'}"},
    }


def run_growray(work: Path, n: int, max_concurrent: int) -> tuple[float, Path]:
    from growray.config import validate_dict
    from growray.tune.orchestrate import run_sweep

    work.mkdir(parents=True, exist_ok=True)
    exp = validate_dict(_experiment_dict(work, n, max_concurrent))
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # the live trial table (formatted, not shown)
        result = run_sweep(exp, live_interval_s=3600)
    seconds = time.perf_counter() - t0
    if result.n_errors or len(result.trials) != n:
        raise RuntimeError(f"growray: {len(result.trials)} trials, {result.n_errors} errors")
    return seconds, Path(result.storage_path)


# ----------------------------------------------------------------------------- CPU
class CpuMeter:
    """CPU seconds of this process and of every other Ray process while a variant runs.

    A thread polls ``/proc`` every 0.2 s and keeps each Ray process's last CPU time, so a
    trial actor that exits before the end still counts (up to its last poll). The polling
    thread's own CPU (about 3 ms per poll here) is left out of the driver's."""

    def __init__(self) -> None:
        import threading

        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.available = Path("/proc/self/stat").exists()
        self._others: set[int] = set()  # processes that are not Ray's
        self._last: dict[int, float] = {}  # each Ray process's CPU s at the last poll
        self._start = self._read() if self.available else {}
        self._last.update(self._start)
        self._own_cpu = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._cpu0 = time.process_time()
        if self.available:
            self._thread.start()

    def _read(self) -> dict[int, float]:
        out = {}
        me = os.getpid()
        for entry in os.listdir("/proc"):
            pid = int(entry) if entry.isdigit() else me
            if pid == me or pid in self._others:
                continue
            try:
                if pid not in self._last and b"ray" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                    self._others.add(pid)  # its command line is read once
                    continue
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2 :].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / self._tick  # utime + stime
        return out

    def _poll(self) -> None:
        while not self._stop.wait(0.2):
            self._last.update(self._read())
        self._own_cpu = time.thread_time()

    def stop(self) -> tuple[float, float | None]:
        """``(driver CPU s, other Ray processes' CPU s or None)`` since the meter started."""
        if not self.available:
            return time.process_time() - self._cpu0, None
        self._stop.set()
        self._thread.join()
        driver = time.process_time() - self._cpu0 - self._own_cpu
        self._last.update(self._read())
        return driver, sum(t - self._start.get(pid, 0.0) for pid, t in self._last.items())


# ----------------------------------------------------------------------------- report
def trial_seconds(storage: Path) -> list[float]:
    """Tune's ``time_total_s`` (time inside the trainable) of every trial, from its ``result.json``."""
    out = []
    for f in storage.glob("*/result.json"):
        lines = f.read_text().strip().splitlines()
        if lines:
            out.append(float(json.loads(lines[-1])["time_total_s"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=16, help="trials per sweep")
    parser.add_argument("--max-concurrent", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="timed rounds; the order alternates")
    parser.add_argument("--no-warmup", action="store_true", help="skip the untimed 2-trial round of each")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    args = parser.parse_args()

    import ray

    root = Path(tempfile.mkdtemp(prefix="gr-ovh-"))
    t0 = time.perf_counter()
    ray.init(
        num_cpus=args.cpus,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="WARNING",
        _temp_dir=str(root / "r"),
    )
    print(
        f"ray.init: {time.perf_counter() - t0:.1f} s; {args.n} trials per sweep, "
        f"max_concurrent={args.max_concurrent}, reuse_actors=True, {args.repeats} round(s)",
        flush=True,
    )
    runners = {"growray": run_growray, "raw tune": run_raw, "tune+mlflow": run_raw_mlflow}
    rows: list[tuple[int, str, float, list[float], float, float | None]] = []
    try:
        if not args.no_warmup:
            for name, fn in runners.items():
                fn(root / f"warm-{name.replace(' ', '_')}", 2, args.max_concurrent)
        for r in range(args.repeats):
            order = list(runners) if r % 2 == 0 else list(reversed(runners))  # alternate the order
            for name in order:
                meter = CpuMeter()
                seconds, storage = runners[name](root / f"r{r}-{name.replace(' ', '_')}", args.n, args.max_concurrent)
                rows.append((r, name, seconds, trial_seconds(storage), *meter.stop()))
                print(f"  round {r} {name}: {seconds:.1f} s", flush=True)
    finally:
        ray.shutdown()
        shutil.rmtree(root, ignore_errors=True)

    header = (
        f"{'round':>5}  {'variant':<9}  {'wall s':>7}  {'s/trial':>7}  {'trial s median':>14}  "
        f"{'trial s max':>11}  {'sum trial s':>11}  {'driver CPU s':>12}  {'ray CPU s':>9}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for r, name, seconds, inside, driver_cpu, ray_cpu in rows:
        print(
            f"{r:>5}  {name:<9}  {seconds:>7.1f}  {seconds / args.n:>7.2f}  {statistics.median(inside):>14.3f}  "
            f"{max(inside):>11.3f}  {sum(inside):>11.2f}  {driver_cpu:>12.1f}  "
            + (f"{ray_cpu:>9.1f}" if ray_cpu is not None else f"{'-':>9}")
        )
    total = {name: sum(row[2] for row in rows if row[1] == name) for name in runners}
    print("-" * len(header))
    for other, target in (("raw tune", "target <= 1.10"), ("tune+mlflow", "growray should be below 1")):
        ratios = []
        for r in range(args.repeats):
            by = {row[1]: row[2] for row in rows if row[0] == r}
            ratios.append(by["growray"] / by[other])
        print(
            f"growray / {other}: {total['growray'] / total[other]:.2f}x over all rounds, median round "
            f"{statistics.median(ratios):.2f}x ({', '.join(f'{x:.2f}' for x in ratios)}); {target}"
        )
    for name in runners:
        mine = [row for row in rows if row[1] == name]
        driver = statistics.median(row[4] for row in mine) / args.n
        ray_s = [row[5] for row in mine if row[5] is not None]
        extra = f", other Ray processes {statistics.median(ray_s) / args.n * 1e3:.0f} ms" if ray_s else ""
        print(f"CPU per trial, median round, {name}: driver {driver * 1e3:.0f} ms{extra}")
    print(f"load average at the end: {os.getloadavg()}")
    print("trial s = Tune's time_total_s, inside the trainable (a reused actor's first trial also pays its imports)")


if __name__ == "__main__":
    main()
