"""A disk that fills mid-sweep: one message, exit 2, no traceback; and resume after freeing space.

Needs a small filesystem: a 3 MiB tmpfs, mounted for the test (root with mount rights, as in
CI; skipped elsewhere). The quickstart's store and output folder fill it within a few trials.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


@pytest.fixture
def tiny_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {made.stderr.decode(errors='replace').strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def _growray(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    growray = str(Path(sys.executable).parent / "growray")
    return subprocess.run([growray, *args], capture_output=True, text=True, cwd=cwd, timeout=500)


def test_a_disk_filling_mid_sweep_gives_one_message_and_no_traceback(tiny_disk, tmp_path):
    out = _growray(
        "run", str(ROOT / "experiments" / "quickstart.yaml"),
        "--set", f"output_dir={tiny_disk / 'runs'}", "--set", f"tracking.uri=sqlite:///{tiny_disk / 'mlflow.db'}",
        cwd=tmp_path,
    )  # fmt: skip
    text = out.stdout + out.stderr
    assert out.returncode == 2, text[-3000:]
    assert "the disk is full" in out.stderr and "free space or move output_dir" in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in text and "internal error" not in text, text[-3000:]
    assert out.stderr.count("the disk is full") == 1

    # with space again, resume either continues or refuses what the full disk damaged: never a traceback
    subprocess.run(["mount", "-o", "remount,size=200m", str(tiny_disk)], check=True, capture_output=True)
    again = _growray("resume", str(tiny_disk / "runs" / "quickstart"), cwd=tmp_path)
    text = again.stdout + again.stderr
    assert again.returncode in (0, 2), text[-3000:]
    assert "Traceback" not in text and "internal error" not in text, text[-3000:]
    if again.returncode == 2:
        assert "will not resume" in again.stderr and "start a new sweep" in again.stderr, again.stderr[-2000:]
