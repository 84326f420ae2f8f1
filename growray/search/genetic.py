"""Optuna's genetic samplers (NSGA-II, NSGA-III) in a form that pickles.

Ray Tune pickles the searcher, and the study and sampler inside it, when a Tuner is made
(``tuner.pkl``) and at each searcher checkpoint. Since Optuna 5.1 the genetic samplers'
shared base holds a ``threading.Lock`` (it guards their generation cache), which cannot be
pickled, so ``Tuner(...)`` raised ``TypeError: cannot pickle '_thread.lock' object`` for
``search.sampler: nsga2``/``nsga3``. These subclasses leave the lock out of their pickled
state and make a new one when unpickled; what they sample is Optuna's, unchanged.
"""

from __future__ import annotations

import threading
from typing import Any

import optuna

__all__ = ["NSGAIIISampler", "NSGAIISampler"]

_LOCK = "_thread_lock"


class _LockFreePickle:
    """Pickle without the instance's lock; a fresh one is made on load (harmless where an
    older Optuna has none)."""

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop(_LOCK, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        setattr(self, _LOCK, threading.Lock())


class NSGAIISampler(_LockFreePickle, optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II sampler; pickles (see the module's docstring)."""


class NSGAIIISampler(_LockFreePickle, optuna.samplers.NSGAIIISampler):
    """Optuna's NSGA-III sampler; pickles (see the module's docstring)."""
