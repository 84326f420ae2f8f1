"""The sweep's Optuna study file: its sqlite journal mode.

Every trial commits to the study several times (asked, its parameters, told), and in
sqlite's default rollback-journal mode each commit syncs the database file and its
journal to disk. On the 2-core machines of issue 18 those syncs were about 29% of the
driver's busy time in a 400-trial sweep of table lookups. In write-ahead-log mode (WAL) a
commit appends to ``optuna.db-wal`` and syncs that one file; it is as durable (growray
leaves ``synchronous`` at sqlite's ``FULL``, so a committed trial survives a power loss).

WAL keeps its index in shared memory (``optuna.db-shm``), which sqlite's documentation
says does not work over a network filesystem. So growray turns WAL on only where the
study file sits on a filesystem this machine's kernel keeps locally (ext4, xfs, btrfs,
tmpfs, overlay, ...: :data:`LOCAL_FILESYSTEMS`), read from ``/proc/self/mounts``. On NFS,
SMB, a FUSE mount, or an unknown system (macOS has no ``/proc``) the file keeps, or gets
back, the rollback journal. WAL is a property of the file: sqlite remembers it, and every
later connection (the searcher unpickled by ``growray resume``, ``optuna-dashboard``)
uses it without being told. The ``-wal`` and ``-shm`` files lie beside ``optuna.db`` while a
process has the study open (``growray run`` until it exits; a sweep run through the Python
API until that interpreter exits): copy all three, or copy once it has exited (sqlite folds
the log back into ``optuna.db`` and removes them when the last connection closes).
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from pathlib import Path

__all__ = ["LOCAL_FILESYSTEMS", "filesystem_type", "prepare_study_file", "study_file", "wanted_journal_mode"]

log = logging.getLogger(__name__)

#: filesystem types whose files only this machine's kernel writes: WAL is safe there
LOCAL_FILESYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "bcachefs", "f2fs", "jfs", "reiserfs", "zfs", "tmpfs", "ramfs", "overlay"}
)


def _unescape(field: str) -> str:
    """A ``/proc/mounts`` field with its octal escapes (``\\040`` for a space) decoded."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def filesystem_type(path: Path, mounts: Path = Path("/proc/self/mounts")) -> str | None:
    """The type of the filesystem that holds ``path`` (``ext4``, ``nfs4``, ...), from the
    longest mount point above it; None where the mount table cannot be read (not Linux)."""
    try:
        lines = mounts.read_text().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, best_type = "", None
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = _unescape(fields[1])
        inside = target == point or target.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):  # a later mount over the same point wins
            best, best_type = point, fields[2]
    return best_type


def wanted_journal_mode(folder: Path, mounts: Path = Path("/proc/self/mounts")) -> str:
    """The journal mode a study file in ``folder`` gets: ``wal`` on a local filesystem, else ``delete``."""
    return "wal" if filesystem_type(folder, mounts) in LOCAL_FILESYSTEMS else "delete"


def prepare_study_file(db: Path, mounts: Path = Path("/proc/self/mounts"), lock_timeout_s: float = 5.0) -> str:
    """Create the study's sqlite file if it is missing and set its journal mode: ``wal`` on a
    local filesystem, ``delete`` (sqlite's default) anywhere else. Returns the mode in effect.

    Called by the driver before it opens the study, when no other connection is open (a
    change of journal mode needs the file to itself). A driver killed in WAL mode leaves its
    ``-wal`` file; sqlite replays it when this opens the file. Where another process holds
    the file (``optuna-dashboard`` in a transaction) for ``lock_timeout_s``, the mode stays as
    it is, with a warning, and this returns ``unchanged``.
    """
    wanted = wanted_journal_mode(db.parent, mounts)
    con = sqlite3.connect(db, timeout=lock_timeout_s)
    try:
        (mode,) = con.execute(f"PRAGMA journal_mode={wanted}").fetchone()
    except sqlite3.OperationalError as exc:  # another process holds the file: a speed-up is not worth failing for
        log.warning("the Optuna study %s keeps its journal mode (%s)", db, exc)
        return "unchanged"
    finally:
        con.close()
    return str(mode).lower()


def study_file(uri: str) -> Path | None:
    """The file of an sqlite storage URI (``sqlite:////abs/optuna.db``); None for another database."""
    prefix = "sqlite:///"
    return Path(uri[len(prefix) :]) if uri.startswith(prefix) and len(uri) > len(prefix) else None
