"""IDX files are untrusted input: decompression is bounded by what the header declares."""

from __future__ import annotations

import gzip
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from growray.data._idx import IMAGES_MAGIC, MAX_IDX_BYTES, IDXFormatError, read_idx


def _header(shape: tuple[int, ...]) -> bytes:
    return (IMAGES_MAGIC & 0xFFFFFF00 | len(shape)).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in shape)


def _bomb(path: Path, declared: tuple[int, ...], inflated: int) -> Path:
    """A gzip file whose IDX header declares ``declared`` but which inflates to ``inflated`` bytes."""
    comp = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    parts = [comp.compress(_header(declared))]
    zeros = bytes(1 << 20)
    for _ in range(inflated >> 20):
        parts.append(comp.compress(zeros))
    parts.append(comp.flush())
    path.write_bytes(b"".join(parts))
    return path


def test_a_gzip_bomb_is_refused_without_inflating_it(tmp_path):
    bomb = _bomb(tmp_path / "bomb.gz", (10, 28, 28), 512 << 20)  # 512 MiB of zeros behind a 7.8 kB header
    assert bomb.stat().st_size < 1 << 20
    script = (
        "import resource, sys\n"
        "from growray.data._idx import read_idx, IDXFormatError\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "try:\n    read_idx(sys.argv[1])\nexcept IDXFormatError as e:\n    print('refused:', e)\n"
        "print('peak_mb', (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(bomb)], capture_output=True, text=True, timeout=120)
    assert "refused:" in out.stdout and "inflates beyond the 7856 bytes its IDX header declares" in out.stdout
    peak_mb = int(out.stdout.split("peak_mb")[1])
    assert peak_mb < 64, f"peak memory grew by {peak_mb} MB while refusing the bomb (it inflates to 512 MB)"


def test_a_header_that_declares_too_much_is_refused(tmp_path):
    path = tmp_path / "huge.gz"
    path.write_bytes(gzip.compress(_header((100_000, 1000, 1000))))
    with pytest.raises(IDXFormatError, match=rf"declares .* more than the {MAX_IDX_BYTES}"):
        read_idx(path)


def test_truncated_and_corrupt_gzip(tmp_path):
    data = _header((2, 2, 2)) + bytes(8)
    whole = gzip.compress(data)
    (tmp_path / "cut.gz").write_bytes(whole[: len(whole) // 2])
    with pytest.raises(IDXFormatError, match="truncated"):
        read_idx(tmp_path / "cut.gz")
    (tmp_path / "bad.gz").write_bytes(whole[:10] + b"garbage" * 4)
    with pytest.raises(IDXFormatError, match=r"corrupt gzip data|truncated"):
        read_idx(tmp_path / "bad.gz")
    (tmp_path / "ok.gz").write_bytes(whole)
    assert np.array_equal(read_idx(tmp_path / "ok.gz"), np.zeros((2, 2, 2), dtype=np.uint8))
