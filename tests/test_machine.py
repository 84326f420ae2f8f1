"""The local resource probe behind ``growray validate`` / ``run`` (no Ray, no torch)."""

from __future__ import annotations

import multiprocessing

import pytest

from growray.machine import LocalResources, joins_cluster, local_resources, resource_problems


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("CUDA_VISIBLE_DEVICES", "RAY_USE_MULTIPROCESSING_CPU_COUNT", "RAY_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_a_cgroup_v2_quota_lowers_the_cpu_count(tmp_path, clean_env):
    clean_env.setattr(multiprocessing, "cpu_count", lambda: 16)
    (tmp_path / "cpu.max").write_text("250000 100000\n")  # 2.5 CPUs: Ray truncates to 2
    assert local_resources(cgroup=tmp_path, nvidia=tmp_path / "none").cpu == 2
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert local_resources(cgroup=tmp_path, nvidia=tmp_path / "none").cpu == 16
    clean_env.setenv("RAY_USE_MULTIPROCESSING_CPU_COUNT", "1")
    (tmp_path / "cpu.max").write_text("100000 100000\n")
    assert local_resources(cgroup=tmp_path, nvidia=tmp_path / "none").cpu == 16


def test_a_cgroup_v1_quota_lowers_the_cpu_count(tmp_path, clean_env):
    clean_env.setattr(multiprocessing, "cpu_count", lambda: 8)
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("300000\n")
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert local_resources(cgroup=tmp_path, nvidia=tmp_path / "none").cpu == 3
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")  # unlimited
    assert local_resources(cgroup=tmp_path, nvidia=tmp_path / "none").cpu == 8


def test_gpus_from_cuda_visible_devices_or_the_driver(tmp_path, clean_env):
    nvidia = tmp_path / "gpus"
    nvidia.mkdir()
    for bus in ("0000:01:00.0", "0000:02:00.0"):
        (nvidia / bus).mkdir()
    assert local_resources(cgroup=tmp_path, nvidia=nvidia).gpu == 2
    for visible, count in [("0", 1), ("1,0,3", 3), ("", 0), ("-1", 0)]:
        clean_env.setenv("CUDA_VISIBLE_DEVICES", visible)
        assert local_resources(cgroup=tmp_path, nvidia=nvidia).gpu == count, visible


def test_what_a_trial_asks_beyond_the_machine_is_named_with_its_path():
    have = LocalResources(cpu=2, gpu=0)
    assert resource_problems(2, 0, have) == [] and resource_problems(0.5, 0, have) == []
    (cpu,) = resource_problems(1000, 0, have)
    assert cpu[0] == "resources.cpu" and cpu[2] == 1000
    assert "asks for 1000 CPU, but this machine has 2 CPU and 0 GPU; accepted: at most 2" in cpu[1]
    (gpu,) = resource_problems(1, 0.5, have)
    assert gpu[0] == "resources.gpu" and "accepted: 0 (no GPU here)" in gpu[1]
    assert [p[0] for p in resource_problems(4, 2, LocalResources(cpu=2, gpu=1))] == ["resources.cpu", "resources.gpu"]
    # a GPU count this probe cannot know refuses nothing: run checks the started Ray's nodes
    assert resource_problems(1, 1, LocalResources(cpu=2, gpu=None)) == []


def test_a_cluster_address_is_checked_there_not_here(clean_env):
    assert not joins_cluster(None) and joins_cluster("auto") and joins_cluster("10.0.0.1:6379")
    clean_env.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert joins_cluster(None)
