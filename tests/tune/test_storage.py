"""Where a sweep writes (output_dir as a folder, a file URI or an object store), and the
multi-node rule, without Ray: ``ray.nodes()`` entries are plain dicts."""

from __future__ import annotations

from pathlib import Path

import pytest

from growray.tune.storage import (
    DRIVER_STATE_DIR,
    SetupError,
    check_storage_reachable,
    nodes_beyond_driver,
    require_shared_storage,
    resolve_storage,
)


def _node(node_id: str, alive: bool = True, **resources: float) -> dict:
    return {"NodeID": node_id, "Alive": alive, "Resources": {"memory": 1e9, f"node:{node_id}": 1.0, **resources}}


def test_plain_folder_is_local_and_relative_to_cwd(tmp_path):
    s = resolve_storage("runs", "exp", cwd=tmp_path)
    assert s.state_dir == tmp_path / "runs" / "exp"
    assert s.ray_root == str(tmp_path / "runs" / "exp" / "ray")
    assert not s.shared and not s.is_uri
    assert s.sweep_path("exp-1") == str(tmp_path / "runs" / "exp" / "ray" / "exp-1")
    assert resolve_storage("runs", "exp", shared=True, cwd=tmp_path).shared


def test_file_uri_is_the_same_folder_and_declared_shared(tmp_path):
    s = resolve_storage((tmp_path / "shared").as_uri(), "exp", cwd=Path("/nonexistent"))
    assert s.state_dir == tmp_path / "shared" / "exp"
    assert s.ray_root == str(tmp_path / "shared" / "exp" / "ray")  # Tune gets the plain path
    assert s.shared and not s.is_uri


@pytest.mark.parametrize("bad", ["file://shared/runs", "file:relative", "file://host.example/runs", "  "])
def test_bad_output_dir_values_name_the_field_and_the_fix(bad):
    with pytest.raises(SetupError) as info:
        resolve_storage(bad, "exp")
    msg = str(info.value)
    assert msg.startswith("output_dir: ") and "file:///" in msg


def test_object_store_keeps_driver_records_local(tmp_path):
    s = resolve_storage("s3://bucket/sweeps/", "exp", cwd=tmp_path)
    assert s.ray_root == "s3://bucket/sweeps/exp/ray" and s.is_uri and s.shared
    assert s.state_dir == tmp_path / DRIVER_STATE_DIR / "exp"
    assert s.sweep_path("exp-1") == "s3://bucket/sweeps/exp/ray/exp-1"


def test_nodes_beyond_driver_counts_alive_nodes_that_can_run_trials():
    nodes = [
        _node("head", CPU=2.0),
        _node("worker", CPU=4.0),
        _node("gpu-only", GPU=1.0),
        _node("dead", alive=False, CPU=4.0),
        _node("no-resources"),  # e.g. a head started with --num-cpus=0
    ]
    assert nodes_beyond_driver(nodes, "head") == ["worker", "gpu-only"]
    assert nodes_beyond_driver([_node("head", CPU=2.0)], "head") == []
    # a driver on a 0-CPU head with one worker: one node with resources, but not the driver's
    assert nodes_beyond_driver([_node("head"), _node("w", CPU=1.0)], "head") == ["w"]


def test_require_shared_storage(tmp_path):
    local = resolve_storage("runs", "exp", cwd=tmp_path)
    two = [_node("head", CPU=1.0), _node("w", CPU=1.0)]
    require_shared_storage(local, [_node("head", CPU=1.0)], "head")  # one node: any folder will do
    with pytest.raises(SetupError) as info:
        require_shared_storage(local, two, "head")
    msg = str(info.value)
    assert msg.startswith("output_dir: 'runs' ") and str(tmp_path / "runs" / "exp" / "ray") in msg
    assert "1 other node" in msg and "file:///" in msg and "s3://" in msg and "--shared-storage" in msg
    # stated shared, a file URI, or an object store: accepted
    require_shared_storage(resolve_storage("runs", "exp", shared=True, cwd=tmp_path), two, "head")
    require_shared_storage(resolve_storage((tmp_path / "nfs").as_uri(), "exp"), two, "head")
    require_shared_storage(resolve_storage("gs://b/runs", "exp", cwd=tmp_path), two, "head")


def test_check_storage_reachable_local_and_uri(tmp_path):
    ok = resolve_storage("runs", "exp", cwd=tmp_path)
    check_storage_reachable(ok)
    assert ok.state_dir.is_dir() and list(ok.state_dir.iterdir()) == []  # the probe is removed

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SetupError, match=r"^output_dir: cannot write to .*file"):
        check_storage_reachable(resolve_storage(str(blocker), "exp", cwd=tmp_path))

    # a URI is opened through pyarrow as Tune will; an unknown scheme fails here, not in a trial
    with pytest.raises(SetupError, match=r"^output_dir: cannot write to nosuchfs://b/runs/exp/ray"):
        check_storage_reachable(resolve_storage("nosuchfs://b/runs", "exp", cwd=tmp_path))
