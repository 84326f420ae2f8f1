"""ENAS on the NAS-Bench-201 space: ``nas: {method: enas}`` with ``model: {space: nb201}``.

The ENAS hook's loop (``growray.kinds.nas.enas``: one sampled cell per weight step, the
controller trained by REINFORCE after each epoch's weight training, a cell derived by
sampling ``nas.derive_samples`` cells and scoring each on one batch, evaluation with batch
statistics) on ``nb201_supernet``: its ``set_arch`` runs the sampled cell on the shared
weights (each edge computes only its op; alpha takes no part), and the controller samples
one op per edge (``growray.nas.enas_nb201.Nb201EnasController``, settings from
``nas.controller``). Every gap measurement also logs the derived cell's table accuracy,
``nas/benchmark_val_acc``, as on DARTS' NAS-Bench-201 searches (``search_hook``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from growray.config import ConfigIssue
from growray.nas import Nb201Genotype, Nb201Supernet
from growray.nas.enas_nb201 import Nb201EnasController
from growray.nas.reinforce import CellController
from growray.train import Trainer

from .config import NasConfig
from .enas import EnasHook
from .methods import NAS_METHOD_VARIANTS

__all__ = ["Nb201EnasHook"]

_PC_KEYS = ("partial_channels", "edge_normalization")


@NAS_METHOD_VARIANTS.register("enas_nb201", method="enas", supernet="nb201_supernet", space="nb201")
class Nb201EnasHook(EnasHook):
    """ENAS on NAS-Bench-201's cell: one op per edge sampled by an LSTM, shared weights.

    The overrides below narrow the ENAS hook's supernet, controller and genotype from the
    micro space's types to NAS-Bench-201's (hence the ``override`` ignores): the loop that
    uses them only calls what both supernets have (``set_arch``, ``arch_accuracy``,
    ``discretized``, ``set_eval_batch_stats``).
    """

    @classmethod
    def check_model(cls, model: dict[str, Any], cfg: NasConfig) -> list[ConfigIssue]:
        """PC-DARTS' settings have no part in ENAS (a sampled cell runs every channel, unscaled)."""
        return [
            ConfigIssue(
                f"model.{key}",
                f"partial channels and edge normalisation are PC-DARTS: set nas.method: pcdarts, or remove "
                f"model.{key} for enas",
                model[key],
            )
            for key in _PC_KEYS
            if model.get(key) not in (None, False)
        ]

    @staticmethod
    def _supernet(trainer: Trainer) -> Nb201Supernet:  # type: ignore[override]
        model = trainer.model
        if not isinstance(model, Nb201Supernet):
            raise TypeError(f"ENAS on the NAS-Bench-201 space needs an nb201_supernet; got {type(model).__name__}")
        return model

    def _new_controller(self, model: Nb201Supernet) -> CellController[Any]:  # type: ignore[override]
        c = self.cfg.controller
        return Nb201EnasController(
            nodes=model.nodes,
            op_names=tuple(model.op_names),
            hidden=c.hidden,
            tanh_constant=c.tanh_constant,
            op_tanh_reduce=c.op_tanh_reduce,
            temperature=c.temperature,
        )

    def _current(self) -> Nb201Genotype:  # type: ignore[override]
        """The derived cell."""
        if not isinstance(self.genotype, Nb201Genotype):
            raise RuntimeError(f"ENAS on NAS-Bench-201 holds a NAS-Bench-201 genotype; got {self.genotype!r}")
        return self.genotype

    def on_epoch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> dict[str, float]:
        out = super().on_epoch_end(trainer, metrics)
        if "nas/gap" in out:  # a cell was derived and measured this epoch
            out.update(self._benchmark_metrics(trainer, self._current()))
        return out
