"""The one way plots here make a figure: ``matplotlib.figure.Figure`` on an Agg canvas.

No pyplot: no global figure registry, no GUI backend, safe in Ray workers. matplotlib is
imported inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def new_figure(figsize: tuple[float, float]) -> Figure:
    """An empty figure of ``figsize`` inches, constrained layout, on its own Agg canvas."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def color_cycle() -> list[dict[str, Any]]:
    """The colours of matplotlib's current property cycle (``[{"color": ...}, ...]``)."""
    import matplotlib as mpl

    return list(mpl.rcParams["axes.prop_cycle"])
