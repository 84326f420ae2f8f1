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
uses it without being told. While a sweep runs, the ``-wal`` and ``-shm`` files lie beside
``optuna.db``; copy all three, or copy after the sweep (its last connection folds the log
back into ``optuna.db`` and removes them).
"""

from __future__ import annotations

import logging
import os
import sqlite3
from pathlib import Path

__all__ = ["LOCAL_FILESYSTEMS", "filesystem_type", "journal_mode", "prepare_study_file", "study_file"]

log = logging.getLogger(__name__)

#: filesystem types whose files only this machine's kernel writes: WAL is safe there
LOCAL_FILESYSTEMS = frozenset(
    {"ext2", "ext3", "ext4", "xfs", "btrfs", "bcachefs", "f2fs", "jfs", "reiserfs", "zfs", "tmpfs", "ramfs", "overlay"}
)


def _unescape(field: str) -> str:
    """A ``/proc/mounts`` field with its octal escapes (``\\040`` for a space) decoded."""
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and len(field) >= i + 4 and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


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


def prepare_study_file(db: Path, mounts: Path = Path("/proc/self/mounts"), lock_timeout_s: float = 5.0) -> str:
    """Create the study's sqlite file if it is missing and set its journal mode: ``wal`` on a
    local filesystem, ``delete`` (sqlite's default) anywhere else. Returns the mode in effect.

    Called by the driver before it opens the study, when no other connection is open (a
    change of journal mode needs the file to itself). A driver killed in WAL mode leaves its
    ``-wal`` file; sqlite replays it when this opens the file. Where another process holds
    the file (``optuna-dashboard`` in a transaction) for ``lock_timeout_s``, the mode stays as
    it is, with a warning, and this returns ``unchanged``.
    """
    wanted = "wal" if filesystem_type(db.parent, mounts) in LOCAL_FILESYSTEMS else "delete"
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


def journal_mode(db: Path) -> str:
    """The journal mode an sqlite file is in (``wal``, ``delete``, ...), as a new connection sees it."""
    con = sqlite3.connect(f"file:{db}?mode=rw", uri=True)  # never creates it
    try:
        return str(con.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    finally:
        con.close()
