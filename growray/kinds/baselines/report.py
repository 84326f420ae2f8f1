"""The growth report (``growth_report.md``): every arm side by side, and the guide's verdicts.

Built from :class:`growray.tracking.growth_report.ArmRun` records alone, so the sweep's end
and ``growray report`` (which reads them back from MLflow) write the same text. Arms are
grouped by (arm, variant) — the variant being the searched values besides the arm and the
seed, so an ablation grid (growth timing, initializer) gives one row per setting — and
averaged over seeds (mean ± sample std). Comparisons are paired per seed: a grown run is
compared with the baseline of the same seed (its own linked runs for dense_target,
compute_matched and static_sparse), and the verdict gives the mean ± std of those paired
differences. The static_sparse verdict is given only where it is a fair one: every pair's
training FLOPs within :data:`FLOPS_MATCH` of each other (the default compute-matched sparsity;
a hand-set ``baselines.static_sparsity`` spends what it spends, and is shown, not judged).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from typing import Any

from growray.tracking.growth_report import ArmRun

__all__ = ["FLOPS_MATCH", "arm_rows", "loss_jumps", "report_markdown", "verdicts"]

_ORDER = ("small_static", "grown", "random_expansion", "dense_target", "compute_matched", "static_sparse")
#: the static_sparse verdict needs |its train FLOPs / the grown run's - 1| <= this for every pair
FLOPS_MATCH = 0.05
_JUMP_WINDOW = 5  # logged train/loss points on each side of an event


def _stats(values: Sequence[float]) -> tuple[float, float | None]:
    vals = [v for v in values if not math.isnan(v)]
    if not vals:
        return math.nan, None
    return statistics.fmean(vals), (statistics.stdev(vals) if len(vals) > 1 else None)


def _best(run: ArmRun, key: str) -> float:
    if key == "test/acc":  # measured once, at the end
        return run.metrics.get(key, math.nan)
    points = run.curves.get(key) or []
    return max((v for _, v in points), default=run.metrics.get(key, math.nan))


def _finished(run: ArmRun) -> bool:
    return run.status == "FINISHED" and "test/acc" in run.metrics


def arm_rows(runs: Sequence[ArmRun]) -> list[dict[str, Any]]:
    """One row per (arm, variant), in the order small_static, grown, random_expansion,
    dense_target, compute_matched, static_sparse."""
    groups: dict[tuple[str, str], list[ArmRun]] = {}
    for r in runs:
        groups.setdefault((r.arm, r.variant), []).append(r)
    rows = []
    for (arm, variant), members in groups.items():
        done = [r for r in members if _finished(r)]

        def stat(get: Callable[[ArmRun], float], done: list[ArmRun] = done) -> tuple[float, float | None]:
            return _stats([get(r) for r in done])

        rows.append(
            {
                "arm": arm,
                "variant": variant,
                "n": len(done),
                "n_failed": len(members) - len(done),
                "seeds": sorted(r.seed for r in done),
                "val_final": stat(lambda r: r.metrics.get("val/acc", math.nan)),
                "val_best": stat(lambda r: _best(r, "val/acc")),
                "test_final": stat(lambda r: r.metrics.get("test/acc", math.nan)),
                "params": stat(lambda r: r.metrics.get("cost/params", math.nan))[0],
                "train_flops": stat(lambda r: r.metrics.get("cost/train_flops", math.nan)),
                "train_seconds": stat(lambda r: r.metrics.get("cost/train_seconds", math.nan))[0],
                "wall_seconds": stat(lambda r: r.wall_seconds if r.wall_seconds is not None else math.nan)[0],
                "epochs": stat(lambda r: r.metrics.get("epoch", math.nan))[0],
                "steps": stat(lambda r: max((s for s, _ in r.curves.get("cost/train_flops", [])), default=math.nan))[0],
            }
        )
    return sorted(rows, key=lambda r: (_ORDER.index(r["arm"]) if r["arm"] in _ORDER else 99, r["variant"]))


def _paired(
    grown: Sequence[ArmRun], others: Sequence[ArmRun], key: str = "test/acc", linked: bool = False
) -> list[tuple[str, float]]:
    """``(seed, grown - other)`` of ``key`` for every grown run with a partner of its seed
    (``linked``: the partner is the other arm's run linked to this grown run)."""
    out = []
    for g in grown:
        if linked:
            partner = [o for o in others if o.grown_run_id == g.run_id]
        else:
            partner = [o for o in others if o.seed == g.seed]
        if partner and key in g.metrics and key in partner[0].metrics:
            out.append((g.seed, g.metrics[key] - partner[0].metrics[key]))
    return out


def _diff_text(pairs: Sequence[tuple[str, float]]) -> str:
    mean, sd = _stats([d for _, d in pairs])
    per_seed = ", ".join(f"seed {s}: {d:+.4f}" for s, d in sorted(pairs))
    sd_text = f" ± {sd:.4f}" if sd is not None else ""
    caveat = " (within one std over seeds: not separable)" if sd is not None and abs(mean) <= sd else ""
    return f"{mean:+.4f}{sd_text} over {len(pairs)} seeds ({per_seed}){caveat}"


def _gain_after_growth(run: ArmRun, key: str) -> float | None:
    """``key`` at the end minus its last epoch value measured before the first growth event
    (strictly: an event at an epoch's last step precedes that epoch's evaluation)."""
    points = run.curves.get(key) or []
    if not run.events or not points:
        return None
    first = min(int(e.get("step", 0)) for e in run.events)
    before = [v for s, v in points if s < first]
    if not before:
        return None
    return points[-1][1] - before[-1]


def _static_sparse_verdict(grown: Sequence[ArmRun], sparse: Sequence[ArmRun]) -> str:
    """Grown vs its linked static_sparse runs, judged only when every pair spent the same
    training FLOPs to within ``FLOPS_MATCH``."""
    key = "cost/train_flops"
    pairs = _paired(grown, sparse, linked=True)
    if not pairs:
        return "- static sparse mask at equal compute: not judged (static_sparse missing)"
    ratios = []
    for g in grown:
        partner = [o for o in sparse if o.grown_run_id == g.run_id]
        if partner and g.metrics.get(key) and key in partner[0].metrics:
            ratios.append(partner[0].metrics[key] / g.metrics[key])
    spent = f"static_sparse spent {min(ratios):.3f}-{max(ratios):.3f}x the grown runs' train FLOPs" if ratios else ""
    if not ratios or max(abs(r - 1) for r in ratios) > FLOPS_MATCH:
        return (
            f"- static sparse mask at equal compute: not judged ({spent or 'train FLOPs missing'}; not within "
            f"{FLOPS_MATCH:.0%}: leave baselines.static_sparsity null to match them) — vs static_sparse "
            f"{_diff_text(pairs)}"
        )
    holds = statistics.fmean(d for _, d in pairs) > 0
    return (
        f'- "beats a fixed random sparse mask on its final architecture at equal compute: growing units beat '
        f'random sparse connectivity": {"HOLDS" if holds else "does not hold"} — vs static_sparse '
        f"{_diff_text(pairs)} ({spent})"
    )


def verdicts(runs: Sequence[ArmRun]) -> list[str]:
    """The guide's verdicts for every grown variant, each with the paired numbers behind it."""
    lines = []
    done = [r for r in runs if _finished(r)]
    by_arm: dict[str, list[ArmRun]] = {}
    for r in done:
        by_arm.setdefault(r.arm, []).append(r)
    variants = sorted({r.variant for r in by_arm.get("grown", [])})
    if not variants:
        return ["- no finished grown run: nothing to judge"]

    def same(arm: str, variant: str) -> list[ArmRun]:
        exact = [r for r in by_arm.get(arm, []) if r.variant == variant]
        return exact or [r for r in by_arm.get(arm, []) if r.variant == ""]

    for v in variants:
        grown = [r for r in by_arm["grown"] if r.variant == v]
        head = f"grown ({v})" if v else "grown"
        small = _paired(grown, same("small_static", v))
        dense = _paired(grown, by_arm.get("dense_target", []), linked=True)
        matched = _paired(grown, by_arm.get("compute_matched", []), linked=True)
        rand = _paired(grown, same("random_expansion", v))
        lines.append(f"**{head}** — paired test-accuracy differences, grown minus baseline:")
        if small and dense:
            beats_small = statistics.fmean(d for _, d in small) > 0
            beats_dense = statistics.fmean(d for _, d in dense) > 0
            holds = beats_small and not beats_dense
            lines.append(
                f'- "beats the small baseline but not the dense target: warm start only": '
                f"{'HOLDS' if holds else 'does not hold'} — vs small_static {_diff_text(small)}; "
                f"vs dense_target {_diff_text(dense)}"
            )
        else:
            lines.append("- warm start only: not judged (small_static or dense_target missing)")
        if matched:
            holds = statistics.fmean(d for _, d in matched) > 0
            lines.append(
                f'- "beats the dense target at equal compute: the growth found a better structure": '
                f"{'HOLDS' if holds else 'does not hold'} — vs compute_matched {_diff_text(matched)}"
            )
        else:
            lines.append("- equal compute: not judged (compute_matched missing)")
        lines.append(_static_sparse_verdict(grown, by_arm.get("static_sparse", [])))
        train = [g for g in (_gain_after_growth(r, "train/acc") for r in grown) if g is not None]
        val = [g for g in (_gain_after_growth(r, "val/acc") for r in grown) if g is not None]
        if train and val:
            t, _ = _stats(train)
            va, _ = _stats(val)
            holds = t > 0 and va < 0.5 * t
            lines.append(
                f'- "validation gains much smaller than training gains after growth: the added capacity '
                f'overfits" (val gain < half the train gain): {"HOLDS" if holds else "does not hold"} — '
                f"from the last epoch before the first event to the end, train acc (the epochs' running accuracy) "
                f"{t:+.4f}, val acc {va:+.4f} (mean over {len(train)} seeds)"
            )
        else:
            lines.append("- overfitting after growth: not judged (no growth event or no curve)")
        if rand:
            lines.append(f"- function-preserving init vs random_expansion: {_diff_text(rand)}")
        lines.append("")
    return lines


def loss_jumps(runs: Sequence[ArmRun]) -> list[dict[str, Any]]:
    """Per growth event of every run: mean train/loss over the logged points just after it
    against just before it (``_JUMP_WINDOW`` points each side)."""
    out = []
    for r in runs:
        loss = r.curves.get("train/loss") or []
        for step in sorted({int(e.get("step", 0)) for e in r.events}):
            before = [v for s, v in loss if s <= step][-_JUMP_WINDOW:]
            after = [v for s, v in loss if s > step][:_JUMP_WINDOW]
            if not before or not after:
                continue
            b, a = statistics.fmean(before), statistics.fmean(after)
            sites = sorted({str(e.get("site")) for e in r.events if int(e.get("step", 0)) == step})
            out.append(
                {"arm": r.arm, "seed": r.seed, "step": step, "sites": sites, "before": b, "after": a, "jump": a - b}
            )
    return out


def _ms(pair: tuple[float, float | None], digits: int = 4) -> str:
    mean, sd = pair
    if math.isnan(mean):
        return ""
    return f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


def _num(v: float, fmt: str) -> str:
    return "" if math.isnan(v) else format(v, fmt)


def report_markdown(title: str, runs: Sequence[ArmRun]) -> str:
    """The whole report as Markdown: the arms table, the verdicts, the loss jumps at events."""
    rows = arm_rows(runs)
    head = (
        "| arm | variant | n | val acc final | val acc best | test acc final | params | train FLOPs | "
        "epochs | steps | train s | wall s |"
    )
    lines = [
        f"# Did growth help? {title}",
        "",
        "Every arm over its seeds (mean ± std; finished runs only). dense_target and compute_matched are",
        "the grown runs' final architectures trained from scratch in linked runs (same seed, data split,",
        "optimizer and schedule); compute_matched stops at its grown run's cumulative `cost/train_flops`;",
        "static_sparse trains the same epochs under a fixed random mask (params and FLOPs: active weights).",
        "",
        head,
        "|" + "---|" * (head.count("|") - 1),
    ]
    for r in rows:
        n = f"{r['n']}" + (f" ({r['n_failed']} failed)" if r["n_failed"] else "")
        lines.append(
            "| "
            + " | ".join(
                [
                    r["arm"],
                    r["variant"],
                    n,
                    _ms(r["val_final"]),
                    _ms(r["val_best"]),
                    _ms(r["test_final"]),
                    _num(r["params"], ".0f"),
                    _num(r["train_flops"][0], ".3g"),
                    _num(r["epochs"], ".0f"),
                    _num(r["steps"], ".0f"),
                    _num(r["train_seconds"], ".1f"),
                    _num(r["wall_seconds"], ".1f"),
                ]
            )
            + " |"
        )
    lines += ["", "## Verdicts (the guide's)", "", *verdicts(runs)]
    jumps = loss_jumps(runs)
    lines += ["## Instability around growth events", ""]
    if jumps:
        lines += [
            f"Mean train/loss over the {_JUMP_WINDOW} logged points after each event minus before it.",
            "",
            "| arm | seed | step | sites | loss before | loss after | jump |",
            "|---|---|---|---|---|---|---|",
        ]
        for j in jumps:
            lines.append(
                f"| {j['arm']} | {j['seed']} | {j['step']} | {', '.join(j['sites'])} | {j['before']:.4f} | "
                f"{j['after']:.4f} | {j['jump']:+.4f} |"
            )
    else:
        lines.append("No growth event with logged losses on both sides.")
    lines += [
        "",
        "Plot: `plots/arms_vs_compute.png` on the sweep's parent run (val acc vs cumulative train FLOPs).",
        "",
    ]
    return "\n".join(lines)
