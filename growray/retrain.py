"""``growray retrain RUN_ID``: train a searched architecture from scratch, outside Ray.

Reads the search run's ``config.yaml`` and ``genotype.json`` from MLflow, builds the
evaluation network (``nas.retrain`` settings, overridable with ``--set``), trains it on this
machine and records it in a new run linked to the search run (see ``tracking._retrain``).
The in-trial retrain stage (``nas.retrain.enabled``) calls ``record_retrain`` the same way.
"""

from __future__ import annotations

from typing import Any

__all__ = ["record_retrain", "retrain_run"]


def record_retrain(
    tracking_uri: str, search: Any, exp: Any, dataset: Any, *, device: Any = None, relaxed_val_acc: float | None = None
) -> tuple[str, dict[str, float]]:
    """Retrain ``search.genotype`` under ``exp`` into a new linked run; returns (run id, metrics)."""
    from growray.tracking._retrain import link_retrain, open_retrain_run
    from growray.train.retrain import retrain_genotype

    recorder = open_retrain_run(tracking_uri, search)
    try:
        metrics = retrain_genotype(exp, search.genotype, dataset, recorder=recorder, device=device)
    except BaseException as exc:
        recorder.set_tags({"growray.failure": f"{type(exc).__name__}: {exc}"[:5000]})
        recorder.close("FAILED")
        raise
    recorder.close("FINISHED")
    linked = {k: metrics[k] for k in ("nas/retrain_val_acc", "nas/retrain_test_acc")}
    if relaxed_val_acc is not None:
        linked["nas/retrain_gap"] = relaxed_val_acc - metrics["nas/retrain_val_acc"]
    link_retrain(tracking_uri, search.run_id, recorder.run_id, linked, step=0)
    return recorder.run_id, {**metrics, **linked}


def retrain_run(
    run_id: str, tracking_uri: str, overrides: dict[str, Any] | None = None
) -> tuple[str, dict[str, float]]:
    """Retrain the architecture found by MLflow run ``run_id``."""
    import torch

    from growray.config import apply_overrides, validate_dict
    from growray.data import load_dataset
    from growray.tracking import ensure_store
    from growray.tracking._retrain import load_search_run
    from growray.tracking._store import absolute_tracking_uri

    uri = absolute_tracking_uri(tracking_uri)
    ensure_store(uri)
    search = load_search_run(uri, run_id)
    cfg = apply_overrides(search.config, overrides or {}) if overrides else search.config
    exp = validate_dict(cfg, check_space=False)
    torch.set_num_threads(max(1, int(round(exp.resources.cpu))))
    relaxed = _last_metric(uri, run_id, "nas/relaxed_val_acc")
    dataset = load_dataset(exp.data, seed=exp.seed)
    return record_retrain(uri, search, exp, dataset, relaxed_val_acc=relaxed)


def _last_metric(tracking_uri: str, run_id: str, key: str) -> float | None:
    from mlflow import MlflowClient

    history = MlflowClient(tracking_uri).get_metric_history(run_id, key)
    return history[-1].value if history else None
