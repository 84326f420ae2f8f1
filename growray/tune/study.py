"""The sweep's Optuna study file: its sqlite journal mode (the rule is :mod:`growray.journal`'s).

Every trial commits to the study several times (asked, its parameters, told). On the 2-core
machines of issue 18 the rollback journal's syncs were about 29% of the driver's busy time in a
400-trial sweep of table lookups; in WAL mode, where the study's folder is on a local
filesystem, a commit syncs one file, as durably. The ``-wal`` and ``-shm`` files lie beside
``optuna.db`` while a process has the study open (``growray run`` until it exits; a sweep run
through the Python API until that interpreter exits): copy all three, or copy once it has
exited. Every later connection (the searcher unpickled by ``growray resume``,
``optuna-dashboard``) uses the file's mode without being told.
"""

from __future__ import annotations

from pathlib import Path

from growray.journal import set_journal_mode

__all__ = ["prepare_study_file", "study_file"]


def prepare_study_file(db: Path, mounts: Path = Path("/proc/self/mounts"), lock_timeout_s: float = 5.0) -> str:
    """Create the study's sqlite file if it is missing and set its journal mode: ``wal`` on a
    local filesystem, ``delete`` (sqlite's default) anywhere else. Returns the mode in effect.

    Called by the driver before it opens the study, when no other connection is open (a
    change of journal mode needs the file to itself). Where another process holds the file
    (``optuna-dashboard`` in a transaction) for ``lock_timeout_s``, the mode stays as it is,
    with a warning, and this returns ``unchanged`` (:func:`growray.journal.set_journal_mode`).
    """
    return set_journal_mode(db, "the Optuna study", mounts, lock_timeout_s)


def study_file(uri: str) -> Path | None:
    """The file of an sqlite storage URI (``sqlite:////abs/optuna.db``); None for another database."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix) :]) if uri.startswith(prefix) and len(uri) > len(prefix) else None
