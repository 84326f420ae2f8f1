"""``growray ls`` and ``growray pareto`` read the MLflow store only: they never import Ray
(1.3-1.7 s and ~200 MB per process, STACK_NOTES §2). Run for real in a fresh interpreter."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

pytestmark = pytest.mark.timeout(120)

SCRIPT = r"""
import contextlib, io, json, sys
from growray.tracking import (
    OBJECTIVES_TAG, MlflowRecorder, create_sweep_run, ensure_store, get_or_create_experiment,
)

uri = sys.argv[1]
ensure_store(uri)
eid = get_or_create_experiment(uri, "light")
objectives = [{"metric": "val/acc", "mode": "max"}, {"metric": "cost/params", "mode": "min"}]
parent = create_sweep_run(uri, eid, run_name="light-1", tags={OBJECTIVES_TAG: json.dumps(objectives)})
for name, acc, params in [("t0", 0.9, 500.0), ("t1", 0.8, 100.0), ("t2", 0.7, 600.0)]:
    rec = MlflowRecorder(uri, eid, run_name=name, parent_run_id=parent, tags={"growray.trial": name})
    rec.log_metrics({"val/acc": acc, "cost/params": params}, step=1)
    rec.close("FINISHED")
before = sorted(m for m in sys.modules if m == "ray" or m.startswith("ray."))

from growray.cli import main

out = io.StringIO()
with contextlib.redirect_stdout(out):
    codes = [
        main(["ls", "--tracking-uri", uri]),
        main(["pareto", "light", "--tracking-uri", uri]),
    ]
print(json.dumps({
    "codes": codes,
    "out": out.getvalue(),
    "parent": parent,
    "ray_before": before,
    "ray": sorted(m for m in sys.modules if m == "ray" or m.startswith("ray.")),
}))
"""


def test_ls_and_pareto_run_without_importing_ray(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, uri], capture_output=True, text=True, timeout=110, cwd=tmp_path, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["codes"] == [0, 0], got["out"]
    assert "light-1" in got["out"] and got["parent"] in got["out"]  # ls listed the sweep
    assert "2 of 3 trials on the front" in got["out"]  # t0 and t1; t2 is dominated by t0
    assert got["ray_before"] == []
    assert got["ray"] == [], f"growray ls / pareto imported Ray: {got['ray'][:5]}"
