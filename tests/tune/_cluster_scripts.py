"""Sweeps on a Ray of their own shape, run by ``tests/test_cluster.py`` in a subprocess.

The pytest process already holds one local Ray (``ray_session``), and a process can hold only
one, so each scenario here starts its own Ray, runs a growray sweep on it, shuts it down and
prints one line ``RESULT {json}`` for the test to assert on::

    python tests/tune/_cluster_scripts.py two_nodes <work_dir>
    python tests/tune/_cluster_scripts.py fractional_gpus <work_dir>
    python tests/tune/_cluster_scripts.py local_output_refused <work_dir>
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: conftest.tiny_experiment, on the driver only

RESULT_PREFIX = "RESULT "

__all__ = ["RESULT_PREFIX", "fractional_gpus", "local_output_refused", "two_nodes"]


def _children(result: Any) -> list[Any]:
    from mlflow import MlflowClient

    client = MlflowClient(result.tracking_uri)
    return client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")


def _trials(result: Any) -> list[dict[str, Any]]:
    return [{"trial_id": t.trial_id, "status": t.status, "epochs": t.epochs, "error": t.error} for t in result.trials]


def two_nodes(work: Path) -> dict[str, Any]:
    """A head and a worker node (1 CPU each) on this machine; 4 trials, 2 at a time, 1 CPU each."""
    import ray
    from conftest import tiny_experiment
    from ray.cluster_utils import Cluster

    from growray.tune.orchestrate import run_sweep

    t0 = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")
        cluster.wait_for_nodes()
        nodes = sorted(n["NodeID"] for n in ray.nodes() if n["Alive"])
        started = time.perf_counter() - t0
        exp = tiny_experiment(
            work,
            name="two_nodes",
            # a file URI states the folder is shared (here both nodes are this machine); a plain one is refused
            output_dir=(work / "runs").resolve().as_uri(),
            trainer={"epochs": 2},
            search={"num_samples": 4, "max_concurrent": 2},
            resources={"cpu": 1},
        )
        result = run_sweep(exp, live_interval_s=60)  # joins the Ray initialised above, leaves it running
        assert ray.is_initialized(), "run_sweep shut down a Ray it did not start"
        runs = _children(result)
        return {
            "nodes": nodes,
            "cluster_nodes": sorted(n.node_id for n in cluster.list_all_nodes()),
            "trials": _trials(result),
            "run_node_ids": sorted(r.data.tags.get("growray.node_id", "") for r in runs),
            "run_statuses": sorted(r.info.status for r in runs),
            "storage_path": result.storage_path,
            "seconds_start": round(started, 2),
            "seconds_sweep": round(result.seconds, 2),
        }
    finally:
        ray.shutdown()
        cluster.shutdown()


def fractional_gpus(work: Path) -> dict[str, Any]:
    """One logical GPU, 4 trials of ``gpu: 0.25`` each, all 4 at once."""
    import ray
    from conftest import tiny_experiment

    from growray.tune.orchestrate import run_sweep

    temp_dir = tempfile.mkdtemp(prefix="gr-ray-")  # short: Ray's socket paths must fit 107 bytes
    t0 = time.perf_counter()
    ray.init(
        num_cpus=4,
        num_gpus=1,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="WARNING",
        _temp_dir=temp_dir,
    )
    min_gpu_free: list[float] = [1.0]
    stop = threading.Event()

    def watch() -> None:  # the driver's view: how much of the one GPU is left while trials run
        while not stop.is_set():
            min_gpu_free[0] = min(min_gpu_free[0], ray.available_resources().get("GPU", 0.0))
            time.sleep(0.2)

    try:
        started = time.perf_counter() - t0
        exp = tiny_experiment(
            work,
            name="fractional_gpus",
            trainer={"epochs": 5, "batch_size": 32},  # seconds of training per trial, so the 4 overlap
            costs={"latency": {"enabled": False}},
            search={"num_samples": 4, "max_concurrent": 4},
            resources={"cpu": 0.5, "gpu": 0.25},
        )
        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        result = run_sweep(exp, live_interval_s=60)
        stop.set()
        watcher.join(timeout=5)
        runs = _children(result)
        return {
            "trials": _trials(result),
            "runs": [
                {
                    "start_ms": r.info.start_time,
                    "end_ms": r.info.end_time,
                    "status": r.info.status,
                    "device": r.data.tags.get("growray.device"),
                    "pid": r.data.tags.get("growray.pid"),
                    "gpu_ids": r.data.tags.get("growray.gpu_ids"),
                }
                for r in runs
            ],
            "min_gpu_free": min_gpu_free[0],
            "seconds_start": round(started, 2),
            "seconds_sweep": round(result.seconds, 2),
        }
    finally:
        stop.set()
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)


def local_output_refused(work: Path) -> dict[str, Any]:
    """A head and a worker node; a sweep whose output_dir is a plain local folder is refused
    before anything starts, and Ray (joined by ``run_sweep`` itself) is left shut down."""
    import ray
    from conftest import tiny_experiment
    from ray.cluster_utils import Cluster

    from growray.tune.orchestrate import SetupError, run_sweep

    t0 = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        started = time.perf_counter() - t0
        exp = tiny_experiment(work, name="refused")
        t1 = time.perf_counter()
        try:
            run_sweep(exp, address=cluster.address, live_interval_s=60)
            error = None
        except SetupError as exc:
            error = str(exc)
        from mlflow import MlflowClient

        client = MlflowClient(f"sqlite:///{work / 'mlflow.db'}")
        runs = [r.info.run_id for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
        state = work / "runs" / "refused"
        return {
            "error": error,
            "ray_initialized_after": ray.is_initialized(),
            "mlflow_runs": runs,
            "state_files": sorted(p.name for p in state.iterdir()) if state.exists() else [],
            "seconds_start": round(started, 2),
            "seconds_refusal": round(time.perf_counter() - t1, 2),
        }
    finally:
        ray.shutdown()
        cluster.shutdown()


SCENARIOS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "two_nodes": two_nodes,
    "fractional_gpus": fractional_gpus,
    "local_output_refused": local_output_refused,
}


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in SCENARIOS:
        print(f"usage: python {Path(__file__).name} {{{','.join(SCENARIOS)}}} WORK_DIR", file=sys.stderr)
        return 2
    os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")
    summary = SCENARIOS[argv[0]](Path(argv[1]))
    print(RESULT_PREFIX + json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
