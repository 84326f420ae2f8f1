"""The weight optimizer and its learning-rate schedule."""

from __future__ import annotations

import math

import torch
from torch import nn

from growray.config import TrainerConfig

__all__ = ["make_optimizer", "scheduled_lr", "weight_parameters"]


def weight_parameters(model: nn.Module) -> list[nn.Parameter]:
    """The parameters the weight optimizer trains: ``model.weight_parameters()`` where the
    model defines it (a DARTS supernet keeps its architecture α out), else all of them."""
    own = getattr(model, "weight_parameters", None)
    params = own() if callable(own) else model.parameters()
    return [p for p in params if p.requires_grad]


def scheduled_lr(cfg: TrainerConfig, epoch: int) -> float:
    """The learning rate of ``epoch`` (0-based) under ``trainer.lr_schedule``.

    ``cosine`` anneals from ``lr`` to ``lr_min`` over ``epochs`` (per epoch, as DARTS does). It
    is a pure function of the epoch, so it survives growth (new parameter groups), restores and
    PBT exploits without scheduler state.
    """
    if cfg.lr_schedule == "constant":
        return cfg.lr
    return cfg.lr_min + 0.5 * (cfg.lr - cfg.lr_min) * (1 + math.cos(math.pi * epoch / cfg.epochs))


def make_optimizer(model: nn.Module, cfg: TrainerConfig) -> torch.optim.Optimizer:
    """``trainer.optimizer`` over the model's weight parameters."""
    params = weight_parameters(model)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ValueError(f"trainer.optimizer must be one of sgd, adam, adamw; got {cfg.optimizer!r}")
