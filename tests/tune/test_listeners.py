"""A listener scan during a local ``growray run``: what listens beyond 127.0.0.1, and whose it is.

Ray 2.60's gRPC servers (gcs_server, the raylet, every core worker, the driver's included)
bind every interface and its runtime-env agent binds the node's address, even when Ray is told
its node is 127.0.0.1, and Ray has no option to change that (README, "Security"). So the
scan cannot demand loopback only. What it pins is everything else: every listener off the
loopback belongs to one of those Ray components, the driver holds exactly one (its core
worker's), and nothing of growray's, MLflow's or Optuna's (a dashboard, a metrics port, a
tracking server) listens at all.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="reads Linux's /proc/net/tcp")
LOOPBACK = {"127.0.0.1", "::1"}


def _listeners() -> list[tuple[str, int, str]]:
    """``(address, port, socket inode)`` of every listening TCP socket on this machine."""
    out = []
    for family, table in ((socket.AF_INET, "/proc/net/tcp"), (socket.AF_INET6, "/proc/net/tcp6")):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] != "0A":  # TCP_LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            # the kernel prints each 32-bit word in host (little-endian) order
            packed = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
            out.append((socket.inet_ntop(family, packed), int(port, 16), fields[9]))
    return out


def _tree(root: int) -> dict[int, tuple[str, set[str]]]:
    """``pid -> (command line, socket inodes)`` for ``root`` and all its descendants."""
    procs: dict[int, tuple[int, str, set[str]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if not cmd.strip():
                # a process that is exiting has let go of its memory (so its command line reads
                # empty) before it closes its sockets; its short name outlives both
                cmd = "[" + Path(f"/proc/{entry}/comm").read_text().strip() + "]"
            socks = set()
            for fd in os.listdir(f"/proc/{entry}/fd"):
                with_target = os.readlink(f"/proc/{entry}/fd/{fd}")
                if with_target.startswith("socket:["):
                    socks.add(with_target[8:-1])
        except OSError:  # the process ended while we read it
            continue
        procs[int(entry)] = (ppid, cmd, socks)
    tree, grown = {root}, True
    while grown:
        new = {pid for pid, (ppid, _, _) in procs.items() if ppid in tree} - tree
        tree |= new
        grown = bool(new)
    return {pid: (procs[pid][1], procs[pid][2]) for pid in tree if pid in procs}


def _ray_component(cmd: str) -> bool:
    if cmd.startswith("[") and cmd.endswith("]"):  # only the kernel's 15-character name is left
        return cmd[1:-1] in ("gcs_server", "raylet") or cmd.startswith("[ray::")
    return any(part in cmd for part in ("/ray/gcs/gcs_server", "/ray/raylet/raylet", "ray::"))


def test_a_local_sweep_listens_beyond_loopback_only_through_rays_own_grpc_servers(tmp_path):
    growray = str(Path(sys.executable).parent / "growray")
    args = [
        growray, "run", str(ROOT / "experiments" / "quickstart.yaml"),
        "--set", "search.num_samples=2", "--set", "trainer.epochs=2",
        "--set", f"output_dir={tmp_path / 'runs'}", "--set", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
    ]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=tmp_path)
    seen: dict[tuple[str, int], tuple[int, str]] = {}  # (address, port) -> (pid, command line)
    deadline = time.monotonic() + 400
    while proc.poll() is None and time.monotonic() < deadline:
        tree = _tree(proc.pid)
        owner = {inode: pid for pid, (_, socks) in tree.items() for inode in socks}
        for address, port, inode in _listeners():
            if inode in owner:
                pid, cmd = owner[inode], tree[owner[inode]][0]
                earlier = seen.get((address, port))
                if earlier is not None and earlier[0] == pid and cmd.startswith("["):
                    continue  # keep the full command line read while the process was alive
                seen[(address, port)] = (pid, cmd)
        time.sleep(0.3)
    if proc.poll() is None:
        proc.kill()
    out = proc.communicate()[0]
    assert proc.returncode == 0, out[-3000:]
    assert seen, "the scan saw no listener of the sweep"

    outside = {key: value for key, value in seen.items() if key[0] not in LOOPBACK}
    foreign = {key: cmd for key, (pid, cmd) in outside.items() if pid != proc.pid and not _ray_component(cmd)}
    assert not foreign, f"listeners beyond 127.0.0.1 that are not Ray's gRPC servers: {foreign}"
    driver = [key for key, (pid, _) in outside.items() if pid == proc.pid]
    assert len(driver) == 1, f"the driver listens beyond its core worker: {driver}"
    assert any("gcs_server" in cmd for _, cmd in outside.values()), "the scan missed Ray's GCS"
    servers = ("dashboard/dashboard.py", "dashboard/agent.py", "mlflow server", "mlflow.server", "optuna-dashboard")
    # a process's program is its first two words (a raylet's arguments name the agents it may start)
    assert not [cmd for _, cmd in seen.values() if any(s in " ".join(cmd.split()[:3]) for s in servers)], seen
