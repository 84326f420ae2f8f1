"""Retrain a searched cell from scratch: the evaluation network built from a genotype.

Used by the in-trial retrain stage (``nas.retrain.enabled``) and by ``growray retrain
RUN_ID``. The evaluation network is a ``cell_network`` with the genotype, the channels and
cells of ``nas.retrain`` (default: the supernet's), trained on the *whole* training split
(the search used half of it for the architecture) with the ``trainer`` section, overridden
by ``nas.retrain``'s epochs, lr, batch size and weight decay.
"""

from __future__ import annotations

from typing import Any

from growray.config import Experiment, validate_dict
from growray.data import Dataset

from .build import build_trainer

__all__ = ["retrain_experiment", "retrain_genotype"]


def retrain_experiment(search: Experiment, genotype: dict[str, Any]) -> Experiment:
    """The experiment that trains ``genotype`` from scratch, derived from the search's."""
    if search.nas is None:
        raise ValueError("retraining needs a NAS experiment (one with a nas section)")
    r = search.nas.retrain
    model = search.model
    raw = search.to_dict()
    raw["model"] = {
        "name": "cell_network",
        "genotype": genotype,
        "channels": r.channels or model.get("channels", 16),
        "layers": r.layers or model.get("layers", 8),
        "stem_multiplier": model.get("stem_multiplier", 3),
        "drop_path": r.drop_path,
    }
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
    search: Experiment, genotype: dict[str, Any], dataset: Dataset, *, recorder: Any = None, device: Any = None
) -> dict[str, float]:
    """Train the evaluation network; returns ``nas/retrain_val_acc``, ``nas/retrain_test_acc``
    and the retrained run's final metrics."""
    exp = retrain_experiment(search, genotype)
    if recorder is not None:
        from growray.tracking import flatten_params

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
