"""NAS methods as registered plug-ins (``nas.method``).

An entry is the method's trainer hook class, constructed as
``cls(cfg, arch_split, batch_size, seed)``; its capabilities say which supernet model it
searches (``supernet``) and which architecture-space file in ``search_spaces/`` sets one up
(``space``), so the config check can name the fix::

    @NAS_METHODS.register("darts", supernet="darts_supernet", space="darts_cnn")
    class DartsHook(NasHook): ...

A method that also searches another supernet with a hook of its own registers that hook in
``NAS_METHOD_VARIANTS``, with the method, the supernet and the space as capabilities; the
config check and the trial pick it by the model's name (``nas: {method: enas}`` with
``model: {space: nb201}`` runs the NAS-Bench-201 ENAS hook)::

    @NAS_METHOD_VARIANTS.register("enas_nb201", method="enas", supernet="nb201_supernet", space="nb201")
    class Nb201EnasHook(EnasHook): ...
"""

from __future__ import annotations

from typing import Any

from growray.registry import Registry, RegistryEntry

__all__ = ["NAS_METHODS", "NAS_METHOD_VARIANTS", "method_entry", "method_supernets"]

NAS_METHODS: Registry[Any] = Registry("NAS method")
NAS_METHOD_VARIANTS: Registry[Any] = Registry("NAS method variant")


def _variants(method: str) -> list[RegistryEntry[Any]]:
    return [NAS_METHOD_VARIANTS.get(n) for n in NAS_METHOD_VARIANTS.names(method=method)]


def method_supernets(method: str) -> list[tuple[str, str]]:
    """``(supernet model, space)`` pairs that ``method`` searches: its own, then its variants'."""
    entry = NAS_METHODS.get(method)
    own = entry.capability("supernet")
    pairs = [(s, entry.capability("space")) for s in ((own,) if isinstance(own, str) else tuple(own))]
    return pairs + [(v.capability("supernet"), v.capability("space")) for v in _variants(method)]


def method_entry(method: str, supernet: str) -> RegistryEntry[Any]:
    """The hook entry of ``method`` on the ``supernet`` model: a variant's when one is
    registered for that model, else the method's own."""
    for v in _variants(method):
        if v.capability("supernet") == supernet:
            return v
    return NAS_METHODS.get(method)
