"""Experiment -> Trainer: data on the device, the model, and every active kind's hooks.

Used by Ray trials and by plain code alike, so both train the same thing. The trainer knows
the experiment's kinds only through ``Kind.setup`` (hooks, and the splits they train on).
"""

from __future__ import annotations

import torch

from growray.config import Experiment
from growray.data import Dataset
from growray.kinds import active_kinds
from growray.models import MODELS
from growray.tracking import Recorder

from .augment import BatchAugment
from .checkpoint import load_checkpoint
from .hooks import Hook
from .trainer import ReportFn, Trainer

__all__ = ["build_trainer", "resolve_device"]


def resolve_device(exp: Experiment) -> torch.device:
    """``trainer.device``: ``auto`` means CUDA when the trial was given a GPU and one is visible."""
    want = exp.trainer.device
    if want == "cuda" or (want == "auto" and exp.resources.gpu > 0):
        if not torch.cuda.is_available():
            if want == "cuda":
                raise RuntimeError("trainer.device is 'cuda' but no CUDA device is visible to this trial")
            return torch.device("cpu")
        return torch.device("cuda")
    return torch.device("cpu")


def build_trainer(
    exp: Experiment,
    dataset: Dataset,
    *,
    recorder: Recorder | None = None,
    report: ReportFn | None = None,
    checkpoint_dir: str | None = None,
    device: torch.device | str | None = None,
) -> Trainer:
    """Build a ready-to-fit trainer; with ``checkpoint_dir`` the model comes from the checkpoint's spec."""
    dev = torch.device(device) if device is not None else resolve_device(exp)
    splits = dataset.to_tensors(dev)
    hooks: list[Hook] = []
    for kind, cfg in active_kinds(exp):
        setup = kind.setup(exp, cfg, splits)
        hooks += setup.hooks
        splits = setup.splits
    if checkpoint_dir is not None:
        model = Trainer.model_from_checkpoint(checkpoint_dir, dev)
    else:
        torch.manual_seed(exp.seed)  # the initial weights are part of the experiment
        model = MODELS.build(exp.model, input_shape=dataset.input_shape, n_classes=dataset.n_classes).to(dev)
    trainer = Trainer(
        model,
        splits,
        exp.trainer,
        hooks=hooks,
        recorder=recorder,
        report=report,
        seed=exp.seed,
        device=dev,
        costs=exp.costs,
        gpu_fraction=exp.resources.gpu,
        augment=BatchAugment(exp.augment.random_crop, exp.augment.flip, exp.augment.cutout, seed=exp.seed),
    )
    if checkpoint_dir is not None:
        trainer.load_state(load_checkpoint(checkpoint_dir, map_location=dev))
    return trainer
