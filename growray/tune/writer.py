"""The sweep's MLflow writer: trials record through the driver, which has MLflow open already.

Importing ``mlflow`` and opening its sqlite store costs about 4.5 s of CPU in a new process
on these machines (``import mlflow`` pulls in pandas, FastAPI and SQLAlchemy's ORM). The
driver pays it once anyway, for the sweep's parent run. So a trial does not import MLflow:
its calls go to a small mailbox actor (Ray only, pinned to the driver's node), and a thread
of the driver takes them from there and runs them on one :class:`MlflowWriter`. A sqlite
store (with its local artifact folder) then only has to be reachable from the driver's node.
A sweep of many short trials, which wait for the driver's CPU, runs the writer in a process
of its own (``tracking.writer``; :mod:`growray.tune._writer_process`).

The trial side, :class:`RemoteRecorder`, keeps the :class:`~growray.tracking.Recorder`
contract: metrics are buffered in the trial's process and written by :meth:`flush`, which
returns only once the driver has stored them (the trainer flushes before each checkpoint,
so "metrics up to the checkpoint are in MLflow" still holds). Params, tags and artifacts
are buffered as well, in the order they were made, and travel in the same call as the next
flush's metrics (or the close), stored before them; their errors are raised there. Each call
through the mailbox costs CPU in three processes (the trial, the mailbox and the driver), so
a trial makes three in all: opening its run (sent at once, so that even a trial that dies
in its first epoch has one), one per flush, and the close. A trial whose worker dies loses
only what it had not flushed, as before; a mailbox that dies fails the calls waiting in it,
and Tune retries the trial from its last checkpoint.
"""

from __future__ import annotations

import contextlib
import copy
import io
import logging
import threading
import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import ray

from growray.tracking import close_figure, dict_text

from ._mailbox import _MailboxActor, _sendable

if TYPE_CHECKING:
    from growray.tracking import MlflowRecorder, Recorder

__all__ = ["MlflowWriter", "RemoteRecorder", "WriterHandle", "start_writer", "stop_writer"]

log = logging.getLogger(__name__)

_Rows: TypeAlias = list[tuple[dict[str, float], int, int]]  # (metrics, step, timestamp ms)
_Ops: TypeAlias = Sequence[tuple[str, tuple[Any, ...]]]  # (writer method, its arguments after the run id)


class MlflowWriter:
    """Holds one ``MlflowRecorder`` per open trial run of a sweep; runs in the driver, where
    :func:`start_writer`'s thread calls it for the trials.

    Args:
        tracking_uri, experiment_id, parent_run_id: the sweep's store, experiment and parent run.
        fresh: a new sweep, whose trial runs this writer opens all, so it can answer "has this
            trial a run?" from memory (saving an MLflow search per trial); a resumed sweep's
            writer asks the store.
    """

    #: what a trial may call (the mailbox carries method names; nothing else is called)
    METHODS = frozenset(
        {"new_run", "continue_run", "find_trial_run", "open_trial_run", "log_params", "set_tags", "log_dict"}
        | {"log_text", "log_image", "flush", "close"}
    )
    #: what may travel with a flush or a close (:meth:`flush`'s ``ops``)
    OPS = frozenset({"log_params", "set_tags", "log_text", "log_image"})

    def __init__(self, tracking_uri: str, experiment_id: str, parent_run_id: str, fresh: bool = False) -> None:
        self._uri = tracking_uri
        self._experiment_id = experiment_id
        self._parent = parent_run_id
        self._runs: dict[str, MlflowRecorder] = {}
        self._trial_runs: dict[str, str] = {}  # trial name -> the run this writer opened for it
        self._stored_through: dict[str, int] = {}  # a continued run: rows at or before this step are dropped
        self._complete = fresh

    def new_run(self, run_name: str, tags: dict[str, str]) -> str:
        """Open a trial's run under the sweep's parent; returns its id."""
        from growray.tracking import MlflowRecorder

        rec = MlflowRecorder(self._uri, self._experiment_id, run_name=run_name, parent_run_id=self._parent, tags=tags)
        self._runs[rec.run_id] = rec
        self._trial_runs[run_name] = rec.run_id
        return rec.run_id

    def continue_run(self, run_id: str) -> int:
        """Reopen an existing trial run; returns the last step of ``val/acc`` already stored.
        Rows sent for the run later at or before that step are dropped: a trial that restarts
        from a checkpoint, or from the start, sends them again."""
        from growray.tracking import MlflowRecorder, clear_failure, max_logged_step

        clear_failure(self._uri, run_id)
        self._runs[run_id] = MlflowRecorder(self._uri, self._experiment_id, run_id=run_id)
        through = self._stored_through[run_id] = max_logged_step(self._uri, run_id, "val/acc")
        return through

    def open_trial_run(
        self, trial_name: str, tags: dict[str, str], params: dict[str, Any], config: Any, restart_tags: dict[str, str]
    ) -> str:
        """A trial's run in one call; returns its id. The run this trial opened before in this
        sweep is continued (:meth:`continue_run`; ``restart_tags`` set); otherwise a new run gets
        ``tags``, ``params`` and ``config`` as ``config.yaml``."""
        run_id = self.find_trial_run(trial_name)
        if run_id is not None:
            self.continue_run(run_id)
            self.set_tags(run_id, restart_tags)
            return run_id
        run_id = self.new_run(trial_name, tags)
        self.log_params(run_id, params)
        self.log_dict(run_id, config, "config.yaml")
        return run_id

    def find_trial_run(self, trial_name: str) -> str | None:
        """The run trial ``trial_name`` already created in this sweep, or None."""
        from growray.tracking import find_trial_run

        if trial_name in self._trial_runs or self._complete:
            return self._trial_runs.get(trial_name)
        return find_trial_run(self._uri, self._experiment_id, self._parent, trial_name)

    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        self._recorder(run_id).log_params(params)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self._recorder(run_id).set_tags(tags)

    def log_dict(self, run_id: str, obj: Any, artifact_file: str) -> None:
        self._recorder(run_id).log_dict(obj, artifact_file)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self._recorder(run_id).log_text(text, artifact_file)

    def log_image(self, run_id: str, data: bytes, artifact_file: str) -> None:
        """A figure the trial rendered (PNG/SVG/PDF bytes), stored as ``artifact_file``."""
        self._recorder(run_id).log_bytes(data, artifact_file)

    def flush(self, run_id: str, rows: _Rows, ops: _Ops = ()) -> None:
        """Run the trial's buffered ``ops`` (``(method, args)``: params, tags, artifacts, in the
        order it made them), then store its buffered metrics: ``(metrics, step, timestamp_ms)`` rows."""
        self._apply(run_id, ops)
        self._store(run_id, rows)

    def close(self, run_id: str, status: str, rows: _Rows, ops: _Ops = ()) -> None:
        """Run the last buffered ``ops``, store the last metrics, then end the run with ``status``."""
        self._apply(run_id, ops)
        self._store(run_id, rows)
        self._runs.pop(run_id).close(status)
        self._stored_through.pop(run_id, None)

    def _apply(self, run_id: str, ops: _Ops) -> None:
        for method, args in ops:
            if method not in self.OPS:
                raise ValueError(
                    f"the MLflow writer does not take {method!r} with a flush; it takes {sorted(self.OPS)}"
                )
            getattr(self, method)(run_id, *args)

    def _store(self, run_id: str, rows: _Rows) -> None:
        rec = self._recorder(run_id)
        through = self._stored_through.get(run_id)
        for metrics, step, ts in rows:
            if through is None or step > through:
                rec.log_metrics(metrics, step, timestamp_ms=ts)
        rec.flush()

    def _recorder(self, run_id: str) -> MlflowRecorder:
        rec = self._runs.get(run_id)
        if rec is None:  # a run closed by an earlier attempt (or another writer): reopened, content kept
            from growray.tracking import MlflowRecorder

            rec = self._runs[run_id] = MlflowRecorder(self._uri, self._experiment_id, run_id=run_id)
        return rec


class _Method:
    """``handle.<method>.remote(*args)``: one call to the driver's writer, run after the calls
    this process made before through the same handle."""

    def __init__(self, handle: WriterHandle, name: str) -> None:
        self._handle, self._name = handle, name

    def remote(self, *args: Any) -> ray.ObjectRef[Any]:
        return self._handle._call(self._name, args)


class WriterHandle:
    """What trials hold of the sweep's writer (picklable; it travels in the trainable's
    arguments): ``writer.new_run.remote(name, tags)`` and the other :class:`MlflowWriter`
    methods return an ``ObjectRef`` of the result, as an actor handle's would."""

    def __init__(self, mailbox: Any) -> None:
        self._mailbox = mailbox
        self._lock = threading.Lock()
        self._caller = uuid.uuid4().hex  # a copy's own: each process numbers its calls
        self._seq = 0
        self._host: _Host | None = None  # in the driver: the thread that serves the mailbox

    def __getstate__(self) -> dict[str, Any]:
        return {"mailbox": self._mailbox}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["mailbox"])  # type: ignore[misc]

    def __getattr__(self, name: str) -> _Method:
        if name in MlflowWriter.METHODS:
            return _Method(self, name)
        raise AttributeError(name)

    def _call(self, method: str, args: tuple[Any, ...]) -> ray.ObjectRef[Any]:
        with self._lock:
            seq, self._seq = self._seq, self._seq + 1
            ref: ray.ObjectRef[Any] = self._mailbox.call.remote(self._caller, seq, method, *args)
        return ref


class _Host(threading.Thread):
    """The driver's thread that runs the trials' calls on the sweep's :class:`MlflowWriter`."""

    def __init__(self, mailbox: Any, writer: MlflowWriter) -> None:
        super().__init__(name="growray-mlflow-writer", daemon=True)
        self._mailbox, self._writer = mailbox, writer
        self._stopping = threading.Event()

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                calls = ray.get(self._mailbox.take.remote(1.0))
            except Exception as exc:  # the mailbox is restarting (its node failed) or gone
                if self._stopping.is_set():
                    return
                log.warning("the MLflow mailbox did not answer (%s); retrying", exc)
                time.sleep(0.5)
                continue
            results: list[tuple[int, bool, Any]] = []
            for cid, method, args in calls:
                try:
                    if method not in MlflowWriter.METHODS:
                        raise ValueError(f"the MLflow writer has no method {method!r}")
                    results.append((cid, True, getattr(self._writer, method)(*args)))
                except Exception as exc:
                    results.append((cid, False, _sendable(exc)))
            if results:
                self._mailbox.answer.remote(results)

    def stop(self, timeout_s: float) -> None:
        self._stopping.set()
        with contextlib.suppress(Exception):
            ray.get(self._mailbox.close.remote(), timeout=timeout_s)
        self.join(timeout_s)


def start_writer(
    tracking_uri: str, experiment_id: str, parent_run_id: str, fresh: bool = False, own_process: bool = False
) -> WriterHandle:
    """Start the sweep's mailbox on the driver's node and the driver's thread that serves it;
    ``fresh``: a new sweep, whose trial runs this writer opens all (none exists yet);
    ``own_process``: the writer runs in an actor of its own on the driver's node instead
    (:mod:`growray.tune._writer_process`; ``tracking.writer``)."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    strategy = NodeAffinitySchedulingStrategy(node_id=node, soft=False)
    if own_process:
        from ._writer_process import _WriterProcessActor

        actor = _WriterProcessActor.options(scheduling_strategy=strategy).remote(
            tracking_uri, experiment_id, parent_run_id, fresh
        )
        return WriterHandle(actor)
    mailbox = _MailboxActor.options(scheduling_strategy=strategy).remote()
    handle = WriterHandle(mailbox)
    host = _Host(mailbox, MlflowWriter(tracking_uri, experiment_id, parent_run_id, fresh))
    host.start()
    handle._host = host
    return handle


def stop_writer(writer: WriterHandle, timeout_s: float = 10.0) -> None:
    """Stop the driver's thread (after the call it is running), or let the writer's own process
    finish the calls it admitted; then kill the mailbox (every trial has ended, or the sweep failed)."""
    host, writer._host = writer._host, None
    if host is not None:
        host.stop(timeout_s)
    else:
        with contextlib.suppress(Exception):
            ray.get(writer._mailbox.close.remote(), timeout=timeout_s)
    with contextlib.suppress(Exception):
        ray.kill(writer._mailbox)


class RemoteRecorder:
    """The trial-side :class:`~growray.tracking.Recorder` that writes through a :class:`MlflowWriter`.

    Args:
        writer: the sweep's writer actor.
        run_id: the trial's MLflow run, opened by ``writer.new_run`` or ``writer.continue_run``.
    """

    def __init__(self, writer: WriterHandle, run_id: str | ray.ObjectRef[str]) -> None:
        self._writer = writer
        self._run = run_id  # the id, or the pending result of ``writer.new_run``
        self._buffer: _Rows = []
        self._ops: list[tuple[str, tuple[Any, ...]]] = []  # params, tags, artifacts for the next flush
        self._closed = False
        self._closing: ray.ObjectRef[None] | None = None  # a close sent and not yet waited for

    @property
    def run_id(self) -> str:
        if isinstance(self._run, ray.ObjectRef):
            self._run = ray.get(self._run)
        return self._run

    def _queue(self, method: str, *args: Any) -> None:
        self._check_open()
        self._ops.append((method, args))

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"RemoteRecorder for run {self.run_id} is closed")

    def log_params(self, params: dict[str, Any]) -> None:
        self._queue("log_params", copy.deepcopy(params))  # as it is now, not as it is at the flush

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        self._check_open()
        self._buffer.append(({k: float(v) for k, v in metrics.items()}, int(step), int(time.time() * 1000)))

    def set_tags(self, tags: dict[str, str]) -> None:
        self._queue("set_tags", {str(k): str(v) for k, v in tags.items()})

    def log_dict(self, obj: Any, artifact_file: str) -> None:
        self._queue("log_text", dict_text(obj, artifact_file), artifact_file)  # its text now, here

    def log_text(self, text: str, artifact_file: str) -> None:
        self._queue("log_text", str(text), artifact_file)

    def log_figure(self, fig: Any, artifact_file: str) -> None:
        """Render the figure here (format from the extension), store the bytes, close the figure."""
        try:
            buf = io.BytesIO()
            fig.savefig(buf, format=artifact_file.rsplit(".", 1)[-1].lower())
        finally:
            close_figure(fig)
        self._queue("log_image", buf.getvalue(), artifact_file)

    def flush(self) -> None:
        """Send the buffered params, tags, artifacts and metrics in one call; returns once they
        are stored (on a failure they stay buffered, and the error is raised here)."""
        rows, ops = list(self._buffer), list(self._ops)
        if rows or ops:
            ray.get(self._writer.flush.remote(self._run, rows, ops))
        del self._buffer[: len(rows)]
        del self._ops[: len(ops)]

    def close(self, status: str = "FINISHED") -> None:
        """Flush and end the run in one round trip, or wait for the close :meth:`send_close`
        sent (raising its error). Idempotent; a failed close leaves the run open, to retry."""
        closing, self._closing = self._closing, None
        if closing is not None:
            ray.get(closing)
        elif not self._closed:
            self._end(status, wait=True)

    def send_close(self, status: str = "FINISHED") -> None:
        """:meth:`close` without waiting: a trial left with only its reports lets the writer store its run meanwhile."""
        self._closing = self._end(status, wait=False)

    def _end(self, status: str, wait: bool) -> ray.ObjectRef[None] | None:
        self._check_open()
        ref = self._writer.close.remote(self._run, status, list(self._buffer), list(self._ops))
        if wait:
            ray.get(ref)  # an error leaves the run open here, with its buffer
        self._buffer.clear()
        self._ops.clear()
        self._closed = True
        return None if wait else ref

    def discard_pending(self) -> int:
        """Drop the buffered metrics (a crashed attempt's partial epoch); returns how many.
        Params, tags and artifacts stay buffered: they describe the run, not the epoch."""
        n = sum(len(m) for m, _, _ in self._buffer)
        self._buffer.clear()
        return n

    @property
    def n_pending(self) -> int:
        """Metrics buffered and not yet written."""
        return sum(len(m) for m, _, _ in self._buffer)

    def __repr__(self) -> str:
        return f"RemoteRecorder(run_id={self._run!r})"


if TYPE_CHECKING:  # the type checker holds RemoteRecorder to the Recorder protocol
    _IS_A_RECORDER: type[Recorder] = RemoteRecorder
