"""The Optuna study file's journal mode: WAL on a local filesystem, sqlite's rollback journal elsewhere."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from _sqlite import journal_mode

from growray.journal import LOCAL_FILESYSTEMS, filesystem_type
from growray.tune.study import prepare_study_file, study_file


def _mounts(tmp_path: Path, lines: list[str]) -> Path:
    f = tmp_path / "mounts"
    f.write_text("".join(line + "\n" for line in lines))
    return f


def test_filesystem_type_takes_the_longest_mount_point_above(tmp_path):
    mounts = _mounts(
        tmp_path,
        [
            "/dev/vda / ext4 rw 0 0",
            "server:/export /mnt/shared nfs4 rw 0 0",
            "tmpfs /mnt/shared/scratch tmpfs rw 0 0",
            "server:/other /mnt/sharedx nfs rw 0 0",
            r"server:/sp /mnt/with\040space cifs rw 0 0",
            "garbage",
        ],
    )
    assert filesystem_type(Path("/mnt/shared/runs/x"), mounts) == "nfs4"
    assert filesystem_type(Path("/mnt/shared"), mounts) == "nfs4"
    assert filesystem_type(Path("/mnt/shared/scratch/a"), mounts) == "tmpfs"
    assert filesystem_type(Path("/mnt/sharedx/a"), mounts) == "nfs"  # a prefix of the name is not a parent
    assert filesystem_type(Path("/mnt/sharedy"), mounts) == "ext4"
    assert filesystem_type(Path("/mnt/with space/runs"), mounts) == "cifs"  # /proc/mounts escapes spaces
    assert filesystem_type(Path("/x"), tmp_path / "missing") is None  # no mount table (macOS)


def test_a_later_mount_over_the_same_point_wins(tmp_path):
    mounts = _mounts(tmp_path, ["/dev/vda / ext4 rw 0 0", "a /data ext4 rw 0 0", "b:/e /data nfs4 rw 0 0"])
    assert filesystem_type(Path("/data/runs"), mounts) == "nfs4"


@pytest.mark.parametrize(
    ("fstype", "mode"), [("ext4", "wal"), ("tmpfs", "wal"), ("nfs4", "delete"), ("fuse", "delete")]
)
def test_prepare_study_file_sets_the_mode_the_filesystem_allows(tmp_path, fstype, mode):
    mounts = _mounts(tmp_path, [f"dev / {fstype} rw 0 0"])
    db = tmp_path / "optuna.db"
    assert prepare_study_file(db, mounts) == mode and db.exists()
    assert (
        journal_mode(db) == mode
    )  # a new connection sees it: remembered by the file: the resumed searcher's connections get it


def test_a_study_moved_to_a_network_filesystem_gets_its_rollback_journal_back(tmp_path):
    db = tmp_path / "optuna.db"
    assert prepare_study_file(db, _mounts(tmp_path, ["dev / ext4 rw 0 0"])) == "wal"
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE t (x)")
    con.execute("INSERT INTO t VALUES (1)")
    con.commit()
    con.close()
    assert prepare_study_file(db, _mounts(tmp_path, ["dev / nfs4 rw 0 0"])) == "delete"
    assert journal_mode(db) == "delete" and not Path(f"{db}-wal").exists()
    con = sqlite3.connect(db)
    assert con.execute("SELECT x FROM t").fetchall() == [(1,)]  # nothing committed is lost on the way
    con.close()


def test_a_study_file_another_process_holds_keeps_its_mode(tmp_path, caplog):
    db = tmp_path / "optuna.db"
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN EXCLUSIVE")  # e.g. a dashboard in the middle of a write
    try:
        assert prepare_study_file(db, _mounts(tmp_path, ["dev / ext4 rw 0 0"]), lock_timeout_s=0.2) == "unchanged"
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert journal_mode(db) == "delete" and "keeps its journal mode" in caplog.text


def test_study_file_reads_sqlite_uris_only():
    assert study_file("sqlite:////abs/runs/optuna.db") == Path("/abs/runs/optuna.db")
    assert study_file("sqlite:///") is None
    assert study_file("postgresql://host/db") is None


def test_local_filesystems_exclude_network_and_fuse_mounts():
    assert not LOCAL_FILESYSTEMS & {"nfs", "nfs4", "cifs", "smb3", "fuse", "fuse.sshfs", "9p", "lustre", "gpfs"}
