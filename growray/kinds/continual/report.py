"""The sweep's comparison of the ``continual`` kind (``Kind.sweep_artifacts``).

Every finished trial is one arm — the method (``progressive/no-laterals`` for the ablation) —
and a seed; arms are averaged over their trials. The table gives the final average accuracy
(mean ± std), forgetting, GEM's BWT and FWT, parameters after the last task and cumulative
training FLOPs, and how many of the arm's trials had forgetting the average hides; below it,
every arm's mean accuracy matrix R[i][j] (test accuracy on task j after training task i).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from growray.config import Experiment
from growray.kinds import TrialOutcome

from .config import ContinualConfig

__all__ = ["arm_of", "arm_rows", "report_markdown"]

_ORDER = ("finetune", "ewc", "den", "progressive/no-laterals", "progressive")
_KEYS = {
    "avg_acc": "cl/avg_acc",
    "forgetting": "cl/forgetting",
    "bwt": "cl/bwt",
    "fwt": "cl/fwt",
    "params": "cl/params",
    "train_flops": "cl/train_flops",
    "val_avg_acc": "cl/val_avg_acc",
}


def arm_of(trial: TrialOutcome, cfg: ContinualConfig) -> str:
    """``finetune``, ``ewc``, ``den``, ``progressive`` or ``progressive/no-laterals``."""
    method = str(trial.config.get("continual.method", cfg.method))
    laterals = bool(trial.config.get("continual.progressive.laterals", cfg.progressive.laterals))
    return "progressive/no-laterals" if method == "progressive" and not laterals else method


def _stats(values: Sequence[float]) -> tuple[float, float | None]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return math.nan, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _matrix(trials: Sequence[TrialOutcome], n: int) -> list[list[float | None]]:
    out: list[list[float | None]] = []
    for i in range(n):
        row: list[float | None] = []
        for j in range(n):
            vals = [float(t.metrics[f"cl/R/{i}/{j}"]) for t in trials if f"cl/R/{i}/{j}" in t.metrics]
            row.append(statistics.fmean(vals) if vals else None)
        out.append(row)
    return out


def arm_rows(exp: Experiment, cfg: ContinualConfig, trials: Sequence[TrialOutcome]) -> list[dict[str, Any]]:
    """One row per arm, in the order finetune, ewc, den, progressive without and with laterals."""
    groups: dict[str, list[TrialOutcome]] = {}
    for t in trials:
        groups.setdefault(arm_of(t, cfg), []).append(t)
    rows = []
    for arm, members in groups.items():
        done = [t for t in members if t.status == "TERMINATED" and "cl/avg_acc" in t.metrics]
        n_tasks = int(max((t.metrics.get("cl/tasks_done", 0) for t in done), default=0))
        row: dict[str, Any] = {"arm": arm, "n": len(done), "n_failed": len(members) - len(done)}
        row["seeds"] = sorted(str(t.config.get("seed", exp.seed)) for t in done)
        for name, key in _KEYS.items():
            mean, sd = _stats([float(t.metrics[key]) for t in done if key in t.metrics])
            row[f"{name}_mean"], row[f"{name}_std"] = mean, sd
        row["hides_forgetting"] = sum(1 for t in done if t.metrics.get("cl/hides_forgetting", 0.0) > 0)
        row["matrix"] = _matrix(done, n_tasks)
        rows.append(row)
    return sorted(rows, key=lambda r: (_ORDER.index(r["arm"]) if r["arm"] in _ORDER else len(_ORDER), r["arm"]))


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def report_markdown(exp: Experiment, cfg: ContinualConfig, rows: Sequence[Mapping[str, Any]]) -> str:
    """The comparison table, the lines on forgetting the average hides, and each arm's matrix."""
    head = "| method | n | avg acc | ± std | forgetting | BWT | FWT | params | train FLOPs | avg hides forgetting |"
    lines = [
        f"# Continual learning: {exp.name}",
        "",
        "Arms averaged over seeds (finished trials only), after the last task. avg acc = mean_j R[T-1][j];",
        "BWT and FWT as in Lopez-Paz & Ranzato 2017 (GEM); forgetting = mean drop of each earlier task",
        "from its best accuracy (Chaudhry et al. 2018); params after the last task; FLOPs cumulative.",
        "",
        head,
        "|" + "---|" * (head.count("|") - 1),
    ]
    for r in rows:
        cells = [
            str(r["arm"]),
            f"{r['n']}" + (f" ({r['n_failed']} failed)" if r["n_failed"] else ""),
            _fmt(r["avg_acc_mean"]),
            _fmt(r["avg_acc_std"]),
            _fmt(r["forgetting_mean"]),
            _fmt(r["bwt_mean"]),
            _fmt(r["fwt_mean"]),
            "" if math.isnan(r["params_mean"]) else f"{r['params_mean']:.0f}",
            "" if math.isnan(r["train_flops_mean"]) else f"{r['train_flops_mean']:.3g}",
            f"{r['hides_forgetting']}/{r['n']}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Forgetting the average hides (a task > {cfg.forgetting_margin:g} below its best, average within it):",
        "",
    ]
    for r in rows:
        if r["hides_forgetting"]:
            lines.append(f"- {r['arm']}: in {r['hides_forgetting']} of {r['n']} trials the average hides forgetting")
    if not any(r["hides_forgetting"] for r in rows):
        lines.append("- none")
    for r in rows:
        lines += ["", f"## {r['arm']}: mean R[i][j] over {r['n']} trials", ""]
        n = len(r["matrix"])
        lines.append("| after task | " + " | ".join(f"task {j}" for j in range(n)) + " |")
        lines.append("|" + "---|" * (n + 1))
        for i, row in enumerate(r["matrix"]):
            lines.append(f"| {i} | " + " | ".join(_fmt(v, 3) for v in row) + " |")
    return "\n".join(lines) + "\n"
