"""``growray ui``: start a local ``mlflow server`` on a store, wait until it answers, stop it.

The server binds 127.0.0.1 by default; MLflow's security middleware then also rejects
foreign Host headers and cross-origin requests (STACK_NOTES §6). The job runner is turned
off (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``) and one worker is used: the server
answers in about 5 s instead of 10-20 s and stops at once.

A taken port is refused before anything starts (``PortInUseError``), and once ``/health``
answers, the listener on the port must be the server started here (on Linux, read from
``/proc``): otherwise another server, on another store, could answer the health check
while ours failed to bind, and the printed URL would show the wrong runs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from ._store import _sqlite_path, absolute_tracking_uri

__all__ = ["PortInUseError", "UIProcess", "check_port_free", "serves_port", "start_ui", "ui_command", "wait_healthy"]


class PortInUseError(OSError):
    """The UI's port is already taken; the message names it and how to choose another."""


def check_port_free(host: str, port: int) -> None:
    """Raise :class:`PortInUseError` when something already listens on ``host:port``."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        # as servers bind: a port whose last server just stopped (connections in TIME_WAIT)
        # is free; only a listener makes the bind fail
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, int(port)))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise PortInUseError(
                errno.EADDRINUSE,
                f"port {port} on {host} is already in use (another `growray ui` or `mlflow server`?); "
                f"pass --port with a free port, or open the server that holds it",
            ) from None


def _listening_inodes(port: int) -> set[str] | None:
    """Socket inodes listening on ``port`` (any address), from ``/proc/net``; None without it."""
    found: set[str] = set()
    tables = [Path("/proc/net/tcp"), Path("/proc/net/tcp6")]
    if not any(t.exists() for t in tables):
        return None
    for table in tables:
        with contextlib.suppress(OSError):
            for line in table.read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 9 and fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    found.add(fields[9])
    return found


def _group_inodes(pgid: int) -> set[str]:
    """Socket inodes held by the processes of process group ``pgid``."""
    out: set[str] = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = (proc / "stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    target = os.readlink(fd)
                    if target.startswith("socket:["):
                        out.add(target[len("socket:[") : -1])
    return out


def serves_port(process: subprocess.Popen[bytes], port: int) -> bool | None:
    """Whether ``process`` (or its process group) holds the listener on ``port``; None where
    ``/proc`` cannot tell."""
    listening = _listening_inodes(port)
    if listening is None:
        return None
    return bool(listening & _group_inodes(process.pid))


def ui_command(tracking_uri: str, host: str = "127.0.0.1", port: int = 5000, workers: int = 1) -> list[str]:
    """The ``mlflow server`` command line for ``tracking_uri``.

    Runs with this interpreter (``python -m mlflow``). A relative sqlite URI is made
    absolute. For sqlite stores ``--artifacts-destination`` is ``<db dir>/mlartifacts``,
    the same root growray's experiments use, so that experiments created from the UI
    keep their artifacts next to the database instead of in the server's cwd; runs of
    growray experiments carry absolute ``file://`` artifact URIs and are served from
    there directly.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    uri = absolute_tracking_uri(tracking_uri)
    cmd = [
        sys.executable, "-m", "mlflow", "server",
        "--backend-store-uri", uri,
        "--host", host,
        "--port", str(int(port)),
        "--workers", str(int(workers)),
    ]  # fmt: skip
    db = _sqlite_path(uri)
    if db is not None:
        cmd += ["--artifacts-destination", str(db.parent / "mlartifacts")]
    return cmd


class UIProcess(subprocess.Popen):
    """A running ``mlflow server`` in its own process group; output goes to ``log_path``."""

    def __init__(self, cmd: list[str], url: str, log_path: Path, env: dict[str, str], tracking_uri: str = ""):
        self.url = url
        self.log_path = log_path
        self.tracking_uri = tracking_uri
        with open(log_path, "wb") as log:
            super().__init__(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # own process group: stop() reaches the workers
            )

    def links(self) -> list[tuple[str, str]]:
        """``(experiment, address)`` that open each growray experiment on its runs."""
        from ._runs import experiment_links

        return experiment_links(self.tracking_uri, self.url) if self.tracking_uri else []

    def log_tail(self, n_chars: int = 3000) -> str:
        """The last characters the server wrote (stdout and stderr)."""
        try:
            return self.log_path.read_text(errors="replace")[-n_chars:]
        except OSError:
            return ""

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM the server's process group, SIGKILL it after ``timeout`` s; the exit code."""
        if self.poll() is None:
            try:
                os.killpg(self.pid, signal.SIGTERM)
                self.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.wait(timeout)
            except ProcessLookupError:
                pass
        with contextlib.suppress(ProcessLookupError, PermissionError):  # workers left behind by a dead leader
            os.killpg(self.pid, signal.SIGKILL)
        return self.returncode


def start_ui(tracking_uri: str, host: str = "127.0.0.1", port: int = 5000) -> UIProcess:
    """Start ``mlflow server`` on ``tracking_uri`` in the background; returns at once.

    Follow with ``wait_healthy(proc.url, process=proc)``; stop with ``proc.stop()``.
    The sqlite schema is created first (``ensure_store``).

    Raises:
        PortInUseError: something already listens on ``host:port``.
    """
    from ._store import ensure_store

    uri = absolute_tracking_uri(tracking_uri)
    check_port_free(host, port)
    ensure_store(uri)
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    fd, log_name = tempfile.mkstemp(prefix=f"growray-ui-{port}-", suffix=".log")
    os.close(fd)
    return UIProcess(ui_command(uri, host, port), f"http://{host}:{port}", Path(log_name), env, uri)


def _check_owner(url: str, process: UIProcess | None) -> None:
    """Raise when the server that answered ``url`` is not ``process``."""
    if process is None:
        return
    port = urllib.parse.urlsplit(url).port
    if port is not None and serves_port(process, port) is False:
        raise RuntimeError(
            f"{url} answered, but not from the mlflow server started here (pid {process.pid}): another "
            f"server holds port {port}; pass --port with a free port. The new server's output ends with:\n"
            f"{process.log_tail()}"
        )


def wait_healthy(url: str, timeout: float = 60, *, process: UIProcess | None = None) -> None:
    """Poll ``<url>/health`` until it answers 200.

    Args:
        url: the server, e.g. ``http://127.0.0.1:5000``.
        timeout: seconds before giving up.
        process: the server started by ``start_ui``; its exit is detected at once and its
            output tail goes into the error.

    Raises:
        RuntimeError: ``process`` exited before answering, or another process answered.
        TimeoutError: no answer within ``timeout``.
    """
    health = url.rstrip("/") + "/health"
    deadline = time.monotonic() + timeout
    last_error: object = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(
                f"mlflow server for {url} exited with code {process.returncode} before "
                f"answering; its output ends with:\n{process.log_tail()}"
            )
        try:
            with urllib.request.urlopen(health, timeout=2) as resp:
                if resp.status == 200:
                    _check_owner(url, process)
                    return
                last_error = f"HTTP {resp.status}"
        except OSError as exc:
            last_error = exc
        time.sleep(0.25)
    tail = process.log_tail() if process is not None else "(process not given)"
    raise TimeoutError(
        f"{health} did not answer 200 within {timeout:.0f} s (last error: {last_error}); "
        f"server output ends with:\n{tail}"
    )
