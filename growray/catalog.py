"""What is registered, as ``growray show plugins`` lists it: every kind, plug-in section,
kind registry and scheduler, with user-facing parameters and their defaults.

Describing means importing every plug-in module (:func:`growray.plugins.load_plugins`),
torch with them (about 2 s); :func:`plugin_infos` therefore caches the description on disk,
keyed on what it is computed from: the size and modification time of every source file of
growray and of each package that provides a ``growray.plugins`` entry point, the entry
points themselves and the Python version. Any edit, install or upgrade changes the key, and
the next call describes the live registries again.

A module of its own (not part of :mod:`growray.plugins`): it reads the config layer and the
kinds, which themselves load plug-ins, so living beside the loader would tie those packages
into an import cycle.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from growray.plugins import ENTRY_POINT_GROUP, load_plugins

__all__ = ["PluginInfo", "cache_dir", "describe_plugins", "plugin_infos"]


@dataclass(frozen=True)
class PluginInfo:
    """One registered plug-in, as ``growray show plugins`` lists it."""

    path: str  # where YAML names it: "growth.trigger", "nas.method", "kinds"
    name: str
    description: str
    params: dict[str, Any]  # parameter -> default


def describe_plugins() -> list[PluginInfo]:
    """Every registered plug-in, from the live registries (every plug-in module imported): the
    experiment kinds, then every plug-in section (the core's and each kind's) and the kinds'
    other registries, with their parameters' defaults."""
    from growray.config import SCHEDULERS, SchedulerConfig, plugin_schema, plugin_slots
    from growray.kinds import KINDS, get_kind

    load_plugins()
    out = [PluginInfo("kinds", n, KINDS.get(n).description, {}) for n in KINDS.names()]
    for path, slot in plugin_slots().items():
        for name in slot.registry.names():
            props = plugin_schema(slot.registry, name).get("properties", {})
            params = {k: v.get("default") for k, v in props.items()}
            out.append(PluginInfo(path, name, slot.registry.get(name).description, params))
    for kind_name in KINDS.names():  # names chosen in a kind's section (nas.method); settings live there
        for path, registry in get_kind(kind_name).registries.items():
            out += [PluginInfo(path, n, registry.get(n).description, {}) for n in registry.names()]
    defaults = SchedulerConfig().model_dump()
    for name, (text, settings) in SCHEDULERS.items():
        out.append(PluginInfo("search.scheduler", name, text, {k: defaults[k] for k in settings}))
    return out


def cache_dir() -> Path:
    """``$GROWRAY_CACHE_DIR``, else ``$XDG_CACHE_HOME/growray``, else ``~/.cache/growray``."""
    if os.environ.get("GROWRAY_CACHE_DIR"):
        return Path(os.environ["GROWRAY_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "growray"


def _sources_key() -> str:
    """A digest of everything :func:`describe_plugins` depends on (see the module docstring)."""
    import hashlib
    from importlib.metadata import entry_points

    digest = hashlib.sha256(f"{sys.version}\n".encode())
    roots = [Path(__file__).resolve().parent]
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name, e.value)):
        dist = getattr(ep.dist, "name", "?"), getattr(ep.dist, "version", "?")
        digest.update(f"ep {ep.name} {ep.value} {dist}\n".encode())
        top = ep.value.split(":", 1)[0].split(".", 1)[0]
        spec = importlib.util.find_spec(top)  # a top-level name: found, not imported
        if spec is not None and spec.submodule_search_locations:
            roots += [Path(p) for p in spec.submodule_search_locations]
        elif spec is not None and spec.origin:
            roots.append(Path(spec.origin))
    for root in roots:
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for f in files:
            st = f.stat()
            digest.update(f"{f} {st.st_size} {st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def plugin_infos(*, cache: bool = True) -> list[PluginInfo]:
    """:func:`describe_plugins`, read from the on-disk cache when nothing it depends on changed
    (then no plug-in module, and no torch, is imported); ``cache=False`` always describes.

    A process that has imported ``growray.registry`` may have registered plug-ins in code
    (a test's throw-away trigger), which no cache knows of: it always describes.
    """
    if not cache or "growray.registry" in sys.modules:
        return describe_plugins()
    path = cache_dir() / f"plugins-{_sources_key()}.json"
    try:
        return [PluginInfo(**entry) for entry in json.loads(path.read_text())]
    except (OSError, ValueError, TypeError):
        pass  # none yet, or unreadable: describe, then try to keep it
    infos = describe_plugins()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps([asdict(i) for i in infos]))
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: describe every time
    return infos
