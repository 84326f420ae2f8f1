"""sqlite journal modes for growray's database files: WAL where this machine's kernel owns the
filesystem, sqlite's rollback journal anywhere else.

A sweep commits to two sqlite files many times per trial: the Optuna study (asked, its
parameters, told: :mod:`growray.tune.study`) and an ``sqlite:///`` MLflow store (the child run,
its params, metrics, tags, the close). In sqlite's default rollback-journal mode each commit
syncs the database file and its journal to disk; in write-ahead-log mode (WAL) it appends to
``<file>-wal`` and syncs that one file. Durability is the same: growray leaves ``synchronous``
at sqlite's ``FULL``, so a committed row survives a power loss.

WAL keeps its index in shared memory (``<file>-shm``), which sqlite's documentation says does
not work over a network filesystem. So WAL is turned on only where the file sits on a
filesystem this machine's kernel keeps locally (ext4, xfs, btrfs, tmpfs, overlay, ...:
:data:`LOCAL_FILESYSTEMS`), read from ``/proc/self/mounts``. On NFS, SMB, a FUSE mount, or an
unknown system (macOS has no ``/proc``) the file keeps, or gets back, the rollback journal.
The mode is a property of the file: sqlite remembers it, and every later connection (a
dashboard, ``mlflow ui``, a resumed sweep) uses it without being told. The ``-wal`` and
``-shm`` files lie beside the database while a process has it open; sqlite folds the log back
into the file and removes them when the last connection closes.

Only the standard library: the tracking layer (MLflow's store) and the tune layer (the study)
both use it.
"""

from __future__ import annotations

import logging
import os
import re
import sqlite3
from pathlib import Path

__all__ = ["LOCAL_FILESYSTEMS", "filesystem_type", "set_journal_mode", "wanted_journal_mode"]

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
    """The journal mode a database file in ``folder`` gets: ``wal`` on a local filesystem, else ``delete``."""
    return "wal" if filesystem_type(folder, mounts) in LOCAL_FILESYSTEMS else "delete"


def set_journal_mode(db: Path, what: str, mounts: Path = Path("/proc/self/mounts"), lock_timeout_s: float = 5.0) -> str:
    """Create the sqlite file ``db`` if it is missing and set its journal mode: ``wal`` on a
    local filesystem, ``delete`` (sqlite's default) anywhere else. Returns the mode in effect.

    Entering WAL needs no other connection in a transaction; leaving it needs the file to
    itself. A process killed in WAL mode leaves its ``-wal`` file; sqlite replays it when this
    opens the file. Where another process holds the file for ``lock_timeout_s``, the mode stays
    as it is, with a warning naming ``what`` the file is, and this returns ``unchanged``.
    """
    wanted = wanted_journal_mode(db.parent, mounts)
    con = sqlite3.connect(db, timeout=lock_timeout_s)
    try:
        (mode,) = con.execute(f"PRAGMA journal_mode={wanted}").fetchone()
    except sqlite3.OperationalError as exc:  # another process holds the file: a speed-up is not worth failing for
        log.warning("%s %s keeps its journal mode (%s)", what, db, exc)
        return "unchanged"
    finally:
        con.close()
    return str(mode).lower()
