"""``growray run`` without ``--address`` starts its own Ray, even when this machine records a
cluster that ``ray start`` (or ``ray.cluster_utils``) started: a bare ``ray.init()`` would join
that one, unchecked for shared storage and resources."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import ray
    from growray.tune.session import init_ray

    started = init_ray(None, verbose=False)
    print("GCS", ray.get_runtime_context().gcs_address, started, flush=True)
    ray.shutdown()
    """
)


@pytest.mark.slow  # starts a Ray of its own (~30 s on a loaded 2-core machine)
@pytest.mark.timeout(240)
def test_a_run_without_address_does_not_join_the_cluster_this_machine_recorded():
    # a short temp root: Ray's socket paths under it must fit AF_UNIX's 107 characters
    root = Path(tempfile.mkdtemp(prefix="gr-", dir="/tmp"))
    try:
        (root / "ray").mkdir()
        recorded = "127.0.0.1:9"  # what `ray start` left behind; nothing answers there
        (root / "ray" / "ray_current_cluster").write_text(recorded)
        env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"} | {"RAY_TMPDIR": str(root)}
        proc = subprocess.run(
            [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=200, check=False
        )
        lines = [line.split() for line in proc.stdout.splitlines() if line.startswith("GCS ")]
        assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-3000:]
        _, gcs, started = lines[-1]
        assert gcs != recorded and started == "True", lines
    finally:
        shutil.rmtree(root, ignore_errors=True)
