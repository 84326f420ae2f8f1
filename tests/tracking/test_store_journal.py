"""The MLflow sqlite store's journal mode: WAL on a local filesystem (each commit syncs one file),
sqlite's rollback journal elsewhere; set by a sweep's ``ensure_store(journal=True)`` without losing
what the store holds, and left alone by the other commands' ``ensure_store``."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from _sqlite import journal_mode

import growray.journal
from growray.journal import wanted_journal_mode
from growray.tracking import ensure_store

#: in a process of its own (this one never opens them): a store as MLflow alone makes it
#: (rollback journal, one experiment) and one a sweep's driver made
STORES = (
    "import sqlite3, sys\n"
    "from mlflow import MlflowClient\n"
    "from growray.tracking import ensure_store\n"
    "plain, swept = sys.argv[1:]\n"
    "MlflowClient(f'sqlite:///{plain}').create_experiment('kept')\n"
    "con = sqlite3.connect(plain); con.execute('PRAGMA journal_mode=delete'); con.close()\n"
    "ensure_store(f'sqlite:///{swept}', journal=True)\n"
)


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    folder = tmp_path_factory.mktemp("stores")
    plain, swept = folder / "plain.db", folder / "swept.db"
    proc = subprocess.run(
        [sys.executable, "-c", STORES, str(plain), str(swept)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return plain, swept


def _copy(template, tmp_path):
    db = tmp_path / "mlflow.db"
    shutil.copy(template, db)  # the process that made it has exited: its log is folded in
    return db, f"sqlite:///{db}"


def test_a_new_store_gets_the_mode_its_filesystem_allows(tmp_path, stores):
    db = tmp_path / "new" / "mlflow.db"
    ensure_store(f"sqlite:///{db}", journal=True)
    assert journal_mode(db) == wanted_journal_mode(db.parent)
    assert journal_mode(stores[1]) == wanted_journal_mode(stores[1].parent)  # the same in another process


def test_an_existing_store_is_switched_and_keeps_its_records(tmp_path, stores):
    from mlflow import MlflowClient

    db, uri = _copy(stores[0], tmp_path)
    assert journal_mode(db) == "delete"
    ensure_store(uri, journal=True)
    assert journal_mode(db) == wanted_journal_mode(db.parent)
    assert MlflowClient(uri).get_experiment_by_name("kept") is not None


def test_a_store_on_a_network_filesystem_gets_its_rollback_journal_back(tmp_path, stores, monkeypatch):
    db, uri = _copy(stores[1], tmp_path)
    assert journal_mode(db) == wanted_journal_mode(db.parent)
    monkeypatch.setattr(growray.journal, "LOCAL_FILESYSTEMS", frozenset())  # as if the folder were on NFS
    ensure_store(uri, journal=True)
    assert journal_mode(db) == "delete"


def test_without_journal_the_mode_is_left_as_it_is(tmp_path, stores):
    """``growray ui``, ``export`` and ``retrain`` open the store without changing its file."""
    db, uri = _copy(stores[0], tmp_path)
    ensure_store(uri)
    assert journal_mode(db) == "delete"
