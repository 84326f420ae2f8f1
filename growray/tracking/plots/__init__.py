"""Plots logged as run artifacts.

Figures are built with ``matplotlib.figure.Figure`` directly (Agg canvas), not pyplot:
no global figure registry, no GUI backend, safe in Ray workers. matplotlib is imported
inside the functions, so importing this package costs only numpy.

Growth: :func:`growth_timeline_figure`. Multi-objective: :func:`pareto_figure`. NAS:
:func:`alpha_heatmap_figure`, :func:`alpha_history_figure` (architecture weights) and
:func:`genotype_figure` (the discrete cells, drawn without graphviz; NAS-Bench-201's by
:func:`nb201_cell_figure`). Kinds that draw
their own figures start from :func:`new_figure`.
"""

from ._figure import new_figure
from .alphas import alpha_heatmap_figure, alpha_history_figure
from .genotype import genotype_figure
from .growth import growth_timeline_figure
from .nb201_cell import nb201_cell_figure
from .pareto import pareto_figure

__all__ = [
    "alpha_heatmap_figure",
    "alpha_history_figure",
    "genotype_figure",
    "growth_timeline_figure",
    "nb201_cell_figure",
    "new_figure",
    "pareto_figure",
]
