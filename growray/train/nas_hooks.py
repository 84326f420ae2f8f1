"""DARTS and ENAS as hooks of the one trainer, with the relaxed-vs-discretized gap.

The trainer trains the supernet's *weights* on the weight half of the training split, as for
any model. The hooks add the architecture side:

- ``DartsHook`` takes one architecture step (``growray.nas.DartsArchitect``) on a batch of the
  held-out architecture half before every weight step, and every ``nas.eval_every_epochs``
  measures the gap: ``nas/relaxed_val_acc`` is the supernet (the trainer's ``val/acc``),
  ``nas/discrete_val_acc`` the discretized network evaluated with the weights it inherits
  from the supernet after its BatchNorm statistics are recalibrated on a few training batches.
- ``EnasHook`` samples an architecture from the controller for every weight step, trains the
  controller with REINFORCE after every epoch (reward: accuracy on an architecture-half batch),
  and derives a cell by sampling ``nas.derive_samples`` cells and scoring each on one batch.
  ``nas/relaxed_val_acc`` is that cell on the shared weights with batch statistics (as during
  the search), ``nas/discrete_val_acc`` the same cell as a stand-alone network with inherited
  weights and recalibrated BatchNorm statistics.

Both log the collapse signals ``nas/skip_fraction`` (parameter-free ops in the normal cell)
and, for DARTS, ``nas/alpha_entropy``; ``nas.early_stop_skips`` ends a DARTS search when the
normal cell holds that many ``skip_connect`` (the DARTS+ rule), recorded as the stop reason.
Artifacts: ``genotype.json`` (every checkpoint), ``alphas.json`` and plots at the end.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from growray.config import NasConfig
from growray.nas import (
    Genotype,
    alpha_entropy,
    count_op,
    recalibrate_batchnorm,
    skip_fraction,
)

from .hooks import Hook

if TYPE_CHECKING:
    from .trainer import Trainer

__all__ = ["BatchCycler", "DartsHook", "EnasHook", "accuracy", "edge_labels"]


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


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1024) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` on ``(x, y)`` in eval mode."""
    was_training = model.training
    model.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(x), batch_size):
        logits = model(x[i : i + batch_size])
        loss += F.cross_entropy(logits, y[i : i + batch_size], reduction="sum").item()
        correct += (logits.argmax(1) == y[i : i + batch_size]).sum().item()
    model.train(was_training)
    n = max(len(x), 1)
    return loss / n, correct / n


def edge_labels(edges: list[tuple[int, int]]) -> list[str]:
    """``(node, input)`` pairs as ``n0←c_{k-2}`` labels (inputs 0/1 are the cell inputs)."""
    names = {0: "c_{k-2}", 1: "c_{k-1}"}
    return [f"n{node}←{names.get(inp, f'n{inp - 2}')}" for node, inp in edges]


class _NasHook(Hook):
    """What DARTS and ENAS share: the architecture split, the gap measurement, artifacts."""

    name = "nas"

    def __init__(self, cfg: NasConfig, arch_split: tuple[torch.Tensor, torch.Tensor], batch_size: int, seed: int):
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
        return accuracy(network, x_val, y_val, trainer.cfg.eval_batch_size)

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

    def on_fit_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        self._log_genotype(trainer)
        if self.history:
            trainer.recorder.log_dict({"history": self.history}, "nas_history.json")
        if self.genotype is not None:
            from growray.tracking.plots import genotype_figure

            trainer.recorder.log_figure(genotype_figure(self.genotype.to_dict()), "plots/genotype.png")

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


class DartsHook(_NasHook):
    """Bilevel DARTS: an architecture step before every weight step (see module docstring)."""

    def __init__(self, cfg: NasConfig, arch_split: tuple[torch.Tensor, torch.Tensor], batch_size: int, seed: int):
        super().__init__(cfg, arch_split, batch_size, seed)
        self.architect: Any = None
        self.last_arch_stats: dict[str, float] = {}

    def on_fit_start(self, trainer: Trainer) -> None:
        from growray.nas import DartsArchitect

        if not hasattr(trainer.model, "arch_parameters"):
            raise TypeError(f"nas.method 'darts' needs a darts_supernet model; got {type(trainer.model).__name__}")
        self.architect = DartsArchitect(
            trainer.model,
            lr=self.cfg.arch_lr,
            betas=tuple(self.cfg.arch_betas),
            weight_decay=self.cfg.arch_weight_decay,
            order=self.cfg.order,
            grad_clip=self.cfg.arch_grad_clip,
        )
        if self._pending_tensors:
            self.architect.load_state_dict(self._pending_tensors["architect"])
            self.arch.load_state_dict(self._pending_tensors["arch_batches"])
            self._pending_tensors = None
        self.genotype = trainer.model.genotype()

    def on_batch_start(self, trainer: Trainer, xb: torch.Tensor, yb: torch.Tensor) -> None:
        if trainer.epoch < self.cfg.warmup_epochs:
            return
        self.last_arch_stats = self.architect.step((xb, yb), self.arch.next(), trainer.optimizer)

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        model = trainer.model
        self.genotype = model.genotype()
        metrics.update({k: float(v) for k, v in self.last_arch_stats.items()})
        metrics["nas/alpha_entropy"] = alpha_entropy(model.arch_parameters()[0].detach())
        metrics["nas/alpha_entropy_reduce"] = alpha_entropy(model.arch_parameters()[1].detach())
        metrics.update(self._collapse_metrics(self.genotype))
        if self._due(trainer):
            relaxed = metrics["val/acc"]
            _, discrete = self._discrete_accuracy(trainer, model.discretized(self.genotype))
            metrics.update(
                {"nas/relaxed_val_acc": relaxed, "nas/discrete_val_acc": discrete, "nas/gap": relaxed - discrete}
            )
            self.history.append(
                {
                    "epoch": trainer.epoch,
                    "step": trainer.step,
                    "alphas": {k: v.detach().cpu().tolist() for k, v in model.alphas().items()},
                    "genotype": self.genotype.to_dict(),
                    "relaxed_val_acc": relaxed,
                    "discrete_val_acc": discrete,
                }
            )
        limit = self.cfg.early_stop_skips
        if limit is not None and trainer.epoch > self.cfg.warmup_epochs and metrics["nas/skip_count"] >= limit:
            metrics["nas/early_stopped"] = 1.0
            trainer.request_stop(
                f"DARTS+ early stop at epoch {trainer.epoch}: the normal cell holds "
                f"{int(metrics['nas/skip_count'])} skip_connect (nas.early_stop_skips = {limit})"
            )

    def on_fit_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        super().on_fit_end(trainer, metrics)
        model = trainer.model
        alphas = {k: v.detach().cpu().tolist() for k, v in model.alphas().items()}
        trainer.recorder.log_dict(
            {"op_names": list(model.op_names), "edges": model.edges(), "alphas": alphas}, "alphas.json"
        )
        from growray.tracking.plots import alpha_heatmap_figure, alpha_history_figure

        labels = edge_labels(model.edges())
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

    def tensor_state(self) -> dict[str, Any]:
        if self.architect is None:
            return {}
        return {"architect": self.architect.state_dict(), "arch_batches": self.arch.state_dict()}


class EnasHook(_NasHook):
    """ENAS: shared weights trained on sampled cells, the controller by REINFORCE."""

    def __init__(self, cfg: NasConfig, arch_split: tuple[torch.Tensor, torch.Tensor], batch_size: int, seed: int):
        super().__init__(cfg, arch_split, batch_size, seed)
        self.seed = seed
        self.search: Any = None
        self.sample_gen = torch.Generator().manual_seed(seed + 104729)

    def on_fit_start(self, trainer: Trainer) -> None:
        from growray.nas.enas import EnasController, EnasSearch

        model = trainer.model
        if not hasattr(model, "set_arch"):
            raise TypeError(f"nas.method 'enas' needs an enas_supernet model; got {type(model).__name__}")
        c = self.cfg.controller
        with torch.random.fork_rng(devices=[]):  # seeded initial weights; the trainer's RNG stream is untouched
            torch.manual_seed(self.seed)
            controller = EnasController(
                n_nodes=model.n_nodes,
                op_names=tuple(model.op_names),
                hidden=c.hidden,
                tanh_constant=c.tanh_constant,
                op_tanh_reduce=c.op_tanh_reduce,
                temperature=c.temperature,
            )
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
        model.set_arch(self.genotype if self.genotype is not None else self._sample())

    def _sample(self) -> Genotype:
        with torch.no_grad():
            genotype, _, _ = self.search.controller.sample(generator=self.sample_gen)
        return genotype

    def on_batch_start(self, trainer: Trainer, xb: torch.Tensor, yb: torch.Tensor) -> None:
        trainer.model.set_arch(self._sample())

    def _reward_fn(self, model: nn.Module) -> Callable[[Genotype], float]:
        def reward(genotype: Genotype) -> float:
            return model.arch_accuracy(*self.arch.next(), genotype)

        return reward

    def on_epoch_end(self, trainer: Trainer, metrics: dict[str, float]) -> None:
        model = trainer.model
        stats = self.search.train_controller(self._reward_fn(model), self.cfg.controller.steps)
        metrics.update({k: float(v) for k, v in stats.items()})
        if self._due(trainer) or self.genotype is None:
            x_score, y_score = self.arch.next()
            self.genotype, _ = self.search.derive(
                lambda g: model.arch_accuracy(x_score, y_score, g), n_samples=self.cfg.derive_samples
            )
            model.set_arch(self.genotype)
            x_val, y_val = trainer.data.val
            bs = trainer.cfg.eval_batch_size
            relaxed = sum(
                model.arch_accuracy(x_val[i : i + bs], y_val[i : i + bs]) * len(y_val[i : i + bs])
                for i in range(0, len(y_val), bs)
            ) / max(len(y_val), 1)
            _, discrete = self._discrete_accuracy(trainer, model.discretized(self.genotype))
            metrics.update(
                {"nas/relaxed_val_acc": relaxed, "nas/discrete_val_acc": discrete, "nas/gap": relaxed - discrete}
            )
            # val/acc of a supernet trial: its derived cell on the shared weights (the trainer's own
            # evaluation used whichever cell was sampled last).
            metrics["val/acc"] = relaxed
            metrics.pop("val/loss", None)  # that loss was the last sampled cell's, not the derived one's
            self.history.append(
                {
                    "epoch": trainer.epoch,
                    "step": trainer.step,
                    "genotype": self.genotype.to_dict(),
                    "relaxed_val_acc": relaxed,
                    "discrete_val_acc": discrete,
                }
            )
        model.set_arch(self.genotype)  # the final test evaluation uses the derived cell
        metrics.update(self._collapse_metrics(self.genotype))

    def tensor_state(self) -> dict[str, Any]:
        if self.search is None:
            return {}
        return {
            "search": self.search.state_dict(),
            "arch_batches": self.arch.state_dict(),
            "sample_gen": self.sample_gen.get_state(),
        }


def build_nas_hook(
    cfg: NasConfig, arch_split: tuple[torch.Tensor, torch.Tensor], batch_size: int, seed: int
) -> _NasHook:
    cls = DartsHook if cfg.method == "darts" else EnasHook
    return cls(cfg, arch_split, batch_size, seed)
