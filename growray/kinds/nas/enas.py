"""ENAS as a hook of the one trainer: shared weights trained on sampled cells, an LSTM
controller trained by REINFORCE.

For every weight step the hook samples an architecture from the controller. At the end of
each epoch's training, before the trainer's validation, it trains the controller (reward:
accuracy on an architecture-split batch) and, every ``nas.eval_every_epochs``, derives a
cell by sampling ``nas.derive_samples`` cells and scoring each on one batch. The supernet
is then set to the derived cell and switched to *batch statistics in eval mode*
(``EnasSupernet.eval_batch_stats``): the shared BatchNorm running statistics average over
every architecture trained so far and misjudge any single one, so ENAS scores cells with
each batch's own statistics. The trainer's one evaluation therefore measures the derived
cell as ENAS does: ``val/acc`` (= ``nas/relaxed_val_acc``), ``val/loss`` and ``test/acc`` are
the derived cell on the shared weights with batch statistics. ``nas/discrete_val_acc`` is the
same cell as a stand-alone network with inherited weights and recalibrated running statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from growray.nas import Genotype
from growray.nas.enas import EnasController, EnasSearch, EnasSupernet
from growray.nas.reinforce import CellController
from growray.train import Trainer

from .config import NasConfig
from .methods import NAS_METHODS
from .search_hook import NasHook

__all__ = ["EnasHook"]


@NAS_METHODS.register("enas", supernet="enas_supernet", space="enas_micro")
class EnasHook(NasHook):
    """ENAS: shared weights trained on sampled cells, an LSTM controller trained by REINFORCE."""

    def __init__(
        self, cfg: NasConfig, arch_split: tuple[torch.Tensor, torch.Tensor], batch_size: int, seed: int
    ) -> None:
        super().__init__(cfg, arch_split, batch_size, seed)
        self.seed = seed
        self.search: EnasSearch | None = None
        self.sample_gen = torch.Generator().manual_seed(seed + 104729)
        self._epoch_stats: dict[str, float] = {}
        self._derived_at: int | None = None  # the epoch whose end derived the current genotype

    @staticmethod
    def _supernet(trainer: Trainer) -> EnasSupernet:
        model = trainer.model
        if not isinstance(model, EnasSupernet):
            raise TypeError(f"nas.method 'enas' needs an enas_supernet model; got {type(model).__name__}")
        return model

    def _controller(self) -> EnasSearch:
        if self.search is None:
            raise RuntimeError("the ENAS controller is built in on_fit_start; the trainer has not started")
        return self.search

    def on_fit_start(self, trainer: Trainer) -> None:
        model = self._supernet(trainer)
        c = self.cfg.controller
        with torch.random.fork_rng(devices=[]):  # seeded initial weights; the trainer's RNG stream is untouched
            torch.manual_seed(self.seed)
            controller = self._new_controller(model)
        self.search = EnasSearch(
            controller,
            lr=c.lr,
            baseline_decay=c.baseline_decay,
            entropy_weight=c.entropy_weight,
            samples_per_step=c.samples_per_step,
            grad_clip=c.grad_clip,
        )
        if self._pending_tensors:
            self.search.load_state_dict(self._pending_tensors["search"])
            self.arch.load_state_dict(self._pending_tensors["arch_batches"])
            self.sample_gen.set_state(self._pending_tensors["sample_gen"])
            self._pending_tensors = None
        model.set_eval_batch_stats(True)  # evaluation scores cells as ENAS does (module docstring)
        model.set_arch(self._current() if self.genotype is not None else self._sample())

    def _new_controller(self, model: EnasSupernet) -> CellController[Any]:
        """The controller of ``model``'s cells (the NAS-Bench-201 hook builds its own)."""
        c = self.cfg.controller
        return EnasController(
            n_nodes=model.n_nodes,
            op_names=tuple(model.op_names),
            hidden=c.hidden,
            tanh_constant=c.tanh_constant,
            op_tanh_reduce=c.op_tanh_reduce,
            temperature=c.temperature,
        )

    def _current(self) -> Genotype:
        """The derived cell (a DARTS/ENAS genotype: ENAS searches its micro cells)."""
        if not isinstance(self.genotype, Genotype):
            raise RuntimeError(f"ENAS holds a micro-cell genotype; got {self.genotype!r}")
        return self.genotype

    def _sample(self) -> Genotype:
        with torch.no_grad():
            genotype, _, _ = self._controller().controller.sample(generator=self.sample_gen)
        return genotype

    def on_batch_start(self, trainer: Trainer, xb: torch.Tensor, yb: torch.Tensor) -> None:
        self._supernet(trainer).set_arch(self._arch_compute(trainer, self._sample))  # controller forward

    def _reward_fn(self, model: EnasSupernet) -> Callable[[Genotype], float]:
        def reward(genotype: Genotype) -> float:
            return model.arch_accuracy(*self.arch.next(), genotype)

        return reward

    def before_validation(self, trainer: Trainer) -> None:
        """Train the controller; when due, derive a cell; evaluate the derived cell."""
        model = self._supernet(trainer)
        search = self._controller()
        # controller training (rewards on architecture batches, REINFORCE) and deriving count as
        # search compute (cost/train_flops/arch)
        stats = self._arch_compute(trainer, search.train_controller, self._reward_fn(model), self.cfg.controller.steps)
        self._epoch_stats = {k: float(v) for k, v in stats.items()}
        if self._due(trainer) or self.genotype is None:
            x_score, y_score = self.arch.next()
            self.genotype, _ = self._arch_compute(
                trainer,
                search.derive,
                lambda g: model.arch_accuracy(x_score, y_score, g),
                n_samples=self.cfg.derive_samples,
            )
            self._derived_at = trainer.epoch
        model.set_arch(self._current())  # the trainer's validation (and the final test) use the derived cell

    def on_epoch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> dict[str, float]:
        model = self._supernet(trainer)
        assert self.genotype is not None  # derived in before_validation
        out = dict(self._epoch_stats)
        if self._derived_at == trainer.epoch:
            relaxed = metrics["val/acc"]
            _, discrete = self._discrete_accuracy(trainer, model.discretized(self._current()))
            out.update(
                {"nas/relaxed_val_acc": relaxed, "nas/discrete_val_acc": discrete, "nas/gap": relaxed - discrete}
            )
            self.history.append(
                {
                    "epoch": trainer.epoch,
                    "step": trainer.step,
                    "genotype": self.genotype.to_dict(),
                    "relaxed_val_acc": relaxed,
                    "discrete_val_acc": discrete,
                }
            )
        out.update(self._collapse_metrics(self.genotype))
        return out

    def tensor_state(self) -> dict[str, Any]:
        if self.search is None:
            return {}
        return {
            "search": self.search.state_dict(),
            "arch_batches": self.arch.state_dict(),
            "sample_gen": self.sample_gen.get_state(),
        }
