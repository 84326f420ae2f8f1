"""Figures of the ``continual`` kind: one accuracy matrix as a heatmap, and the sweep's arms.

Built on ``matplotlib.figure.Figure`` with an Agg canvas (no pyplot, safe in Ray workers).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from growray.continual import AccuracyMatrix
from growray.tracking.plots import new_figure

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["arms_figure", "matrix_figure"]


def _heatmap(ax: Axes, rows: Sequence[Sequence[float | None]], title: str) -> Any:
    n = len(rows)
    grid = [[math.nan if v is None else float(v) for v in r] for r in rows]
    im = ax.imshow(grid, vmin=0.0, vmax=1.0, cmap="viridis")
    for i in range(n):
        for j in range(n):
            if not math.isnan(grid[i][j]):
                ax.text(j, i, f"{grid[i][j]:.2f}", ha="center", va="center", fontsize=7, color="w")
    ax.set(xlabel="evaluated on task j", ylabel="after training task i", title=title)
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    return im


def matrix_figure(matrix: AccuracyMatrix, title: str) -> Figure:
    """R[i][j] as a heatmap (the superdiagonal is the zero-shot accuracy used by FWT)."""
    fig = new_figure((4.6, 4.0))
    ax = fig.subplots()
    im = _heatmap(ax, matrix.rows, title)
    fig.colorbar(im, ax=ax, label="accuracy")
    return fig


def arms_figure(rows: Sequence[Mapping[str, Any]]) -> Figure:
    """Each arm's mean accuracy matrix over its seeds (``report.arm_rows`` rows with ``matrix``)."""
    n = max(1, len(rows))
    fig = new_figure((3.6 * n, 3.6))
    axes = fig.subplots(1, n, squeeze=False)[0]
    im = None
    for ax, r in zip(axes, rows):
        im = _heatmap(ax, r["matrix"], f"{r['arm']} (avg {r['avg_acc_mean']:.3f})")
    if im is not None:
        fig.colorbar(im, ax=list(axes), label="accuracy")
    return fig
