"""The ``nas`` kind: architecture search on a supernet, with the relaxed-vs-discretized gap.

Section ``nas`` (:class:`NasConfig`); ``nas.method`` names a registered NAS method
(``NAS_METHODS``: ``darts``, ``gdas``, ``pcdarts``, ``enas``), whose hook adds the architecture
side to the one trainer (ENAS on the NAS-Bench-201 space has a hook of its own, a
``NAS_METHOD_VARIANTS`` entry picked by the model). The supernet itself is the ``model``
section (``model: {space: darts_cnn}``, ``{space: pcdarts_cnn}``, ``{space: enas_micro}``,
``{space: nb201}`` for NAS-Bench-201's cell: DARTS, GDAS, PC-DARTS and ENAS).
After the search, ``nas.retrain.enabled`` trains the discretized architecture from scratch
inside the trial (``after_fit``); ``growray retrain RUN_ID`` does it later (``retrain_run``).
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from growray.config import ConfigIssue, Experiment
from growray.kinds import KINDS, Kind, KindSetup, TrialStage
from growray.registry import Registry
from growray.tracking.tables import Column

from . import darts as _darts  # noqa: F401  registers the method
from . import enas as _enas  # noqa: F401  registers the method
from . import enas_nb201 as _enas_nb201  # noqa: F401  registers ENAS on the NAS-Bench-201 space
from . import gdas as _gdas  # noqa: F401  registers the method
from . import pcdarts as _pcdarts  # noqa: F401  registers the method
from .benchmark import describe_genotype
from .config import ControllerConfig, NasConfig, RetrainConfig
from .methods import NAS_METHOD_VARIANTS, NAS_METHODS, method_entry, method_supernets
from .retrain import record_retrain, retrain_experiment, retrain_genotype, retrain_search_run
from .search_hook import BatchCycler, NasHook

if TYPE_CHECKING:
    from growray.data import TensorSplits

__all__ = [
    "NAS_METHODS",
    "NAS_METHOD_VARIANTS",
    "BatchCycler",
    "ControllerConfig",
    "NasConfig",
    "NasHook",
    "NasKind",
    "RetrainConfig",
    "describe_genotype",
    "record_retrain",
    "retrain_experiment",
    "retrain_genotype",
    "split_for_nas",
]

_METRICS = {
    "nas/relaxed_val_acc": "supernet validation accuracy (DARTS: the relaxed mixture; ENAS: the derived cell on shared weights)",
    "nas/discrete_val_acc": "the discretized network with inherited weights and recalibrated BatchNorm statistics",
    "nas/gap": "nas/relaxed_val_acc - nas/discrete_val_acc",
    "nas/skip_fraction": "share of parameter-free ops in the normal cell's genotype (collapse signal)",
    "nas/skip_count": "skip_connect ops in the normal cell's genotype",
    "nas/alpha_entropy": "mean entropy of softmax(alpha) over the normal cell's edges (nats)",
    "nas/alpha_entropy_reduce": "the same for the reduction cell",
    "nas/arch_loss": "DARTS: validation loss at the last architecture step",
    "nas/arch_grad_norm": "DARTS: norm of the last architecture gradient (before clipping)",
    "nas/early_stopped": "1 when the DARTS+ rule ended the search",
    "nas/retrain_val_acc": "the discretized architecture trained from scratch: validation accuracy",
    "nas/retrain_test_acc": "the same network's test accuracy",
    "nas/retrain_gap": "nas/relaxed_val_acc at the end of the search - nas/retrain_val_acc",
    "nas/controller_reward": "ENAS: mean reward of the controller's samples in its last update",
    "nas/controller_baseline": "ENAS: the moving-average reward baseline",
    "nas/controller_entropy": "ENAS: entropy of the controller's samples",
    "nas/controller_loss": "ENAS: REINFORCE loss of the last update",
    "nas/controller_log_prob": "ENAS: mean log-probability of the controller's samples",
    "nas/benchmark_val_acc": "NAS-Bench-201 space: the table's validation accuracy (%) of the current discretized cell",
    "nas/tau": "GDAS: the Gumbel-softmax temperature of the epoch",
}


def split_for_nas(
    exp: Experiment, cfg: NasConfig, splits: TensorSplits
) -> tuple[TensorSplits, tuple[torch.Tensor, torch.Tensor]]:
    """The training split's weight part (the trainer's ``train``) and the held-out
    architecture part (``nas.arch_split`` of it), drawn with the experiment's seed."""
    x, y = splits.train
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(exp.seed)).to(x.device)
    n_arch = round(len(x) * cfg.arch_split)
    if n_arch < 1 or n_arch >= len(x):
        raise ValueError(f"nas.arch_split {cfg.arch_split} leaves an empty half of {len(x)} training samples")
    w_idx, a_idx = perm[n_arch:], perm[:n_arch]
    return dataclasses.replace(splits, train=(x[w_idx], y[w_idx])), (x[a_idx], y[a_idx])


@KINDS.register(
    "nas", description="architecture search on a supernet (DARTS, GDAS, PC-DARTS, ENAS) with the relaxed/discrete gap"
)
class NasKind(Kind[NasConfig]):
    """Supernet search by a registered NAS method (module docstring)."""

    name = "nas"
    section = NasConfig
    registries: ClassVar[dict[str, Registry[Any]]] = {"nas.method": NAS_METHODS}
    metrics: ClassVar[dict[str, str]] = _METRICS
    columns: ClassVar[tuple[Column, ...]] = (
        Column("gap", "nas/gap", digits=3),
        Column("retrained", "nas/retrain_val_acc", digits=4),
    )

    def tag(self, cfg: NasConfig) -> str:
        return cfg.method

    def check(self, exp: Experiment, cfg: NasConfig) -> list[ConfigIssue]:
        from growray.data import describe_dataset
        from growray.models.meta import meta_model

        issues = []
        pairs = method_supernets(cfg.method)
        wanted = list(dict.fromkeys(s for s, _ in pairs))
        if exp.model["name"] not in wanted:
            spaces = " or ".join(f"{{space: {sp}}}" for sp in dict.fromkeys(sp for _, sp in pairs))
            issues.append(
                ConfigIssue(
                    "model.name",
                    f"nas.method {cfg.method!r} searches a {' or '.join(repr(w) for w in wanted)} model "
                    f"(e.g. model: {spaces})",
                    exp.model["name"],
                )
            )
        else:
            check_model = getattr(method_entry(cfg.method, exp.model["name"]).obj, "check_model", None)
            if callable(check_model):
                issues += check_model(exp.model, cfg)
        if exp.section("growth") is not None:
            issues.append(
                ConfigIssue(
                    "growth", "a trial either grows a network or searches a supernet: remove growth or nas", "set"
                )
            )
        shape = describe_dataset(exp.data)
        if shape is not None and not issues:
            try:
                meta_model(exp.model, shape[0], shape[1])
            except (ValueError, TypeError) as exc:
                hint = " (digits: set data.image: true)" if exp.data["name"] == "digits" and len(shape[0]) == 1 else ""
                issues.append(
                    ConfigIssue("model", f"cannot be built for {exp.data['name']} inputs {shape[0]}: {exc}{hint}")
                )
        if cfg.warmup_epochs >= exp.trainer.epochs:
            issues.append(
                ConfigIssue(
                    "nas.warmup_epochs",
                    f"must be below trainer.epochs ({exp.trainer.epochs}), or no architecture step ever happens",
                    cfg.warmup_epochs,
                )
            )
        return issues

    def setup(self, exp: Experiment, cfg: NasConfig, splits: TensorSplits) -> KindSetup:
        weights, arch = split_for_nas(exp, cfg, splits)
        hook = method_entry(cfg.method, exp.model["name"]).obj(cfg, arch, exp.trainer.batch_size, exp.seed)
        if isinstance(hook, NasHook):
            hook.dataset = str(exp.data["name"])
        return KindSetup([hook], weights)

    def after_fit(self, exp: Experiment, cfg: NasConfig, stage: TrialStage) -> dict[str, float]:
        """``nas.retrain.enabled``: train the found genotype from scratch into a linked run;
        returns the ``nas/retrain_*`` metrics, so the searcher sees ``nas/retrain_val_acc``. A
        worker that dies here restarts from the search's last checkpoint and retrains again."""
        if not cfg.retrain.enabled or stage.trainer.epoch == 0:
            return {}
        from growray.tracking import search_run_in_hand

        hook = next(h for h in stage.trainer.hooks if isinstance(h, NasHook))
        if hook.genotype is None:
            return {}
        search = search_run_in_hand(stage.tracking_uri, stage.run_id, exp.to_dict(), hook.genotype.to_dict())
        _, metrics = record_retrain(
            stage.tracking_uri,
            search,
            exp,
            cfg,
            stage.dataset,
            device=stage.trainer.device,
            relaxed_val_acc=stage.final.get("nas/relaxed_val_acc"),
        )
        retrained = {k: v for k, v in metrics.items() if k.startswith("nas/retrain")}
        print(f"[growray] retrained {search.run_id}: {retrained}", flush=True)
        return retrained

    def retrain_run(
        self, exp: Experiment, cfg: NasConfig, tracking_uri: str, run_id: str
    ) -> tuple[str, dict[str, float]]:
        return retrain_search_run(exp, cfg, tracking_uri, run_id)
