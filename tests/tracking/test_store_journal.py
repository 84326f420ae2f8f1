"""The MLflow sqlite store's journal mode: WAL on a local filesystem (each commit syncs one file),
sqlite's rollback journal elsewhere; set by a sweep's ``ensure_store(journal=True)`` without losing
what the store holds, and left alone by the other commands' ``ensure_store``."""

from __future__ import annotations

import subprocess
import sys

from _sqlite import journal_mode

import growray.journal
from growray.journal import wanted_journal_mode
from growray.tracking import ensure_store

#: a store as MLflow alone makes it (rollback journal), with one experiment; prints nothing
PLAIN_STORE = (
    "import sqlite3, sys\n"
    "from mlflow import MlflowClient\n"
    "MlflowClient(sys.argv[1]).create_experiment('kept')\n"
    "con = sqlite3.connect(sys.argv[2]); con.execute('PRAGMA journal_mode=delete'); con.close()\n"
)


def _in_fresh_process(code: str, *args: str) -> None:
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_a_new_store_gets_the_mode_its_filesystem_allows(tmp_path):
    db = tmp_path / "new" / "mlflow.db"
    ensure_store(f"sqlite:///{db}", journal=True)
    assert journal_mode(db) == wanted_journal_mode(db.parent)


def test_an_existing_store_is_switched_and_keeps_its_records(tmp_path):
    from mlflow import MlflowClient

    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    _in_fresh_process(PLAIN_STORE, uri, str(db))
    assert journal_mode(db) == "delete"
    ensure_store(uri, journal=True)
    assert journal_mode(db) == wanted_journal_mode(db.parent)
    assert MlflowClient(uri).get_experiment_by_name("kept") is not None


def test_a_store_on_a_network_filesystem_gets_its_rollback_journal_back(tmp_path, monkeypatch):
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    _in_fresh_process(
        "import sys\nfrom growray.tracking import ensure_store\nensure_store(sys.argv[1], journal=True)\n", uri
    )
    if wanted_journal_mode(db.parent) == "wal":
        assert journal_mode(db) == "wal"
    monkeypatch.setattr(growray.journal, "LOCAL_FILESYSTEMS", frozenset())  # as if the folder were on NFS
    ensure_store(uri, journal=True)
    assert journal_mode(db) == "delete"


def test_without_journal_the_mode_is_left_as_it_is(tmp_path):
    """``growray ui``, ``export`` and ``retrain`` open the store without changing its file."""
    db = tmp_path / "mlflow.db"
    uri = f"sqlite:///{db}"
    _in_fresh_process(PLAIN_STORE, uri, str(db))
    ensure_store(uri)
    assert journal_mode(db) == "delete"
