"""GDAS as a hook of the one trainer: DARTS' alternating search on a supernet that samples one op per edge.

GDAS (Dong & Yang, CVPR 2019) keeps DARTS' supernet, data halves, optimizers and
discretization; what changes is the forward pass. The hook switches the supernet's
relaxation to GDAS' Gumbel sampler (``RelaxedSupernet.set_gumbel``, ``growray.nas.gdas``):
in training mode every forward (weight steps and architecture steps alike) samples one op
per edge and computes only that op, and alpha learns through the straight-through
estimator. The temperature falls linearly per epoch from ``nas.gdas.tau_max`` to
``nas.gdas.tau_min`` (10 -> 0.1; logged as ``nas/tau``). The architecture step is DARTS'
first-order step (Adam on alpha; ``nas.arch_lr``, ``arch_betas``, ``arch_weight_decay``: the
authors' 3e-4, (0.5, 0.999), 1e-3). Sources and the settings checked against the authors'
code (``D-X-Y/AutoDL-Projects``: ``exps/algos/GDAS.py``, ``search_model_gdas.py``,
``configs/nas-benchmark/algos/GDAS.config``, ``GDAS-NASNet-CIFAR.config``): ALGORITHMS.md
§14 and ``experiments/cifar10_gdas.yaml``. Departures: the architecture step comes before
the weight step of each batch (the authors update the weights first), as in growray's DARTS;
eval mode runs the argmax cell (``growray.nas.relaxed``); the Gumbel noise comes from a
generator the hook owns and checkpoints.

Compute (``cost/train_flops``): each weight step is charged the ops its own forward sampled,
forward and backward (``RelaxedSupernet.training_flops_per_sample``, summed from per-op counts
in ``growray.nas.relaxed_cost``); each architecture step (its own sample, forward and the
backward to alpha) is counted as it runs (``cost/train_flops/arch``); ``cost/flops`` and
``cost/eval_flops`` follow the argmax cell that eval mode runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from pydantic import Field, StrictFloat, model_validator

from growray.config import ConfigIssue, Section
from growray.nas import tau_at
from growray.train import Trainer

from .config import NasConfig
from .darts import SUPERNETS, DartsHook
from .methods import NAS_METHODS

__all__ = ["GdasHook", "GdasSettings"]


class GdasSettings(Section):
    """GDAS' temperature schedule (``nas.gdas``): linear per epoch from tau_max to tau_min."""

    tau_max: StrictFloat = Field(10.0, gt=0, description="Gumbel-softmax temperature of the first epoch (GDAS: 10)")
    tau_min: StrictFloat = Field(0.1, gt=0, description="temperature of the last epoch (GDAS: 0.1)")

    @model_validator(mode="after")
    def _ordered(self) -> GdasSettings:
        if self.tau_min > self.tau_max:
            raise ValueError(f"tau_min ({self.tau_min}) must be <= tau_max ({self.tau_max}): the temperature anneals")
        return self


@NAS_METHODS.register("gdas", supernet=SUPERNETS, space="darts_cnn", settings=GdasSettings)
class GdasHook(DartsHook):
    """GDAS: DARTS' search with one Gumbel-sampled op per edge in every training forward."""

    method = "gdas"

    def __init__(
        self, cfg: NasConfig, arch_split: tuple[torch.Tensor, torch.Tensor], batch_size: int, seed: int
    ) -> None:
        super().__init__(cfg, arch_split, batch_size, seed)
        self.gumbel_gen = torch.Generator().manual_seed(seed + 15485863)
        self.tau = self.settings.tau_max

    @property
    def settings(self) -> GdasSettings:
        s = self.cfg.settings
        return s if isinstance(s, GdasSettings) else GdasSettings()

    @classmethod
    def check_model(cls, model: dict[str, Any], cfg: NasConfig) -> list[ConfigIssue]:
        issues = super().check_model(model, cfg)
        if cfg.order != 1:
            issues.append(
                ConfigIssue("nas.order", "GDAS takes first-order architecture steps (a sampled forward)", cfg.order)
            )
        return issues

    def on_fit_start(self, trainer: Trainer) -> None:
        gumbel = self._pending_tensors.get("gumbel_gen") if self._pending_tensors else None
        super().on_fit_start(trainer)
        if gumbel is not None:
            self.gumbel_gen.set_state(gumbel)
        self._set_tau(trainer)

    def _set_tau(self, trainer: Trainer) -> None:
        s = self.settings
        self.tau = tau_at(min(trainer.epoch, trainer.cfg.epochs - 1), trainer.cfg.epochs, s.tau_max, s.tau_min)
        self._supernet(trainer).set_gumbel(self.tau, self.gumbel_gen)

    def on_batch_start(self, trainer: Trainer, xb: torch.Tensor, yb: torch.Tensor) -> None:
        self._set_tau(trainer)  # the epoch's temperature, before the architecture step samples
        super().on_batch_start(trainer, xb, yb)

    def on_epoch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> dict[str, float]:
        out = super().on_epoch_end(trainer, metrics)
        out["nas/tau"] = self.tau
        return out

    def tensor_state(self) -> dict[str, Any]:
        state = super().tensor_state()
        if state:
            state["gumbel_gen"] = self.gumbel_gen.get_state()
        return state
