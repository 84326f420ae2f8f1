"""The ``Kind`` protocol: what an experiment kind owns, and the one registry of kinds.

An *experiment kind* (growing networks, supernet search, Grow-vs-Prune, ...) is one
package that registers one :class:`Kind`. The kind owns

- its **config section**: a top-level key of the experiment file, validated by the kind's
  typed, closed ``section`` model (``growth:``, ``nas:``, ``plasticity:``); plug-in fields
  inside it (``growth.trigger``) are declared in ``plugins`` and validated against their
  registries like the core's ``data`` and ``model``;
- its **checks** against the rest of the experiment (``check``), run by
  ``growray validate`` before anything starts;
- its **hooks** on the one trainer, and any change to the data splits they need (``setup``);
- its **metric names** (``metrics``, ``metric_prefixes``), which ``search.metric`` and the
  objectives may name;
- its **columns** in the live and final trial tables;
- an optional **stage after training** inside the trial (``after_fit``: the NAS kind
  retrains the architecture it found) and an optional **offline retrain** of a recorded
  run (``retrain_run``, ``growray retrain RUN_ID``).

The core (config loading, the trainer, tune, tracking) knows kinds only through this
protocol and the ``KINDS`` registry. A kind is active in an experiment when its section is
present (not null); several may be active when their checks allow it. Registering a kind
is importing its module: built-in kinds are imported by :func:`growray.plugins.load_plugins`,
other packages' kinds through the ``growray.plugins`` entry-point group.

This module imports nothing heavy at run time (no torch, no pydantic models of other
packages), so the config layer can import it without cycles.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Generic, Protocol, TypeVar, cast

from growray.registry import Registry

if TYPE_CHECKING:
    from growray.config import ConfigIssue, Experiment, Section
    from growray.data import Dataset, TensorSplits
    from growray.tracking.tables import Column
    from growray.train import Hook, Trainer

__all__ = [
    "KINDS",
    "Kind",
    "KindSetup",
    "PluginSlot",
    "TrialOutcome",
    "TrialStage",
    "active_kinds",
    "get_kind",
    "kind_tag",
]

C = TypeVar("C", bound="Section")


@dataclass(frozen=True)
class PluginSlot:
    """A ``{name: ..., **params}`` field of a section that names a registered plug-in.

    Attributes:
        registry: where the names are registered (``TRIGGERS``).
        construct: build the plug-in once at validate time, so its constructor's own range
            checks are reported before anything runs (only for cheap plug-ins that need no
            context arguments).
    """

    registry: Registry[Any]
    construct: bool = False


@dataclass
class KindSetup:
    """What a kind adds to a trainer: its hooks, and the data splits the trainer trains on
    (a kind may hold part of the training split out, as NAS does for architecture steps)."""

    hooks: list[Hook]
    splits: TensorSplits


class TrialStage(Protocol):
    """What a trial hands a kind's :meth:`Kind.after_fit` once training ended.

    Implemented by ``growray.tune.trial``; kinds never see Ray or MLflow objects, only this.
    """

    @property
    def trainer(self) -> Trainer: ...

    @property
    def final(self) -> Mapping[str, float]: ...

    @property
    def dataset(self) -> Dataset: ...

    @property
    def tracking_uri(self) -> str: ...

    @property
    def run_id(self) -> str: ...


@dataclass(frozen=True)
class TrialOutcome:
    """One finished trial of a sweep, as a kind's sweep report sees it (plain data, no Ray).

    Attributes:
        trial_id: Ray Tune's trial id.
        status: TERMINATED, ERROR or DIVERGED.
        config: the values the searcher chose (dotted paths).
        metrics: the trial's last reported result (``val/acc``, ``cost/train_flops``, ...).
        mlflow_run_id: the trial's MLflow run.
        tracking_uri: the sweep's MLflow store (a report that reads the runs back).
    """

    trial_id: str
    status: str
    config: Mapping[str, Any]
    metrics: Mapping[str, float]
    mlflow_run_id: str | None = None
    tracking_uri: str | None = None


class Kind(Generic[C]):
    """Base class of experiment kinds: override what the kind needs.

    Class attributes:
        name: the section key in experiment files and the registered name.
        section: the section's pydantic model (derive from ``growray.config.Section``).
        plugins: plug-in fields inside the section, by their path relative to it.
        registries: other named plug-ins of the kind that ``growray show plugins`` lists,
            by the YAML path that selects them (``{"nas.method": NAS_METHODS}``).
        metrics: metric name -> description, for the metrics the kind's hooks report.
        metric_prefixes: prefix -> description, for families such as ``nas/alpha/<edge>``.
        columns: extra columns in the live and final trial tables.
    """

    name: ClassVar[str]
    section: ClassVar[type[Section]]
    description: ClassVar[str] = ""
    plugins: ClassVar[Mapping[str, PluginSlot]] = {}
    registries: ClassVar[Mapping[str, Registry[Any]]] = {}
    metrics: ClassVar[Mapping[str, str]] = {}
    metric_prefixes: ClassVar[Mapping[str, str]] = {}
    columns: ClassVar[Sequence[Column]] = ()
    #: a metric each trial reports as its cumulative cost (``cost/train_seconds``); a kind that
    #: sets it makes ``search.time_budget_s`` a budget on the sum of that metric over the trials
    #: (a simulated clock: a benchmark table's training times) instead of on wall-clock seconds
    budget_metric: ClassVar[str | None] = None

    def tag(self, cfg: C) -> str:
        """The value of the runs' ``growray.kind`` tag (NAS: the method)."""
        return self.name

    def check(self, exp: Experiment, cfg: C) -> list[ConfigIssue]:
        """Problems of ``cfg`` against the rest of the experiment (none by default); every
        issue names its YAML path, the bad value and what is accepted."""
        return []

    def defaults(self, cfg: C) -> dict[str, Any]:
        """Values the section implies for dotted paths the experiment file leaves unset
        (``{"search.space": ...}``: a benchmark table's own space), applied before the
        experiment is validated; none by default."""
        return {}

    def simulate(self, exp: Experiment, cfg: C) -> list[dict[str, float]] | None:
        """The trial's results without training: one dict of metrics per report (a benchmark
        table's kind looks them up). None (the default): the trial trains."""
        return None

    def setup(self, exp: Experiment, cfg: C, splits: TensorSplits) -> KindSetup:
        """The kind's hooks for one trainer, and the splits it trains on."""
        return KindSetup([], splits)

    def after_fit(self, exp: Experiment, cfg: C, stage: TrialStage) -> dict[str, float]:
        """A stage inside the trial after training; the metrics it returns are reported once
        more, so the searcher can optimise them (none by default)."""
        return {}

    def sweep_artifacts(self, exp: Experiment, cfg: C, trials: Sequence[TrialOutcome]) -> dict[str, Any]:
        """Artifacts for the sweep's parent run once every trial finished (a comparison of the
        arms, a plot), by artifact path: a ``str`` is written as text, a dict or list as
        JSON/YAML (by the extension), a matplotlib figure as an image. None by default."""
        return {}

    def reports_after_fit(self, cfg: C) -> int:
        """How many reports :meth:`after_fit` adds after the last epoch's (0 by default); trial
        schedulers count them, so a trial that reached its last epoch is not stopped before them."""
        return 0

    def retrain_run(self, exp: Experiment, cfg: C, tracking_uri: str, run_id: str) -> tuple[str, dict[str, float]]:
        """Retrain what the recorded run ``run_id`` found, into a new linked run; returns
        (new run id, metrics). Kinds without a retraining step raise NotImplementedError."""
        raise NotImplementedError(f"experiment kind {self.name!r} has nothing to retrain")

    @property
    def retrains(self) -> bool:
        """Whether :meth:`retrain_run` is implemented."""
        return type(self).retrain_run is not Kind.retrain_run

    def config(self, exp: Experiment) -> C | None:
        """This kind's section of ``exp`` (None when the kind is not active)."""
        cfg = exp.kinds.get(self.name)
        if cfg is not None and not isinstance(cfg, self.section):
            raise TypeError(
                f"exp.kinds[{self.name!r}] is a {type(cfg).__name__}, not the kind's {self.section.__name__}"
            )
        return cast("C | None", cfg)


KINDS: Registry[Kind[Any]] = Registry("experiment kind")


@functools.cache
def _instance(cls: Callable[[], Kind[Any]]) -> Kind[Any]:
    return cls()


def get_kind(name: str) -> Kind[Any]:
    """The registered kind ``name`` (an UnknownNameError lists the registered ones); every
    plug-in is loaded first if the name is not registered yet."""
    if name not in KINDS:
        from growray.plugins import load_plugins

        load_plugins()
    return _instance(KINDS.get(name).obj)


def active_kinds(exp: Experiment) -> list[tuple[Kind[Any], Any]]:
    """``(kind, its section)`` for every kind whose section the experiment sets, in
    registry order (so hooks are built in a stable order)."""
    return [(get_kind(name), cfg) for name, cfg in sorted(exp.kinds.items())]


def kind_tag(exp: Experiment) -> str:
    """The ``growray.kind`` tag: the active kinds' tags joined by ``+``, or ``static``."""
    tags = [kind.tag(cfg) for kind, cfg in active_kinds(exp)]
    return "+".join(tags) if tags else "static"
