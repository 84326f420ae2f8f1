"""Experiment kinds as plug-ins: the :class:`Kind` protocol and the ``KINDS`` registry.

The built-in kinds live in subpackages (``growray.kinds.growth``, ``.nas``,
``.plasticity``); importing one registers it. ``growray.plugins.load_plugins`` imports
them all (and third-party kinds from the ``growray.plugins`` entry-point group). This
package's ``__init__`` imports none of them, so the config layer can use the protocol
without importing the kinds' code.
"""

from .base import KINDS, Kind, KindSetup, PluginSlot, TrialOutcome, TrialStage, active_kinds, get_kind, kind_tag

__all__ = [
    "KINDS",
    "Kind",
    "KindSetup",
    "PluginSlot",
    "TrialOutcome",
    "TrialStage",
    "active_kinds",
    "get_kind",
    "kind_tag",
]
