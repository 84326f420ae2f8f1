"""The mailbox between trials and the driver's MLflow writer (:mod:`growray.tune.writer`).

Trials call :class:`_Mailbox`, an async actor; a thread of the driver takes the queued calls,
runs them and answers. Kept apart from the writer so that each module stays readable.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
from typing import Any

import ray

__all__: list[str] = []


class _Mailbox:
    """The actor trials call: it queues each call until the driver's thread takes it, and
    answers the caller with what the driver's :class:`MlflowWriter` returned or raised.

    An async actor may start one caller's calls out of order (a call waits for its arguments,
    the run id of a pending ``new_run``, and then they all start at once); each call carries
    its caller's sequence number and is queued only after its predecessors, so a process's
    calls run in the order it made them. A predecessor that never comes (lost when the
    mailbox restarted) holds a call back for at most ``patience_s``.
    """

    def __init__(self, patience_s: float = 10.0) -> None:
        self._queue: list[tuple[int, str, tuple[Any, ...]]] = []
        self._answers: dict[int, asyncio.Future[tuple[bool, Any]]] = {}
        self._next = 0
        self._expected: dict[str, int] = {}  # caller -> the sequence number it sends next
        self._turn = asyncio.Condition()
        self._arrived = asyncio.Event()
        self._closed = False
        self._patience_s = patience_s

    async def call(self, caller: str, seq: int, method: str, *args: Any) -> Any:
        async with self._turn:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    self._turn.wait_for(lambda: self._expected.get(caller, 0) >= seq), self._patience_s
                )
            self._expected[caller] = max(self._expected.get(caller, 0), seq + 1)
            self._turn.notify_all()
            if self._closed:
                raise RuntimeError(f"the sweep's MLflow writer has stopped; {method} was not stored")
            answer = self._enqueue(method, args)  # in the caller's order: still holding the turn
        ok, value = await answer
        if not ok:
            raise value
        return value

    def _enqueue(self, method: str, args: tuple[Any, ...]) -> asyncio.Future[tuple[bool, Any]]:
        """Queue one call for the driver's thread; the future resolves with its answer."""
        cid, self._next = self._next, self._next + 1
        answer: asyncio.Future[tuple[bool, Any]] = asyncio.get_running_loop().create_future()
        self._answers[cid] = answer
        self._queue.append((cid, method, args))
        self._arrived.set()
        return answer

    async def take(self, timeout_s: float) -> list[tuple[int, str, tuple[Any, ...]]]:
        """The calls queued since the last take (waits up to ``timeout_s`` for one)."""
        if not self._queue and not self._closed:
            self._arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), timeout_s)
        calls, self._queue = self._queue, []
        return calls

    async def answer(self, results: list[tuple[int, bool, Any]]) -> None:
        for cid, ok, value in results:
            fut = self._answers.pop(cid, None)
            if fut is not None and not fut.done():
                fut.set_result((ok, value))

    async def close(self) -> None:
        """Refuse new calls and wake the driver's thread (the sweep is over)."""
        self._closed = True
        self._arrived.set()


_MailboxActor = ray.remote(num_cpus=0, max_restarts=-1)(_Mailbox)


def _sendable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling (the mailbox re-raises it in the trial), else a
    RuntimeError with its text (an OSError keeps its errno: the CLI names a full disk)."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        if isinstance(exc, OSError):
            return OSError(exc.errno, f"{type(exc).__name__}: {exc}")
        return RuntimeError(f"{type(exc).__name__}: {exc}")
