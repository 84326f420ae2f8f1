"""Shared fixtures: one real local Ray for the tests that need it (started once, ~5 s)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("MLFLOW_ENABLE_ASYNC_LOGGING", "false")


@pytest.fixture(scope="session", autouse=True)
def _resume_key(tmp_path_factory):
    """Sweeps sign their Ray Tune state with a key outside the home folder during tests."""
    os.environ["GROWRAY_RESUME_KEY"] = str(tmp_path_factory.mktemp("key") / "resume.key")
    # ``growray show plugins`` caches its description under the home folder otherwise
    os.environ.setdefault("GROWRAY_CACHE_DIR", str(tmp_path_factory.mktemp("growray-cache")))


@pytest.fixture(scope="session")
def ray_session(tmp_path_factory):
    import ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level="WARNING",
        _temp_dir=str(tmp_path_factory.mktemp("ray")),
    )
    yield ray
    ray.shutdown()


def tiny_experiment(tmp_path, **sections):
    """A small growing-MLP sweep on digits writing into ``tmp_path``."""
    from growray.config import validate_dict

    raw = {
        "name": "tiny",
        "seed": 1,
        "output_dir": str(tmp_path / "runs"),
        "data": {"name": "digits"},
        "model": {"name": "mlp", "hidden": [6, 6]},
        "trainer": {"epochs": 3, "batch_size": 64, "lr": 0.01},
        "growth": {"trigger": {"name": "schedule", "every_steps": 6, "n_units": 2}, "max_width": 24},
        "search": {
            "space": {
                "trainer.lr": {"type": "float", "low": 0.003, "high": 0.03, "log": True},
                "growth.initializer.name": {"type": "categorical", "choices": ["random", "net2wider"]},
                "growth.trigger.n_units": {"type": "int", "low": 1, "high": 4},
            },
            "sampler": {"name": "tpe", "n_startup_trials": 2},
            "num_samples": 3,
            "max_concurrent": 2,
        },
        "resources": {"cpu": 1},
        "tracking": {"uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
    }
    for key, value in sections.items():
        raw[key] = {**raw.get(key, {}), **value} if isinstance(value, dict) else value
    return validate_dict(raw)
