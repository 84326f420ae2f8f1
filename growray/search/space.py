"""The experiment's search space -> an Optuna define-by-run function.

Parameters are dotted paths into the experiment (``trainer.lr``). ``when`` makes a
parameter conditional: it is only sampled when every listed path (an earlier search
parameter or a fixed config value) has the given value, or one of a given list. Inactive
parameters are absent from the trial's config, so Optuna's TPE models them correctly.

The function object is a module-level class so Ray can pickle it, including when
``growray resume`` restores the searcher in another process (STACK_NOTES §3, §8).
"""

from __future__ import annotations

import json
from typing import Any

from growray.dotted import get_path

__all__ = ["SpaceFunction", "active", "choice_label"]


def choice_label(choice: Any) -> Any:
    """A categorical choice as Optuna can store it (JSON text for lists and mappings)."""
    if isinstance(choice, (list, dict)):
        return json.dumps(choice, sort_keys=True)
    return choice


def active(when: dict[str, Any] | None, chosen: dict[str, Any], fixed: dict[str, Any]) -> bool:
    """Whether a parameter's conditions hold, given sampled values and fixed config values."""
    for path, expected in (when or {}).items():
        value = chosen[path] if path in chosen else fixed.get(path)
        allowed = expected if isinstance(expected, list) else [expected]
        if value not in allowed:
            return False
    return True


class SpaceFunction:
    """Callable ``(optuna.Trial) -> None`` sampling the experiment's search space.

    Args:
        params: ``{path: SearchParam-as-dict}`` in declaration order.
        fixed: the base experiment's values of every path named in a ``when`` clause.
    """

    def __init__(self, params: dict[str, dict[str, Any]], fixed: dict[str, Any]):
        self.params = params
        self.fixed = fixed

    def __call__(self, trial: Any) -> None:
        chosen: dict[str, Any] = {}
        for path, p in self.params.items():
            if not active(p.get("when"), chosen, self.fixed):
                continue
            kind = p["type"]
            if kind == "categorical":
                value = trial.suggest_categorical(path, [choice_label(c) for c in p["choices"]])
            elif kind == "int":
                step = int(p["step"]) if p.get("step") else 1
                value = trial.suggest_int(path, int(p["low"]), int(p["high"]), step=step, log=p.get("log", False))
            else:
                value = trial.suggest_float(path, p["low"], p["high"], step=p.get("step"), log=p.get("log", False))
            chosen[path] = value
        return None

    @classmethod
    def from_experiment(cls, exp: Any) -> SpaceFunction:
        space = exp.search.space if isinstance(exp.search.space, dict) else {}
        params = {k: v.model_dump(mode="json") for k, v in space.items()}
        base = exp.to_dict()
        fixed: dict[str, Any] = {}
        for p in params.values():
            for path in p.get("when") or {}:
                if path not in params:
                    found, value = get_path(base, path.split("."))
                    if found:
                        fixed[path] = value
        return cls(params, fixed)
