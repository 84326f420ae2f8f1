"""Loading every plug-in: growray's own, then other packages' through entry points.

Registration is import: a module registers its datasets, models, triggers, kinds, ... when
it is imported. :func:`load_plugins` imports growray's built-in plug-in modules and then
every entry point of the ``growray.plugins`` group, once per process (the trial processes
of a sweep call it too, through the config layer). A package adds a kind, a trigger or a
dataset by declaring, in its ``pyproject.toml``::

    [project.entry-points."growray.plugins"]
    my_kind = "my_package.my_kind"      # a module that registers on import

The modules are named here as strings and imported with ``importlib``, so importing this
module imports none of them (and creates no import cycle).

What is registered is described by :mod:`growray.catalog` (``growray show plugins``).
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import threading

__all__ = ["BUILTIN_PLUGIN_MODULES", "ENTRY_POINT_GROUP", "PluginLoadError", "load_plugins"]

ENTRY_POINT_GROUP = "growray.plugins"

#: growray's own modules that register plug-ins on import, in dependency order; then every
#: subpackage of ``growray.kinds`` (a built-in kind is one package there, found by itself).
BUILTIN_PLUGIN_MODULES = (
    "growray.data",
    "growray.models",
    "growray.nas",
    "growray.growth",
    "growray.sparse",
    "growray.search.samplers",
)

_lock = threading.Lock()
_loaded = False


class PluginLoadError(ImportError):
    """An entry point of the ``growray.plugins`` group failed to import."""


def load_plugins() -> None:
    """Import every built-in plug-in module and every ``growray.plugins`` entry point (once)."""
    global _loaded
    if _loaded:
        return
    from importlib.metadata import entry_points  # imports email, zipfile, csv...: only when loading

    with _lock:
        if _loaded:
            return
        for name in BUILTIN_PLUGIN_MODULES:
            importlib.import_module(name)
        spec = importlib.util.find_spec("growray.kinds")
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        for info in sorted(pkgutil.iter_modules(locations), key=lambda m: m.name):
            if info.ispkg:
                importlib.import_module(f"growray.kinds.{info.name}")
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            try:
                ep.load()
            except Exception as exc:
                dist = getattr(ep.dist, "name", "?")
                raise PluginLoadError(
                    f"the growray plug-in {ep.name!r} ({ep.value}, from the package {dist!r}) failed to import: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        _loaded = True
