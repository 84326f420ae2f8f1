"""What the NAS methods' trainer hooks share: the architecture split, the gap, artifacts.

The trainer trains the supernet's *weights* on the weight part of the training split, as for
any model; a NAS hook adds the architecture side (``darts``, ``enas``: see their modules).
Every ``nas.eval_every_epochs`` the hook measures the relaxed-vs-discretized gap:
``nas/relaxed_val_acc`` is the supernet as searched (the trainer's ``val/acc``),
``nas/discrete_val_acc`` the discretized network evaluated with the weights it inherits
from the supernet after its BatchNorm statistics are recalibrated on a few training batches
(with the trainer's one ``evaluate``), and ``nas/gap`` their difference. The collapse signals
``nas/skip_fraction`` and ``nas/skip_count`` follow the genotype. Artifacts: ``genotype.json``
(every checkpoint), ``nas_history.json`` and ``plots/genotype.png`` at the end.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from growray.nas import Genotype, count_op, recalibrate_batchnorm, skip_fraction
from growray.train import Hook, Trainer, evaluate

from .config import NasConfig

__all__ = ["BatchCycler", "NasHook", "edge_labels"]


class BatchCycler:
    """Endless shuffled batches of a tensor pair, with a resumable state."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, batch_size: int, seed: int):
        if len(x) == 0:
            raise ValueError("the architecture split is empty: lower nas.arch_split or use more training data")
        self.x, self.y, self.batch_size = x, y, max(1, min(batch_size, len(x)))
        self.gen = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(len(x), generator=self.gen)
        self.pos = 0

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self.pos + self.batch_size > len(self.perm):
            self.perm = torch.randperm(len(self.x), generator=self.gen)
            self.pos = 0
        idx = self.perm[self.pos : self.pos + self.batch_size].to(self.x.device)
        self.pos += self.batch_size
        return self.x[idx], self.y[idx]

    def state_dict(self) -> dict[str, Any]:
        return {"gen": self.gen.get_state(), "perm": self.perm.clone(), "pos": self.pos}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.gen.set_state(state["gen"])
        self.perm = state["perm"].clone()
        self.pos = int(state["pos"])


def edge_labels(edges: list[tuple[int, int]]) -> list[str]:
    """``(node, input)`` pairs as ``n0←c_{k-2}`` labels (inputs 0/1 are the cell inputs)."""
    names = {0: "c_{k-2}", 1: "c_{k-1}"}
    return [f"n{node}←{names.get(inp, f'n{inp - 2}')}" for node, inp in edges]


class NasHook(Hook):
    """What every NAS method's hook shares: the architecture split, the gap measurement,
    the collapse signals, and the genotype artifacts.

    Args:
        cfg: the ``nas`` section.
        arch_split: the held-out part of the training split (architecture steps, rewards).
        batch_size: batch size of architecture batches.
        seed: seeds the order of architecture batches.
    """

    name = "nas"

    def __init__(
        self, cfg: NasConfig, arch_split: tuple[torch.Tensor, torch.Tensor], batch_size: int, seed: int
    ) -> None:
        self.cfg = cfg
        self.arch = BatchCycler(*arch_split, batch_size=batch_size, seed=seed + 7919)
        self.genotype: Genotype | None = None
        self.history: list[dict[str, Any]] = []  # one entry per gap measurement
        self._pending_tensors: dict[str, Any] | None = None
        self._written_genotype: str | None = None

    # -- the gap
    def _due(self, trainer: Trainer) -> bool:
        return trainer.epoch % self.cfg.eval_every_epochs == 0 or trainer.epoch >= trainer.cfg.epochs

    def _discrete_accuracy(self, trainer: Trainer, network: nn.Module) -> tuple[float, float]:
        network = network.to(trainer.device)
        x_train, _ = trainer.data.train
        bs = trainer.cfg.batch_size
        recalibrate_batchnorm(network, (x_train[i * bs : (i + 1) * bs] for i in range(self.cfg.bn_calibration_batches)))
        x_val, y_val = trainer.data.val
        return evaluate(network, x_val, y_val, trainer.cfg.eval_batch_size)

    def _collapse_metrics(self, genotype: Genotype) -> dict[str, float]:
        return {
            "nas/skip_fraction": skip_fraction(genotype, "normal"),
            "nas/skip_count": float(count_op(genotype, "skip_connect", "normal")),
        }

    # -- artifacts
    def _log_genotype(self, trainer: Trainer) -> None:
        if self.genotype is None:
            return
        text = self.genotype.to_dict()
        key = repr(text)
        if key != self._written_genotype:
            trainer.recorder.log_dict(text, "genotype.json")
            self._written_genotype = key

    def on_checkpoint(self, trainer: Trainer) -> None:
        self._log_genotype(trainer)

    def on_fit_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> dict[str, float]:
        self._log_genotype(trainer)
        if self.history:
            trainer.recorder.log_dict({"history": self.history}, "nas_history.json")
        if self.genotype is not None:
            from growray.tracking.plots import genotype_figure

            trainer.recorder.log_figure(genotype_figure(self.genotype.to_dict()), "plots/genotype.png")
        return {}

    # -- state
    def state_dict(self) -> dict[str, Any]:
        return {"history": self.history, "genotype": None if self.genotype is None else self.genotype.to_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history = list(state.get("history", []))
        g = state.get("genotype")
        self.genotype = None if g is None else Genotype.from_dict(g)

    def load_tensor_state(self, state: dict[str, Any]) -> None:
        # The architect/controller is built in on_fit_start, after the trainer restored us.
        self._pending_tensors = state
