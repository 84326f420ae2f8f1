"""What this machine offers a local Ray, found without importing Ray or torch (pure Python).

``growray validate`` and ``growray run`` without ``--address`` refuse a trial that asks for
more than a local Ray would have, before anything is created (issue 15): a trial that no node
can run waits PENDING forever. The counts follow how Ray 2.60 sizes a local node:

- CPUs: ``multiprocessing.cpu_count()``, lowered to a container's CPU quota (cgroup v2
  ``cpu.max``, or cgroup v1 ``cpu.cfs_quota_us / cpu.cfs_period_us``) truncated to an integer,
  unless ``RAY_USE_MULTIPROCESSING_CPU_COUNT`` is set;
- GPUs: the entries of ``CUDA_VISIBLE_DEVICES`` when it is set (``""`` and ``-1`` hide every
  device), otherwise the NVIDIA driver's devices under ``/proc/driver/nvidia/gpus``.

Where a count cannot be known this way (another accelerator, no ``/proc``) it is ``None`` and
nothing is refused here; ``run`` still checks the started Ray's nodes before any MLflow
experiment, run or study exists. A run that joins a cluster (``--address`` or
``RAY_ADDRESS``) is checked against that cluster, not this machine.
"""

from __future__ import annotations

import math
import multiprocessing
import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["LocalResources", "joins_cluster", "local_resources", "resource_problems"]

_CGROUP = Path("/sys/fs/cgroup")
_NVIDIA = Path("/proc/driver/nvidia/gpus")


@dataclass(frozen=True)
class LocalResources:
    """What a local Ray started here would offer one trial (None: not known without Ray)."""

    cpu: int
    gpu: int | None

    def describe(self) -> str:
        gpu = "an unknown number of GPUs" if self.gpu is None else f"{self.gpu} GPU"
        return f"{self.cpu} CPU and {gpu}"


def _quota(cgroup: Path) -> float | None:
    """The container's CPU quota in CPUs (None: unlimited or not readable)."""
    try:
        quota, period = (cgroup / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None


def _cpus(cgroup: Path) -> int:
    count = multiprocessing.cpu_count()
    if os.environ.get("RAY_USE_MULTIPROCESSING_CPU_COUNT"):
        return count
    quota = _quota(cgroup)
    return count if quota is None else min(count, int(quota))


def _gpus(nvidia: Path) -> int | None:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        entries = [e for e in visible.split(",") if e.strip()]
        return 0 if not entries or entries[0].strip() == "-1" else len(entries)
    if nvidia.is_dir():
        return sum(1 for _ in nvidia.iterdir())
    if Path("/dev/kfd").exists() or os.environ.get("ROCR_VISIBLE_DEVICES") or os.environ.get("HIP_VISIBLE_DEVICES"):
        return None  # an AMD GPU: Ray counts it, this probe cannot
    return 0 if Path("/proc").is_dir() else None


def local_resources(cgroup: Path = _CGROUP, nvidia: Path = _NVIDIA) -> LocalResources:
    """The CPUs and GPUs a local Ray would find on this machine (module docstring)."""
    return LocalResources(cpu=_cpus(cgroup), gpu=_gpus(nvidia))


def joins_cluster(address: str | None) -> bool:
    """Whether a sweep started with ``address`` runs on a cluster rather than a local Ray:
    ``--address``, or ``RAY_ADDRESS`` in the environment (which ``ray.init()`` joins)."""
    return bool(address or os.environ.get("RAY_ADDRESS"))


def resource_problems(cpu: float, gpu: float, have: LocalResources) -> list[tuple[str, str, float]]:
    """``(YAML path, message, bad value)`` for each of one trial's ``resources`` that a local
    Ray with ``have`` could never grant (empty: it fits)."""
    problems = []
    hint = "or run on a cluster that has it (growray run --address)"
    if math.isfinite(cpu) and cpu > have.cpu:
        problems.append(
            (
                "resources.cpu",
                f"a trial asks for {cpu:g} CPU, but this machine has {have.describe()}; "
                f"accepted: at most {have.cpu}, {hint}",
                cpu,
            )
        )
    if have.gpu is not None and math.isfinite(gpu) and gpu > have.gpu:
        accepted = "0 (no GPU here)" if have.gpu == 0 else f"at most {have.gpu}"
        problems.append(
            (
                "resources.gpu",
                f"a trial asks for {gpu:g} GPU, but this machine has {have.describe()}; accepted: {accepted}, {hint}",
                gpu,
            )
        )
    return problems
