"""The sweep's side-by-side report of the ``sparse`` kind (``Kind.sweep_artifacts``).

Every finished trial is one arm — (model, ``dense`` or the updater, sparsity, distribution)
— and a seed; arms are averaged over their trials. The table gives test accuracy (mean ±
std), validation accuracy, effective training FLOPs (``cost/train_flops``) and their ratio to
the dense arm of the same model, active parameters, and the accuracy difference to the
static sparse arm of the same model and sparsity (the baseline). For each (model,
sparsity) it states whether the RigL paper's ordering static < SET ≤ RigL ≤ dense holds in
the measured means, whatever they are.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from growray.config import Experiment
from growray.kinds import TrialOutcome

from .config import SparseConfig

__all__ = ["arm_of", "arm_rows", "ordering_lines", "report_markdown"]

_ORDER = ("static", "set", "rigl", "dense")


def arm_of(trial: TrialOutcome, exp: Experiment, cfg: SparseConfig) -> dict[str, Any]:
    """The arm of one trial: its searched values over the experiment's own."""
    c = trial.config

    def get(path: str, default: Any) -> Any:
        return c.get(path, default)

    dense = bool(get("sparse.dense", cfg.dense))
    updater = str(get("sparse.updater.name", cfg.updater["name"]))
    base_regrow = cfg.updater.get("regrow") if cfg.updater["name"] == updater else None
    regrow = get("sparse.updater.regrow", base_regrow)
    arm = (
        "dense" if dense else (f"{updater}/random" if updater in ("rigl", "srigl") and regrow == "random" else updater)
    )
    return {
        "model": str(get("model.name", exp.model["name"])),
        "arm": arm,
        "sparsity": None if dense else float(get("sparse.sparsity", cfg.sparsity)),
        "distribution": None if dense else str(get("sparse.distribution.name", cfg.distribution["name"])),
        "seed": get("seed", exp.seed),
    }


def _stats(values: Sequence[float]) -> tuple[float, float | None]:
    if not values:
        return math.nan, None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def arm_rows(exp: Experiment, cfg: SparseConfig, trials: Sequence[TrialOutcome]) -> list[dict[str, Any]]:
    """One row per arm, sorted by model, sparsity and the ordering static, set, rigl, dense."""
    groups: dict[tuple[Any, ...], list[tuple[dict[str, Any], TrialOutcome]]] = {}
    for t in trials:
        a = arm_of(t, exp, cfg)
        groups.setdefault((a["model"], a["arm"], a["sparsity"], a["distribution"]), []).append((a, t))
    rows = []
    for (model, arm, sparsity, distribution), members in groups.items():
        done = [t for _, t in members if t.status == "TERMINATED" and "test/acc" in t.metrics]
        acc, acc_sd = _stats([float(t.metrics["test/acc"]) for t in done])
        val, _ = _stats([float(t.metrics["val/acc"]) for t in done if "val/acc" in t.metrics])
        flops, _ = _stats([float(t.metrics["cost/train_flops"]) for t in done if "cost/train_flops" in t.metrics])
        params, _ = _stats([float(t.metrics["cost/params"]) for t in done if "cost/params" in t.metrics])
        measured, _ = _stats([float(t.metrics["sparse/sparsity"]) for t in done if "sparse/sparsity" in t.metrics])
        rows.append(
            {
                "model": model,
                "arm": arm,
                "sparsity": sparsity,
                "distribution": distribution,
                "n": len(done),
                "n_failed": len(members) - len(done),
                "seeds": sorted(str(a["seed"]) for a, t in members if t in done),
                "acc_mean": acc,
                "acc_std": acc_sd,
                "val_acc_mean": val,
                "flops_mean": flops,
                "params_mean": params,
                "measured_sparsity": measured,
            }
        )
    for r in rows:
        dense = [d for d in rows if d["model"] == r["model"] and d["arm"] == "dense"]
        static = [
            s
            for s in rows
            if s["model"] == r["model"]
            and s["arm"] == "static"
            and s["sparsity"] == r["sparsity"]
            and s["distribution"] == r["distribution"]
        ]
        r["flops_vs_dense"] = r["flops_mean"] / dense[0]["flops_mean"] if dense and dense[0]["flops_mean"] else None
        r["acc_vs_static"] = r["acc_mean"] - static[0]["acc_mean"] if static and r["arm"] != "dense" else None

    def order(r: Mapping[str, Any]) -> tuple[Any, ...]:
        rank = _ORDER.index(r["arm"]) if r["arm"] in _ORDER else len(_ORDER)
        return (r["model"], r["sparsity"] is None, r["sparsity"] or 0.0, str(r["distribution"]), rank, r["arm"])

    return sorted(rows, key=order)


def ordering_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per (model, sparsity, distribution): does static < SET ≤ RigL ≤ dense hold in the means?"""
    lines = []
    keys = sorted({(r["model"], r["sparsity"], r["distribution"]) for r in rows if r["sparsity"] is not None})
    for model, sparsity, distribution in keys:
        acc = {
            r["arm"]: r["acc_mean"]
            for r in rows
            if r["model"] == model
            and (r["arm"] == "dense" or (r["sparsity"] == sparsity and r["distribution"] == distribution))
            and r["n"] > 0
        }
        if not all(a in acc for a in _ORDER):
            missing = [a for a in _ORDER if a not in acc]
            lines.append(f"- {model} at {sparsity:g} ({distribution}): not all arms finished (missing {missing})")
            continue
        s, se, ri, de = (acc[a] for a in _ORDER)
        holds = s < se <= ri <= de
        lines.append(
            f"- {model} at {sparsity:g} ({distribution}): static < SET <= RigL <= dense "
            f"{'holds' if holds else 'does NOT hold'} (test acc: static {s:.4f}, SET {se:.4f}, "
            f"RigL {ri:.4f}, dense {de:.4f})"
        )
    return lines


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def report_markdown(exp: Experiment, rows: Sequence[Mapping[str, Any]]) -> str:
    """The report as a Markdown table plus the ordering check."""
    head = (
        "| model | arm | sparsity | distribution | n | test acc | ± std | val acc | train FLOPs | vs dense | "
        "params | measured sparsity | acc vs static |"
    )
    lines = [
        f"# Dynamic sparse training: {exp.name}",
        "",
        "Arms averaged over seeds (finished trials only). Training FLOPs are effective (active weights only,",
        "RigL's dense gradient at update steps included); `acc vs static` is the difference to the static",
        "sparse arm of the same model, sparsity and distribution (the baseline).",
        "",
        head,
        "|" + "---|" * (head.count("|") - 1),
    ]
    for r in rows:
        lines.append(
            "| "
            + " | ".join(
                [
                    str(r["model"]),
                    str(r["arm"]),
                    _fmt(r["sparsity"], 2),
                    _fmt(r["distribution"]),
                    f"{r['n']}" + (f" ({r['n_failed']} failed)" if r["n_failed"] else ""),
                    _fmt(r["acc_mean"]),
                    _fmt(r["acc_std"]),
                    _fmt(r["val_acc_mean"]),
                    f"{r['flops_mean']:.3g}" if not math.isnan(r["flops_mean"]) else "",
                    _fmt(r["flops_vs_dense"], 3),
                    f"{r['params_mean']:.0f}" if not math.isnan(r["params_mean"]) else "",
                    _fmt(r["measured_sparsity"], 3),
                    f"{r['acc_vs_static']:+.4f}" if r["acc_vs_static"] is not None else "",
                ]
            )
            + " |"
        )
    lines += ["", "The RigL paper's ordering, in the measured means:", "", *ordering_lines(rows), ""]
    return "\n".join(lines)
