"""``growray ui`` in a real browser: Debian's chromium, headless, driven by Playwright.

A finished quickstart store; the address ``growray ui`` prints for the experiment must open
on its runs (not MLflow 3.17's GenAI overview) with every trial and its searched values on
the first page. ``GROWRAY_UI_SCREENSHOT=docs/img/mlflow_runs.png`` also saves the page (the
README's screenshot); ``GROWRAY_BROWSER_STORE=sqlite:////abs/mlflow.db`` reuses a finished
quickstart store instead of running the sweep. Skipped with the reason when chromium or
Playwright is missing.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.timeout(1200)]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
GROWRAY = [sys.executable, "-c", "from growray.cli import main; raise SystemExit(main())"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    if CHROMIUM is None:
        pytest.skip("no chromium executable (Debian: apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install -e '.[browser]')")
    if given := os.environ.get("GROWRAY_BROWSER_STORE"):  # a finished quickstart store, reused
        return given
    d = tmp_path_factory.mktemp("ui")
    uri = f"sqlite:///{d / 'mlflow.db'}"
    sets = ["search.num_samples=3", "trainer.epochs=2", f"output_dir={d / 'runs'}", f"tracking.uri={uri}"]
    cmd = [*GROWRAY, "run", "experiments/quickstart.yaml", *(a for s in sets for a in ("--set", s))]
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return uri


def _trials(uri: str) -> dict[str, dict[str, str]]:
    from mlflow import MlflowClient

    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("quickstart")
    runs = client.search_runs([exp.experiment_id], "tags.`growray.kind` != 'sweep'")
    return {r.info.run_name: dict(r.data.params) for r in runs}


def test_ui_opens_on_the_trials_and_their_searched_values(store: str) -> None:
    from playwright.sync_api import sync_playwright

    port = _free_port()
    ui = subprocess.Popen(
        [*GROWRAY, "ui", "--tracking-uri", store, "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert ui.stdout is not None
        lines = [ui.stdout.readline(), ui.stdout.readline()]  # the server, then the experiment's runs
        link = lines[1].strip()
        assert link.startswith("quickstart: http://127.0.0.1:") and "workflowType=machine_learning" in link, lines
        url = link.split(": ", 1)[1]
        trials = _trials(store)
        assert len(trials) >= 2, trials  # 3 from the sweep above (or a reused store's)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
            page = browser.new_page(viewport={"width": 1600, "height": 900})
            page.goto(url, wait_until="domcontentloaded", timeout=120_000)
            for name in trials:
                page.get_by_text(name, exact=True).first.wait_for(timeout=180_000)
            assert "/runs" in page.url and "overview" not in page.url
            for label in ("Close", "Hide banner"):  # the assistant panel and the shared-view banner
                button = page.get_by_role("button", name=label, exact=True)
                if button.count():
                    button.first.click()
            page.wait_for_timeout(2000)  # the table takes the room (its columns are virtualised)
            text = page.inner_text("body")
            assert "Traces\n0" not in text  # not the GenAI overview
            for column in ("search.trainer.lr", "search.growth.trigger.name"):
                assert column in text, column
            for params in trials.values():  # each trial's searched values, on the first page
                assert params["search.growth.trigger.name"] in text
                assert params["search.trainer.lr"][:8] in text
            if target := os.environ.get("GROWRAY_UI_SCREENSHOT"):
                page.screenshot(path=target)
            browser.close()
    finally:
        ui.send_signal(signal.SIGTERM)
        try:
            code = ui.wait(60)
        except subprocess.TimeoutExpired:
            ui.kill()
            raise
    assert code == 0
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:  # the server it started is gone: its port is free
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.5)
    else:
        pytest.fail(f"port {port} is still taken after growray ui stopped")
