"""A brand-new sqlite store opened by several processes at once: the schema is created once."""

from __future__ import annotations

import subprocess
import sys


def test_concurrent_first_opens_of_a_new_store(tmp_path):
    uri = f"sqlite:///{tmp_path / 'new' / 'mlflow.db'}"
    code = (
        "import sys\n"
        "from growray.tracking import ensure_store, get_or_create_experiment\n"
        "ensure_store(sys.argv[1])\n"
        "print(get_or_create_experiment(sys.argv[1], 'shared'))\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, uri], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    results = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-2000:] for _, err in results]
    ids = {out.strip() for out, _ in results}
    assert len(ids) == 1, f"the processes created {len(ids)} experiments: {ids}"
