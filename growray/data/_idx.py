"""A small reader for the IDX format of the MNIST family (plain or gzip-compressed).

An IDX file starts with a 4-byte magic number: two zero bytes, a type code and the number
of dimensions; then one big-endian uint32 per dimension, then the data, row-major and
big-endian. Labels are ``0x00000801`` (uint8, 1-d), images ``0x00000803`` (uint8, 3-d).
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np

__all__ = [
    "IMAGES_MAGIC",
    "LABELS_MAGIC",
    "MAX_IDX_BYTES",
    "MNIST_FILES",
    "IDXFormatError",
    "read_idx",
    "read_mnist_layout",
]

LABELS_MAGIC = 0x00000801
IMAGES_MAGIC = 0x00000803

_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_GZIP_MAGIC = b"\x1f\x8b"

#: The four files of the MNIST layout (MNIST and Fashion-MNIST), without ``.gz``.
MNIST_FILES: tuple[str, ...] = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class IDXFormatError(ValueError):
    """A file that is not a well-formed IDX file (or not the kind expected)."""


#: the largest IDX payload read (the MNIST family's largest file holds 47 MB)
MAX_IDX_BYTES = 1 << 30


def _check_magic(path: Path, data: bytes) -> int:
    """The magic number of ``data`` (at least 4 bytes), or an IDXFormatError when it is not one."""
    magic = int.from_bytes(data[:4], "big")
    if data[:2] != b"\x00\x00" or data[2] not in _TYPES or data[3] == 0:
        raise IDXFormatError(
            f"{path}: bad IDX magic number 0x{magic:08x} (expected 0x0000TTDD with a known "
            f"type code TT and DD >= 1 dimensions); the file is corrupt or not an IDX file"
        )
    return magic


def _declared_size(path: Path, head: bytes) -> int | None:
    """Header + data bytes the IDX header in ``head`` declares (None while ``head`` is too
    short to tell); an IDXFormatError for a size above :data:`MAX_IDX_BYTES`."""
    if len(head) < 4:
        return None
    _check_magic(path, head)
    ndim = head[3]
    if len(head) < 4 + 4 * ndim:
        return None
    shape = [int.from_bytes(head[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    size = 4 + 4 * ndim + math.prod(shape) * _TYPES[head[2]].itemsize
    if size > MAX_IDX_BYTES:
        raise IDXFormatError(
            f"{path}: the header declares {size} bytes (shape {tuple(shape)}), more than the {MAX_IDX_BYTES} "
            "an IDX file may hold here; the file is corrupt"
        )
    return size


def _read_bytes(path: Path) -> bytes:
    """The file's content, gunzipped when it is gzip data — never more than its header
    declares plus one byte (so a decompression bomb is refused after reading what it claims)."""
    with path.open("rb") as f:
        if f.read(2) != _GZIP_MAGIC:
            size = path.stat().st_size
            if size > MAX_IDX_BYTES:
                raise IDXFormatError(f"{path}: {size} bytes is more than the {MAX_IDX_BYTES} an IDX file may hold here")
            return path.read_bytes()
        f.seek(0)
        inflate = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        out = bytearray()
        limit: int | None = None
        try:
            while True:
                chunk = inflate.unconsumed_tail or f.read(1 << 16)
                if not chunk:
                    break
                room = (limit if limit is not None else 4 + 4 * 255) + 1 - len(out)
                out += inflate.decompress(chunk, max(room, 1))
                if limit is None:
                    limit = _declared_size(path, bytes(out[: 4 + 4 * 255]))
                if limit is not None and len(out) > limit:
                    raise IDXFormatError(
                        f"{path}: the gzip data inflates beyond the {limit} bytes its IDX header declares; "
                        "the file is corrupt (or a decompression bomb)"
                    )
                if inflate.eof:
                    break
        except zlib.error as e:
            raise IDXFormatError(f"{path}: corrupt gzip data ({e}); delete the file and fetch it again") from e
        if not inflate.eof:
            raise IDXFormatError(f"{path}: the gzip data is truncated; delete the file and fetch it again")
        return bytes(out)


def read_idx(path: str | Path, expected_magic: int | None = None) -> np.ndarray:
    """Read one IDX file into a native-endian numpy array.

    Args:
        path: the file; gzip compression is detected from its content, not its name.
        expected_magic: when given, the magic number the file must carry
            (:data:`LABELS_MAGIC` or :data:`IMAGES_MAGIC`).

    Returns:
        The array with the shape recorded in the header.

    Raises:
        IDXFormatError: a bad magic number, unknown type code, or a size that disagrees
            with the header.
        FileNotFoundError: the file does not exist.
    """
    path = Path(path)
    data = _read_bytes(path)
    if len(data) < 4:
        raise IDXFormatError(f"{path}: {len(data)} bytes is too short for an IDX header")
    magic = _check_magic(path, data)
    type_code, ndim = data[2], data[3]
    if expected_magic is not None and magic != expected_magic:
        raise IDXFormatError(
            f"{path}: IDX magic number is 0x{magic:08x}, expected 0x{expected_magic:08x}; "
            "is this the right file (images vs labels)?"
        )
    header = 4 + 4 * ndim
    if len(data) < header:
        raise IDXFormatError(f"{path}: truncated header ({len(data)} bytes for {ndim} dimensions)")
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = _TYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize
    if len(data) - header != expected:
        raise IDXFormatError(
            f"{path}: header says shape {shape} ({expected} data bytes) but the file holds "
            f"{len(data) - header}; the file is truncated or corrupt"
        )
    array = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return array.astype(dtype.newbyteorder("="))


def _read_pair(images_path: Path, labels_path: Path) -> tuple[np.ndarray, np.ndarray]:
    images = read_idx(images_path, expected_magic=IMAGES_MAGIC)
    labels = read_idx(labels_path, expected_magic=LABELS_MAGIC)
    if images.shape[1:] != (28, 28) or len(images) != len(labels):
        raise IDXFormatError(
            f"{images_path}: expected images of shape (n, 28, 28) matching {len(labels)} labels; got {images.shape}"
        )
    if len(labels) and labels.max() > 9:
        raise IDXFormatError(f"{labels_path}: labels must lie in 0..9; got {labels.max()}")
    return images[:, None, :, :], labels.astype(np.int64)


def read_mnist_layout(
    files: Mapping[str, Path],
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The official ``(train, test)`` pairs of a dataset in the MNIST layout.

    Args:
        files: the path of each of :data:`MNIST_FILES` (plain or gzip-compressed).

    Returns:
        uint8 images of shape ``(n, 1, 28, 28)`` and int64 labels in 0..9, per split.

    Raises:
        IDXFormatError: a corrupt file, images that are not 28x28, a count mismatch
            between images and labels, or a label above 9.
    """
    train_images, train_labels, test_images, test_labels = (files[name] for name in MNIST_FILES)
    return _read_pair(train_images, train_labels), _read_pair(test_images, test_labels)
