"""The core sections of an experiment: frozen pydantic models, unknown keys rejected.

Experiment kinds (``growray.kinds``) add their own sections, built on :class:`Section`.
Plug-in sections (``data``, ``model``, ``search.sampler``, and the kinds' own such as
``growth.trigger``) are mappings ``{name: ..., **params}`` whose parameters are checked
against the registered plug-in (``config.plugins``); here they are plain dicts.
"""

from __future__ import annotations

import importlib.util
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictFloat, StrictInt, field_validator, model_validator

from .store_uri import tracking_uri_problem

__all__ = [
    "SCHEDULERS",
    "AugmentConfig",
    "Constraint",
    "CostsConfig",
    "LatencyConfig",
    "Objective",
    "PluginDict",
    "ResourcesConfig",
    "SchedulerConfig",
    "SearchConfig",
    "SearchParam",
    "Section",
    "TrackingConfig",
    "TrainerConfig",
    "tracking_uri_problem",
]


class Section(BaseModel):
    """Base of every config section: frozen, and an unknown key is an error."""

    # no NaN or infinity in any number; numbers are StrictInt/StrictFloat fields, so true/false
    # is never taken for 1/0 (an int is accepted where a float is expected)
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @classmethod
    def file_keys(cls) -> list[str]:
        """The keys a file may give this section (its fields, unless a section hides one it
        fills itself), sorted: what an unknown-key error lists as accepted."""
        return sorted(cls.model_fields)

    @classmethod
    def subsection_model(cls, key: str) -> type[Section] | None:
        """The model of a sub-section that is not a field but keyed by a plug-in's name (a NAS
        method's own settings under ``nas.<method>``), so errors there list the accepted keys.
        None: ``key`` names no such sub-section (the default)."""
        return None


PluginDict = dict[str, Any]


class AugmentConfig(Section):
    """``data.augment``: per-batch augmentation of the training batches on the trial's device
    (``growray.train.augment``); validation and test data are never augmented. Off by default."""

    random_crop: StrictInt = Field(
        0, ge=0, description="pad by this many pixels, crop back at random (CIFAR: 4; 0: off)"
    )
    flip: bool = Field(False, description="horizontal flip with probability 1/2")
    cutout: StrictInt = Field(0, ge=0, description="zero a random square of this side (DARTS' retraining: 16; 0: off)")

    @property
    def enabled(self) -> bool:
        return self.random_crop > 0 or self.flip or self.cutout > 0


class TrainerConfig(Section):
    """The training loop: one trainer, extended by hooks (growth is a hook)."""

    epochs: StrictInt = Field(10, ge=1, description="passes over the training split")
    batch_size: StrictInt = Field(64, ge=1)
    optimizer: Literal["sgd", "adam", "adamw"] = "adam"
    lr: StrictFloat = Field(1e-3, gt=0, le=10)
    momentum: StrictFloat = Field(0.9, ge=0, lt=1, description="SGD momentum (sgd only)")
    weight_decay: StrictFloat = Field(0.0, ge=0)
    lr_schedule: Literal["constant", "cosine"] = Field(
        "constant", description="cosine: anneal per epoch from lr to lr_min over the epochs (DARTS)"
    )
    lr_min: StrictFloat = Field(0.0, ge=0, description="the cosine schedule's final learning rate")
    grad_clip: StrictFloat | None = Field(None, gt=0, description="clip the weights' gradient norm to this (DARTS: 5)")
    eval_batch_size: StrictInt = Field(1024, ge=1)
    probe_size: StrictInt = Field(
        128, ge=1, description="held-out validation samples on which each growth event measures preservation"
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    log_every_steps: StrictInt = Field(10, ge=1, description="train/loss is logged every N optimizer steps")
    amp: Literal["none", "bf16", "fp16"] = Field(
        "none", description="autocast precision of forward passes (fp16 uses a gradient scaler; CUDA only)"
    )
    channels_last: bool = Field(False, description="model and image batches in channels-last memory format")


class SearchParam(Section):
    """One searched value, addressed by its dotted path in the experiment."""

    type: Literal["float", "int", "categorical"]
    low: StrictFloat | None = None
    high: StrictFloat | None = None
    log: bool = False
    step: StrictFloat | None = None
    choices: list[Any] | None = None
    when: dict[str, Any] | None = Field(
        None, description="only sampled when every listed path has the given value (or one of a list)"
    )

    def labels(self) -> list[Any]:
        """What Optuna sees for the choices: scalars as they are, lists and mappings (an op
        set, a list of widths) as their JSON text, since Optuna stores scalar choices only."""
        from growray.search.space import choice_label  # growray.search imports numpy: on first use

        return [choice_label(c) for c in self.choices or []]

    def decode(self, value: Any) -> Any:
        """The choice behind a label from ``labels`` (other values pass through)."""
        from growray.search.space import choice_label

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


class Objective(Section):
    """One objective of a multi-objective search."""

    metric: str
    mode: Literal["min", "max"]


class Constraint(Section):
    """``metric op value`` must hold for a trial to count as feasible (Optuna constraints)."""

    metric: str
    op: Literal["<=", ">="]
    value: StrictFloat

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


#: the trial schedulers (``search.scheduler.name``): what each does, and the settings it reads
SCHEDULERS: dict[str, tuple[str, tuple[str, ...]]] = {
    "fifo": ("Runs every trial to its last epoch.", ()),
    "asha": (
        "ASHA (asynchronous successive halving): stops trials that are weak on the first objective at "
        "rungs of grace_period x reduction_factor^k epochs.",
        ("grace_period", "reduction_factor"),
    ),
    "pareto": (
        "Successive halving by non-dominated rank on every objective (crowding distance breaks ties); "
        "needs search.objectives.",
        ("grace_period", "reduction_factor"),
    ),
    "pbt": (
        "Population-based training: weak trials copy the weights and grown architecture of strong ones "
        "and perturb the mutate parameters every perturbation_interval epochs.",
        ("mutate", "perturbation_interval", "quantile_fraction", "resample_probability"),
    ),
    "hyperband": (
        "HyperBand: brackets of successive halving with epochs as the fidelity; paused trials resume "
        "from their checkpoint, grown architecture included. One objective.",
        ("reduction_factor",),
    ),
    "bohb": (
        "HyperBand with BOHB's model-based proposals (Ray Tune's TuneBOHB replaces search.sampler); "
        "needs growray[bohb] and a flat space. One objective.",
        ("reduction_factor",),
    ),
}


class SchedulerConfig(Section):
    """Trial scheduler: ``fifo`` runs every trial to the end; ``asha`` stops weak trials early
    on the first objective; ``pareto`` stops trials by non-dominated rank on all objectives;
    ``pbt`` (population-based training) copies the weights *and architecture* of good trials
    into weak ones and mutates the ``mutate`` parameters; ``hyperband`` runs HyperBand's
    brackets of successive halving (epochs as the fidelity; paused trials resume from their
    checkpoint, grown architecture included); ``bohb`` is HyperBand with BOHB's model-based
    sampling (Ray Tune's TuneBOHB in place of search.sampler; needs ``growray[bohb]``)."""

    name: Literal["fifo", "asha", "pareto", "pbt", "hyperband", "bohb"] = "fifo"
    grace_period: StrictInt = Field(2, ge=1, description="ASHA/pareto: epochs before a trial may be stopped")
    reduction_factor: StrictFloat = Field(2.0, gt=1, description="ASHA/pareto/hyperband/bohb: the halving rate")
    perturbation_interval: StrictInt = Field(2, ge=1, description="PBT: epochs between exploit/explore decisions")
    mutate: list[str] = Field(default_factory=list, description="PBT: search-space parameters to perturb")
    quantile_fraction: StrictFloat = Field(
        0.25, gt=0, le=0.5, description="PBT: bottom/top fraction that exploits/is copied"
    )
    resample_probability: StrictFloat = Field(0.25, ge=0, le=1)


class SearchConfig(Section):
    space: dict[str, SearchParam] = Field(
        default_factory=dict,
        description="searched values by dotted path; in a file, a mapping or the name of a file in search_spaces/",
    )
    sampler: PluginDict = Field(default_factory=lambda: {"name": "tpe"})
    metric: str = "val/acc"
    mode: Literal["min", "max"] = "max"
    objectives: list[Objective] = Field(
        default_factory=list, description="two or more objectives: a multi-objective (Pareto) search"
    )
    constraints: list[Constraint] = Field(default_factory=list, description="e.g. 'cost/latency_ms <= 2.0'")
    num_samples: StrictInt = Field(8, ge=1)
    max_concurrent: StrictInt = Field(2, ge=1)
    scheduler: SchedulerConfig = Field(default_factory=SchedulerConfig)
    reuse_actors: bool = True
    max_failures: StrictInt = Field(2, ge=0, description="restarts of a trial whose worker died (from its checkpoint)")
    time_budget_s: StrictFloat | None = Field(None, gt=0)

    @field_validator("space", mode="before")
    @classmethod
    def _space_is_resolved(cls, v: Any) -> Any:
        if isinstance(v, str):
            raise ValueError(
                f"the search-space file {v!r} is resolved when the experiment file is loaded "
                "(growray.config.load_experiment); pass the mapping itself"
            )
        return v

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
        if self.scheduler.name in ("hyperband", "bohb") and self.objectives:
            raise ValueError(f"scheduler {self.scheduler.name!r} halves on one metric: use metric/mode, or pareto")
        if self.scheduler.name == "bohb":
            missing = [m for m in ("hpbandster", "ConfigSpace") if importlib.util.find_spec(m) is None]
            if missing:
                raise ValueError(
                    f"scheduler 'bohb' needs {' and '.join(missing)}: pip install 'growray[bohb]' "
                    "(or: pip install hpbandster ConfigSpace)"
                )
            conditional = [k for k, p in self.space.items() if p.when]
            if conditional:
                raise ValueError(
                    f"scheduler 'bohb' samples a flat space; these are conditional: {', '.join(conditional)}"
                )
        if self.scheduler.name == "pbt":
            if self.objectives:
                raise ValueError("scheduler 'pbt' exploits on one metric: use metric/mode, not objectives")
            if not self.scheduler.mutate:
                raise ValueError("scheduler 'pbt' needs scheduler.mutate: search-space parameters to perturb")
            space = self.space
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


class ResourcesConfig(Section):
    cpu: StrictFloat = Field(1.0, gt=0, description="CPUs per trial (also torch's thread count)")
    gpu: StrictFloat = Field(0.0, ge=0, description="GPUs per trial; fractions pack several trials on one GPU")

    @field_validator("gpu")
    @classmethod
    def _gpu_fraction(cls, v: float) -> float:
        if v > 1 and v != int(v):
            raise ValueError("a trial uses either a fraction of one GPU (<= 1) or a whole number of GPUs")
        return v


class LatencyConfig(Section):
    """The latency protocol (logged as params; two runs are comparable only when it matches)."""

    enabled: bool = True
    batch_sizes: list[StrictInt] = Field(
        default_factory=lambda: [1], min_length=1, description="first = cost/latency_ms"
    )
    dtype: Literal["float32", "float16", "bfloat16"] = "float32"
    threads: StrictInt | None = Field(
        None, ge=1, description="torch threads while measuring (default: the trial's CPUs)"
    )
    warmup: StrictInt = Field(10, ge=0)
    min_run_time: StrictFloat = Field(0.1, gt=0, description="seconds per batch size (torch.utils.benchmark)")

    @field_validator("batch_sizes")
    @classmethod
    def _positive(cls, v: list[int]) -> list[int]:
        if any(b < 1 for b in v):
            raise ValueError(f"batch sizes are >= 1; got {v}")
        return v


class CostsConfig(Section):
    """Cost metrics: params and FLOPs at every architecture change; latency at an interval."""

    every_epochs: StrictInt = Field(
        2, ge=1, description="measure latency at most every N epochs (and only after a change)"
    )
    latency: LatencyConfig = Field(default_factory=LatencyConfig)


class TrackingConfig(Section):
    uri: str = Field("sqlite:///mlflow.db", description="MLflow tracking URI; sqlite paths are relative to the cwd")
    experiment: str | None = Field(None, description="MLflow experiment name (default: the experiment's name)")
    writer: Literal["auto", "driver", "process"] = Field(
        "auto",
        description="where the trials' MLflow calls run: driver (a thread of the driver, which has MLflow open), "
        "process (an actor of its own on the driver's node: ~5 s of CPU to start, frees the driver's core), "
        "auto (process from 300 trials on)",
    )

    @field_validator("uri")
    @classmethod
    def _a_store_uri(cls, v: str) -> str:
        problem = tracking_uri_problem(v)
        if problem:
            raise ValueError(problem)
        return v
