"""Every registered sampler survives pickling mid-study, as Ray Tune pickles the searcher.

``Tuner(...)`` pickles the searcher, with its study and sampler, into ``tuner.pkl``, and
searcher checkpoints pickle it again. Optuna 5.1's genetic samplers hold a lock that does not
pickle; this pins that each sampler pickles and, once loaded, samples what the original would.
"""

from __future__ import annotations

import importlib.util
import pickle

import optuna
import pytest

from growray.search.samplers import SAMPLERS, build_sampler


def _available(name: str) -> bool:
    return all(importlib.util.find_spec(pkg) is not None for pkg in SAMPLERS.get(name).capability("requires", ()))


def _run(study: optuna.Study, n: int) -> list[dict[str, object]]:
    asked = []
    for _ in range(n):
        trial = study.ask()
        width = trial.suggest_int("width", 2, 32, step=2)
        act = trial.suggest_categorical("act", ["relu", "tanh", "gelu"])
        study.tell(trial, (width - 12) ** 2 + {"relu": 0, "tanh": 3, "gelu": 5}[act])
        asked.append(dict(trial.params))
    return asked


@pytest.mark.parametrize("name", SAMPLERS.names())
def test_a_pickled_sampler_samples_what_the_original_would(name: str) -> None:
    if not _available(name):
        pytest.skip(f"{name} needs {SAMPLERS.get(name).capability('requires')}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    spec = (
        {"name": name, "population_size": 2} if "population_size" in SAMPLERS.user_parameters(name) else {"name": name}
    )
    kept, loaded = (optuna.create_study(sampler=build_sampler(spec, default_seed=3)) for _ in range(2))
    assert _run(kept, 5) == _run(loaded, 5)  # same seed, same history

    loaded.sampler = pickle.loads(pickle.dumps(loaded.sampler))
    assert type(loaded.sampler) is type(kept.sampler)
    assert _run(loaded, 6) == _run(kept, 6)
