"""The sampler comparison of a ``tabular.simulate`` sweep: mean ± std of each sampler's replicates."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from typing import Any

from growray.kinds import TrialOutcome

from .config import SimulateConfig, TabularConfig
from .run import objectives_of, table_optimum

__all__ = ["sampler_of", "sampler_report"]


def sampler_of(config: dict[str, Any], default: str) -> str:
    """The sampler name a replicate ran: searched as ``tabular.simulate.sampler`` (a mapping,
    or its JSON label) or ``tabular.simulate.sampler.name``, else the section's."""
    value = config.get("tabular.simulate.sampler", config.get("tabular.simulate.sampler.name", default))
    if isinstance(value, str) and value.startswith("{"):
        value = json.loads(value)
    if isinstance(value, dict):
        return str(value.get("name", default))
    return str(value)


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def sampler_report(
    cfg: TabularConfig, sim: SimulateConfig, trials: Sequence[TrialOutcome]
) -> tuple[str, list[dict[str, Any]]]:
    """Markdown and rows: per sampler, the replicates' best value of the first objective
    (mean ± sample std; accuracies in %), evaluations within the budget, regret, and the
    hypervolume fraction for two objectives."""
    metrics, modes = objectives_of(cfg, sim)
    first = metrics[0]
    scale = 100.0 if first.endswith("/acc") else 1.0
    unit = " (%)" if scale == 100.0 else ""
    groups: dict[str, list[TrialOutcome]] = {}
    for t in trials:
        if t.status not in ("ERROR", "DIVERGED") and "tabular/best" in t.metrics:
            groups.setdefault(sampler_of(dict(t.config), str(sim.sampler["name"])), []).append(t)
    optimum = table_optimum(cfg.benchmark, cfg.dataset, first, modes[0]) * scale
    rows: list[dict[str, Any]] = []
    for name, group in sorted(groups.items()):
        best = _mean_std([t.metrics["tabular/best"] * scale for t in group])
        row: dict[str, Any] = {
            "sampler": name,
            "replicates": len(group),
            "best_mean": best[0],
            "best_std": best[1],
            "evaluations_mean": statistics.fmean(t.metrics["tabular/evaluations"] for t in group),
        }
        if all("tabular/hypervolume_fraction" in t.metrics for t in group):
            hv = _mean_std([t.metrics["tabular/hypervolume_fraction"] for t in group])
            row["hypervolume_fraction_mean"], row["hypervolume_fraction_std"] = hv
        rows.append(row)
    lines = [
        f"## {cfg.benchmark} {cfg.dataset}: samplers under a simulated budget of {sim.budget_s:g} s "
        f"(cost_scale {cfg.cost_scale:g})",
        "",
        f"Objective{'s' if len(metrics) > 1 else ''}: {', '.join(f'{m} ({d})' for m, d in zip(metrics, modes))}; "
        f"the table's optimum of {first}: {optimum:.2f}{unit}. Mean ± sample std over replicates.",
        "",
    ]
    hv_col = any("hypervolume_fraction_mean" in r for r in rows)
    header = f"| sampler | replicates | best {first}{unit} | evaluations |" + (
        " hypervolume / table's |" if hv_col else ""
    )
    lines += [header, "|" + "---|" * (5 if hv_col else 4)]
    for r in rows:
        line = f"| {r['sampler']} | {r['replicates']} | {r['best_mean']:.2f} ± {r['best_std']:.2f} | {r['evaluations_mean']:.0f} |"
        if hv_col:
            line += f" {r.get('hypervolume_fraction_mean', float('nan')):.4f} ± {r.get('hypervolume_fraction_std', 0.0):.4f} |"
        lines.append(line)
    return "\n".join(lines) + "\n", rows
