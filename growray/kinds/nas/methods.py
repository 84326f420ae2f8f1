"""NAS methods as registered plug-ins (``nas.method``).

An entry is the method's trainer hook class, constructed as
``cls(cfg, arch_split, batch_size, seed)``; its capabilities say which supernet model it
searches (``supernet``) and which architecture-space file in ``search_spaces/`` sets one up
(``space``), so the config check can name the fix::

    @NAS_METHODS.register("darts", supernet="darts_supernet", space="darts_cnn")
    class DartsHook(NasHook): ...
"""

from __future__ import annotations

from typing import Any

from growray.registry import Registry

__all__ = ["NAS_METHODS"]

NAS_METHODS: Registry[Any] = Registry("NAS method")
