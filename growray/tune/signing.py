"""Ray Tune's own state is pickles: ``growray resume`` loads them only when they carry this
machine's signature.

``Tuner.restore`` unpickles ``tuner.pkl``, the searcher's state and the trial records (the
experiment-state JSON holds cloudpickled values): whoever can write the sweep's folder could
run code on the driver at ``growray resume``, and a truncated file (a crash, a full disk)
makes the restore hang. So every file of the Ray Tune experiment that holds pickles is
signed with an HMAC-SHA256 as the sweep writes it, with a key kept outside ``output_dir``
(``~/.config/growray/resume.key``, created on first use with mode 0600;
``$GROWRAY_RESUME_KEY`` names another file). Before a resume loads anything, every such file
must match a signature; otherwise the resume is refused, naming the files.

Tune writes its state to a local staging folder and uploads it to the sweep's storage in the
background, so the last few signatures of each file are kept: the file in storage may be a
version behind when the driver was killed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import time
from collections.abc import Collection
from pathlib import Path
from typing import Any

from ray import tune
from ray.tune.experiment import Trial

__all__ = ["KEY_ENV", "SigningCallback", "resume_key_path", "sign_folder", "verify_folder"]

KEY_ENV = "GROWRAY_RESUME_KEY"
_DEFAULT_KEY = "~/.config/growray/resume.key"
_KEEP = 3  # signatures kept per file
#: files of a Tune experiment that are (or hold) pickles; checkpoint folders are excluded
_PROTECTED = re.compile(r"(.*\.pkl|experiment_state-.*\.json|search_gen_state-.*\.json)$")


def resume_key_path() -> Path:
    """The file holding the signing key (``$GROWRAY_RESUME_KEY``, else ``~/.config/growray/resume.key``)."""
    return Path(os.environ.get(KEY_ENV, _DEFAULT_KEY)).expanduser()


def _key() -> bytes:
    path = resume_key_path()
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another sweep created it just now
            pass
        else:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
    key = path.read_bytes()
    if len(key) < 16:
        raise ValueError(f"the resume key {path} is too short ({len(key)} bytes): delete it to make a new one")
    return key


def _filesystem(root: str) -> tuple[Any, str]:
    """``(pyarrow filesystem, path)`` of a local folder, a ``file://`` URI or an object store."""
    from pyarrow import fs

    if "://" in root:
        return fs.FileSystem.from_uri(root)
    return fs.LocalFileSystem(), str(Path(root).resolve())


def _protected(root: str) -> dict[str, bytes]:
    """``{path relative to root: content}`` of the protected files under ``root``."""
    from pyarrow import fs

    filesystem, base = _filesystem(str(root))
    info = filesystem.get_file_info(base)
    if info.type != fs.FileType.Directory:
        return {}
    out: dict[str, bytes] = {}
    for entry in filesystem.get_file_info(fs.FileSelector(base, recursive=True)):
        rel = entry.path[len(base) :].lstrip("/")
        parts = rel.split("/")
        if entry.type != fs.FileType.File or not _PROTECTED.match(parts[-1]):
            continue
        if any(part.startswith("checkpoint_") for part in parts):
            continue
        with filesystem.open_input_stream(entry.path) as f:
            out[rel] = f.read()
    return dict(sorted(out.items()))


def _load(manifest: Path) -> dict[str, list[str]]:
    if not manifest.is_file():
        return {}
    try:
        raw = json.loads(manifest.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {str(k): [str(m) for m in v] for k, v in raw.items() if isinstance(v, list)}


def _add(signatures: dict[str, list[str]], rel: str, mac: str) -> None:
    kept = [m for m in signatures.get(rel, []) if m != mac]
    signatures[rel] = [*kept[-(_KEEP - 1) :], mac]


def _save(manifest: Path, signatures: dict[str, list[str]]) -> None:
    manifest.parent.mkdir(parents=True, exist_ok=True)
    tmp = manifest.with_name(manifest.name + ".tmp")
    tmp.write_text(json.dumps(signatures, indent=1, sort_keys=True))
    tmp.replace(manifest)


def sign_folder(root: str | Path, manifest: str | Path) -> int:
    """Add the signature of every protected file under ``root`` to ``manifest``; returns how
    many files were signed."""
    manifest = Path(manifest)
    key = _key()
    signatures = _load(manifest)
    files = _protected(str(root))
    for rel, content in files.items():
        _add(signatures, rel, hmac.new(key, content, hashlib.sha256).hexdigest())
    _save(manifest, signatures)
    return len(files)


def _local_stats(root: Path, skip: Collection[str] = ()) -> dict[str, tuple[int, int, int]]:
    """``{path relative to root: (inode, mtime ns, size)}`` of the protected files under a local
    folder: what tells a rewritten file (Tune replaces its state files by renaming) without
    reading it. Folders of ``root`` named in ``skip`` are not listed."""
    out: dict[str, tuple[int, int, int]] = {}
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                if not entry.name.startswith("checkpoint_") and not (prefix == "" and entry.name in skip):
                    stack.append((Path(entry.path), rel + "/"))
            elif entry.is_file(follow_symlinks=False) and _PROTECTED.match(entry.name):
                st = entry.stat(follow_symlinks=False)
                out[rel] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return out


def verify_folder(root: str | Path, manifest: str | Path) -> list[str]:
    """Problems that forbid loading ``root``'s pickles: a protected file whose content matches
    none of its signatures (changed, truncated or planted), or no signatures at all."""
    manifest = Path(manifest)
    signatures = _load(manifest)
    files = _protected(str(root))
    if files and not signatures:
        return [f"{manifest} (the signatures of this sweep's Ray Tune state) is missing or unreadable"]
    key = _key()
    problems = []
    for rel, content in files.items():
        mac = hmac.new(key, content, hashlib.sha256).hexdigest()
        if not any(hmac.compare_digest(mac, m) for m in signatures.get(rel, [])):
            problems.append(f"{rel} does not match its signature (changed, truncated or not written by this sweep)")
    return problems


_ENDED = (Trial.TERMINATED, Trial.ERROR)  # Tune's final trial states


def _trial_folder(trial: Any) -> str | None:
    """The trial's folder in the experiment's staging folder, or None before it has one."""
    return getattr(getattr(trial, "storage", None), "trial_dir_name", None)


class SigningCallback(tune.Callback):
    """Signs the experiment's protected files in Tune's local staging folder whenever they
    change, and at the end of the experiment.

    Only the staging folder: Tune writes it on the driver's loop thread, the thread that calls
    this callback, so its files are whole when they are signed; the copies in the sweep's
    storage are uploaded in the background and may be half-written at any moment. A complete
    upload is identical to a staged version and so matches one of its kept signatures. The
    caller signs the storage folder itself: once the Tuner is built (``tuner.pkl`` is written
    straight to storage, never staged) and once ``Tuner.fit`` has returned (uploads done).

    Args:
        manifest: where the signatures go (the sweep's state folder, beside its record).
        min_interval_s: sign at most this often while trials run.
    """

    def __init__(self, manifest: str, min_interval_s: float = 0.5) -> None:
        self.manifest = manifest
        self.min_interval_s = min_interval_s
        self._last = 0.0
        # what was signed: {file: (inode, mtime ns, size)}; only files that changed since are
        # read (a sweep's staging folder holds a params.pkl per trial: re-reading them all at
        # every step took 0.5 s of the driver's loop at 500 trials)
        self._signed: dict[str, tuple[int, int, int]] = {}
        self._signatures: dict[str, list[str]] | None = None  # the manifest, once read
        # folders of trials that had ended when they were last listed and signed: Tune writes
        # nothing protected in them again in this run, so they are not listed again (listing
        # every trial's folder twice a second took 14 ms of the driver's loop at 1,000 trials)
        self._ended: set[str] = set()

    def _sign_if_changed(self, trials: list[Any], force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self.min_interval_s:
            return
        self._last = now
        storage = getattr(trials[0], "storage", None) if trials else None
        staging = getattr(storage, "experiment_driver_staging_path", None)
        if not staging:
            return
        if force:  # the end: every file read and signed again, whatever its stat says
            sign_folder(staging, self.manifest)
            self._signed, self._signatures = {}, None
            return
        root = Path(staging)
        ended = {
            name for t in trials if getattr(t, "status", None) in _ENDED and (name := _trial_folder(t))
        }  # before listing
        stats = _local_stats(root, skip=self._ended)
        changed = [rel for rel, st in stats.items() if self._signed.get(rel) != st]
        unread = self._sign(root, changed, stats) if changed else set()
        self._ended |= ended - unread

    def _sign(self, root: Path, changed: list[str], stats: dict[str, tuple[int, int, int]]) -> set[str]:
        """Sign the ``changed`` files; returns the top-level folders of those it could not read."""
        if self._signatures is None:
            self._signatures = _load(Path(self.manifest))
        key = _key()
        unread: set[str] = set()
        for rel in changed:
            try:
                content = (root / rel).read_bytes()
            except OSError:  # gone since the listing (Tune replaced or removed it): next time
                unread.add(rel.split("/", 1)[0])
                continue
            _add(self._signatures, rel, hmac.new(key, content, hashlib.sha256).hexdigest())
            self._signed[rel] = stats[rel]
        _save(Path(self.manifest), self._signatures)
        return unread

    def on_step_end(self, iteration: int, trials: list[Any], **info: Any) -> None:
        self._sign_if_changed(trials)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self._sign_if_changed(trials, force=True)
