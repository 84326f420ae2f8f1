"""The quickstart's live view in a real terminal: tmux at 80x24, read with ``capture-pane``.

It must stay within the screen (no line wraps) and redraw in place: its head line appears
once in the pane and its scrollback together, however often it was redrawn."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.slow,  # a whole sweep from the CLI: ~1-3 min on 2 cores
    pytest.mark.timeout(600),
    pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (apt-get install tmux)"),
]

ROOT = Path(__file__).resolve().parents[2]
HEAD = re.compile(r"^\d+/\d+ done")


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], check=True, capture_output=True, text=True).stdout


def test_quickstart_live_view_fits_80x24_and_redraws_in_place(tmp_path):
    session = f"growray-{uuid.uuid4().hex[:8]}"
    growray = Path(sys.executable).with_name("growray")
    cmd = (
        f"{growray} run experiments/quickstart.yaml --set trainer.epochs=3 --set search.num_samples=4 "
        f"--set output_dir={tmp_path / 'runs'} --set tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}; "
        "echo __EXIT__$?; sleep 600"
    )
    _tmux("new-session", "-d", "-s", session, "-x", "80", "-y", "24", "-c", str(ROOT), cmd)
    frames: list[list[str]] = []
    try:
        deadline = time.monotonic() + 540
        while time.monotonic() < deadline:
            # -J joins wrapped lines, so a line longer than the screen shows as one long line
            pane = _tmux("capture-pane", "-p", "-J", "-S", "-", "-t", session).splitlines()
            if any(line.startswith("__EXIT__") for line in pane):
                break
            if any(HEAD.match(line) for line in pane) and not any("sweep " in line for line in pane):
                frames.append(pane)
            time.sleep(0.5)
        final = _tmux("capture-pane", "-p", "-J", "-S", "-", "-t", session)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    assert "__EXIT__0" in final, final[-3000:]
    assert len(frames) >= 3, final[-3000:]
    heads = set()
    for pane in frames:
        shown = [line for line in pane if HEAD.match(line)]
        assert len(shown) == 1, "\n".join(pane)  # redrawn in place: one frame, not appended copies
        heads.add(shown[0])
        assert all(len(line) <= 80 for line in pane), "\n".join(line for line in pane if len(line) > 80)
        assert len(pane) <= 24, "\n".join(pane)  # nothing scrolled off the screen
    assert len(heads) >= 2  # it did redraw (the clock, the trials done)
    assert any("ETA" in h for h in heads)
    last = frames[-1]
    assert any(re.search(r"\b\d/3\b", line) for line in last)  # epoch x/y
    noise = ("Token authentication", "A new study created", "Configuration for experiment", "tensorboard")
    assert not [n for n in noise if n in final], final[-3000:]
