"""A real `mlflow server` (started by growray.tracking.start_ui) over HTTP."""

from __future__ import annotations

import json
import socket
import sys
import urllib.request
from pathlib import Path

import pytest

from growray.tracking import (
    MlflowRecorder,
    create_sweep_run,
    ensure_store,
    get_or_create_experiment,
    runs_view_url,
    serves_port,
    start_ui,
    ui_command,
    wait_healthy,
)

pytestmark = pytest.mark.timeout(120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listen_addresses(port: int) -> set[str]:
    """Hex local addresses of LISTEN sockets on ``port`` (Linux /proc/net/tcp[6])."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            addr, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(addr)
    return found


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def _post(url: str, body: dict):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


def test_ui_command_flags(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cmd = ui_command("sqlite:///m.db", port=5055)
    assert cmd[:4] == [sys.executable, "-m", "mlflow", "server"]
    flags = dict(zip(cmd[4::2], cmd[5::2]))
    assert flags == {
        "--backend-store-uri": f"sqlite:///{tmp_path / 'm.db'}",
        "--host": "127.0.0.1",
        "--port": "5055",
        "--workers": "1",
        "--artifacts-destination": str(tmp_path / "mlartifacts"),
    }
    assert "--artifacts-destination" not in ui_command("postgresql://u@h/db")


@pytest.mark.skipif(not Path("/proc/net/tcp").exists(), reason="needs Linux /proc")
def test_server_lists_children_and_artifacts(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ensure_store(uri)
    eid = get_or_create_experiment(uri, "served")
    parent = create_sweep_run(uri, eid, run_name="sweep", tags={})
    children = []
    for i in range(2):
        rec = MlflowRecorder(uri, eid, run_name=f"trial-{i}", parent_run_id=parent)
        rec.log_dict({"widths": [16 + i]}, "architecture.json")
        rec.log_metrics({"val/acc": 0.5 + i / 10}, 1)
        rec.close()
        children.append(rec.run_id)

    port = _free_port()
    proc = start_ui(uri, port=port)
    try:
        wait_healthy(proc.url, timeout=60, process=proc)
        assert _listen_addresses(port) == {"0100007F"}  # 127.0.0.1 only
        assert serves_port(proc, port) is True
        # the experiment opens on its runs: model-training kind, growray's runs view, its address
        assert proc.links() == [("served", runs_view_url(proc.url, eid))]
        tags = _get(f"{proc.url}/api/2.0/mlflow/experiments/get?experiment_id={eid}")["experiment"]["tags"]
        tags = {t["key"]: t["value"] for t in tags}
        assert tags["mlflow.experimentKind"] == "custom_model_development"
        assert json.loads(tags["mlflow.sharedViewState.growray"])["groupBy"]["groupByKeys"] == [
            {"mode": "tag", "groupByData": "growray.sweep"}
        ]
        api = f"{proc.url}/api/2.0/mlflow"

        found = _post(
            f"{api}/runs/search",
            {"experiment_ids": [eid], "filter": f"tags.mlflow.parentRunId = '{parent}'"},
        )
        assert sorted(r["info"]["run_id"] for r in found["runs"]) == sorted(children)

        listing = _get(f"{api}/artifacts/list?run_id={children[0]}")
        assert [f["path"] for f in listing["files"]] == ["architecture.json"]
        # what the UI fetches to show an artifact (file:// location next to the db)
        with urllib.request.urlopen(
            f"{proc.url}/get-artifact?path=architecture.json&run_uuid={children[1]}", timeout=10
        ) as resp:
            assert json.loads(resp.read()) == {"widths": [17]}

        # a recorder talking to the server over HTTP
        rec = MlflowRecorder(proc.url, eid, run_name="over-http", parent_run_id=parent)
        for step in range(1200):
            rec.log_metrics({"train/loss": 1.0 / (step + 1)}, step)
        rec.close()
        from mlflow import MlflowClient

        assert len(MlflowClient(proc.url).get_metric_history(rec.run_id, "train/loss")) == 1200
    finally:
        proc.stop()
    assert proc.poll() is not None
    assert _listen_addresses(port) == set()


def test_wait_healthy_times_out_with_message():
    with pytest.raises(TimeoutError, match="did not answer 200 within"):
        wait_healthy(f"http://127.0.0.1:{_free_port()}", timeout=0.5)
