"""``growray ui``: start a local ``mlflow server`` on a store, wait until it answers, stop it.

The server binds 127.0.0.1 by default; MLflow's security middleware then also rejects
foreign Host headers and cross-origin requests (STACK_NOTES §6). The job runner is turned
off (``MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false``) and one worker is used: the server
answers in about 5 s instead of 10-20 s and stops at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from ._store import _sqlite_path, absolute_tracking_uri

__all__ = ["UIProcess", "start_ui", "ui_command", "wait_healthy"]


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

    def __init__(self, cmd: list[str], url: str, log_path: Path, env: dict[str, str]):
        self.url = url
        self.log_path = log_path
        with open(log_path, "wb") as log:
            super().__init__(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,  # own process group: stop() reaches the workers
            )

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
    """
    from ._store import ensure_store

    uri = absolute_tracking_uri(tracking_uri)
    ensure_store(uri)
    env = dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")
    fd, log_name = tempfile.mkstemp(prefix=f"growray-ui-{port}-", suffix=".log")
    os.close(fd)
    return UIProcess(ui_command(uri, host, port), f"http://{host}:{port}", Path(log_name), env)


def wait_healthy(url: str, timeout: float = 60, *, process: UIProcess | None = None) -> None:
    """Poll ``<url>/health`` until it answers 200.

    Args:
        url: the server, e.g. ``http://127.0.0.1:5000``.
        timeout: seconds before giving up.
        process: the server started by ``start_ui``; its exit is detected at once and its
            output tail goes into the error.

    Raises:
        RuntimeError: ``process`` exited before answering.
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
