"""The sweep's MLflow writer in a process of its own (``tracking.writer: process``).

By default the driver runs the trials' MLflow calls (:mod:`growray.tune.writer`): it has MLflow
open already, so no process pays MLflow's import again. In a sweep of many short trials the
driver is then the bottleneck: at 1,000 NAS-Bench-201 lookups, 2 at a time on 2 cores, its
writer thread spent about 33 ms per trial beside Ray Tune's own work, and the driver was busy
about 100% of a core. :class:`_WriterProcess` is a mailbox that runs the calls itself, in an
actor pinned to the driver's node (a sqlite store and its artifact folder stay local to it): the
driver's loop keeps its core, at the price of importing MLflow and opening the store in one more
process (about 5 s of CPU on these machines), which it starts doing while Tune starts the trials.

A writer actor that dies is restarted by Ray. The calls it was running fail in their trials
(which Tune retries from their checkpoints); the restarted writer cannot answer "has this
trial a run?" from its empty memory, so it asks the store (``fresh=False``), and a retried
trial continues its run instead of opening a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import ray

from ._mailbox import _Mailbox, _sendable
from .writer import MlflowWriter

__all__ = ["OWN_PROCESS_FROM_TRIALS", "writer_in_own_process"]

log = logging.getLogger(__name__)

#: ``tracking.writer: auto`` runs the writer in a process of its own from this many trials on
OWN_PROCESS_FROM_TRIALS = 300


def writer_in_own_process(mode: str, num_samples: int) -> bool:
    """Where ``tracking.writer`` puts the sweep's writer: ``process``, ``driver``, or ``auto``:
    its own process from :data:`OWN_PROCESS_FROM_TRIALS` trials on."""
    return mode == "process" or (mode == "auto" and num_samples >= OWN_PROCESS_FROM_TRIALS)


def _warm_up(tracking_uri: str) -> None:
    """Import MLflow and open the store, so that the first trial's call does not wait for them."""
    from growray.tracking import ensure_store

    try:
        ensure_store(tracking_uri)
    except Exception as exc:  # the calls that need the store raise it in their trials
        log.warning("the MLflow writer could not open %s yet: %s", tracking_uri, exc)


class _WriterProcess(_Mailbox):
    """A mailbox that runs each call on its own :class:`MlflowWriter`, one at a time and in each
    caller's order, in a thread of this actor (the asyncio loop keeps admitting calls meanwhile).

    Args:
        tracking_uri, experiment_id, parent_run_id, fresh: as :class:`MlflowWriter`'s; a
            restarted actor's writer is never ``fresh`` (see the module docstring).
        patience_s: as :class:`~growray.tune._mailbox._Mailbox`'s.
    """

    def __init__(
        self, tracking_uri: str, experiment_id: str, parent_run_id: str, fresh: bool, patience_s: float = 10.0
    ) -> None:
        super().__init__(patience_s)
        restarted = ray.get_runtime_context().was_current_actor_reconstructed
        self._writer = MlflowWriter(tracking_uri, experiment_id, parent_run_id, fresh=fresh and not restarted)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="growray-mlflow-writer")
        self._pool.submit(_warm_up, tracking_uri)  # the calls queue behind it

    def _enqueue(self, method: str, args: tuple[Any, ...]) -> asyncio.Future[tuple[bool, Any]]:
        return asyncio.wrap_future(self._pool.submit(self._run, method, args))

    def _run(self, method: str, args: tuple[Any, ...]) -> tuple[bool, Any]:
        try:
            if method not in MlflowWriter.METHODS:
                raise ValueError(f"the MLflow writer has no method {method!r}")
            return True, getattr(self._writer, method)(*args)
        except Exception as exc:
            return False, _sendable(exc)

    async def restarted(self) -> bool:
        """Whether Ray restarted this actor (its writer then asks the store; for tests and logs)."""
        return bool(ray.get_runtime_context().was_current_actor_reconstructed)

    async def take(self, timeout_s: float) -> list[tuple[int, str, tuple[Any, ...]]]:
        raise RuntimeError("this writer runs its calls itself; nothing is taken from it")

    async def close(self) -> None:
        """Refuse new calls, and return once the calls admitted before have run."""
        await super().close()
        with contextlib.suppress(Exception):
            await asyncio.wrap_future(self._pool.submit(lambda: None))


_WriterProcessActor = ray.remote(num_cpus=0, max_restarts=-1)(_WriterProcess)
