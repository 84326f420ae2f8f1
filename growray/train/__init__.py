"""The one training loop, its hooks, checkpoints, the shared evaluation, and the
Experiment -> Trainer builder."""

from .augment import BatchAugment
from .build import build_trainer, resolve_device
from .checkpoint import CheckpointData, load_checkpoint, save_checkpoint
from .evaluate import evaluate
from .hooks import Hook, MetricConflictError, merge_metrics
from .optim import make_optimizer, scheduled_lr, weight_parameters
from .precision import Precision, training_loss
from .trainer import ReportFn, Trainer, TrainingDivergedError

__all__ = [
    "BatchAugment",
    "CheckpointData",
    "Hook",
    "MetricConflictError",
    "Precision",
    "ReportFn",
    "Trainer",
    "TrainingDivergedError",
    "build_trainer",
    "evaluate",
    "load_checkpoint",
    "make_optimizer",
    "merge_metrics",
    "resolve_device",
    "save_checkpoint",
    "scheduled_lr",
    "training_loss",
    "weight_parameters",
]
