"""Retrain a searched cell from scratch: the evaluation network built from a genotype.

Used by the in-trial retrain stage (``nas.retrain.enabled``) and by ``growray retrain
RUN_ID``. The evaluation network is a ``cell_network`` (an ``nb201_network`` for a
NAS-Bench-201 cell) with the genotype, the channels and cells of ``nas.retrain`` (default:
the supernet's) and DARTS' recipe where set (``auxiliary_weight``, ``drop_path`` with its
``drop_path_schedule``, ``cutout`` into ``data.augment``), trained on the *whole* training split
(the search used part of it for the architecture) with the ``trainer`` section, overridden
by ``nas.retrain``'s epochs, lr, batch size and weight decay. It is recorded in its own
MLflow run, nested under the search run's sweep and linked to the search run both ways
(``growray.search_run_id`` / ``growray.retrain_run_id``); the search run receives
``nas/retrain_val_acc``, ``nas/retrain_test_acc`` and ``nas/retrain_gap``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from growray.config import Experiment, validate_dict
from growray.data import Dataset
from growray.nas import Nb201Genotype
from growray.tracking import (
    ProgressRecorder,
    Recorder,
    SearchRun,
    flatten_params,
    last_metric,
    link_retrain,
    load_search_run,
    open_retrain_run,
)
from growray.train import build_trainer

from .config import NasConfig

__all__ = ["record_retrain", "retrain_experiment", "retrain_genotype", "retrain_search_run"]


def retrain_experiment(search: Experiment, cfg: NasConfig, genotype: dict[str, Any]) -> Experiment:
    """The experiment that trains ``genotype`` from scratch, derived from the search's."""
    r = cfg.retrain
    model = search.model
    raw = search.to_dict()
    if Nb201Genotype.is_dict(genotype):
        raw["model"] = {
            "name": "nb201_network",
            "genotype": Nb201Genotype.from_dict(genotype).arch_str(),
            "channels": r.channels or model.get("channels", 16),
            "cells_per_stage": r.layers or model.get("cells_per_stage", 5),
            "drop_path": r.drop_path,
        }
    else:
        raw["model"] = {
            "name": "cell_network",
            "genotype": genotype,
            "channels": r.channels or model.get("channels", 16),
            "layers": r.layers or model.get("layers", 8),
            "stem_multiplier": model.get("stem_multiplier", 3),
            "drop_path": r.drop_path,
            "drop_path_schedule": r.drop_path_schedule,
            "auxiliary_weight": r.auxiliary_weight,
        }
    if r.cutout is not None:
        raw["data"]["augment"] = {**(raw["data"].get("augment") or {}), "cutout": r.cutout}
    trainer = raw["trainer"]
    for key in ("epochs", "lr", "batch_size", "weight_decay"):
        if getattr(r, key) is not None:
            trainer[key] = getattr(r, key)
    if r.seed is not None:
        raw["seed"] = r.seed
    raw["nas"] = None
    raw["search"] = {}  # the sweep settings do not apply to one retraining
    return validate_dict(raw, check_space=False)


def retrain_genotype(
    search: Experiment,
    cfg: NasConfig,
    genotype: dict[str, Any],
    dataset: Dataset,
    *,
    recorder: Recorder | None = None,
    device: torch.device | str | None = None,
) -> dict[str, float]:
    """Train the evaluation network; returns ``nas/retrain_val_acc``, ``nas/retrain_test_acc``
    and the retrained run's final metrics."""
    exp = retrain_experiment(search, cfg, genotype)
    if recorder is not None:
        recorder.log_params(flatten_params(exp.to_dict()))
        recorder.log_dict(exp.to_dict(), "config.yaml")
        recorder.log_dict(genotype, "genotype.json")
    trainer = build_trainer(exp, dataset, recorder=recorder, device=device)
    metrics = trainer.fit()
    out = {"nas/retrain_val_acc": float(metrics["val/acc"]), "nas/retrain_test_acc": float(metrics["test/acc"])}
    if recorder is not None:
        recorder.log_metrics(out, step=trainer.step)
        recorder.flush()
    return {**metrics, **out}


def record_retrain(
    tracking_uri: str,
    search: SearchRun,
    exp: Experiment,
    cfg: NasConfig,
    dataset: Dataset,
    *,
    device: torch.device | str | None = None,
    relaxed_val_acc: float | None = None,
    progress: Callable[[str], Any] | None = None,
) -> tuple[str, dict[str, float]]:
    """Retrain ``search.genotype`` under ``exp`` into a new linked run; returns (run id, metrics).
    ``progress`` receives one line per epoch (``growray retrain`` prints them)."""
    recorder: Recorder = open_retrain_run(tracking_uri, search)
    if progress is not None:
        recorder = ProgressRecorder(recorder, retrain_experiment(exp, cfg, search.genotype).trainer.epochs, progress)
    try:
        metrics = retrain_genotype(exp, cfg, search.genotype, dataset, recorder=recorder, device=device)
    except BaseException as exc:
        recorder.set_tags({"growray.failure": f"{type(exc).__name__}: {exc}"[:5000]})
        recorder.close("FAILED")
        raise
    recorder.close("FINISHED")
    linked = {k: metrics[k] for k in ("nas/retrain_val_acc", "nas/retrain_test_acc")}
    if relaxed_val_acc is not None:
        linked["nas/retrain_gap"] = relaxed_val_acc - metrics["nas/retrain_val_acc"]
    run_id = str(recorder.run_id)
    link_retrain(tracking_uri, search.run_id, run_id, linked, step=0)
    return run_id, {**metrics, **linked}


def retrain_search_run(exp: Experiment, cfg: NasConfig, tracking_uri: str, run_id: str) -> tuple[str, dict[str, float]]:
    """``growray retrain RUN_ID``: retrain the genotype that search run ``run_id`` found, on
    this machine, under ``exp`` (the run's config, with any ``--set`` overrides applied)."""
    from growray.data import load_dataset

    search = load_search_run(tracking_uri, run_id)
    torch.set_num_threads(max(1, round(exp.resources.cpu)))
    relaxed = last_metric(tracking_uri, run_id, "nas/relaxed_val_acc")
    dataset = load_dataset(exp.data, seed=exp.seed)
    return record_retrain(tracking_uri, search, exp, cfg, dataset, relaxed_val_acc=relaxed, progress=print)
