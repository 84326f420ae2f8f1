"""The MLflow side of growray export on a real sqlite store: which runs a target stands for,
what is read from a run, the deployment latency recorded beside the training one."""

from __future__ import annotations

import pytest
from mlflow import MlflowClient

from growray.tracking import (
    create_sweep_run,
    ensure_store,
    export_targets,
    get_or_create_experiment,
    read_export_source,
    record_export_latency,
)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("models")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    ensure_store(uri)
    return uri, get_or_create_experiment(uri, "models")


def _trial(uri, eid, parent, name, **tags):
    client = MlflowClient(uri)
    run = client.create_run(
        eid, tags={"mlflow.parentRunId": parent, "growray.trial": name, "growray.kind": "growth", **tags}
    )
    client.log_dict(run.info.run_id, {"name": "x"}, "config.yaml")
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def test_a_sweep_stands_for_its_best_trial_or_its_pareto_front(store):
    uri, eid = store
    parent = create_sweep_run(uri, eid, run_name="sw-1", tags={})
    a = _trial(uri, eid, parent, "t0", **{"growray.pareto": "true"})
    b = _trial(uri, eid, parent, "t1", **{"growray.pareto": "false"})
    c = _trial(uri, eid, parent, "t2", **{"growray.pareto": "true"})
    MlflowClient(uri).set_tag(parent, "growray.best_run_id", b)
    (best,) = export_targets(uri, parent)
    assert (best.run_id, best.via) == (b, "best trial of sweep sw-1")
    front = export_targets(uri, parent, pareto=True)
    assert [t.run_id for t in front] == [a, c] and all(t.via == "Pareto front of sweep sw-1" for t in front)
    (itself,) = export_targets(uri, a)
    assert (itself.run_id, itself.via) == (a, None)


def test_a_nas_search_run_stands_for_its_retrain_run(store):
    uri, eid = store
    parent = create_sweep_run(uri, eid, run_name="sw-2", tags={})
    retrain = _trial(uri, eid, parent, "r0", **{"growray.kind": "retrain"})
    search = _trial(uri, eid, parent, "s0", **{"growray.kind": "darts", "growray.retrain_run_id": retrain})
    MlflowClient(uri).set_tag(parent, "growray.best_run_id", search)
    (t,) = export_targets(uri, search)
    assert t.run_id == retrain and t.via == f"retrain run of search run {search}"
    (t,) = export_targets(uri, parent)
    assert t.run_id == retrain and "best trial of sweep sw-2" in t.via


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown", "no MLflow run '0123abc'"),
        ("no_best", "recorded no best trial (interrupted, or every trial failed)"),
        ("no_front", "has no trial tagged growray.pareto=true"),
        ("pareto_of_a_trial", "--pareto takes the run id of a multi-objective sweep"),
    ],
)
def test_what_cannot_be_exported_says_why(store, case, message):
    uri, eid = store
    parent = create_sweep_run(uri, eid, run_name=f"sw-{case}", tags={})
    trial = _trial(uri, eid, parent, "t0")
    target, pareto = {
        "unknown": ("0123abc", False),
        "no_best": (parent, False),
        "no_front": (parent, True),
        "pareto_of_a_trial": (trial, True),
    }[case]
    with pytest.raises(ValueError) as info:
        export_targets(uri, target, pareto=pareto)
    assert message in str(info.value)


def test_a_run_source_reads_config_and_network_and_the_training_latency(store):
    uri, eid = store
    client = MlflowClient(uri)
    parent = create_sweep_run(uri, eid, run_name="sw-3", tags={})
    run_id = _trial(uri, eid, parent, "t0", **{"growray.sweep": "sw-3"})
    client.log_dict(run_id, {"format": "growray.network/1"}, "network.json")
    client.log_metric(run_id, "cost/latency_ms", 0.5, step=40)
    src = read_export_source(uri, run_id)
    assert src.config == {"name": "x"} and src.network == {"format": "growray.network/1"}
    assert src.latency_ms == pytest.approx(0.5)
    assert src.provenance["growray.trial"] == "t0" and src.provenance["growray.sweep"] == "sw-3"
    other = _trial(uri, eid, parent, "t1")
    assert read_export_source(uri, other).network is None
    bad = _trial(uri, eid, parent, "t2")
    client.log_text(bad, "{not json", "network.json")
    with pytest.raises(ValueError, match=r"network\.json is not JSON"):
        read_export_source(uri, bad)


def test_deployment_latency_lands_at_the_step_of_the_training_latency_status_unchanged(store):
    uri, eid = store
    client = MlflowClient(uri)
    parent = create_sweep_run(uri, eid, run_name="sw-4", tags={})
    run_id = _trial(uri, eid, parent, "t0")
    for step, value in ((10, 0.9), (40, 0.7)):
        client.log_metric(run_id, "cost/latency_ms", value, step=step)
    client.set_terminated(run_id, "FAILED")
    record_export_latency(uri, run_id, {"export/latency_ms": 0.25}, {"growray.export.latency_runtime": "ort"})
    run = client.get_run(run_id)
    (m,) = client.get_metric_history(run_id, "export/latency_ms")
    assert (m.step, m.value) == (40, 0.25)
    assert run.data.tags["growray.export.latency_runtime"] == "ort"
    assert run.info.status == "FAILED"
