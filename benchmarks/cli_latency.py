"""Wall time and peak memory of the commands users run many times a day (issue 19, item 4).

    python benchmarks/cli_latency.py [--repeats 3] [--tracking-uri sqlite:////abs/mlflow.db]

Each command runs in a fresh interpreter (``python -m growray ...``), ``--repeats`` times;
the median wall time and the peak resident memory of the process (``wait4``'s
``ru_maxrss``) are printed with the targets: ``validate`` <= 1 s on the quickstart file;
``ls``, ``pareto`` and ``show plugins`` <= 1.5 s. Without ``--tracking-uri`` a small store with
one two-objective sweep of three trials is made in a temporary folder first (that takes a
few seconds and is not timed). ``show plugins`` is timed with a warm cache (after one
untimed run that describes the registries and writes it); its cold time is printed too.
The load average and the CPU time (user + system) are printed too: on a shared machine wall
times are upper bounds, and CPU time is the steadier measure; both are given as a ratio to the
target (``x1.00`` = on it). ``import torch (floor)`` is ``python -c "import torch"``, timed
the same way against validate's target: what ``validate`` cannot go below while it builds the
model (on the meta device) to check the kinds' settings against the model's shapes.

Bytecode: an installed growray has its ``.pyc`` files, so by default the commands run with
``PYTHONPYCACHEPREFIX`` set to a temporary folder (written by one untimed run of each command,
the checkout left clean) and ``PYTHONDONTWRITEBYTECODE`` unset. ``--no-bytecode-cache`` keeps
the caller's environment as it is: with ``PYTHONDONTWRITEBYTECODE=1`` (as in this project's
sandbox) and no ``__pycache__`` in the checkout, every growray module is compiled on every run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

STORE = r"""
import json, sys
from growray.tracking import OBJECTIVES_TAG, MlflowRecorder, create_sweep_run, ensure_store, get_or_create_experiment

uri = sys.argv[1]
ensure_store(uri)
eid = get_or_create_experiment(uri, "bench")
objectives = [{"metric": "val/acc", "mode": "max"}, {"metric": "cost/params", "mode": "min"}]
parent = create_sweep_run(uri, eid, run_name="bench-1", tags={OBJECTIVES_TAG: json.dumps(objectives)})
for name, acc, params in [("t0", 0.9, 500.0), ("t1", 0.8, 100.0), ("t2", 0.7, 600.0)]:
    rec = MlflowRecorder(uri, eid, run_name=name, parent_run_id=parent, tags={"growray.trial": name})
    rec.log_metrics({"val/acc": acc, "cost/params": params}, step=1)
    rec.close("FINISHED")
"""


#: not a command: the floor of every command that imports torch (``validate`` builds the model
#: on the meta device to check the kinds' settings against its shapes), printed beside them
TORCH_FLOOR = ["-c", "import torch"]


def timed(args: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS in MiB, exit code) of ``python -m growray ARGS``
    (of ``python ARGS`` for :data:`TORCH_FLOOR`)."""
    argv = [sys.executable, *args] if args is TORCH_FLOOR else [sys.executable, "-m", "growray", *args]
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        print(f"  growray {' '.join(args)} exited {proc.returncode}: {err[-500:]}", file=sys.stderr)
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tracking-uri", help="a store with a sweep of experiment --experiment (default: made here)")
    ap.add_argument("--experiment", default="bench", help="its MLflow experiment (for pareto)")
    ap.add_argument(
        "--no-bytecode-cache", action="store_true", help="run with the environment's bytecode settings as they are"
    )
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="growray-cli-latency-"))
    env = {**os.environ, "GROWRAY_CACHE_DIR": str(work / "cache")}
    if not args.no_bytecode_cache:  # as installed: every module's .pyc is there
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(work / "pycache")
    uri = args.tracking_uri
    if uri is None:
        uri = f"sqlite:///{work / 'mlflow.db'}"
        subprocess.run([sys.executable, "-c", STORE, uri], cwd=work, env=env, check=True, capture_output=True)
    quickstart = str(ROOT / "experiments" / "quickstart.yaml")
    cold, _, _, _ = timed(["show", "plugins"], env, work)  # describes the registries, writes the cache

    commands = {
        "validate quickstart.yaml": (["validate", quickstart], 1.0),
        "ls": (["ls", "--tracking-uri", uri], 1.5),
        "pareto": (["pareto", args.experiment, "--tracking-uri", uri], 1.5),
        "show plugins": (["show", "plugins"], 1.5),
        "import torch (floor)": (TORCH_FLOOR, 1.0),
    }
    for cmd, _target in commands.values():  # untimed: writes the bytecode cache
        timed(cmd, env, work)
    bytecode = "off (every module compiled on every run)" if env.get("PYTHONDONTWRITEBYTECODE") else "cached"
    print(f"python {sys.version.split()[0]}, bytecode {bytecode}, {args.repeats} runs per command")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    samples: dict[str, list[tuple[float, float, float]]] = {name: [] for name in commands}
    for _ in range(args.repeats):  # interleaved, so that a burst of load hits every command alike
        for name, (cmd, _target) in commands.items():
            wall, cpu, rss, code = timed(cmd, env, work)
            if code == 0:
                samples[name].append((wall, cpu, rss))
    print(f"{'command':<26} {'median wall':>11} {'median CPU':>10} {'peak RSS':>10}  target  wall/target  CPU/target")
    for name, (_cmd, target) in commands.items():
        if not samples[name]:
            print(f"{name:<26} {'failed':>11}")
            continue
        wall = statistics.median(w for w, _, _ in samples[name])
        cpu = statistics.median(c for _, c, _ in samples[name])
        rss = max(r for _, _, r in samples[name])
        verdict = "ok" if wall <= target else "OVER"
        print(
            f"{name:<26} {wall:>9.2f} s {cpu:>8.2f} s {rss:>6.0f} MiB  {target:>4g} s  "
            f"x{wall / target:<5.2f} {verdict:<4}  x{cpu / target:.2f}"
        )
    print(f"{'show plugins (cold cache)':<26} {cold:>9.2f} s")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
