"""growray.tracking against a real MLflow sqlite store (no mocks of mlflow)."""

from __future__ import annotations

import json
import math
import multiprocessing as mp
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from growray.tracking import (
    MemoryRecorder,
    MlflowRecorder,
    NullRecorder,
    Recorder,
    absolute_tracking_uri,
    child_runs,
    create_sweep_run,
    default_artifact_location,
    ensure_store,
    finish_run,
    flatten_params,
    get_or_create_experiment,
    growth_timeline_figure,
    list_sweeps,
)

EVENTS = [
    {"step": 100, "site": "hidden.0", "width_after": 20, "n_added": 4},
    {"step": 250, "site": "hidden.1", "width_after": 12, "n_added": 4},
    {"step": 400, "site": "hidden.0", "width_after": 18, "n_added": -2},
]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """One migrated sqlite store (schema creation costs ~3 s) shared by this module."""
    db = tmp_path_factory.mktemp("mlflow") / "nested" / "mlflow.db"
    uri = f"sqlite:///{db}"
    ensure_store(uri)
    return uri


@pytest.fixture(scope="module")
def client(store):
    from mlflow import MlflowClient

    return MlflowClient(store)


@pytest.fixture(scope="module")
def exp_id(store):
    return get_or_create_experiment(store, "unit")


# --- plain helpers -----------------------------------------------------------------
def test_import_is_cheap():
    code = "import sys, growray.tracking; print('mlflow' in sys.modules, 'matplotlib' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_flatten_params():
    cfg = {"trainer": {"lr": 0.01, "opt": {"name": "sgd"}}, "model": {"hidden": [16, 16]}, "x": {}}
    assert flatten_params(cfg) == {
        "trainer.lr": "0.01",
        "trainer.opt.name": "sgd",
        "model.hidden": "[16, 16]",
        "x": "{}",
    }
    assert flatten_params({"a": 1}, prefix="p") == {"p.a": "1"}
    with pytest.raises(TypeError, match="expects a dict"):
        flatten_params([1, 2])  # type: ignore[arg-type]


def test_uri_helpers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert absolute_tracking_uri("sqlite:///m.db") == f"sqlite:///{tmp_path / 'm.db'}"
    assert absolute_tracking_uri("http://h:5000") == "http://h:5000"
    loc = default_artifact_location("sqlite:///m.db", "my exp/1")
    assert loc == (tmp_path / "mlartifacts" / "my_exp_1").as_uri()
    assert default_artifact_location("http://h:5000", "e") is None
    with pytest.raises(ValueError, match="sqlite"):
        ensure_store(f"file://{tmp_path}/mlruns")


def test_ensure_store_http_unreachable():
    with pytest.raises(ConnectionError, match=r"http://127\.0\.0\.1:9"):
        ensure_store("http://127.0.0.1:9")


# --- recorders without a backend ---------------------------------------------------
def test_memory_recorder_keeps_everything():
    fig = growth_timeline_figure({"hidden.0": 16}, EVENTS[:1], 200)
    rec = MemoryRecorder()
    assert isinstance(rec, Recorder) and isinstance(NullRecorder(), Recorder)
    rec.log_params({"trainer": {"lr": 0.1}})
    rec.log_metrics({"train/loss": 2.0, "val/acc": float("nan")}, step=1)
    assert rec.metrics == {} and len(rec.pending) == 2  # buffered like MLflow
    rec.flush()
    rec.log_metrics({"train/loss": 1.0}, step=2)
    rec.set_tags({"growray.kind": "growth"})
    arch = {"widths": [16]}
    rec.log_dict(arch, "architecture.json")
    arch["widths"].append(32)  # a copy was stored
    rec.log_text("hi", "notes.txt")
    rec.log_figure(fig, "plots/growth.png")
    rec.close()
    assert rec.params == {"trainer.lr": "0.1"}
    assert rec.metrics["train/loss"] == [(1, 2.0), (2, 1.0)]
    assert math.isnan(rec.metrics["val/acc"][0][1])
    assert rec.last("train/loss") == 1.0
    assert rec.tags == {"growray.kind": "growth"} and rec.status == "FINISHED"
    assert rec.artifacts["architecture.json"] == {"widths": [16]}
    assert rec.artifacts["notes.txt"] == "hi"
    assert rec.artifacts["plots/growth.png"][:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(ValueError, match="FINISHED, FAILED, KILLED"):
        rec.close("DONE")


def test_context_manager_marks_failure():
    with pytest.raises(RuntimeError), MemoryRecorder() as rec:
        raise RuntimeError("boom")
    assert rec.status == "FAILED"


# --- MlflowRecorder ----------------------------------------------------------------
def test_mlflow_recorder_metrics_buffered_until_flush(store, client, exp_id):
    rec = MlflowRecorder(store, exp_id, run_name="buffered")
    rec.log_metrics({"train/loss": 1.5, "growth/width/hidden.0": 16, "val/acc": float("nan")}, 1)
    rec.log_metrics({"cost/params": float("inf")}, 1)
    assert client.get_run(rec.run_id).data.metrics == {}
    assert rec.n_pending == 2 and rec.n_nonfinite == 2
    rec.flush()
    run = client.get_run(rec.run_id)
    assert run.data.metrics == {"train/loss": 1.5, "growth/width/hidden.0": 16.0}
    rec.close()
    run = client.get_run(rec.run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["growray.n_nonfinite_metrics_skipped"] == "2"
    with pytest.raises(RuntimeError, match="closed"):
        rec.log_metrics({"train/loss": 1.0}, 2)


def test_mlflow_recorder_chunks_large_flush(store, client, exp_id):
    rec = MlflowRecorder(store, exp_id, run_name="many")
    sizes = []  # a spy around the real MlflowClient.log_batch
    real_log_batch = rec.client.log_batch

    def spy(run_id, metrics=(), **kw):
        sizes.append(len(metrics))
        return real_log_batch(run_id, metrics=metrics, **kw)

    rec.client.log_batch = spy
    for step in range(1250):
        rec.log_metrics({"train/loss": 1.0 / (step + 1)}, step)
    rec.log_metrics({f"growth/width/site.{i}": float(i) for i in range(300)}, 1250)
    assert rec.n_pending == 1550
    rec.close()
    # MLflow documents <= 1000 metrics per log_batch; 3.17's sqlite store and server accept
    # more, so only a spy can tell that the recorder keeps to the documented limit
    assert sizes[:2] == [1000, 550]
    history = client.get_metric_history(rec.run_id, "train/loss")
    assert len(history) == 1250 and {m.step for m in history} == set(range(1250))
    assert len(client.get_run(rec.run_id).data.metrics) == 301


def test_mlflow_recorder_params(store, client, exp_id):
    rec = MlflowRecorder(store, exp_id, run_name="params")
    cfg = {"trainer": {"lr": 0.01}, "model": {"hidden": [16, 16]}, "big": {"s": "x" * 7000}}
    cfg.update({f"p{i}": i for i in range(150)})  # > 100 params: two batches
    rec.log_params(cfg)
    rec.log_params({"trainer": {"lr": 0.01}})  # same value again: fine
    with pytest.warns(UserWarning, match="trainer.lr.*already logged"):
        rec.log_params({"trainer": {"lr": 0.02}})
    rec.close()
    params = client.get_run(rec.run_id).data.params
    assert params["trainer.lr"] == "0.01" and params["model.hidden"] == "[16, 16]"
    assert len(params["big.s"]) == 6000 and len(params) == 153


def test_mlflow_recorder_artifacts_and_parent(store, client, exp_id):
    parent = create_sweep_run(store, exp_id, run_name="artifacts-sweep", tags={})
    rec = MlflowRecorder(store, exp_id, run_name="trial-0", parent_run_id=parent, tags={"growray.kind": "growth"})
    rec.log_dict({"widths": [16, 8]}, "architecture.json")
    rec.log_dict({"trainer": {"lr": 0.01}}, "config.yaml")
    rec.log_text("hello", "notes.txt")
    rec.log_figure(growth_timeline_figure({"hidden.0": 16}, EVENTS[:1], 200), "plots/growth.png")
    rec.close("FAILED")
    run = client.get_run(rec.run_id)
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.tags["mlflow.runName"] == run.info.run_name == "trial-0"
    assert run.data.tags["growray.kind"] == "growth" and run.info.status == "FAILED"
    assert run.info.artifact_uri.startswith(default_artifact_location(store, "unit"))
    top = {a.path for a in client.list_artifacts(rec.run_id)}
    assert top == {"architecture.json", "config.yaml", "notes.txt", "plots"}
    (png,) = client.list_artifacts(rec.run_id, "plots")
    assert png.path == "plots/growth.png" and png.file_size > 1000
    local = client.download_artifacts(rec.run_id, "", dst_path=None)
    assert json.loads(Path(local, "architecture.json").read_text()) == {"widths": [16, 8]}
    assert yaml.safe_load(Path(local, "config.yaml").read_text()) == {"trainer": {"lr": 0.01}}


def test_artifacts_are_the_files_mlflows_client_writes(store, client, exp_id, tmp_path):
    """The recorder writes artifacts itself (libyaml, the run's artifact repository opened once):
    the files are byte for byte those of MLflow's own log_dict/log_text, for a whole experiment
    config too; an object the safe YAML dumper refuses is still written as MLflow would. A tuple
    is the one departure: a list, which yaml.safe_load reads (MLflow writes !!python/tuple)."""
    from growray.config import load_experiment

    config = load_experiment(Path(__file__).parents[2] / "experiments" / "quickstart.yaml").to_dict()
    odd = {"p": Path("/x")}  # no safe representation: PyYAML's full dumper, as MLflow's
    objects = {"config.yaml": config, "c.json": config, "odd.yaml": odd, "sub/a.json": {"x": float("nan")}}
    ours = MlflowRecorder(store, exp_id, run_name="ours")
    theirs = MlflowRecorder(store, exp_id, run_name="theirs")
    for name, obj in objects.items():
        ours.log_dict(obj, name)
        theirs.client.log_dict(theirs.run_id, obj, name)
    ours.log_text("ünïcode\n", "t.txt")
    theirs.client.log_text(theirs.run_id, "ünïcode\n", "t.txt")
    ours.log_bytes(b"\x89PNG", "plots/p.png")
    for rec in (ours, theirs):
        rec.close()
    for name in [*objects, "t.txt"]:
        a = Path(client.download_artifacts(ours.run_id, name, dst_path=str(tmp_path / "a")))
        b = Path(client.download_artifacts(theirs.run_id, name, dst_path=str(tmp_path / "b")))
        assert a.read_bytes() == b.read_bytes(), name
    png = client.download_artifacts(ours.run_id, "plots/p.png", dst_path=str(tmp_path / "a"))
    assert Path(png).read_bytes() == b"\x89PNG"
    tupled = MlflowRecorder(store, exp_id, run_name="tuple")
    tupled.log_dict({"t": (1, 2)}, "t.yaml")
    tupled.close()
    path = client.download_artifacts(tupled.run_id, "t.yaml", dst_path=str(tmp_path / "c"))
    assert yaml.safe_load(Path(path).read_text()) == {"t": [1, 2]}


def test_mlflow_recorder_continues_run(store, client, exp_id):
    first = MlflowRecorder(store, exp_id, run_name="restored")
    first.log_params({"lr": 0.1})
    first.log_metrics({"train/loss": 1.0}, 1)
    first.close("KILLED")
    n_runs = len(client.search_runs([exp_id], max_results=1000))

    again = MlflowRecorder(store, exp_id, run_id=first.run_id)
    assert client.get_run(first.run_id).info.status == "RUNNING"
    again.log_params({"lr": 0.1})  # the restored trial re-logs its config
    again.log_metrics({"train/loss": 0.5}, 2)
    again.close()
    assert len(client.search_runs([exp_id], max_results=1000)) == n_runs
    history = client.get_metric_history(first.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(1, 1.0), (2, 0.5)]
    assert client.get_run(first.run_id).info.status == "FINISHED"
    with pytest.raises(ValueError, match="belongs to experiment"):
        MlflowRecorder(store, "0", run_id=first.run_id)


# --- store: experiments, sweeps ----------------------------------------------------
def test_experiment_create_get_and_deleted(store, client):
    eid = get_or_create_experiment(store, "to-delete")
    assert get_or_create_experiment(store, "to-delete") == eid
    assert client.get_experiment(eid).artifact_location == default_artifact_location(store, "to-delete")
    client.delete_experiment(eid)
    with pytest.raises(ValueError, match=r"deleted.*mlflow experiments restore"):
        get_or_create_experiment(store, "to-delete")


def test_list_sweeps_and_child_runs(store, client):
    eid = get_or_create_experiment(store, "two-sweeps")
    sweeps = {}
    for name, n_children in (("sweep-a", 3), ("sweep-b", 1)):
        pid = create_sweep_run(store, eid, run_name=name, tags={"git.commit": "abc"})
        for i in range(n_children):
            MlflowRecorder(store, eid, run_name=f"{name}-{i}", parent_run_id=pid).close()
        sweeps[name] = pid
    client.log_metric(sweeps["sweep-a"], "best/val_acc", 0.93)
    finish_run(store, sweeps["sweep-a"])

    rows = list_sweeps(store, "two-sweeps")
    assert [r["name"] for r in rows] == ["sweep-b", "sweep-a"]  # newest first
    a = rows[1]
    assert a["run_id"] == sweeps["sweep-a"] and a["experiment"] == "two-sweeps"
    assert a["status"] == "FINISHED" and a["n_trials"] == 3 and a["best"] == 0.93
    # a sweep without a growray.objectives tag (recorded before it existed) was val/acc max
    assert a["objectives"] == [("val/acc", "max")] and a["result"] == "val/acc=0.9300"
    assert rows[0]["status"] == "RUNNING" and rows[0]["n_trials"] == 1
    assert rows[0]["best"] is None and rows[0]["result"] == "" and len(a["start_time"]) == 19
    tags = client.get_run(sweeps["sweep-a"]).data.tags
    assert tags["growray.kind"] == "sweep" and tags["growray.sweep"] == "sweep-a"
    assert tags["growray.version"] and tags["git.commit"] == "abc"

    kids = child_runs(store, sweeps["sweep-a"])
    assert [r.info.run_name for r in kids] == ["sweep-a-0", "sweep-a-1", "sweep-a-2"]
    assert {r["name"] for r in list_sweeps(store)} >= {"sweep-a", "sweep-b"}
    with pytest.raises(ValueError, match=r"no experiment 'nope'.*two-sweeps"):
        list_sweeps(store, "nope")


# --- concurrency: schema on the driver, then 4 writer processes --------------------
def _log_child(uri: str, experiment_id: str, parent: str, index: int, queue) -> None:
    try:
        rec = MlflowRecorder(uri, experiment_id, run_name=f"w{index}", parent_run_id=parent)
        for step in range(50):
            rec.log_metrics({"train/loss": 1.0 / (step + 1)}, step)
            if step % 10 == 9:
                rec.flush()
        rec.close()
        queue.put(None)
    except Exception as exc:  # reported to the parent process
        queue.put(f"{type(exc).__name__}: {exc}")


def test_concurrent_children_after_ensure_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'db' / 'mlflow.db'}"
    ensure_store(uri)
    eid = get_or_create_experiment(uri, "concurrent")
    parent = create_sweep_run(uri, eid, run_name="conc", tags={})
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_log_child, args=(uri, eid, parent, i, queue)) for i in range(4)]
    for p in procs:
        p.start()
    errors = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert errors == [None] * 4
    kids = child_runs(uri, parent)
    assert len(kids) == 4 and all(r.info.status == "FINISHED" for r in kids)
    from mlflow import MlflowClient

    c = MlflowClient(uri)
    assert all(len(c.get_metric_history(r.info.run_id, "train/loss")) == 50 for r in kids)


# --- plots -------------------------------------------------------------------------
def test_growth_timeline_figure_png(tmp_path):
    fig = growth_timeline_figure({"hidden.0": 16, "hidden.1": 8}, EVENTS, final_step=500)
    ax = fig.axes[0]
    assert ax.get_xlabel() == "optimizer step" and ax.get_ylabel() == "width (units)"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["hidden.0", "hidden.1"]
    out = tmp_path / "growth.png"
    fig.savefig(out)
    assert out.stat().st_size > 5000
    # a site only seen in events starts at width_after - n_added
    fig = growth_timeline_figure({}, [{"step": 5, "site": "conv.2", "width_after": 6, "n_added": 2}], 9)
    (line,) = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "conv.2"]
    assert list(line.get_ydata()) == [4, 6, 6]
    with pytest.raises(ValueError, match="event 0 lacks width_after"):
        growth_timeline_figure({}, [{"step": 1, "site": "a"}], 2)


def test_null_recorder_accepts_everything():
    rec = NullRecorder()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rec.log_params({"a": {"b": 1}})
        rec.log_metrics({"x": 1.0}, 0)
        rec.set_tags({"t": "v"})
        rec.log_dict({}, "a.json")
        rec.log_text("", "a.txt")
        rec.flush()
        rec.close("KILLED")
    assert rec.run_id is None
