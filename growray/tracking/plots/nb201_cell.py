"""NAS-Bench-201 cells drawn as a graph (no graphviz): one arrow per edge, labelled with its op.

The layout is an arc diagram: the nodes on a line left to right (node 0, the cell's input;
the last node, its output), edges between neighbours straight, longer edges as arcs, above
the line when they leave an even node and below when they leave an odd one (for the
benchmark's 4 nodes: no two edges cross). A ``none`` edge (NAS-Bench-201's zeroize: the
edge contributes nothing) is drawn dashed and grey, so the diagram still shows all edges.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._figure import new_figure
from .genotype import draw_edge, draw_nodes

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["NONE_COLOR", "nb201_cell_figure"]

NONE_COLOR = "0.6"  #: the colour of ``none`` edges (dashed)
_SPACING = 2.0  # between neighbouring nodes, in data units
_RAD = 0.55  # arc3 bulge of long edges: rad * length / 2


def _op_colors(ops: list[str], order: tuple[str, ...]) -> dict[str, Any]:
    """One tab10 colour per op, fixed by NAS-Bench-201's op order (the same in every plot)."""
    import matplotlib as mpl

    cmap = mpl.colormaps["tab10"]
    others = sorted(set(ops) - set(order))
    ranked = list(order) + others
    return {op: (NONE_COLOR if op == "none" else cmap(ranked.index(op) % 10)) for op in set(ops)}


def nb201_cell_figure(genotype: dict[str, Any] | str) -> Figure:
    """Diagram of a NAS-Bench-201 cell (no graphviz; the layout is in the module docstring).

    Nodes ``0 .. n-1`` (node 0 the cell's input, node ``n-1`` its output); one arrow per edge
    ``i -> j`` (``i < j``) labelled with its op, arrow and label coloured by op (a fixed colour
    per NAS-Bench-201 op); ``none`` edges dashed and grey. The title holds the table key (for
    a cell of the benchmark) and the architecture string.

    Args:
        genotype: ``{"nb201": "|op~0|+|op~0|op~1|+|...|"}`` (``Nb201Genotype.to_dict()``), an
            architecture string or a 6-digit table key.

    Returns:
        a ``matplotlib.figure.Figure`` with one panel.

    Raises:
        ValueError: not a NAS-Bench-201 genotype (the message shows the expected form).
    """
    from growray.nas.nb201 import Nb201Genotype
    from growray.nas.ops import NB201_OPS

    geno = Nb201Genotype.from_dict(genotype)
    n = geno.n_nodes
    pos = {k: (_SPACING * k, 0.0) for k in range(n)}
    nodes = list(pos.values())
    colors = _op_colors(list(geno.ops), tuple(NB201_OPS))
    # the arcs' bulges (rad * length / 2), plus room for a node box or a label
    above = max([_RAD * _SPACING * (j - i) / 2 for _, j, i in geno.edges() if j - i > 1 and i % 2 == 0], default=0)
    below = max([_RAD * _SPACING * (j - i) / 2 for _, j, i in geno.edges() if j - i > 1 and i % 2 == 1], default=0)
    top, bottom = above + 0.45, -(below + 0.45)
    width = _SPACING * (n - 1) + 1.2
    fig = new_figure((max(4.0, 0.85 * width + 0.3), 0.85 * (top - bottom) + 0.8))  # about 0.85 in per data unit
    ax = fig.subplots()
    taken: list[tuple[float, float]] = []
    for op, j, i in geno.edges():
        rad = 0.0 if j - i == 1 else (-_RAD if i % 2 == 0 else _RAD)  # dx > 0: rad < 0 bows up
        dashed = op == "none"
        draw_edge(ax, pos[i], pos[j], rad, op, colors[op], nodes, taken, t=0.5, linestyle="--" if dashed else "-")
    kinds = {k: "input" if k == 0 else "output" if k == n - 1 else "node" for k in pos}
    draw_nodes(ax, pos, {k: str(k) for k in pos}, kinds)
    ax.set_xlim(-0.6, pos[n - 1][0] + 0.6)
    ax.set_ylim(bottom, top)
    ax.set_aspect("equal")
    ax.set_axis_off()
    key = geno.table_key()
    head = f"NAS-Bench-201 cell, table key {key}" if key else f"cell of {n} nodes (not in NAS-Bench-201's table)"
    ax.set_title(f"{head}\n{geno.arch_str()}", fontsize=8)
    return fig
