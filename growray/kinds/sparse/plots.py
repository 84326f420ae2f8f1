"""Figures of the ``sparse`` kind: one trial's masks over training, and the sweep's arms.

Built on ``matplotlib.figure.Figure`` with an Agg canvas (no pyplot, safe in Ray workers);
matplotlib is imported inside the functions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from growray.tracking.plots import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["arms_figure", "sparse_masks_figure"]


def sparse_masks_figure(history: Sequence[Mapping[str, Any]], final_step: int) -> Figure:
    """Sparsity of every layer against the step, the mask churn of each update, and the probe
    loss just before and after each update (``SparseHook.history`` entries)."""
    fig = new_figure((12, 3.8))
    ax_s, ax_c, ax_l = fig.subplots(1, 3)
    layers = list(history[0]["sparsity"]) if history else []
    steps = [int(e["step"]) for e in history]
    for layer in layers:
        ys = [float(e["sparsity"][layer]) for e in history]
        ax_s.step([*steps, max(final_step, steps[-1])], [*ys, ys[-1]], where="post", label=layer)
    ax_s.set(xlabel="step", ylabel="sparsity", title="sparsity per layer", ylim=(0, 1.02))
    if layers:
        ax_s.legend(fontsize=7)
    updates = [e for e in history if e.get("kind") == "update"]
    us = [int(e["step"]) for e in updates]
    if updates:
        ax_c.plot(us, [float(e["churn"]) for e in updates], "k.-", label="all layers")
        for layer in layers:
            ax_c.plot(
                us,
                [e["layers"][layer]["added"] / max(1, e["layers"][layer]["active_before"]) for e in updates],
                ".",
                alpha=0.6,
                label=layer,
            )
        ax_c.legend(fontsize=7)
        ax_l.plot(us, [float(e["loss_before"]) for e in updates], "o-", label="before update")
        ax_l.plot(us, [float(e["loss_after"]) for e in updates], "x-", label="after update")
        ax_l.legend(fontsize=7)
    ax_c.set(xlabel="step", ylabel="new / active", title="mask churn per update")
    ax_l.set(xlabel="step", ylabel="probe loss", title="loss around updates")
    return fig


def arms_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Test accuracy against training FLOPs per arm (mean ± std over seeds), one panel per model
    (``report.arm_rows`` rows: ``model``, ``arm``, ``sparsity``, ``acc_mean``, ``acc_std``,
    ``flops_mean``)."""
    models = sorted({str(r["model"]) for r in rows}) or ["-"]
    fig = new_figure((5.5 * len(models), 4.2))
    axes = fig.subplots(1, len(models), squeeze=False)[0]
    markers = {"dense": "s", "static": "v", "set": "^", "rigl": "o", "srigl": "D"}
    for ax, model in zip(axes, models):
        for r in (r for r in rows if r["model"] == model):
            label = r["arm"] if r["arm"] == "dense" else f"{r['arm']} {r['sparsity']:g}"
            ax.errorbar(
                r["flops_mean"],
                r["acc_mean"],
                yerr=r["acc_std"] or 0.0,
                marker=markers.get(str(r["arm"]), "o"),
                linestyle="none",
                capsize=3,
                label=label,
            )
        ax.set_xscale("log")
        ax.set(xlabel="training FLOPs (effective)", ylabel="test accuracy", title=model)
        ax.legend(fontsize=7)
    return fig
