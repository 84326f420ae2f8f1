"""The ``continual`` kind: task sequences trained in order by finetune, progressive, den or ewc.

Section ``continual`` (:class:`ContinualConfig`); the data section names a task-sequence
dataset (``growray.data.tasks``) and its ``setting`` (task- or class-incremental), the model
is ``continual_mlp``. The task loop is the hook :class:`ContinualHook` on the one trainer
(``trainer.epochs`` = tasks x epochs per task). Metrics at step = task index: ``cl/acc/task_<j>``,
``cl/avg_acc``, ``cl/forgetting``, ``cl/bwt``, ``cl/fwt`` (Lopez-Paz & Ranzato 2017), ``cl/params``,
``cl/train_flops``; artifacts ``accuracy_matrix.json`` and ``plots/accuracy_matrix.png``; the tag
``growray.cl.average_hides_forgetting``. The sweep's parent run gets the comparison
(``continual_report.md``, ``.json``, ``plots/continual_matrices.png``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from growray.config import ConfigIssue, Experiment
from growray.continual import CL_METHODS, ContinualMethod, TaskSequence
from growray.kinds import KINDS, Kind, KindSetup, TrialOutcome, TrialStage
from growray.tracking.tables import Column

from .config import ContinualConfig, DENSection, EWCSection, ProgressiveSection
from .hook import ContinualHook, row_metrics
from .report import arm_rows, report_markdown

if TYPE_CHECKING:
    from growray.data import TensorSplits

__all__ = [
    "ContinualConfig",
    "ContinualHook",
    "ContinualKind",
    "DENSection",
    "EWCSection",
    "ProgressiveSection",
    "build_method",
    "task_sequence",
]


def task_sequence(data: dict[str, Any]) -> TaskSequence | None:
    """The tasks a dataset section declares (its ``tasks`` capability), None if it declares none."""
    from growray.data import DATASETS

    info = DATASETS.get(data["name"]).capability("tasks")
    if info is None:
        return None
    tasks, setting, n_classes = info(**{k: v for k, v in data.items() if k != "name"})
    return TaskSequence.of(tasks, setting, n_classes)


def build_method(cfg: ContinualConfig, seed: int = 0) -> ContinualMethod:
    """The section's method, built with its own subsection (``continual.<method>``)."""
    params: dict[str, Any] = {"name": cfg.method}
    sub = getattr(cfg, cfg.method, None) if cfg.method in ContinualConfig.model_fields else None
    if sub is not None:
        params.update(sub.model_dump())
    if "seed" in CL_METHODS.user_parameters(cfg.method):
        params["seed"] = seed
    method = CL_METHODS.build(params)
    if not isinstance(method, ContinualMethod):
        raise TypeError(f"continual method {cfg.method!r} built a {type(method).__name__}, not a ContinualMethod")
    return method


@KINDS.register("continual", description="continual learning: finetune, progressive nets, DEN, EWC over task sequences")
class ContinualKind(Kind[ContinualConfig]):
    """Continual learning over a task sequence (module docstring)."""

    name = "continual"
    section = ContinualConfig
    registries: ClassVar[dict[str, Any]] = {"continual.method": CL_METHODS}
    metrics: ClassVar[dict[str, str]] = {
        "cl/avg_acc": "mean test accuracy over the tasks trained so far (step = task index)",
        "cl/val_avg_acc": "the same on the validation splits (for searches)",
        "cl/forgetting": "mean drop of each earlier task from its best accuracy (Chaudhry et al. 2018)",
        "cl/bwt": "backward transfer, mean_j R[i][j] - R[j][j] (GEM)",
        "cl/fwt": "forward transfer, mean_j R[j-1][j] - b_j (GEM)",
        "cl/params": "parameters after each task",
        "cl/train_flops": "cumulative training FLOPs after each task",
        "cl/task": "the task being trained (step = optimizer step)",
        "cl/hides_forgetting": "1 when a task dropped by more than the margin while the average stayed within it",
        "cl/tasks_done": "tasks trained and evaluated",
    }
    metric_prefixes: ClassVar[dict[str, str]] = {
        "cl/acc/task_": "test accuracy on task j after each task (step = task index)",
        "cl/R/": "reported only: R[i][j] (cl/R/<i>/<j>) and the baseline b_j (cl/R/b/<j>)",
    }
    columns: ClassVar[tuple[Column, ...]] = (
        Column("task", "cl/task", digits=0),
        Column("cl avg acc", "cl/avg_acc", digits=4),
        Column("forgetting", "cl/forgetting", digits=4),
    )

    def tag(self, cfg: ContinualConfig) -> str:
        return f"continual/{cfg.method}"

    def check(self, exp: Experiment, cfg: ContinualConfig) -> list[ConfigIssue]:
        issues = [
            ConfigIssue(other, f"continual learning does not combine with {other}: remove {other} or continual", "set")
            for other in sorted(exp.kinds)
            if other != self.name
        ]
        if exp.model.get("name") != "continual_mlp":
            issues.append(
                ConfigIssue("model.name", "the continual kind trains model continual_mlp", exp.model.get("name"))
            )
        if cfg.method not in CL_METHODS:
            issues.append(
                ConfigIssue(
                    "continual.method", f"is not a registered method; use one of {CL_METHODS.names()}", cfg.method
                )
            )
            return issues
        try:
            seq = task_sequence(exp.data)
        except (ValueError, TypeError) as exc:
            return [*issues, ConfigIssue("data", str(exc), exp.data.get("name"))]
        if seq is None:
            issues.append(
                ConfigIssue(
                    "data.name",
                    "is not a task-sequence dataset; use split_fashion_mnist, split_mnist, permuted_fashion_mnist "
                    "or split_digits",
                    exp.data.get("name"),
                )
            )
            return issues
        method: Any = CL_METHODS.get(cfg.method).obj
        if getattr(method, "task_incremental_only", False) and not seq.task_incremental:
            issues.append(
                ConfigIssue(
                    "data.setting",
                    f"{cfg.method} needs the task id (setting: task); it has no class-incremental form",
                    "class",
                )
            )
        epochs = exp.trainer.epochs
        if epochs % seq.n_tasks:
            issues.append(
                ConfigIssue(
                    "trainer.epochs",
                    f"is the whole sequence's and must be a multiple of the {seq.n_tasks} tasks "
                    f"(e.g. {seq.n_tasks * max(1, epochs // seq.n_tasks)})",
                    epochs,
                )
            )
        elif epochs // seq.n_tasks < getattr(method, "min_epochs", 1):
            need = method.min_epochs * seq.n_tasks
            issues.append(
                ConfigIssue(
                    "trainer.epochs",
                    f"{cfg.method} needs {method.min_epochs} epochs per task: set trainer.epochs >= {need}",
                    epochs,
                )
            )
        return issues

    def setup(self, exp: Experiment, cfg: ContinualConfig, splits: TensorSplits) -> KindSetup:
        seq = task_sequence(exp.data)
        if seq is None:
            raise ValueError(f"data.name {exp.data['name']!r} is not a task-sequence dataset")
        hook = ContinualHook(
            seq, build_method(cfg, exp.seed), splits, exp.trainer.epochs // seq.n_tasks, cfg.forgetting_margin
        )
        return KindSetup([hook], hook.splits(0))

    def reports_after_fit(self, cfg: ContinualConfig) -> int:
        return 1

    def after_fit(self, exp: Experiment, cfg: ContinualConfig, stage: TrialStage) -> dict[str, float]:
        """Writes the per-task rows a restore kept out of MLflow (their steps, task indices, lie
        below the restored run's last step), then reports the sequence's numbers once more."""
        hook = next((h for h in stage.trainer.hooks if isinstance(h, ContinualHook)), None)
        if hook is None or hook.n_done == 0:
            return {}
        _write_missing_rows(stage.tracking_uri, stage.run_id, hook)
        return hook.final_metrics()

    def sweep_artifacts(self, exp: Experiment, cfg: ContinualConfig, trials: Sequence[TrialOutcome]) -> dict[str, Any]:
        from .plots import arms_figure

        rows = arm_rows(exp, cfg, trials)
        return {
            "continual_report.md": report_markdown(exp, cfg, rows),
            "continual_report.json": rows,
            "plots/continual_matrices.png": arms_figure([r for r in rows if r["matrix"]]),
        }


def _write_missing_rows(tracking_uri: str, run_id: str, hook: ContinualHook) -> None:
    """Rows are logged in task order, all keys of a row together: the run holds rows
    0..max_logged_step(cl/avg_acc); the rest is written now (exactly once)."""
    from growray.tracking import MlflowRecorder, max_logged_step, search_run_in_hand

    have = max_logged_step(tracking_uri, run_id, "cl/avg_acc")
    if have >= hook.n_done - 1:
        return
    experiment_id = search_run_in_hand(tracking_uri, run_id, {}, {}).experiment_id
    recorder = MlflowRecorder(tracking_uri, experiment_id, run_id=run_id)
    for t in range(have + 1, hook.n_done):
        recorder.log_metrics(row_metrics(hook.matrix, hook.val, t, hook.params[t], hook.flops[t]), step=t)
    recorder.close("FINISHED")
