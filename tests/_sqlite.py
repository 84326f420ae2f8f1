"""sqlite helpers for tests: the journal mode a file is in."""

from __future__ import annotations

import sqlite3
from pathlib import Path


def journal_mode(db: Path) -> str:
    """The journal mode an sqlite file is in (``wal``, ``delete``, ...), as a new connection sees it."""
    con = sqlite3.connect(f"file:{db}?mode=rw", uri=True)  # never creates it
    try:
        return str(con.execute("PRAGMA journal_mode").fetchone()[0]).lower()
    finally:
        con.close()
