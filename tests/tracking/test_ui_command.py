"""``growray ui``: a taken port, a missing store, an impostor on the port, and signals."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from growray.cli import main
from growray.tracking import PortInUseError, UIProcess, check_port_free, ensure_store, wait_healthy

pytestmark = pytest.mark.timeout(600)


def _listener() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, sock.getsockname()[1]


def test_a_taken_port_is_refused_before_anything_starts(tmp_path, capsys) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ensure_store(uri)
    sock, port = _listener()
    with sock:
        with pytest.raises(PortInUseError, match=f"port {port} on 127.0.0.1 is already in use"):
            check_port_free("127.0.0.1", port)
        t0 = time.perf_counter()
        assert main(["ui", "--tracking-uri", uri, "--port", str(port)]) == 2
        assert time.perf_counter() - t0 < 10  # refused at once, no server was started
    err = capsys.readouterr().err
    assert f"port {port} on 127.0.0.1 is already in use" in err and "--port" in err


def test_a_missing_store_is_named_and_not_created(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["ui"]) == 2
    err = capsys.readouterr().err
    assert f"no MLflow store at {tmp_path / 'mlflow.db'}" in err and "--tracking-uri" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_a_health_answer_from_another_server_is_refused(tmp_path) -> None:
    """The reported bug: a second ``growray ui`` trusted the first server's /health."""
    (tmp_path / "health").write_text("OK")
    sock, port = _listener()
    sock.close()
    other = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    ours = UIProcess(
        [sys.executable, "-c", "import time; time.sleep(60)"],
        f"http://127.0.0.1:{port}",
        tmp_path / "log",
        dict(os.environ),
    )
    try:
        with pytest.raises(RuntimeError, match="not from the mlflow server started here"):
            wait_healthy(ours.url, timeout=60, process=ours)
    finally:
        ours.stop()
        other.terminate()
        other.wait(10)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_server_it_started(tmp_path, signum) -> None:
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ensure_store(uri)
    sock, port = _listener()
    sock.close()
    cmd = [sys.executable, "-c", "from growray.cli import main; raise SystemExit(main())"]
    ui = subprocess.Popen(
        [*cmd, "ui", "--tracking-uri", uri, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert ui.stdout is not None
        first = ui.stdout.readline()  # printed once /health answered
        assert f"http://127.0.0.1:{port}" in first, first
        children = subprocess.run(["pgrep", "-f", f"mlflow server.*--port {port}"], capture_output=True, text=True)
        assert children.stdout.split(), "no mlflow server child"
        ui.send_signal(signum)
        assert ui.wait(60) == 0
        for _ in range(40):  # the server's process group is gone and the port is free again
            left = subprocess.run(["pgrep", "-f", f"mlflow server.*--port {port}"], capture_output=True, text=True)
            if not left.stdout.split():
                break
            time.sleep(0.5)
        assert not left.stdout.split()
        check_port_free("127.0.0.1", port)
    finally:
        if ui.poll() is None:
            ui.kill()
        left = subprocess.run(["pgrep", "-f", f"mlflow server.*--port {port}"], capture_output=True, text=True)
        for pid in left.stdout.split():  # a failed check leaves no server behind
            os.kill(int(pid), signal.SIGKILL)
