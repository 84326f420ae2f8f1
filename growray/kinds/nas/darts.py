"""DARTS as a hook of the one trainer: bilevel search on a ``darts_supernet``.

Before every weight step the hook takes one architecture step (``growray.nas.DartsArchitect``,
first or second order) on a batch of the held-out architecture split. At each epoch's end it
reports the last architecture step's loss and gradient norm, the entropy of softmax(α) (a
collapse signal) and, every ``nas.eval_every_epochs``, the relaxed-vs-discretized gap; with
``nas.early_stop_skips`` it ends the search by the DARTS+ rule (that many ``skip_connect`` in
the normal cell), recorded as the stop reason. Artifacts at the end: ``alphas.json``,
``plots/alpha_heatmap.png`` and ``plots/alpha_history.png``. The supernet is a
``darts_supernet`` (DARTS' cells) or an ``nb201_supernet`` (NAS-Bench-201's, whose gap
measurements also log ``nas/benchmark_val_acc``). GDAS and PC-DARTS (``gdas.py``,
``pcdarts.py``) are this hook on the same supernets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from growray.config import ConfigIssue
from growray.nas import DartsArchitect, RelaxedSupernet, alpha_entropy
from growray.train import Trainer

from .config import NasConfig
from .methods import NAS_METHODS
from .search_hook import NasHook, edge_labels

__all__ = ["DartsHook"]


SUPERNETS = ("darts_supernet", "nb201_supernet")
_PC_KEYS = ("partial_channels", "edge_normalization")


@NAS_METHODS.register("darts", supernet=SUPERNETS, space="darts_cnn")
class DartsHook(NasHook):
    """DARTS: an architecture step on held-out data before every weight step (first or second order)."""

    method = "darts"

    @classmethod
    def check_model(cls, model: dict[str, Any], cfg: NasConfig) -> list[ConfigIssue]:
        """Config checks of the method against the supernet section (``NasKind.check`` calls it)."""
        return [
            ConfigIssue(
                f"model.{key}",
                f"partial channels and edge normalisation are PC-DARTS: set nas.method: pcdarts, or remove "
                f"model.{key} for {cls.method}",
                model[key],
            )
            for key in _PC_KEYS
            if model.get(key) not in (None, False)
        ]

    def __init__(
        self, cfg: NasConfig, arch_split: tuple[torch.Tensor, torch.Tensor], batch_size: int, seed: int
    ) -> None:
        super().__init__(cfg, arch_split, batch_size, seed)
        self.architect: DartsArchitect | None = None
        self.last_arch_stats: dict[str, float] = {}

    @classmethod
    def _supernet(cls, trainer: Trainer) -> RelaxedSupernet:
        model = trainer.model
        if not isinstance(model, RelaxedSupernet):
            raise TypeError(f"nas.method {cls.method!r} needs one of {SUPERNETS}; got {type(model).__name__}")
        return model

    @staticmethod
    def _edge_labels(model: RelaxedSupernet) -> list[str]:
        names = getattr(model, "edge_names", None)
        return list(names()) if callable(names) else edge_labels(model.edges())

    def on_fit_start(self, trainer: Trainer) -> None:
        model = self._supernet(trainer)
        self.architect = DartsArchitect(
            model,
            lr=self.cfg.arch_lr,
            betas=(self.cfg.arch_betas[0], self.cfg.arch_betas[1]),
            weight_decay=self.cfg.arch_weight_decay,
            order=self.cfg.order,
            grad_clip=self.cfg.arch_grad_clip,
        )
        if self._pending_tensors:
            self.architect.load_state_dict(self._pending_tensors["architect"])
            self.arch.load_state_dict(self._pending_tensors["arch_batches"])
            self._pending_tensors = None
        self.genotype = model.genotype()

    def on_batch_start(self, trainer: Trainer, xb: torch.Tensor, yb: torch.Tensor) -> None:
        if trainer.epoch < self.cfg.warmup_epochs or self.architect is None:
            return
        batch = self._arch_batch(trainer)
        step = self.architect.step  # its FLOPs (unrolled step and finite-difference HVP included) count
        if self.cfg.order == 1:  # first order under the trainer's autocast; the unrolled step stays float32
            with trainer.precision.autocast():
                self.last_arch_stats = self._arch_compute(trainer, step, (xb, yb), batch, trainer.optimizer)
        else:
            self.last_arch_stats = self._arch_compute(trainer, step, (xb, yb), batch, trainer.optimizer)

    def on_epoch_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> dict[str, float]:
        model = self._supernet(trainer)
        self.genotype = genotype = model.genotype()
        out = {k: float(v) for k, v in self.last_arch_stats.items()}
        for name, logits in model.alpha_logits().items():
            key = "nas/alpha_entropy" if name in ("normal", "cell") else f"nas/alpha_entropy_{name}"
            out[key] = alpha_entropy(logits.detach())
        out.update(self._collapse_metrics(genotype))
        if self._due(trainer):
            relaxed = metrics["val/acc"]
            _, discrete = self._discrete_accuracy(trainer, model.discretized(genotype))
            out.update(
                {"nas/relaxed_val_acc": relaxed, "nas/discrete_val_acc": discrete, "nas/gap": relaxed - discrete}
            )
            out.update(self._benchmark_metrics(trainer, genotype))
            self.history.append(
                {
                    "epoch": trainer.epoch,
                    "step": trainer.step,
                    "alphas": {k: v.detach().cpu().tolist() for k, v in model.alphas().items()},
                    "genotype": genotype.to_dict(),
                    "relaxed_val_acc": relaxed,
                    "discrete_val_acc": discrete,
                }
            )
        limit = self.cfg.early_stop_skips
        if limit is not None and trainer.epoch > self.cfg.warmup_epochs and out["nas/skip_count"] >= limit:
            out["nas/early_stopped"] = 1.0
            trainer.request_stop(
                f"DARTS+ early stop at epoch {trainer.epoch}: the normal cell holds "
                f"{int(out['nas/skip_count'])} skip_connect (nas.early_stop_skips = {limit})"
            )
        return out

    def on_fit_end(self, trainer: Trainer, metrics: Mapping[str, float]) -> dict[str, float]:
        super().on_fit_end(trainer, metrics)
        model = self._supernet(trainer)
        alphas = {k: v.detach().cpu().tolist() for k, v in model.alphas().items()}
        record: dict[str, Any] = {"op_names": list(model.op_names), "edges": model.edges(), "alphas": alphas}
        scales = model.edge_scales()
        if scales is not None:
            record["edge_weights"] = {k: v.detach().cpu().tolist() for k, v in scales.items()}
        trainer.recorder.log_dict(record, "alphas.json")
        from growray.tracking.plots import alpha_heatmap_figure, alpha_history_figure

        labels = self._edge_labels(model)
        trainer.recorder.log_figure(
            alpha_heatmap_figure(alphas, list(model.op_names), labels, title="softmax(α) at the end"),
            "plots/alpha_heatmap.png",
        )
        if len(self.history) >= 2:
            trainer.recorder.log_figure(
                alpha_history_figure(
                    [h["alphas"] for h in self.history],
                    list(model.op_names),
                    labels,
                    epochs=[h["epoch"] for h in self.history],
                ),
                "plots/alpha_history.png",
            )
        return {}

    def tensor_state(self) -> dict[str, Any]:
        if self.architect is None:
            return {}
        return {"architect": self.architect.state_dict(), "arch_batches": self.arch.state_dict()}
