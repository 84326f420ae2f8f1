"""The ``sparse`` kind: dynamic sparse training (static sparse, SET, RigL, structured RigL).

Section ``sparse`` (:class:`SparseConfig`): per-weight masks on every Linear/Conv2d layer at
a global sparsity shared by a distribution (``uniform``, ``erk``), updated by a registered
mask updater (``growray.sparse.UPDATERS``) on the RigL schedule (ΔT, α with cosine decay,
T_end). ``dense: true`` is the dense baseline arm of the same sweep. The hook
(:class:`SparseHook`) reports sparsity, churn and the loss around updates; the core's
``cost/params``, ``cost/flops`` and ``cost/train_flops`` count active weights only. The
sweep's parent run gets the arms side by side (``sparse_report.md``, ``.json``,
``plots/sparse_report.png``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from growray.config import ConfigIssue, Experiment
from growray.kinds import KINDS, Kind, KindSetup, PluginSlot, TrialOutcome
from growray.sparse import DISTRIBUTIONS, UPDATERS, active_counts
from growray.tracking.tables import Column

from .config import SparseConfig
from .hook import SparseHook, sparse_layers, steps_per_epoch
from .report import arm_rows, report_markdown

if TYPE_CHECKING:
    from growray.data import TensorSplits

__all__ = ["SparseConfig", "SparseHook", "SparseKind", "sparse_layers", "steps_per_epoch"]


@KINDS.register("sparse", description="dynamic sparse training: static sparse, SET, RigL, structured RigL")
class SparseKind(Kind[SparseConfig]):
    """Dynamic sparse training (module docstring)."""

    name = "sparse"
    section = SparseConfig
    plugins: ClassVar[dict[str, PluginSlot]] = {
        "updater": PluginSlot(UPDATERS, construct=True),
        "distribution": PluginSlot(DISTRIBUTIONS, construct=True),
    }
    metrics: ClassVar[dict[str, str]] = {
        "sparse/sparsity": "share of zero-masked weights over every Linear/Conv2d weight",
        "sparse/mask_churn": "at an update: connections new after it / connections active before it",
        "sparse/drop_fraction": "at an update: the scheduled drop fraction (alpha/2)(1 + cos(pi t / T_end))",
        "sparse/loss_before_update": "probe-batch loss just before a mask update (eval mode)",
        "sparse/loss_after_update": "probe-batch loss just after a mask update (eval mode)",
        "sparse/updates": "mask updates so far",
        "cost/params_dense": "parameters of the dense model (cost/params counts active weights only)",
        "cost/flops_dense": "forward FLOPs per sample of the dense model (cost/flops is effective)",
    }
    metric_prefixes: ClassVar[dict[str, str]] = {
        "sparse/sparsity/": "sparsity of one layer (its qualified name, e.g. hidden.0.linear)",
        "sparse/mask_churn/": "mask churn of one layer at an update",
    }
    columns: ClassVar[tuple[Column, ...]] = (Column("sparsity", "sparse/sparsity", digits=3),)

    def check(self, exp: Experiment, cfg: SparseConfig) -> list[ConfigIssue]:
        issues = []
        for other in sorted(exp.kinds):
            if other == "baselines":
                issues += _check_baselines(exp, cfg)
            elif other != self.name:
                issues.append(
                    ConfigIssue(
                        other,
                        f"sparse training masks the weights of a fixed network; it does not combine with {other}: "
                        f"remove {other} or sparse",
                        "set",
                    )
                )
        if cfg.dense or issues:
            return issues
        return issues + _check_against_model(exp, cfg)

    def setup(self, exp: Experiment, cfg: SparseConfig, splits: TensorSplits) -> KindSetup:
        x_val, y_val = splits.val
        k = min(exp.trainer.probe_size, len(x_val))
        return KindSetup([SparseHook(cfg, (x_val[:k], y_val[:k]), seed=exp.seed)], splits)

    def sweep_artifacts(self, exp: Experiment, cfg: SparseConfig, trials: Sequence[TrialOutcome]) -> dict[str, Any]:
        from .plots import arms_figure

        rows = arm_rows(exp, cfg, trials)
        return {
            "sparse_report.md": report_markdown(exp, rows),
            "sparse_report.json": rows,
            "plots/sparse_report.png": arms_figure(rows),
        }


def _check_baselines(exp: Experiment, cfg: SparseConfig) -> list[ConfigIssue]:
    """Sparse combines with ``baselines`` in one case: the ``static_sparse`` arm (the dense
    target under a fixed random mask; a grown trial's linked run writes it)."""
    arm = getattr(exp.kinds["baselines"], "arm", None)
    if arm != "static_sparse":
        return [
            ConfigIssue(
                "baselines.arm",
                "sparse combines with baselines only in the static_sparse arm (a fixed random mask on the "
                "dense target); for a sparse baseline of a growth experiment list static_sparse in "
                "baselines.linked, or remove baselines or sparse",
                arm,
            )
        ]
    issues = []
    if cfg.dense:
        issues.append(ConfigIssue("sparse.dense", "the static_sparse arm needs a mask: set it to false", True))
    name = cfg.updater.get("name")
    if name != "static":
        issues.append(
            ConfigIssue("sparse.updater.name", "the static_sparse arm keeps its mask fixed: use static", name)
        )
    return issues


def _check_against_model(exp: Experiment, cfg: SparseConfig) -> list[ConfigIssue]:
    """Build the model on the meta device and check that it has sparse layers and that the
    distribution can reach the sparsity on them."""
    from growray.data import describe_dataset
    from growray.models.meta import meta_model

    shape = describe_dataset(exp.data)
    if shape is None:
        return []
    try:
        model: Any = meta_model(exp.model, shape[0], shape[1])
    except (ValueError, TypeError) as exc:
        return [ConfigIssue("model", f"cannot be built for {exp.data['name']} inputs {shape[0]}: {exc}")]
    layers = sparse_layers(model, cfg)
    if not layers:
        which = "sparse.dense_last" if cfg.dense_last else "sparse.dense_first"
        return [
            ConfigIssue(
                which,
                "with dense_first and dense_last this model has no sparse Linear/Conv2d layer left; "
                "set one of them to false",
                True,
            )
        ]
    try:
        densities = DISTRIBUTIONS.build(cfg.distribution).densities(layers, cfg.sparsity)
        active_counts(layers, densities)
    except ValueError as exc:
        return [ConfigIssue("sparse.sparsity", str(exc), cfg.sparsity)]
    return []
