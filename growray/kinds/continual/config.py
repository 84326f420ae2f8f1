"""The ``continual`` section: the method and its settings, and the forgetting report's margin."""

from __future__ import annotations

from pydantic import Field, StrictFloat, StrictInt

from growray.config import Section

__all__ = ["ContinualConfig", "DENSection", "EWCSection", "ProgressiveSection"]


class ProgressiveSection(Section):
    """``continual.progressive``: Progressive Neural Networks (Rusu et al. 2016)."""

    column_width: StrictInt | None = Field(
        None, ge=1, description="width of every hidden layer of every column (null: model.hidden)"
    )
    laterals: bool = Field(True, description="lateral adapters from every earlier column (false: the ablation)")


class DENSection(Section):
    """``continual.den``: Dynamically Expandable Networks (Yoon et al. 2018)."""

    l1: StrictFloat = Field(1e-4, ge=0, description="λ1 of the L1 terms (proximal steps)")
    loss_threshold: StrictFloat = Field(
        0.1, ge=0, description="τ: expand when the task's training loss after selective retraining exceeds it"
    )
    expand_units: StrictInt = Field(16, ge=1, description="k: units added to every hidden layer on expansion")
    group_lambda: StrictFloat = Field(1e-3, ge=0, description="γ of the group lasso on the expansion units")
    drift_threshold: StrictFloat = Field(0.5, ge=0, description="σ: duplicate units whose fan-in moved by more (l2)")


class EWCSection(Section):
    """``continual.ewc``: elastic weight consolidation (Kirkpatrick et al. 2017)."""

    lam: StrictFloat = Field(100.0, ge=0, description="λ of (λ/2) Σ F (θ − θ*)², one term per earlier task")
    fisher_samples: StrictInt = Field(256, ge=1, description="training samples of each task the Fisher is estimated on")


class ContinualConfig(Section):
    """A task sequence trained in order by one method; ``trainer.epochs`` is the whole
    sequence's, split evenly over the tasks. The data section names a task-sequence dataset
    (``split_fashion_mnist``, ``split_mnist``, ``permuted_fashion_mnist``, ``split_digits``) and
    its setting; the model is ``continual_mlp``."""

    method: str = Field("finetune", description="finetune | progressive | den | ewc (growray.continual.CL_METHODS)")
    progressive: ProgressiveSection = Field(default_factory=ProgressiveSection)
    den: DENSection = Field(default_factory=DENSection)
    ewc: EWCSection = Field(default_factory=EWCSection)
    forgetting_margin: StrictFloat = Field(
        0.1,
        gt=0,
        lt=1,
        description="a task more than this below its best accuracy, while the average stayed within it of its "
        "best, is reported as forgetting the average hides",
    )
