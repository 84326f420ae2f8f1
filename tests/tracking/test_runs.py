"""Run-level store queries on a real sqlite MLflow store: closing trial runs after a sweep, and
reading a run's last metric value."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def store(tmp_path_factory):  # a new sqlite schema costs ~4 s: one store for the module
    from growray.tracking import create_sweep_run, ensure_store, get_or_create_experiment

    tmp = tmp_path_factory.mktemp("runs")
    uri = f"sqlite:///{tmp / 'mlflow.db'}"
    ensure_store(uri)
    eid = get_or_create_experiment(uri, "runs")
    parent = create_sweep_run(uri, eid, run_name="sweep", tags={})
    return uri, eid, parent


def _open_run(store, name: str) -> str:
    from growray.tracking import MlflowRecorder

    uri, eid, parent = store
    rec = MlflowRecorder(uri, eid, run_name=name, parent_run_id=parent)
    rec.log_metrics({"epoch": 4.0}, step=10)
    rec.flush()  # left RUNNING, as by a trial whose actor Tune tore down before its close
    return rec.run_id


def _run(store, run_id: str):
    from mlflow import MlflowClient

    return MlflowClient(store[0]).get_run(run_id)


def test_a_finished_trial_left_open_is_closed_without_the_stopped_early_tag(store):
    """The flaky ASHA test's case: a trial at its last epoch whose close never reached MLflow."""
    from growray.tracking import finalize_child_run

    run_id = _open_run(store, "done")
    finalize_child_run(store[0], run_id, failed=False, stopped_early=False)
    run = _run(store, run_id)
    assert run.info.status == "FINISHED"
    assert "growray.stopped_early" not in run.data.tags and "growray.stopped_at_epoch" not in run.data.tags


def test_a_stopped_trial_left_open_is_tagged_as_stopped(store):
    from growray.tracking import finalize_child_run

    run_id = _open_run(store, "stopped")
    finalize_child_run(store[0], run_id, failed=False, stopped_early=True, stopped_at_epoch=2)
    run = _run(store, run_id)
    assert run.info.status == "FINISHED"
    assert run.data.tags["growray.stopped_early"] == "true" and run.data.tags["growray.stopped_at_epoch"] == "2"


def test_a_closed_run_is_left_as_the_trial_closed_it(store):
    from growray.tracking import MlflowRecorder, finalize_child_run

    uri, eid, parent = store
    rec = MlflowRecorder(uri, eid, run_name="closed", parent_run_id=parent)
    rec.set_tags({"growray.stopped_early": "false"})
    rec.close("FINISHED")
    finalize_child_run(uri, rec.run_id, failed=False, stopped_early=True, stopped_at_epoch=1)
    run = _run(store, rec.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["growray.stopped_early"] == "false"


def test_a_failed_trial_fails_its_run_with_the_reason(store):
    from growray.tracking import finalize_child_run

    run_id = _open_run(store, "failed")
    finalize_child_run(store[0], run_id, failed=True, error="RuntimeError: boom")
    run = _run(store, run_id)
    assert run.info.status == "FAILED" and run.data.tags["growray.failure"] == "RuntimeError: boom"


def test_statuses_read_in_one_query_drive_the_same_verdicts(store):
    """finish_sweep reads every trial's status at once (child_run_statuses) and passes it in:
    open runs are closed as before, a failed trial's closed run is still failed, and a closed
    run of a trial that ended well is left alone."""
    from growray.tracking import MlflowRecorder, child_run_statuses, finalize_child_run

    uri, eid, parent = store
    left_open = _open_run(store, "s-open")
    failed = _open_run(store, "s-failed")
    closed = MlflowRecorder(uri, eid, run_name="s-closed", parent_run_id=parent)
    closed.set_tags({"growray.stopped_early": "false"})
    closed.close("FINISHED")
    MlflowRecorder(uri, eid, run_name="elsewhere").close("FINISHED")  # not under the parent

    statuses = child_run_statuses(uri, eid, parent)
    assert {statuses[left_open], statuses[failed], statuses[closed.run_id]} == {"RUNNING", "FINISHED"}
    assert statuses[closed.run_id] == "FINISHED" and len(statuses) == len(set(statuses))
    from mlflow import MlflowClient

    children = MlflowClient(uri).search_runs([eid], filter_string=f"tags.mlflow.parentRunId = '{parent}'")
    assert set(statuses) == {r.info.run_id for r in children}

    finalize_child_run(uri, left_open, failed=False, stopped_early=True, stopped_at_epoch=3, status=statuses[left_open])
    finalize_child_run(uri, failed, failed=True, error="OSError: gone", status=statuses[failed])
    finalize_child_run(uri, closed.run_id, failed=False, stopped_early=True, status=statuses[closed.run_id])
    assert _run(store, left_open).info.status == "FINISHED"
    assert _run(store, left_open).data.tags["growray.stopped_at_epoch"] == "3"
    assert _run(store, failed).info.status == "FAILED"
    assert _run(store, failed).data.tags["growray.failure"] == "OSError: gone"
    assert _run(store, closed.run_id).data.tags["growray.stopped_early"] == "false"


def test_last_metric_is_the_value_at_the_largest_step(store):
    from growray.tracking import MlflowRecorder, last_metric

    uri, eid, parent = store
    rec = MlflowRecorder(uri, eid, run_name="metrics", parent_run_id=parent)
    for step, value in [(5, 0.5), (20, 0.7), (12, 0.6)]:  # logged out of step order
        rec.log_metrics({"nas/relaxed_val_acc": value}, step=step)
    rec.close("FINISHED")
    assert last_metric(uri, rec.run_id, "nas/relaxed_val_acc") == pytest.approx(0.7)
    assert last_metric(uri, rec.run_id, "nas/never_logged") is None
    with pytest.raises(ValueError, match="no MLflow run 'no-such-run'"):
        last_metric(uri, "no-such-run", "nas/relaxed_val_acc")
