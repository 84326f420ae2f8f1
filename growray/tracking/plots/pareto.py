"""Multi-objective sweeps: every trial's objective values, the Pareto front highlighted."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._figure import new_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["pareto_figure"]


def pareto_figure(points: list[list[float]], names: list[str], modes: list[str], on_front: list[bool]) -> Figure:
    """Objective values of every trial; the Pareto front highlighted, dominated trials faded.

    Two objectives: one panel. Three or more: one panel per pair. Each axis label says
    which way is better.
    """
    import itertools

    if not points:
        raise ValueError("pareto_figure needs at least one point")
    pairs = list(itertools.combinations(range(len(names)), 2))
    fig = new_figure((5.0 * len(pairs) if len(pairs) <= 3 else 12, 4.2))
    axes = fig.subplots(1, len(pairs), squeeze=False)[0]
    front = [p for p, f in zip(points, on_front) if f]
    rest = [p for p, f in zip(points, on_front) if not f]
    for ax, (i, j) in zip(axes, pairs):
        if rest:
            ax.scatter([p[i] for p in rest], [p[j] for p in rest], c="tab:gray", alpha=0.3, s=22, label="dominated")
        if front:
            pts = sorted(front, key=lambda p: p[i])
            ax.scatter([p[i] for p in pts], [p[j] for p in pts], c="tab:red", s=36, label="Pareto front", zorder=3)
            if len(names) == 2:
                ax.step([p[i] for p in pts], [p[j] for p in pts], where="post", c="tab:red", lw=1, alpha=0.7)
        ax.set_xlabel(f"{names[i]} ({'higher' if modes[i] == 'max' else 'lower'} is better)")
        ax.set_ylabel(f"{names[j]} ({'higher' if modes[j] == 'max' else 'lower'} is better)")
        ax.grid(alpha=0.3)
    axes[0].legend(loc="best", fontsize=8)
    fig.suptitle(f"{sum(on_front)} of {len(points)} trials on the Pareto front")
    return fig
