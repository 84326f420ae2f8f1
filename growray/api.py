"""The short path: load -> validate -> launch.

>>> import growray.api as gr
>>> exp = gr.load("experiments/quickstart.yaml")        # raises ConfigError listing every problem
>>> result = gr.run(exp)                                  # Ray Tune + Optuna sweep, recorded in MLflow
>>> print(result.table()); result.best.mlflow_run_id
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from growray.config import ConfigError, Experiment, load_experiment

__all__ = ["ConfigError", "load", "prepare_ray_env", "run"]


def prepare_ray_env(address: str | None) -> None:
    """Set what Ray reads at import time; call before ``import ray``.

    Ray 2.60 clusters use token authentication: joining one by explicit HOST:PORT needs
    ``RAY_AUTH_MODE=token``, or the connection retries ``InvalidAuthToken`` until it
    times out (STACK_NOTES §7). ``auto`` finds the token by itself.
    """
    import os

    if address and address != "auto":
        os.environ.setdefault("RAY_AUTH_MODE", "token")


def load(path: str | Path, overrides: dict[str, Any] | None = None) -> Experiment:
    """Read and validate an experiment file. Imports neither Ray nor MLflow."""
    return load_experiment(path, overrides)


def run(
    experiment: Experiment | str | Path,
    *,
    overrides: dict[str, Any] | None = None,
    address: str | None = None,
    tracking_uri: str | None = None,
    verbose: bool = False,
    shared_storage: bool = False,
) -> Any:
    """Validate (if given a path), then run the sweep; returns a ``growray.tune.SweepResult``.

    On a multi-node cluster ``output_dir`` must be reachable from every node: a ``file:///``
    folder on a shared mount, an object-store URI, or a plain folder with ``shared_storage=True``.
    """
    exp = experiment if isinstance(experiment, Experiment) else load(experiment, overrides)
    if overrides and isinstance(experiment, Experiment):
        exp = exp.with_overrides(overrides)
    prepare_ray_env(address)
    from growray.tune.orchestrate import run_sweep  # imports Ray only now

    return run_sweep(exp, address=address, tracking_uri=tracking_uri, verbose=verbose, shared_storage=shared_storage)
