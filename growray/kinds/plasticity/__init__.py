"""The ``plasticity`` kind: the Grow-vs-Prune protocol of the structural-plasticity study.

Section ``plasticity`` (:class:`PlasticityConfig`): a fixed-shape MLP whose hidden units are
switched by masks; training is split into cycles and, at each boundary, the prune arm
removes units (with IMP rewinding) or the grow arm activates dormant ones, so both reach
the same final budget (ALGORITHMS.md §7, §12). The hook reports the cycle accuracies,
time-averaged accuracy, newborn parities and the winning ticket's accuracy.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from growray.config import ConfigIssue, Experiment
from growray.kinds import KINDS, Kind, KindSetup
from growray.tracking.tables import Column

from .config import PlasticityConfig
from .hook import FrozenMaskHook, PlasticityHook

if TYPE_CHECKING:
    from growray.data import TensorSplits

__all__ = ["FrozenMaskHook", "PlasticityConfig", "PlasticityHook", "PlasticityKind"]

_PARITIES = [(when, what) for when in ("post", "exit", "end") for what in ("act", "grad")]


@KINDS.register("plasticity", description="Grow vs Prune: unit masks edited over cycles at a fixed budget")
class PlasticityKind(Kind[PlasticityConfig]):
    """Grow vs Prune over cycles (module docstring)."""

    name = "plasticity"
    section = PlasticityConfig
    metrics: ClassVar[dict[str, str]] = {
        "plasticity/cycle": "Grow-vs-Prune: index of the current cycle",
        "plasticity/cycle_acc": "Grow-vs-Prune: validation accuracy at the end of each cycle (while editing)",
        "plasticity/taa": "Grow-vs-Prune: time-averaged validation accuracy over the epochs so far",
        "plasticity/active_units": "Grow-vs-Prune: active (unmasked) hidden units",
        "plasticity/active_weights": "Grow-vs-Prune: weights of the active units",
        "plasticity/wt_acc": "winning ticket: test accuracy of the final mask retrained from re-initialised weights",
        "plasticity/wt_val_acc": "winning ticket: its final validation accuracy",
        **{
            f"plasticity/{when}_{what}_parity": f"log(newborn or removed / incumbent) {what} at {when} of a cycle"
            for when, what in _PARITIES
        },
    }
    columns: ClassVar[tuple[Column, ...]] = (
        Column("units", "plasticity/active_units", digits=0),
        Column("taa", "plasticity/taa", digits=4),
    )
    metric_prefixes: ClassVar[dict[str, str]] = {
        "plasticity/active_units/": "active units at one site",
        **{
            f"plasticity/{when}_{what}_parity/": "the same parity at one site or for one cohort (cycle<k>)"
            for when, what in _PARITIES
        },
    }

    def check(self, exp: Experiment, cfg: PlasticityConfig) -> list[ConfigIssue]:
        issues = []
        if exp.trainer.epochs % cfg.cycles:
            issues.append(
                ConfigIssue(
                    "plasticity.cycles",
                    f"trainer.epochs ({exp.trainer.epochs}) must be a multiple of the "
                    f"cycles; e.g. trainer.epochs: {cfg.cycles * max(1, exp.trainer.epochs // cfg.cycles)}",
                    cfg.cycles,
                )
            )
        for other in sorted(exp.kinds):
            if other != self.name:
                issues.append(
                    ConfigIssue(
                        other,
                        f"the Grow-vs-Prune protocol edits unit masks of a fixed network: remove {other} or plasticity",
                        "set",
                    )
                )
        if exp.model["name"] != "mlp":
            issues.append(
                ConfigIssue("model.name", "plasticity edits the hidden units of an 'mlp' model", exp.model["name"])
            )
        elif cfg.sites is not None:
            hidden = exp.model.get("hidden", [32])
            known = [f"hidden.{i}" for i in range(len(hidden))]
            unknown = [s for s in cfg.sites if s not in known]
            if unknown:
                issues.append(
                    ConfigIssue(
                        "plasticity.sites", f"not sites of this model; its sites are {', '.join(known)}", unknown
                    )
                )
        return issues

    def setup(self, exp: Experiment, cfg: PlasticityConfig, splits: TensorSplits) -> KindSetup:
        x_val, y_val = splits.val
        k = min(exp.trainer.probe_size, len(x_val))
        return KindSetup([PlasticityHook(cfg, (x_val[:k], y_val[:k]), seed=exp.seed)], splits)
