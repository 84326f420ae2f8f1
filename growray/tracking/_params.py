"""Which params a sweep's runs carry, so that MLflow's Compare view works at once.

A trial run's params are its **searched values**, each under ``search.<path>``
(``search.trainer.lr``), plus a compact set of the rest of its resolved config. The prefix
names what Optuna chose, it groups the searched columns in MLflow's runs table (its columns
sort by name), and a trial's params never hold the experiment's ``search`` section (the
sweep's settings live on the sweep's parent run), so on a trial every ``search.*`` param is a
searched value. The same value is not logged twice: ``trainer.lr`` is absent when
``search.trainer.lr`` is there. The full resolved config is the run's ``config.yaml``.

The compact set leaves out what the search changes besides the searched values: the other
parameters of a plug-in whose ``name`` is searched (they follow the choice) and a list that a
searched path indexes (``model.hidden`` for ``model.hidden.0``). So the params that differ
between trials are exactly the ``search.*`` ones; MLflow's parallel-coordinates plot starts on
the first three differing params by name, i.e. on searched values.

The sweep's parent run logs the base config *without* the values the sweep searched: for each
searched path, ``search.<path>`` holds its distribution (``float [0.002, 0.03] log``), never
the base file's value, which no trial may have used; the same keys as on a trial are left out.

Inactive conditional parameters are not logged: a ``plateau`` trial has no
``search.growth.trigger.every_steps``. MLflow's parallel-coordinates plot shows such a run
at the top of that axis (3.17), so pick axes that every trial has, or filter the runs.
"""

from __future__ import annotations

from typing import Any

from ._recorder import flatten_params

__all__ = ["SEARCHED_PREFIX", "describe_param", "param_value", "sweep_params", "trial_params"]

SEARCHED_PREFIX = "search."

#: top-level config keys that are not logged as params (the artifact has them)
_NOT_PARAMS = ("description",)


def describe_param(spec: dict[str, Any]) -> str:
    """A search-space parameter in one short line: ``float [0.002, 0.03] log``,
    ``categorical [schedule, plateau]``, ``int [10, 60] when growth.trigger.name=schedule``."""
    kind = str(spec.get("type", "?"))
    if kind == "categorical":
        text = f"categorical [{', '.join(str(c) for c in spec.get('choices') or [])}]"
    else:
        low, high = spec.get("low"), spec.get("high")
        if kind == "int":
            low, high = (int(v) if isinstance(v, float) and v.is_integer() else v for v in (low, high))
        text = f"{kind} [{low}, {high}]"
        if spec.get("log"):
            text += " log"
        if spec.get("step") is not None:
            text += f" step {spec['step']}"
    when = spec.get("when") or {}
    if when:
        text += " when " + ", ".join(f"{k}={v}" for k, v in when.items())
    return text


def param_value(params: dict[str, str], path: str, default: str | None = None) -> str | None:
    """A run's value of config ``path``: its searched value (``search.<path>``) or its plain
    param; ``default`` when it has neither (read ``config.yaml`` for the whole config)."""
    return params.get(f"{SEARCHED_PREFIX}{path}", params.get(path, default))


def _searched_sections(paths: list[str]) -> tuple[str, ...]:
    """Sections whose plug-in ``name`` is searched (``growth.trigger.``)."""
    return tuple(p[: -len("name")] for p in paths if p.endswith(".name"))


def _base_params(resolved: dict[str, Any]) -> dict[str, Any]:
    """The config without what is not a param: inactive kind sections (None) and the text."""
    return {k: v for k, v in resolved.items() if k not in _NOT_PARAMS and v is not None}


def trial_params(resolved: dict[str, Any], searched: dict[str, Any]) -> dict[str, str]:
    """A trial run's params: ``search.<path>`` per searched value, then the resolved config
    without its ``search`` section and without the searched paths.

    Args:
        resolved: the trial's resolved experiment (``Experiment.to_dict()``).
        searched: the values the sampler chose, by dotted path (None: inactive, skipped).
    """
    active = {p: v for p, v in searched.items() if v is not None}
    base = _base_params(resolved)
    base.pop("search", None)
    params = {f"{SEARCHED_PREFIX}{p}": str(v) for p, v in sorted(active.items())}
    params.update({k: v for k, v in flatten_params(base).items() if not _covered(k, list(searched))})
    return params


def _covered(key: str, paths: list[str]) -> bool:
    """Whether a config key is left to ``search.*`` (and ``config.yaml``): a searched path
    itself, a key under a plug-in whose name is searched (its parameters change with the
    choice), or a list a searched path indexes (``model.hidden`` for ``model.hidden.0``).
    So the params that differ between a sweep's trials are the ``search.*`` ones, and
    MLflow's parallel coordinates start on them (it picks the first three by name)."""
    return key in paths or key.startswith(_searched_sections(paths)) or any(p.startswith(key + ".") for p in paths)


def sweep_params(resolved: dict[str, Any]) -> dict[str, str]:
    """The sweep's parent run params: the base config without the searched values, and
    ``search.<path>`` = the distribution of each searched path (``search.space`` itself is the
    ``config.yaml`` artifact)."""
    base = _base_params(resolved)
    search = dict(base.get("search") or {})
    space: dict[str, Any] = search.pop("space", None) or {}
    base["search"] = search
    params = {f"{SEARCHED_PREFIX}{p}": describe_param(spec) for p, spec in sorted(space.items())}
    for key, value in flatten_params(base).items():
        if not _covered(key, list(space)):
            params.setdefault(key, value)
    return params
