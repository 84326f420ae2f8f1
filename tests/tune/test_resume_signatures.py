"""Ray Tune's state is pickles under ``output_dir`` (untrusted): ``growray resume`` loads it only
when it carries this machine's signature. A planted pickle must not run, a truncated one must
not hang the restore: both are refused before anything is unpickled."""

from __future__ import annotations

import builtins
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import tiny_experiment

from growray.tune.signing import sign_folder, verify_folder

pytestmark = pytest.mark.timeout(300)


class _Planted:
    """Unpickling this creates ``path``: proof that a pickle was loaded."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (builtins.open, (self.path, "w"))


# -- sign / verify without Ray -----------------------------------------------------------------


def _state(root: Path) -> None:
    (root / "trial_a" / "checkpoint_000000").mkdir(parents=True)
    (root / "tuner.pkl").write_bytes(b"tuner")
    (root / "experiment_state-2026.json").write_text('{"trials": []}')
    (root / "search_gen_state-2026.json").write_text("{}")
    (root / "searcher-state-2026.pkl").write_bytes(b"searcher")
    (root / "trial_a" / "checkpoint_000000" / "state.pkl").write_bytes(b"checkpoint")  # not Tune's state
    (root / "trial_a" / "result.json").write_text("{}")


def test_signed_state_verifies_and_every_change_is_named(tmp_path):
    _state(tmp_path / "exp")
    manifest = tmp_path / "sig.json"
    assert sign_folder(tmp_path / "exp", manifest) == 4  # the four files that hold pickles
    assert verify_folder(tmp_path / "exp", manifest) == []

    (tmp_path / "exp" / "tuner.pkl").write_bytes(pickle.dumps(_Planted(tmp_path / "marker")))
    (tmp_path / "exp" / "searcher-state-2026.pkl").write_bytes(b"sear")  # truncated
    (tmp_path / "exp" / "trial_a" / "experiment_state-planted.json").write_text("{}")
    problems = verify_folder(tmp_path / "exp", manifest)
    assert len(problems) == 3
    assert {p.split()[0] for p in problems} == {
        "tuner.pkl",
        "searcher-state-2026.pkl",
        "trial_a/experiment_state-planted.json",
    }


def test_older_versions_of_a_file_still_verify_but_not_forever(tmp_path):
    """Tune uploads its state in the background: the file in storage may lag a few versions."""
    _state(tmp_path / "exp")
    manifest = tmp_path / "sig.json"
    for version in range(5):
        (tmp_path / "exp" / "tuner.pkl").write_bytes(f"tuner {version}".encode())
        sign_folder(tmp_path / "exp", manifest)
    for version, ok in [(4, True), (3, True), (2, True), (1, False), (0, False)]:
        (tmp_path / "exp" / "tuner.pkl").write_bytes(f"tuner {version}".encode())
        assert (verify_folder(tmp_path / "exp", manifest) == []) is ok, version


def test_missing_or_garbled_manifest_or_another_key_refuses(tmp_path, monkeypatch):
    _state(tmp_path / "exp")
    manifest = tmp_path / "sig.json"
    assert "missing or unreadable" in verify_folder(tmp_path / "exp", manifest)[0]
    sign_folder(tmp_path / "exp", manifest)
    monkeypatch.setenv("GROWRAY_RESUME_KEY", str(tmp_path / "other.key"))  # another machine's key
    assert len(verify_folder(tmp_path / "exp", manifest)) == 4
    manifest.write_text("[not, a, mapping")
    assert "missing or unreadable" in verify_folder(tmp_path / "exp", manifest)[0]


def test_the_callback_signs_what_changed_and_reads_nothing_else(tmp_path, monkeypatch):
    """While trials run, the callback re-reads only files whose inode, mtime or size changed
    (a sweep's staging folder holds a params.pkl per trial), and what it signed verifies: a
    file Tune replaces (by renaming a new one over it), a new trial's file, a removed one."""
    from types import SimpleNamespace

    from growray.tune.signing import SigningCallback

    exp = tmp_path / "exp"
    _state(exp)
    for i in range(20):
        (exp / f"trial_{i}").mkdir()
        (exp / f"trial_{i}" / "params.pkl").write_bytes(pickle.dumps({"i": i}))
    manifest = tmp_path / "sig.json"
    trials = [SimpleNamespace(storage=SimpleNamespace(experiment_driver_staging_path=str(exp)))]
    callback = SigningCallback(str(manifest), min_interval_s=0.0)
    reads: list[str] = []
    original = Path.read_bytes
    monkeypatch.setenv("GROWRAY_RESUME_KEY", str(tmp_path / "resume.key"))
    monkeypatch.setattr(
        Path, "read_bytes", lambda self: (self.name != "resume.key" and reads.append(self.name)) or original(self)
    )

    callback.on_step_end(0, trials)
    assert len(reads) == 24 and verify_folder(exp, manifest) == []
    reads.clear()
    callback.on_step_end(1, trials)
    assert reads == []  # nothing changed: nothing read
    new = exp / "experiment_state-2026.json.tmp"
    new.write_text('{"trials": [1, 2, 3]}')
    new.replace(exp / "experiment_state-2026.json")  # as Tune rewrites its state
    (exp / "trial_20").mkdir()
    (exp / "trial_20" / "params.pkl").write_bytes(b"new trial")
    (exp / "trial_3" / "params.pkl").unlink()
    callback.on_step_end(2, trials)
    assert sorted(reads) == ["experiment_state-2026.json", "params.pkl"]
    assert verify_folder(exp, manifest) == []
    reads.clear()
    callback.on_experiment_end(trials)  # the end: everything read and signed again
    assert verify_folder(exp, manifest) == []


def test_the_callback_stops_listing_the_folders_of_ended_trials(tmp_path, monkeypatch):
    """A trial folder is listed until a listing after its trial ended (Tune writes nothing
    protected there again); a running trial's rewritten params.pkl (PBT) is still signed, and
    what was signed of an ended trial still verifies."""
    from types import SimpleNamespace

    import growray.tune.signing as signing

    exp = tmp_path / "exp"
    _state(exp)
    for i in range(3):
        (exp / f"trial_{i}").mkdir()
        (exp / f"trial_{i}" / "params.pkl").write_bytes(pickle.dumps({"i": i}))
    monkeypatch.setenv("GROWRAY_RESUME_KEY", str(tmp_path / "resume.key"))
    listed: list[str] = []
    scandir = os.scandir
    monkeypatch.setattr(signing.os, "scandir", lambda p: listed.append(Path(p).name) or scandir(p))

    def trial(i: int, status: str) -> SimpleNamespace:
        storage = SimpleNamespace(experiment_driver_staging_path=str(exp), trial_dir_name=f"trial_{i}")
        return SimpleNamespace(storage=storage, status=status)

    manifest = tmp_path / "sig.json"
    callback = signing.SigningCallback(str(manifest), min_interval_s=0.0)
    callback.on_step_end(0, [trial(0, "TERMINATED"), trial(1, "RUNNING"), trial(2, "ERROR")])
    assert sorted(listed) == ["exp", "trial_0", "trial_1", "trial_2", "trial_a"]  # trial_a: no trial of Tune's
    listed.clear()
    (exp / "trial_1" / "params.pkl").write_bytes(pickle.dumps({"i": 1, "lr": 0.5}))  # PBT's new config
    callback.on_step_end(1, [trial(0, "TERMINATED"), trial(1, "RUNNING"), trial(2, "ERROR")])
    assert sorted(listed) == ["exp", "trial_1", "trial_a"]
    assert verify_folder(exp, manifest) == []
    listed.clear()
    callback.on_step_end(2, [trial(0, "TERMINATED"), trial(1, "TERMINATED"), trial(2, "ERROR")])
    assert sorted(listed) == ["exp", "trial_1", "trial_a"]  # once more: it ended before this listing
    listed.clear()
    callback.on_step_end(3, [trial(0, "TERMINATED"), trial(1, "TERMINATED"), trial(2, "ERROR")])
    assert sorted(listed) == ["exp", "trial_a"]
    (exp / "trial_0" / "params.pkl").write_bytes(b"planted")  # not listed, but caught at resume
    assert [p.split(" ")[0] for p in verify_folder(exp, manifest)] == ["trial_0/params.pkl"]


def test_key_file_is_private(tmp_path, monkeypatch):
    monkeypatch.setenv("GROWRAY_RESUME_KEY", str(tmp_path / "k" / "resume.key"))
    _state(tmp_path / "exp")
    sign_folder(tmp_path / "exp", tmp_path / "sig.json")
    key = tmp_path / "k" / "resume.key"
    assert key.stat().st_mode & 0o777 == 0o600 and len(key.read_bytes()) == 32


# -- a real sweep, then growray resume on its tampered state ------------------------------------


@pytest.fixture(scope="module")
def finished(ray_session, tmp_path_factory):
    from growray.tune.orchestrate import run_sweep
    from growray.tune.record import SweepRecord
    from growray.tune.tuner import signatures_path

    tmp = tmp_path_factory.mktemp("signed")
    exp = tiny_experiment(tmp, trainer={"epochs": 1}, search={"num_samples": 2})
    run_sweep(exp, live_interval_s=60)
    record = SweepRecord.load(tmp / "runs" / "tiny" / "latest_sweep.json")
    return record, signatures_path(record)


def _resume(record, cwd: Path):
    exe = Path(sys.executable).with_name("growray")
    return subprocess.run(
        [str(exe), "resume", str(Path(record.state_dir) / "latest_sweep.json")],
        cwd=cwd,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_finished_sweep_state_is_signed(finished):
    record, manifest = finished
    assert manifest.is_file()
    assert verify_folder(record.storage_path, manifest) == []
    assert (Path(record.storage_path) / "tuner.pkl").is_file()
    signed = json.loads(manifest.read_text())
    [state] = [name for name in signed if name.startswith("experiment_state-")]
    assert len(signed[state]) > 1  # versions signed while the sweep ran, not only at the end


@pytest.mark.parametrize("case", ["planted_tuner_pkl", "truncated_searcher_state"])
def test_resume_refuses_tampered_state_without_loading_it(finished, tmp_path, case):
    record, manifest = finished
    storage = Path(record.storage_path)
    marker = tmp_path / "marker"
    if case == "planted_tuner_pkl":
        target = storage / "tuner.pkl"
        tampered = pickle.dumps(_Planted(marker))
    else:
        [target] = storage.glob("searcher-state-*.pkl")
        tampered = target.read_bytes()[: len(target.read_bytes()) // 2]
    original = target.read_bytes()
    target.write_bytes(tampered)
    try:
        done = _resume(record, tmp_path)
    finally:
        target.write_bytes(original)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "will not resume" in done.stderr and target.name in done.stderr
    assert not marker.exists()  # nothing was unpickled
    # the untouched state still passes, so the refusal was about the tampered file
    assert verify_folder(record.storage_path, manifest) == []
