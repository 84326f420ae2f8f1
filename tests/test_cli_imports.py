"""Wiring, not timing: ``growray ls``, ``pareto`` and ``show plugins`` import neither torch nor Ray
(nor MLflow, on a sqlite store), nor pydantic where no experiment file is read, checked in fresh
interpreters; ``show plugins`` prints the same from its cache as from the live registries;
``growray validate`` imports neither Ray nor MLflow (torch it does: the model is built on the meta
device to check the kinds' settings against its shapes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.timeout(300)

HEAVY = ("torch", "ray", "mlflow")

#: runs one CLI command in this interpreter, then reports which heavy packages it imported
CLI = r"""
import contextlib, io, json, sys
from growray.cli import main

out = io.StringIO()
with contextlib.redirect_stdout(out):
    code = main(sys.argv[1:])
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"torch", "ray", "mlflow"})
print(json.dumps({"code": code, "out": out.getvalue(), "heavy": heavy, "pydantic": "pydantic" in sys.modules,
                  "numpy": "numpy" in sys.modules, "dynamo": "torch._dynamo" in sys.modules}))
"""

STORE = r"""
import json, sys
from growray.tracking import OBJECTIVES_TAG, MlflowRecorder, create_sweep_run, ensure_store, get_or_create_experiment

uri = sys.argv[1]
ensure_store(uri)
eid = get_or_create_experiment(uri, "light")
objectives = [{"metric": "val/acc", "mode": "max"}, {"metric": "cost/params", "mode": "min"}]
parent = create_sweep_run(uri, eid, run_name="light-1", tags={OBJECTIVES_TAG: json.dumps(objectives)})
for name, acc, params in [("t0", 0.9, 500.0), ("t1", 0.8, 100.0), ("t2", 0.7, 600.0)]:
    rec = MlflowRecorder(uri, eid, run_name=name, parent_run_id=parent, tags={"growray.trial": name})
    rec.log_metrics({"val/acc": acc, "cost/params": params}, step=1)
    rec.close("FINISHED")
print(parent)
"""


def _cli(tmp_path: Path, *args: str) -> dict:
    env = {**os.environ, "GROWRAY_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.run(
        [sys.executable, "-c", CLI, *args], capture_output=True, text=True, timeout=280, cwd=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_show_plugins_from_its_cache_imports_no_torch_and_prints_the_same(tmp_path):
    live = _cli(tmp_path, "show", "plugins")  # an empty cache: described from the registries
    assert live["code"] == 0 and "torch" in live["heavy"]
    assert "growth.trigger:" in live["out"] and "plateau" in live["out"]
    cached = _cli(tmp_path, "show", "plugins")
    assert cached["out"] == live["out"]
    assert cached["heavy"] == [], f"growray show plugins imported {cached['heavy']}"
    assert not cached["pydantic"], "growray show plugins (cached) imported pydantic"
    assert len(list((tmp_path / "cache").glob("plugins-*.json"))) == 1


def test_ls_and_pareto_import_no_torch_ray_or_mlflow(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    made = subprocess.run([sys.executable, "-c", STORE, uri], capture_output=True, text=True, timeout=200, check=False)
    assert made.returncode == 0, made.stderr[-3000:]
    parent = made.stdout.strip().splitlines()[-1]
    (tmp_path / "light.yaml").write_text(f"name: light\ntracking:\n  uri: {uri}\n")
    for args in (["ls", "--tracking-uri", uri], ["pareto", "light", "--tracking-uri", uri], ["pareto", "light.yaml"]):
        got = _cli(tmp_path, *args)
        assert got["code"] == 0, (args, got["out"])
        assert got["heavy"] == [], f"growray {' '.join(args)} imported {got['heavy']}"
        if not args[1].endswith(".yaml"):  # a file's name and tracking section are read with pydantic
            assert not got["pydantic"], f"growray {' '.join(args)} imported pydantic"
        if args[0] == "ls":
            assert not got["numpy"], "growray ls imported numpy"
            assert "light-1" in got["out"] and parent in got["out"]
        else:
            assert "2 of 3 trials on the front" in got["out"]  # t0 and t1; t2 is dominated by t0


def test_validate_imports_neither_ray_nor_mlflow(tmp_path):
    ok = _cli(tmp_path, "validate", str(ROOT / "experiments" / "quickstart.yaml"))
    assert ok["code"] == 0 and ": OK" in ok["out"], ok
    assert set(ok["heavy"]) <= {"torch"}, f"growray validate imported {ok['heavy']}"
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: bad\ndata: {name: digits}\nmodel: {name: mlp}\ngrowth: {trigger: {name: plateu}}\n"
        "tracking: {uri: 'sqlite:///mlflow.db'}\n"
    )
    got = _cli(tmp_path, "validate", str(bad))
    assert got["code"] == 2, got
    assert set(got["heavy"]) <= {"torch"}, f"growray validate (invalid file) imported {got['heavy']}"


def test_validating_a_darts_search_builds_its_supernet_without_torch_dynamo(tmp_path):
    """An 8-cell DARTS supernet on the meta device: built once for the file and all its search
    bounds (``growray.models.meta``), and without the Python kernel of an out-of-place product
    that imports ``torch._dynamo`` (2-3 s, once 17 CPU-s of validate in all)."""
    path = str(ROOT / "experiments" / "cifar10_darts.yaml")
    ok = _cli(tmp_path, "validate", path, "--set", "resources.cpu=1", "--set", "resources.gpu=0")
    assert ok["code"] == 0 and ": OK" in ok["out"], ok
    assert not ok["dynamo"], "growray validate imported torch._dynamo"
