"""The typed experiment: frozen pydantic models, unknown keys rejected.

Plug-in sections (``data``, ``model``, ``growth.trigger``, ``growth.initializer``,
``search.sampler``) are mappings ``{name: ..., **params}`` whose parameters are checked
against the registered plug-in (see ``_plugins.py``); here they are plain dicts.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "Constraint",
    "CostsConfig",
    "Experiment",
    "GrowthConfig",
    "LatencyConfig",
    "NewbornDiagnosticsConfig",
    "Objective",
    "ResourcesConfig",
    "SchedulerConfig",
    "SearchConfig",
    "SearchParam",
    "TrackingConfig",
    "TrainerConfig",
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


PluginDict = dict[str, Any]


class TrainerConfig(_Section):
    """The training loop: one trainer, extended by hooks (growth is a hook)."""

    epochs: int = Field(10, ge=1, description="passes over the training split")
    batch_size: int = Field(64, ge=1)
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: float = Field(1e-3, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD momentum (sgd only)")
    weight_decay: float = Field(0.0, ge=0)
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="cosine: anneal per epoch from lr to lr_min over the epochs (DARTS)"
    )
    lr_min: float = Field(0.0, ge=0, description="the cosine schedule's final learning rate")
    grad_clip: float | None = Field(None, gt=0, description="clip the weights' gradient norm to this (DARTS: 5)")
    eval_batch_size: int = Field(1024, ge=1)
    probe_size: int = Field(
        128, ge=1, description="held-out validation samples on which each growth event measures preservation"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_every_steps: int = Field(10, ge=1, description="train/loss is logged every N optimizer steps")


class NewbornDiagnosticsConfig(_Section):
    """Newborn vs incumbent activation/gradient log-parity (growth/newborn_*_parity)."""

    every_steps: int = Field(25, ge=0, description="measure every N steps after an event (0: only at birth)")
    horizon_steps: int = Field(500, ge=0, description="stop measuring a cohort this many steps after its birth")
    tau: float = Field(0.05, ge=0, description="a unit counts as active where its output exceeds tau")
    enabled: bool = True


class GrowthConfig(_Section):
    """A growth strategy = trigger (when/where/how many) x initializer (how) x caps."""

    trigger: PluginDict
    initializer: PluginDict = Field(default_factory=lambda: {"name": "random"})
    deepen: PluginDict | None = Field(
        None, description="depth operator for the trigger's deepen requests: net2deeper | dropin (null: width only)"
    )
    max_depth: int | None = Field(None, ge=1, description="no more hidden layers than this")
    max_width: int | None = Field(None, ge=1, description="no site grows beyond this many units")
    sites: list[str] | None = Field(None, description="sites allowed to grow (default: all)")
    optimizer_state: Literal["zero", "transplant", "reset"] = Field(
        "zero",
        description="new units' optimizer slots: zero | transplant (matched incumbent) | reset (no Adam amplification)",
    )
    buffer_size: int = Field(
        256, ge=2, description="recent training samples kept for data-driven triggers and initializers"
    )
    diagnostics: NewbornDiagnosticsConfig = Field(default_factory=NewbornDiagnosticsConfig)


class SearchParam(_Section):
    """One searched value, addressed by its dotted path in the experiment."""

    type: Literal["float", "int", "categorical"]
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: list[Any] | None = None
    when: dict[str, Any] | None = Field(
        None, description="only sampled when every listed path has the given value (or one of a list)"
    )

    def labels(self) -> list[Any]:
        """What Optuna sees for the choices: scalars as they are, lists and mappings (an op
        set, a list of widths) as their JSON text, since Optuna stores scalar choices only."""
        return [choice_label(c) for c in self.choices or []]

    def decode(self, value: Any) -> Any:
        """The choice behind a label from ``labels`` (other values pass through)."""
        for choice in self.choices or []:
            if isinstance(choice, (list, dict)) and choice_label(choice) == value:
                return choice
        return value

    @model_validator(mode="after")
    def _check_kind(self) -> SearchParam:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
            if self.low is not None or self.high is not None:
                raise ValueError("a categorical parameter takes 'choices', not 'low'/'high'")
        else:
            if self.low is None or self.high is None:
                raise ValueError(f"a {self.type} parameter needs 'low' and 'high'")
            if self.choices is not None:
                raise ValueError(f"a {self.type} parameter takes 'low'/'high', not 'choices'")
            if self.low > self.high:
                raise ValueError(f"'low' ({self.low}) must not exceed 'high' ({self.high})")
            if self.log and self.low <= 0:
                raise ValueError(f"log scale needs low > 0 (got low={self.low})")
            if self.log and self.step is not None:
                raise ValueError("'step' and 'log' cannot be combined (Optuna rule)")
            if self.type == "int" and (float(self.low) != int(self.low) or float(self.high) != int(self.high)):
                raise ValueError("an int parameter needs integer 'low' and 'high'")
        return self


def choice_label(choice: Any) -> Any:
    """A categorical choice as Optuna can store it (JSON text for lists and mappings)."""
    if isinstance(choice, (list, dict)):
        import json

        return json.dumps(choice, sort_keys=True)
    return choice


class Objective(_Section):
    """One objective of a multi-objective search."""

    metric: str
    mode: Literal["min", "max"]


class Constraint(_Section):
    """``metric op value`` must hold for a trial to count as feasible (Optuna constraints)."""

    metric: str
    op: Literal["<=", ">="]
    value: float

    @model_validator(mode="before")
    @classmethod
    def _parse_string(cls, data: Any) -> Any:
        """Accept the short form ``"cost/latency_ms <= 2.0"``."""
        if isinstance(data, str):
            for op in ("<=", ">="):
                if op in data:
                    metric, value = data.split(op, 1)
                    try:
                        return {"metric": metric.strip(), "op": op, "value": float(value)}
                    except ValueError:
                        break
            raise ValueError(f"a constraint reads 'METRIC <= VALUE' or 'METRIC >= VALUE'; got {data!r}")
        return data

    def violation(self, value: float) -> float:
        """Optuna's convention: <= 0 when satisfied, the amount of violation otherwise."""
        return value - self.value if self.op == "<=" else self.value - value


class SchedulerConfig(_Section):
    """Trial scheduler: ``fifo`` runs every trial to the end; ``asha`` stops weak trials early
    on the first objective; ``pareto`` stops trials by non-dominated rank on all objectives;
    ``pbt`` (population-based training) copies the weights *and architecture* of good trials
    into weak ones and mutates the ``mutate`` parameters."""

    name: Literal["fifo", "asha", "pareto", "pbt"] = "fifo"
    grace_period: int = Field(2, ge=1, description="ASHA/pareto: epochs before a trial may be stopped")
    reduction_factor: float = Field(2.0, gt=1)
    perturbation_interval: int = Field(2, ge=1, description="PBT: epochs between exploit/explore decisions")
    mutate: list[str] = Field(default_factory=list, description="PBT: search-space parameters to perturb")
    quantile_fraction: float = Field(0.25, gt=0, le=0.5, description="PBT: bottom/top fraction that exploits/is copied")
    resample_probability: float = Field(0.25, ge=0, le=1)


class SearchConfig(_Section):
    space: dict[str, SearchParam] | str = Field(
        default_factory=dict, description="inline mapping, or the name of a file in search_spaces/"
    )
    sampler: PluginDict = Field(default_factory=lambda: {"name": "tpe"})
    metric: str = "val/acc"
    mode: Literal["min", "max"] = "max"
    objectives: list[Objective] = Field(
        default_factory=list, description="two or more objectives: a multi-objective (Pareto) search"
    )
    constraints: list[Constraint] = Field(default_factory=list, description="e.g. 'cost/latency_ms <= 2.0'")
    num_samples: int = Field(8, ge=1)
    max_concurrent: int = Field(2, ge=1)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    reuse_actors: bool = True
    max_failures: int = Field(2, ge=0, description="restarts of a trial whose worker died (from its checkpoint)")
    time_budget_s: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check_objectives(self) -> SearchConfig:
        if len(self.objectives) == 1:
            raise ValueError("objectives: give two or more for a Pareto search, or use metric/mode for one")
        names = [o.metric for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"objectives: each metric at most once; got {names}")
        if self.objectives and (self.metric, self.mode) not in (
            ("val/acc", "max"),  # the defaults: not set by the user
            (self.objectives[0].metric, self.objectives[0].mode),
        ):
            raise ValueError("set either metric/mode (one objective) or objectives (several), not both")
        if self.scheduler.name == "pareto" and not self.objectives:
            raise ValueError("scheduler 'pareto' ranks trials on several objectives: set search.objectives")
        if self.scheduler.name == "pbt":
            if self.objectives:
                raise ValueError("scheduler 'pbt' exploits on one metric: use metric/mode, not objectives")
            if not self.scheduler.mutate:
                raise ValueError("scheduler 'pbt' needs scheduler.mutate: search-space parameters to perturb")
            space = self.space if isinstance(self.space, dict) else {}
            for name in self.scheduler.mutate:
                if name not in space:
                    raise ValueError(
                        f"scheduler.mutate: {name!r} is not a search.space parameter ({', '.join(space) or 'none'})"
                    )
                if space[name].when:
                    raise ValueError(f"scheduler.mutate: {name!r} is conditional; PBT mutates unconditional parameters")
        return self

    @property
    def metrics(self) -> list[str]:
        """The objective metrics, in order (one for a single-objective search)."""
        return [o.metric for o in self.objectives] or [self.metric]

    @property
    def modes(self) -> list[str]:
        return [o.mode for o in self.objectives] or [self.mode]

    @property
    def multi_objective(self) -> bool:
        return len(self.objectives) > 1


class ResourcesConfig(_Section):
    cpu: float = Field(1.0, gt=0, description="CPUs per trial (also torch's thread count)")
    gpu: float = Field(0.0, ge=0, description="GPUs per trial; fractions pack several trials on one GPU")

    @field_validator("gpu")
    @classmethod
    def _gpu_fraction(cls, v: float) -> float:
        if v > 1 and v != int(v):
            raise ValueError("a trial uses either a fraction of one GPU (<= 1) or a whole number of GPUs")
        return v


class LatencyConfig(_Section):
    """The latency protocol (logged as params; two runs are comparable only when it matches)."""

    enabled: bool = True
    batch_sizes: list[int] = Field(default_factory=lambda: [1], min_length=1, description="first = cost/latency_ms")
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    threads: int | None = Field(None, ge=1, description="torch threads while measuring (default: the trial's CPUs)")
    warmup: int = Field(10, ge=0)
    min_run_time: float = Field(0.1, gt=0, description="seconds per batch size (torch.utils.benchmark)")

    @field_validator("batch_sizes")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(b < 1 for b in v):
            raise ValueError(f"batch sizes are >= 1; got {v}")
        return v


class CostsConfig(_Section):
    """Cost metrics: params and FLOPs at every architecture change; latency at an interval."""

    every_epochs: int = Field(2, ge=1, description="measure latency at most every N epochs (and only after a change)")
    latency: LatencyConfig = Field(default_factory=LatencyConfig)


class TrackingConfig(_Section):
    uri: str = Field("sqlite:///mlflow.db", description="MLflow tracking URI; sqlite paths are relative to the cwd")
    experiment: str | None = Field(None, description="MLflow experiment name (default: the experiment's name)")


class Experiment(_Section):
    """One experiment file, fully resolved."""

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=100)
    description: str = ""
    seed: int = 0
    output_dir: str = Field("runs", description="sweeps write into <output_dir>/<name>/")
    data: PluginDict
    model: PluginDict
    trainer: TrainerConfig = Field(default_factory=TrainerConfig)
    growth: GrowthConfig | None = None
    nas: NasConfig | None = None
    plasticity: PlasticityConfig | None = None
    search: SearchConfig = Field(default_factory=SearchConfig)
    resources: ResourcesConfig = Field(default_factory=ResourcesConfig)
    costs: CostsConfig = Field(default_factory=CostsConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)

    @property
    def kind(self) -> str:
        """Value of the ``growray.kind`` tag."""
        if self.nas is not None:
            return self.nas.method
        if self.plasticity is not None:
            return "plasticity"
        return "growth" if self.growth is not None else "static"

    @property
    def experiment_name(self) -> str:
        return self.tracking.experiment or self.name

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def with_overrides(self, overrides: dict[str, Any]) -> Experiment:
        """A new, fully re-validated experiment with dotted-path values replaced (one trial's params)."""
        from ._load import apply_overrides, validate_dict

        if isinstance(self.search.space, dict):  # Optuna's labels of list-valued choices -> the lists
            overrides = {
                k: self.search.space[k].decode(v) if k in self.search.space else v for k, v in overrides.items()
            }
        return validate_dict(apply_overrides(self.to_dict(), overrides), check_space=False)


from ._nas import NasConfig  # noqa: E402  (the section models import _Section from here)
from ._plasticity import PlasticityConfig  # noqa: E402

Experiment.model_rebuild()
