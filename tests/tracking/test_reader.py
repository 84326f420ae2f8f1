"""The sqlite reader of ``growray ls``/``pareto`` answers as MLflow's client does, on a real store."""

from __future__ import annotations

import math

import pytest

from growray.tracking import ensure_store, get_or_create_experiment
from growray.tracking._reader import MlflowReader, SqliteReader, reader
from growray.tracking._store import _sqlite_path

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """Two experiments; sweeps with children, a deleted child, a NaN metric, several steps."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('reader') / 'mlflow.db'}"
    ensure_store(uri)
    client = MlflowClient(uri)
    ids = {name: get_or_create_experiment(uri, name) for name in ("one", "two")}
    parents = []
    for name, eid in ids.items():
        for s in range(2):
            parent = client.create_run(eid, tags={"growray.kind": "sweep"}, run_name=f"{name}-{s}", start_time=1000 + s)
            parents.append(parent.info.run_id)
            client.log_metric(parent.info.run_id, "best/val_acc", 0.5 + s / 10)
            for t in range(3):  # the same start time for two children: ordered by run id
                child = client.create_run(
                    eid,
                    tags={"mlflow.parentRunId": parent.info.run_id, "growray.trial": f"t{t}"},
                    start_time=2000 + t // 2,
                )
                for step, value in enumerate([0.1, 0.4, 0.3 + t]):
                    client.log_metric(child.info.run_id, "val/acc", value, step=step)
                client.log_metric(child.info.run_id, "val/loss", math.nan if t == 1 else 1.0 / (t + 1))
                client.set_terminated(child.info.run_id, "FINISHED" if t else "FAILED")
                if t == 2 and s == 1:
                    client.delete_run(child.info.run_id)
            client.set_terminated(parent.info.run_id)
    client.delete_experiment(get_or_create_experiment(uri, "gone"))
    return uri, ids, parents


def _same(a, b):
    """Equal records, NaN equal to NaN."""
    assert a.info == b.info
    assert a.data.tags == b.data.tags
    assert a.data.metrics.keys() == b.data.metrics.keys()
    for k, v in a.data.metrics.items():
        w = b.data.metrics[k]
        assert (math.isnan(v) and math.isnan(w)) or v == w, (k, v, w)


def test_sqlite_reader_answers_as_mlflow(filled):
    uri, ids, parents = filled
    light, heavy = reader(uri), MlflowReader(uri)
    assert isinstance(light, SqliteReader)
    assert [e.name for e in light.search_experiments()] == [e.name for e in heavy.search_experiments()]
    assert "gone" not in [e.name for e in light.search_experiments()]
    assert light.get_experiment_by_name("gone") == heavy.get_experiment_by_name("gone")
    assert light.get_experiment_by_name("gone").lifecycle_stage == "deleted"
    assert light.get_experiment_by_name("absent") is None and heavy.get_experiment_by_name("absent") is None
    every = list(ids.values())
    for newest_first in (True, False):
        for limit in (None, 1):
            a = light.runs_tagged(every, "growray.kind", "sweep", newest_first=newest_first, limit=limit)
            b = heavy.runs_tagged(every, "growray.kind", "sweep", newest_first=newest_first, limit=limit)
            assert [r.info.run_id for r in a] == [r.info.run_id for r in b]
            for x, y in zip(a, b, strict=True):
                _same(x, y)
    for parent in parents:
        _same(light.get_run(parent), heavy.get_run(parent))
        eid = light.get_run(parent).info.experiment_id
        a = light.runs_tagged([eid], "mlflow.parentRunId", parent, newest_first=False)
        b = heavy.runs_tagged([eid], "mlflow.parentRunId", parent, newest_first=False)
        assert len(a) in (2, 3) and [r.info.run_id for r in a] == [r.info.run_id for r in b]
        for x, y in zip(a, b, strict=True):
            _same(x, y)
            assert x.data.metrics["val/acc"] == pytest.approx(0.3 + int(x.data.tags["growray.trial"][1:]))
    for r in (light, heavy):
        with pytest.raises(LookupError, match="no run"):
            r.get_run("0" * 32)


def test_a_file_that_is_no_mlflow_store_goes_to_mlflow(tmp_path):
    path = tmp_path / "other.db"
    import sqlite3

    sqlite3.connect(path).execute("CREATE TABLE t (x)").connection.commit()
    uri = f"sqlite:///{path}"
    assert _sqlite_path(uri) == path
    assert isinstance(reader(uri), MlflowReader)
