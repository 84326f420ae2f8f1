"""Experiment -> Trainer: data on the device, model, growth strategy, hooks.

Used by Ray trials and by plain code alike, so both train the same thing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from growray.config import Experiment
from growray.data import Dataset, TensorSplits
from growray.growth import DEEPENERS, INITIALIZERS, TRIGGERS, GrowthStrategy
from growray.models import MODELS

from .growth_hook import GrowthHook
from .hooks import Hook
from .nas_hooks import build_nas_hook
from .plasticity_hook import PlasticityHook
from .trainer import Trainer

__all__ = ["build_hooks", "build_trainer", "resolve_device", "split_for_nas"]


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


def split_for_nas(exp: Experiment, splits: TensorSplits) -> tuple[TensorSplits, tuple[torch.Tensor, torch.Tensor]]:
    """DARTS/ENAS: the training split's weight part (the trainer's ``train``) and the held-out
    architecture part (``nas.arch_split`` of it), drawn with the experiment's seed."""
    assert exp.nas is not None
    x, y = splits.train
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(exp.seed)).to(x.device)
    n_arch = int(round(len(x) * exp.nas.arch_split))
    if n_arch < 1 or n_arch >= len(x):
        raise ValueError(f"nas.arch_split {exp.nas.arch_split} leaves an empty half of {len(x)} training samples")
    w_idx, a_idx = perm[n_arch:], perm[:n_arch]
    return dataclasses.replace(splits, train=(x[w_idx], y[w_idx])), (x[a_idx], y[a_idx])


def build_hooks(
    exp: Experiment, splits: TensorSplits, arch_split: tuple[torch.Tensor, torch.Tensor] | None = None
) -> list[Hook]:
    hooks: list[Hook] = []
    if exp.nas is not None:
        if arch_split is None:
            raise ValueError("a NAS experiment needs the architecture split (see split_for_nas)")
        hooks.append(build_nas_hook(exp.nas, arch_split, exp.trainer.batch_size, exp.seed))
    if exp.plasticity is not None:
        x_val, y_val = splits.val
        k = min(exp.trainer.probe_size, len(x_val))
        hooks.append(PlasticityHook(exp.plasticity, (x_val[:k], y_val[:k])))
    if exp.growth is not None:
        g = exp.growth
        strategy = GrowthStrategy(
            TRIGGERS.build(g.trigger),
            INITIALIZERS.build(g.initializer),
            max_width=g.max_width,
            sites=g.sites,
            optimizer_state=g.optimizer_state,
            trigger_name=g.trigger["name"],
            initializer_name=g.initializer["name"],
            deepener=DEEPENERS.build(g.deepen) if g.deepen is not None else None,
            deepener_name=g.deepen["name"] if g.deepen is not None else "",
            max_depth=g.max_depth,
        )
        x_val, y_val = splits.val
        k = min(exp.trainer.probe_size, len(x_val))
        hooks.append(GrowthHook(strategy, (x_val[:k], y_val[:k]), buffer_size=g.buffer_size, diagnostics=g.diagnostics))
    return hooks


def build_trainer(
    exp: Experiment,
    dataset: Dataset,
    *,
    recorder: Any = None,
    report: Any = None,
    checkpoint_dir: str | None = None,
    device: torch.device | str | None = None,
) -> Trainer:
    """Build a ready-to-fit trainer; with ``checkpoint_dir`` the model comes from the checkpoint's spec."""
    device = torch.device(device) if device is not None else resolve_device(exp)
    splits = dataset.to_tensors(device)
    arch_split = None
    if exp.nas is not None:
        splits, arch_split = split_for_nas(exp, splits)
    hooks = build_hooks(exp, splits, arch_split)
    kwargs = dict(
        hooks=hooks,
        recorder=recorder,
        report=report,
        seed=exp.seed,
        device=device,
        costs=exp.costs,
        gpu_fraction=exp.resources.gpu,
    )
    if checkpoint_dir is not None:
        return Trainer.from_checkpoint(checkpoint_dir, splits, exp.trainer, **kwargs)
    torch.manual_seed(exp.seed)  # the initial weights are part of the experiment
    model = MODELS.build(exp.model, input_shape=dataset.input_shape, n_classes=dataset.n_classes).to(device)
    if exp.growth is not None and exp.growth.sites is not None:
        unknown = sorted(set(exp.growth.sites) - set(model.sites()))
        if unknown:
            raise ValueError(f"growth.sites: {unknown} are not sites of this model; its sites are {model.sites()}")
    return Trainer(model, splits, exp.trainer, **kwargs)
