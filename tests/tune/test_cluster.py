"""Sweeps on Rays of other shapes: two nodes on one machine, and fractional (logical) GPUs.

The pytest process holds one local Ray already (``ray_session``), so each scenario runs in a
subprocess with its own Ray (``tests/tune/_cluster_scripts.py``) and prints a JSON summary.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _cluster_scripts import RESULT_PREFIX

pytestmark = [pytest.mark.timeout(300)]
slow = pytest.mark.slow  # 30-55 s each: CI runs them with -m slow

SCRIPT = Path(__file__).with_name("_cluster_scripts.py")


def _run_scenario(name: str, work: Path, timeout: float = 240) -> dict:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), name, str(work)], check=False, capture_output=True, text=True, timeout=timeout
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    assert proc.returncode == 0 and lines, (
        f"{name} exited {proc.returncode}\n--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    )
    return json.loads(lines[-1][len(RESULT_PREFIX) :])


@slow  # ~20 s (a two-node cluster and a fresh MLflow store); the rule itself is unit-tested in test_storage.py
def test_local_output_dir_refused_on_two_nodes(tmp_path):
    """A plain local output_dir on a two-node cluster: refused before any run or trial exists."""
    summary = _run_scenario("local_output_refused", tmp_path)

    error = summary["error"]
    assert error is not None, "a two-node sweep with a local output_dir was not refused"
    assert error.startswith("output_dir: ") and str(tmp_path / "runs") in error
    for accepted in ("file:///", "s3://", "--shared-storage"):
        assert accepted in error, error
    assert "1 other node" in error, error
    assert summary["mlflow_runs"] == [], "a refused sweep left a parent run"
    assert summary["state_files"] == [], "a refused sweep left a sweep record or study"
    assert summary["ray_initialized_after"] is False, "run_sweep left the Ray it joined connected"


@slow
def test_sweep_spreads_over_two_nodes(tmp_path):
    """Head + one worker node of 1 CPU each; trials of 1 CPU, 2 at once, must use both nodes.
    ``output_dir`` is a ``file://`` URI (a shared folder), so the sweep is accepted."""
    summary = _run_scenario("two_nodes", tmp_path)
    assert summary["storage_path"].startswith(str(tmp_path / "runs" / "two_nodes" / "ray"))

    assert len(summary["nodes"]) == 2 and summary["nodes"] == summary["cluster_nodes"]
    assert [t["status"] for t in summary["trials"]] == ["TERMINATED"] * 4, summary["trials"]
    assert all(t["epochs"] == 2 for t in summary["trials"])
    assert summary["run_statuses"] == ["FINISHED"] * 4
    node_ids = summary["run_node_ids"]
    assert all(node_ids), f"a trial run lacks the growray.node_id tag: {node_ids}"
    assert set(node_ids) == set(summary["nodes"]), f"trials ran on {set(node_ids)}, cluster has {summary['nodes']}"


@slow
def test_fractional_gpus_pack_four_trials_on_one_gpu(tmp_path):
    """One logical GPU, trials of gpu 0.25: all 4 hold a quarter of GPU 0 at the same time."""
    summary = _run_scenario("fractional_gpus", tmp_path)

    assert [t["status"] for t in summary["trials"]] == ["TERMINATED"] * 4, summary["trials"]
    runs = summary["runs"]
    assert len(runs) == 4 and all(r["status"] == "FINISHED" for r in runs)
    assert len({r["pid"] for r in runs}) == 4, "four trials at once need four worker processes"
    # every trial was given GPU 0 by Ray; torch sees no CUDA here, so device auto -> cpu
    assert [r["gpu_ids"] for r in runs] == ["0"] * 4
    assert [r["device"] for r in runs] == ["cpu"] * 4
    # the 4 MLflow runs were open at the same time ...
    latest_start = max(r["start_ms"] for r in runs)
    earliest_end = min(r["end_ms"] for r in runs)
    assert latest_start < earliest_end, f"runs did not overlap: {runs}"
    # ... and together they reserved the whole GPU (4 x 0.25), as the driver saw it
    assert summary["min_gpu_free"] == pytest.approx(0.0)
