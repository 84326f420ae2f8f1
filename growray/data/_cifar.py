"""CIFAR batches: Python pickles read through an allow-list unpickler (no arbitrary code).

The batches are Python pickles, and ``pickle.load`` runs whatever callable a file names.
:class:`_RestrictedUnpickler` resolves only numpy's array-rebuilding functions
(``numpy.core.multiarray._reconstruct`` and its numpy 2 name, ``numpy.ndarray``,
``numpy.dtype``, ``numpy._core.numeric._frombuffer`` for protocol-5 pickles) and
``_codecs.encode`` (how Python 3 writes bytes at protocol 2); anything else is refused
with :class:`CIFARFormatError` before it is called. Plain containers, strings, bytes and
numbers need no globals. The arrays must then be uint8.
"""

from __future__ import annotations

import importlib
import io
import pickle
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["CIFARFormatError", "load_cifar_batch", "read_cifar_batches"]


class CIFARFormatError(ValueError):
    """A CIFAR batch that is not a well-formed pickle of the expected content, or that names
    a global outside the allow-list of :class:`_RestrictedUnpickler`."""


def _numpy_attr(*paths: str) -> Callable[..., Any]:
    """The first importable ``module.attr`` of ``paths`` (numpy 1 and 2 name some differently)."""
    for path in paths:
        module, _, attr = path.rpartition(".")
        try:
            return getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"none of {', '.join(paths)} is importable with numpy {np.__version__}")


_RECONSTRUCT = ("numpy._core.multiarray._reconstruct", "numpy.core.multiarray._reconstruct")
_FROMBUFFER = ("numpy._core.numeric._frombuffer", "numpy.core.numeric._frombuffer")
_ALLOWED: dict[tuple[str, str], tuple[str, ...]] = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): ("numpy.ndarray",),
    ("numpy", "dtype"): ("numpy.dtype",),
    ("_codecs", "encode"): ("_codecs.encode",),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals a CIFAR batch needs (see the module doc).

    Every other ``module.name`` (``os.system``, ``builtins.eval``, ...) raises
    :class:`CIFARFormatError` at lookup, so it is never called. The original batches are
    Python 2 pickles: load them with ``encoding="latin1"``.
    """

    def find_class(self, module: str, name: str) -> Any:
        paths = _ALLOWED.get((module, name))
        if paths is None:
            allowed = ", ".join(f"{m}.{n}" for m, n in _ALLOWED)
            raise CIFARFormatError(f"refusing to load global {module}.{name}: a CIFAR batch only needs {allowed}")
        return _numpy_attr(*paths)


def load_cifar_batch(path: str | Path) -> dict[str, Any]:
    """Read one CIFAR batch with the restricted unpickler; keys come back as ``str``.

    Raises:
        CIFARFormatError: not a pickle, not a dict, or a global outside the allow-list.
        FileNotFoundError: the file does not exist.
    """
    path = Path(path)
    raw = path.read_bytes()
    try:
        obj = _RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except CIFARFormatError as e:
        raise CIFARFormatError(f"{path}: {e}") from e
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError) as e:
        raise CIFARFormatError(f"{path}: not a readable CIFAR pickle ({type(e).__name__}: {e}); fetch it again") from e
    if not isinstance(obj, dict):
        raise CIFARFormatError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_cifar_batches(paths: Sequence[Path], label_key: str, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Images ``(n, 3, 32, 32)`` uint8 and int64 labels of the batches in ``paths``, concatenated.

    Args:
        paths: the batch files, in order.
        label_key: ``"labels"`` (CIFAR-10) or ``"fine_labels"`` (CIFAR-100).
        n_classes: labels must lie in ``0..n_classes - 1``.

    Raises:
        CIFARFormatError: a batch that is unreadable, refused, or holds the wrong content.
    """
    images, labels = [], []
    for path in paths:
        batch = load_cifar_batch(path)
        if "data" not in batch or label_key not in batch:
            raise CIFARFormatError(f"{path}: expected keys 'data' and {label_key!r}; got {sorted(map(str, batch))}")
        data, y = batch["data"], np.asarray(batch[label_key])
        if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
            shape = getattr(data, "shape", None)
            raise CIFARFormatError(f"{path}: 'data' must be a uint8 array of shape (n, 3072); got {shape}")
        if y.shape != (len(data),) or not np.issubdtype(y.dtype, np.integer):
            raise CIFARFormatError(f"{path}: {label_key!r} must hold {len(data)} integers; got shape {y.shape}")
        if len(y) and (y.min() < 0 or y.max() >= n_classes):
            raise CIFARFormatError(f"{path}: labels must lie in 0..{n_classes - 1}; got {y.min()}..{y.max()}")
        images.append(data.reshape(len(data), 3, 32, 32))  # rows are 1024 R, 1024 G, 1024 B, row-major
        labels.append(y.astype(np.int64))
    return np.concatenate(images), np.concatenate(labels)
