"""Where a sweep writes, and whether every node of the Ray cluster can reach it.

A sweep has two kinds of files:

* **Tune's storage** (``RunConfig.storage_path``): trial results and checkpoints. Every
  trial writes there from the node it runs on, and a restored trial reads its checkpoint
  from there, wherever it lands. On a cluster it must be one place every node sees.
* **The driver's records**: the Optuna study (sqlite) and ``latest_sweep.json``, read and
  written by the driver only (``growray resume`` finds the sweep through them).

``output_dir`` (YAML) says where both go:

* a plain folder (``runs``, ``/data/runs``): both under ``<output_dir>/<name>/``. On a
  cluster whose trials may run on another node, growray refuses it, unless the caller
  states that the folder is shared (``--shared-storage``: mounted at the same path on
  every node, e.g. NFS);
* ``file:///abs/folder``: the same folder, and a statement that it is shared;
* an object-store URI (``s3://bucket/runs``, ``gs://bucket/runs``; anything ``pyarrow``
  opens): Tune's storage goes there; the driver's records stay on the driver, in
  ``.growray/<name>/`` under the current directory.
"""

from __future__ import annotations

import posixpath
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

__all__ = [
    "DRIVER_STATE_DIR",
    "SetupError",
    "SweepStorage",
    "check_storage_reachable",
    "nodes_beyond_driver",
    "require_shared_storage",
    "resolve_storage",
]

DRIVER_STATE_DIR = ".growray"  # the driver's records when Tune's storage is an object store


class NothingToResume(Exception):
    """``growray resume`` of a sweep that finished: there is nothing to continue."""


class SetupError(RuntimeError):
    """Something the user can fix stops the sweep before Ray or any trial starts."""


@dataclass(frozen=True)
class SweepStorage:
    """Resolved locations of one experiment's sweeps.

    Attributes:
        output_dir: the YAML value, as written (for error messages).
        state_dir: the driver's folder (Optuna study, ``latest_sweep.json``), absolute.
        ray_root: Tune's ``storage_path``: an absolute local folder or a URI.
        shared: every node of a cluster reaches ``ray_root`` (a URI, or stated by the user).
    """

    output_dir: str
    state_dir: Path
    ray_root: str
    shared: bool

    @property
    def is_uri(self) -> bool:
        """Tune's storage is an object store (not a local or mounted folder)."""
        return "://" in self.ray_root

    def sweep_path(self, sweep_name: str) -> str:
        """Where Tune keeps one sweep (``Tuner.restore`` takes it back)."""
        return posixpath.join(self.ray_root, sweep_name) if self.is_uri else str(Path(self.ray_root) / sweep_name)


def resolve_storage(output_dir: str, name: str, *, shared: bool = False, cwd: Path | None = None) -> SweepStorage:
    """Where the sweeps of experiment ``name`` go, from the YAML ``output_dir``.

    Args:
        output_dir: a folder (relative to ``cwd``), ``file:///abs/folder`` (a shared mount),
            or an object-store URI such as ``s3://bucket/runs``.
        name: the experiment's name; each experiment gets ``<output_dir>/<name>/``.
        shared: the caller states that a plain folder is mounted at the same path on every node.
        cwd: base of relative folders (default: the current directory).

    Raises:
        SetupError: ``output_dir`` is empty or a ``file:`` URI that is not absolute.
    """
    base = Path.cwd() if cwd is None else cwd
    if not output_dir.strip():
        raise SetupError(
            "output_dir: must name a folder or a URI (e.g. runs, file:///mnt/shared/runs, s3://bucket/runs); got ''"
        )
    parsed = urlparse(output_dir)
    if parsed.scheme == "file":
        if (
            not output_dir.startswith("file://")
            or parsed.netloc not in ("", "localhost")
            or not parsed.path.startswith("/")
        ):
            raise SetupError(
                f"output_dir: a file URI names an absolute folder on a mount every node shares, "
                f"file:///mnt/shared/runs (three slashes); got {output_dir!r}"
            )
        state = (Path(parsed.path) / name).resolve()
        return SweepStorage(output_dir, state, str(state / "ray"), True)
    if "://" not in output_dir:
        state = (base / output_dir / name).resolve()
        return SweepStorage(output_dir, state, str(state / "ray"), shared)
    root = posixpath.join(output_dir.rstrip("/"), name, "ray")
    return SweepStorage(output_dir, (base / DRIVER_STATE_DIR / name).resolve(), root, True)


def check_storage_reachable(storage: SweepStorage) -> None:
    """Create the sweep's folders and write a probe file in each, or raise :class:`SetupError`.

    A local folder is checked with the standard library; a URI through ``pyarrow.fs`` (as
    Tune will open it), so missing credentials or a missing bucket show up here, before Ray.
    """
    try:
        storage.state_dir.mkdir(parents=True, exist_ok=True)
        probe = storage.state_dir / ".growray-write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as exc:
        raise SetupError(
            f"output_dir: cannot write to {storage.state_dir} ({exc.strerror or exc}; output_dir is "
            f"{storage.output_dir!r}); "
            "set output_dir to a writable folder (on a cluster, one every node can reach)"
        ) from None
    if not storage.is_uri:
        return
    import pyarrow as pa
    import pyarrow.fs as pafs

    try:
        fs, root = pafs.FileSystem.from_uri(storage.ray_root)
        fs.create_dir(root, recursive=True)
        probe_path = posixpath.join(root, f".growray-write-test-{uuid.uuid4().hex[:8]}")
        with fs.open_output_stream(probe_path) as f:
            f.write(b"ok")
        fs.delete_file(probe_path)
    except (OSError, ValueError, NotImplementedError, pa.ArrowException) as exc:  # ArrowInvalid is a ValueError
        raise SetupError(
            f"output_dir: cannot write to {storage.ray_root} ({type(exc).__name__}: {str(exc).splitlines()[0][:300]}); "
            "check the URI and this machine's credentials for it (every node needs them too)"
        ) from None


def nodes_beyond_driver(nodes: Iterable[dict[str, Any]], driver_node_id: str) -> list[str]:
    """IDs of alive nodes, other than the driver's, that can run a trial (they have CPUs or GPUs).

    Args:
        nodes: ``ray.nodes()`` entries (``NodeID``, ``Alive``, ``Resources``).
        driver_node_id: ``ray.get_runtime_context().get_node_id()`` on the driver.
    """
    out = []
    for n in nodes:
        res = n.get("Resources") or {}
        if n.get("Alive") and n.get("NodeID") != driver_node_id and (res.get("CPU", 0) > 0 or res.get("GPU", 0) > 0):
            out.append(str(n["NodeID"]))
    return out


def require_shared_storage(storage: SweepStorage, nodes: Iterable[dict[str, Any]], driver_node_id: str) -> None:
    """Refuse a plain local ``output_dir`` when trials may run on another node than the driver.

    Their checkpoints would land on that node's disk, where neither the driver nor a trial
    restored elsewhere would find them.

    Raises:
        SetupError: naming ``output_dir``, its value, and what is accepted.
    """
    others = nodes_beyond_driver(nodes, driver_node_id)
    if storage.shared or not others:
        return
    raise SetupError(
        f"output_dir: {storage.output_dir!r} is a folder on this machine ({storage.ray_root}), but this Ray cluster "
        f"can run trials on {len(others)} other node(s), whose checkpoints would not reach it. "
        "Set output_dir to a folder every node mounts at the same path, written as a file URI "
        "(output_dir: file:///mnt/shared/runs), or to an object-store URI (s3://bucket/runs, gs://bucket/runs); "
        "or, if it already is such a shared folder, pass --shared-storage"
    )
