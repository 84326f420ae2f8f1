"""The growth report's figure: validation accuracy of every arm against cumulative training FLOPs.

Built on ``matplotlib.figure.Figure`` with an Agg canvas (no pyplot); matplotlib is imported
inside the function.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from growray.tracking.growth_report import ArmRun
from growray.tracking.plots import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["arms_vs_compute_figure"]


def arms_vs_compute_figure(runs: Sequence[ArmRun]) -> Figure:
    """One line per run (a colour per arm and variant): val/acc at each epoch against the
    run's cost/train_flops at the same step; growth events marked on the grown runs."""
    fig = new_figure((8, 5))
    ax = fig.subplots()
    labels = sorted({(r.arm, r.variant) for r in runs})
    colours = {key: f"C{i % 10}" for i, key in enumerate(labels)}
    shown: set[tuple[str, str]] = set()
    for r in runs:
        flops = dict(r.curves.get("cost/train_flops") or [])
        pts = [(flops[s], v) for s, v in r.curves.get("val/acc") or [] if s in flops]
        if not pts:
            continue
        key = (r.arm, r.variant)
        label = None if key in shown else (f"{r.arm} ({r.variant})" if r.variant else r.arm)
        shown.add(key)
        style = "x--" if r.arm == "compute_matched" else ".-"  # it retraces dense_target until its budget ends
        ax.plot([x for x, _ in pts], [y for _, y in pts], style, color=colours[key], alpha=0.75, label=label)
        steps = sorted(flops)
        for e in r.events:
            before = [s for s in steps if s <= int(e.get("step", 0))]
            if before:
                ax.axvline(flops[before[-1]], color=colours[key], alpha=0.15, lw=0.8)
    ax.set(xlabel="cumulative training FLOPs (cost/train_flops)", ylabel="val/acc", title="arms vs compute")
    ax.set_xscale("log")
    if shown:
        ax.legend(fontsize=8)
    return fig
