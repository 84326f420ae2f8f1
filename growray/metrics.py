"""Metric names: the MLflow keys the comparison UI depends on (DESIGN.md). Keep them stable.

These are the names the core reports for every trial (the trainer's loss, accuracy,
architecture and cost metrics). Each experiment kind declares its own (``Kind.metrics``,
``Kind.metric_prefixes``: ``growth/preservation_error``, ``nas/gap``, ...);
:func:`known_metrics` joins both for the kinds of an experiment.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from growray.kinds import Kind

__all__ = ["CORE_METRICS", "CORE_METRIC_PREFIXES", "is_known_metric", "known_metrics", "width_metric"]

CORE_METRICS: dict[str, str] = {
    "train/loss": "mean training loss (per logged step; per epoch at epoch ends)",
    "train/acc": "training accuracy over the epoch",
    "train/lr": "learning rate in use (PBT mutates it)",
    "val/loss": "validation loss",
    "val/acc": "validation accuracy",
    "test/loss": "test loss (end of training)",
    "test/acc": "test accuracy (end of training)",
    "best/val_acc": "best validation accuracy so far",
    "cost/params": "current trainable parameter count",
    "cost/flops": "forward FLOPs per sample",
    "cost/train_seconds": "cumulative training wall time",
    "cost/train_flops": (
        "cumulative training compute: (forward + backward) FLOPs x samples seen, following growth, plus "
        "architecture steps, growth checks/initializers, RigL's dense gradients and a winning ticket's "
        "retraining (cost/train_flops/<kind>)"
    ),
    "cost/eval_flops": "cumulative evaluation compute (validation, test, NAS gap passes): forward FLOPs x samples",
    "cost/gpu_seconds": "cumulative training time x the trial's GPU share (GPU trials)",
    "cost/latency_ms": "median inference latency at the protocol's first batch size, on the trial's device",
    "cost/latency_p95_ms": "95th percentile of the same measurement",
    "cost/latency_spread": "(max - min) / min of the repeated latency measurements' medians: high when cores were shared",
    "growth/events": "number of architecture events (growth, depth) so far",
    "growth/depth": "number of hidden layers (models with width sites)",
    "epoch": "completed epochs",
}
CORE_METRIC_PREFIXES: dict[str, str] = {
    "growth/width/": "width of one site, e.g. growth/width/hidden.0",
    "cost/latency_ms/bs": "median latency at another protocol batch size, e.g. cost/latency_ms/bs256",
    "cost/train_flops/": (
        "the part of cost/train_flops beside the run's weight steps, per kind: arch, growth, sparse, winning_ticket"
    ),
}


def width_metric(site: str) -> str:
    return f"growth/width/{site}"


def known_metrics(kinds: Iterable[Kind[Any]]) -> tuple[dict[str, str], dict[str, str]]:
    """``(names, prefixes)`` a trial of these kinds reports: the core's and each kind's."""
    names, prefixes = dict(CORE_METRICS), dict(CORE_METRIC_PREFIXES)
    for kind in kinds:
        names.update(kind.metrics)
        prefixes.update(kind.metric_prefixes)
    return names, prefixes


def is_known_metric(name: str, names: Mapping[str, str], prefixes: Mapping[str, str]) -> bool:
    """Whether ``name`` is one of ``names`` or extends one of ``prefixes``."""
    return name in names or any(name.startswith(p) and len(name) > len(p) for p in prefixes)
