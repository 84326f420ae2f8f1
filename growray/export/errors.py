"""What ``growray export`` raises for a problem the user can fix (the command line exits 2)."""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["EXPORT_EXTRA", "ExportError", "MissingDependencyError", "require"]

#: how to install every optional package the export formats need
EXPORT_EXTRA = "pip install 'growray[export]'"


class ExportError(ValueError):
    """A network that cannot be exported as asked: no weights, a supernet, an architecture the
    format cannot express, outputs that do not match. The message says what to do."""


class MissingDependencyError(ExportError):
    """An optional package (``onnx``, ``onnxscript``, ``onnxruntime``) is not installed."""


def require(module: str, purpose: str) -> ModuleType:
    """Import an optional package, or raise :class:`MissingDependencyError` with the install hint.

    Args:
        module: its import name (``onnxruntime``).
        purpose: what needs it, completing "... needs the package X" (``"ONNX export"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependencyError(
            f"{purpose} needs the package {module!r}, which is not installed; install the export extra: {EXPORT_EXTRA}"
        ) from None
