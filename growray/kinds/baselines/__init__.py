"""The ``baselines`` kind: did growth help? The guide's baselines beside a growth experiment.

Section ``baselines`` (:class:`BaselinesConfig`), attached to any ``growth`` experiment. A
trial runs one arm (``baselines.arm``, swept with the seeds in the search space):

- ``grown``: the growth section as written;
- ``random_expansion``: the same trigger and schedule, newborns with random fan-in *and*
  fan-out (``growray.growth.random_expansion``; not function-preserving);
- ``small_static``: the initial architecture, never grown (the growth hook is not installed).

After each ``grown`` trial, its ``baselines.linked`` arms train in runs linked to it
(``linked.py`` says why they are linked runs rather than trials): ``dense_target`` (the final
grown architecture rebuilt from its spec, trained from scratch for the same epochs) and
``compute_matched`` (the same, stopped once it has spent the grown run's cumulative
``cost/train_flops``). Every arm shares the trial's data split, seed, optimizer and
learning-rate schedule, so arms pair per seed.

``static_sparse`` (opt-in: add it to ``baselines.linked``) is the dense target under the
``sparse`` kind's ``static`` updater: the final architecture with one random mask (ERK) drawn
at the start and fixed for the same epochs, its ``cost/*`` the effective (masked) counts. Its
sparsity is ``baselines.static_sparsity``; by default (null) the one at which it spends the
grown run's training FLOPs, because equal compute is the only budget the two can share (the
grown network has the final size only at its end; ``linked.py`` says more). The sparse kind
combines with ``baselines`` for this arm only (``SparseKind.check``).

Ablations need nothing more: a grid over ``growth.trigger.*`` (timing) or
``growth.initializer.name`` (every initializer under the same trigger) gives one grown row
per setting (``experiments/net2net_fashion_mnist.yaml`` shows it).

The sweep's parent run gets ``growth_report.md`` and ``plots/arms_vs_compute.png``
(:mod:`.report`); ``growray report EXPERIMENT|RUN_ID`` prints the same from MLflow later.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from growray.config import ConfigIssue, Experiment
from growray.kinds import KINDS, Kind, KindSetup, TrialOutcome, TrialStage
from growray.tracking.tables import Column

from .config import ARMS, LINKED, TRIAL_ARMS, BaselinesConfig
from .linked import FlopBudgetHook, budget_epochs, linked_experiment, matched_sparsity, train_linked

if TYPE_CHECKING:
    from growray.data import TensorSplits
    from growray.tracking.growth_report import ArmRun

__all__ = ["ARMS", "LINKED", "TRIAL_ARMS", "BaselinesConfig", "BaselinesKind", "FlopBudgetHook", "growth_report"]


@KINDS.register("baselines", description="the guide's baselines beside a growth experiment, and the growth report")
class BaselinesKind(Kind[BaselinesConfig]):
    """Baselines of a growth experiment (module docstring)."""

    name = "baselines"
    section = BaselinesConfig
    metrics: ClassVar[dict[str, str]] = {
        f"baselines/{arm}/{key}": f"{arm}: the linked run's final {key.replace('_', ' ')} (on the grown run)"
        for arm in LINKED
        for key in ("val_acc", "test_acc", "train_flops")
    }
    columns: ClassVar[tuple[Column, ...]] = (Column("dense test", "baselines/dense_target/test_acc", digits=4),)

    def check(self, exp: Experiment, cfg: BaselinesConfig) -> list[ConfigIssue]:
        issues = []
        if cfg.arm in TRIAL_ARMS and "growth" not in exp.kinds:
            issues.append(
                ConfigIssue(
                    "baselines.arm",
                    f"the {cfg.arm} arm is a variant of a growth experiment: add a growth section "
                    "(or use dense_target with a fixed model)",
                    cfg.arm,
                )
            )
        if cfg.arm == "static_sparse" and "sparse" not in exp.kinds:
            issues.append(
                ConfigIssue(
                    "baselines.arm",
                    "the static_sparse arm trains under the sparse kind's static updater: add "
                    "sparse: {updater: {name: static}, sparsity: ...} (a grown trial's linked run sets it), "
                    "or list static_sparse in baselines.linked of a grown experiment instead",
                    cfg.arm,
                )
            )
        if cfg.arm == "compute_matched" and cfg.flop_budget is None:
            issues.append(
                ConfigIssue(
                    "baselines.flop_budget",
                    "compute_matched needs the FLOP budget to stop at (a grown trial's linked run sets it)",
                    None,
                )
            )
        return issues

    def setup(self, exp: Experiment, cfg: BaselinesConfig, splits: TensorSplits) -> KindSetup:
        if cfg.arm == "compute_matched" and cfg.flop_budget is not None:
            return KindSetup([FlopBudgetHook(cfg.flop_budget)], splits)
        return KindSetup([], splits)

    def after_fit(self, exp: Experiment, cfg: BaselinesConfig, stage: TrialStage) -> dict[str, float]:
        """``grown`` trials: train the ``linked`` arms from the final architecture into linked
        runs; returns their accuracies as ``baselines/<arm>/*`` (also logged on the grown run)."""
        if cfg.arm != "grown" or not cfg.linked or stage.trainer.epoch == 0:
            return {}
        import json

        from growray.tracking.growth_report import finished_baseline, link_baseline, open_baseline_run

        spec = json.loads(stage.trainer.arch_json())
        budget = float(stage.final["cost/train_flops"])
        out: dict[str, float] = {}
        for arm in cfg.linked:
            done = finished_baseline(stage.tracking_uri, stage.run_id, arm)
            if done is not None:  # a restart after the fit: that linked run exists already
                out.update(done)
                continue
            if arm == "dense_target":
                linked = linked_experiment(exp, arm, spec, grown_run_id=stage.run_id)
            elif arm == "static_sparse":
                sparsity = cfg.static_sparsity
                if sparsity is None:  # the grown run's compute (linked.py says why)
                    sparsity = matched_sparsity(exp, spec, stage.dataset, budget)
                linked = linked_experiment(exp, arm, spec, grown_run_id=stage.run_id, sparsity=sparsity)
            else:
                epochs = budget_epochs(exp, spec, stage.dataset, budget)
                linked = linked_experiment(exp, arm, spec, grown_run_id=stage.run_id, flop_budget=budget, epochs=epochs)
            recorder = open_baseline_run(stage.tracking_uri, stage.run_id, arm)
            try:
                metrics = train_linked(linked, stage.dataset, recorder, stage.trainer.device)
            except BaseException as exc:
                recorder.set_tags({"growray.failure": f"{type(exc).__name__}: {exc}"[:5000]})
                recorder.close("FAILED")
                raise
            recorder.close("FINISHED")
            got = {
                f"baselines/{arm}/val_acc": float(metrics["val/acc"]),
                f"baselines/{arm}/test_acc": float(metrics["test/acc"]),
                f"baselines/{arm}/train_flops": float(metrics["cost/train_flops"]),
            }
            link_baseline(stage.tracking_uri, stage.run_id, arm, str(recorder.run_id), got)
            print(f"[growray] {arm} of {stage.run_id}: {got}", flush=True)
            out.update(got)
        return out

    def reports_after_fit(self, cfg: BaselinesConfig) -> int:
        return 1 if cfg.arm == "grown" and cfg.linked else 0

    def sweep_artifacts(self, exp: Experiment, cfg: BaselinesConfig, trials: Sequence[TrialOutcome]) -> dict[str, Any]:
        uri = next((t.tracking_uri for t in trials if t.tracking_uri), None)
        run_id = next((t.mlflow_run_id for t in trials if t.mlflow_run_id), None)
        if uri is None or run_id is None:
            return {}
        from growray.tracking.growth_report import resolve_sweep_run

        from .plots import arms_vs_compute_figure

        text, runs = growth_report(uri, resolve_sweep_run(uri, run_id))
        return {"growth_report.md": text, "plots/arms_vs_compute.png": arms_vs_compute_figure(runs)}


def growth_report(tracking_uri: str, sweep_run_id: str) -> tuple[str, list[ArmRun]]:
    """The growth report of the sweep ``sweep_run_id``, from MLflow alone: (Markdown, the runs)."""
    from growray.tracking import run_tags
    from growray.tracking.growth_report import sweep_arm_runs

    from .report import report_markdown

    runs = sweep_arm_runs(tracking_uri, sweep_run_id)
    title = run_tags(tracking_uri, sweep_run_id).get("growray.sweep", sweep_run_id)
    return report_markdown(title, runs), runs
