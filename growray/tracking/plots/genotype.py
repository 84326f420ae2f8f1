"""NAS discrete cells: a DARTS/ENAS genotype drawn as a graph (no graphviz); NAS-Bench-201's in ``nb201_cell``."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ._figure import new_figure
from .alphas import CELL_ORDER

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["genotype_figure"]

NODE_COLORS = {"input": "#c1e1c1", "node": "#add8e6", "output": "#eee8aa"}  # as DARTS' graphviz plots


def _check_cell(genotype: dict[str, Any], cell: str) -> tuple[list[tuple[str, int]], list[int]]:
    """``(pairs, concat)`` of one cell after checking the format (two pairs per node)."""
    pairs = genotype[cell]
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, (list, tuple)) or not pairs or len(pairs) % 2:
        raise ValueError(
            f"genotype[{cell!r}] must be a non-empty list of [op, input] pairs, two per node; got {pairs!r}"
        )
    out = []
    for j, pair in enumerate(pairs):
        ok = isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[0], str)
        idx = pair[1] if ok else None
        if not ok or isinstance(idx, bool) or not isinstance(idx, int) or not 0 <= idx < j // 2 + 2:
            raise ValueError(
                f"genotype[{cell!r}][{j}] must be [op name, input] with input in 0..{j // 2 + 1} "
                f"(0, 1 = the cell inputs, i + 2 = node i); got {pair!r}"
            )
        out.append((pair[0], idx))
    n_nodes = len(out) // 2
    concat = genotype.get(f"{cell}_concat", list(range(2, n_nodes + 2)))
    if not isinstance(concat, (list, tuple)) or any(
        isinstance(c, bool) or not isinstance(c, int) or not 2 <= c < n_nodes + 2 for c in concat
    ):
        raise ValueError(
            f"genotype[{cell + '_concat'!r}] must list intermediate nodes 2..{n_nodes + 1}; got {concat!r}"
        )
    return out, list(concat)


def _bend(pos: dict[int, tuple[float, float]], src: int, dst: int) -> float:
    """arc3 ``rad`` for an edge: straight unless nodes lie near its line, then bowed away from them."""
    (x1, y1), (x2, y2) = pos[src], pos[dst]
    near = []
    for k, (x, y) in pos.items():
        if k not in (src, dst) and min(x1, x2) < x < max(x1, x2):
            off = y - (y1 + (y2 - y1) * (x - x1) / (x2 - x1))
            if abs(off) < 0.7:
                near.append(off)
    if not near:
        return 0.0
    # arc3 moves the control point by rad * (dy, -dx), so the curve bulges rad * length / 2:
    # aim for about 0.55 (clear of the nodes, inside the panel); for dx > 0, rad < 0 bows up
    rad = min(0.35, 1.1 / math.hypot(x2 - x1, y2 - y1))
    up = sum(near) < 0
    return (-rad if up else rad) * (1.0 if x2 > x1 else -1.0)


#: clearances in data units: a node's box reaches about 0.35 from its centre, a label's
#: half-height about 0.12 (its half-width depends on the op name: handled by the weights)
_NODE_CLEAR, _LABEL_CLEAR = 0.6, 0.5


def _label_point(
    start: tuple[float, float],
    end: tuple[float, float],
    rad: float,
    t: float,
    nodes: list[tuple[float, float]],
    taken: list[tuple[float, float]],
) -> tuple[float, float]:
    """Where an edge's label goes: the point of the edge's curve (arc3's quadratic Bézier),
    between a quarter and four fifths of the way, farthest from being on top of a node or of
    a label already placed; ``t`` (the preferred place) wins among points clear of both."""
    (x1, y1), (x2, y2) = start, end
    cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)

    def point(u: float) -> tuple[float, float]:
        return (
            (1 - u) ** 2 * x1 + 2 * (1 - u) * u * cx + u**2 * x2,
            (1 - u) ** 2 * y1 + 2 * (1 - u) * u * cy + u**2 * y2,
        )

    def clearance(p: tuple[float, float]) -> float:
        node = min((math.hypot(p[0] - a, (p[1] - b) * 1.6) for a, b in nodes), default=9.0) - _NODE_CLEAR
        label = min((math.hypot((p[0] - a) * 0.5, p[1] - b) for a, b in taken), default=9.0) - _LABEL_CLEAR * 0.5
        return min(node, label)

    candidates = [t] + [0.25 + 0.05 * k for k in range(12)]
    clear = [u for u in candidates if clearance(point(u)) >= 0]
    if clear:
        return point(min(clear, key=lambda u: abs(u - t)))
    return point(max(candidates, key=lambda u: clearance(point(u))))


def draw_edge(
    ax: Axes,
    start: tuple[float, float],
    end: tuple[float, float],
    rad: float,
    label: str | None,
    color: Any,
    nodes: list[tuple[float, float]],
    taken: list[tuple[float, float]],
    t: float = 0.6,
    linestyle: str = "-",
) -> None:
    """One arrow ``start -> end`` (arc3 with ``rad``) and its label, on the curve clear of
    ``nodes`` and of the labels already placed (``taken``, which it extends)."""
    ax.annotate(
        "",
        xy=end,
        xytext=start,
        zorder=1,
        arrowprops={
            "arrowstyle": "-|>",
            "color": color,
            "lw": 1.4 if label else 1.0,
            "linestyle": linestyle,
            "shrinkA": 13,
            "shrinkB": 13,
            "connectionstyle": f"arc3,rad={rad}",
        },
    )
    if label:
        lx, ly = _label_point(start, end, rad, t, nodes, taken)
        taken.append((lx, ly))
        ax.text(
            lx,
            ly,
            label,
            fontsize=7,
            ha="center",
            va="center",
            zorder=3,
            color=color,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": color, "lw": 0.6, "alpha": 0.9},
        )


def draw_nodes(ax: Axes, pos: dict[int, tuple[float, float]], names: dict[int, str], kinds: dict[int, str]) -> None:
    """The node boxes: ``names[k]`` at ``pos[k]``, filled by ``kinds[k]`` (input, node, output)."""
    for k, (x, y) in pos.items():
        ax.text(
            x,
            y,
            names[k],
            ha="center",
            va="center",
            fontsize=10,
            zorder=4,
            bbox={"boxstyle": "round,pad=0.35", "fc": NODE_COLORS[kinds[k]], "ec": "0.3"},
        )


def _draw_cell(ax: Axes, pairs: list[tuple[str, int]], concat: list[int], title: str, colors: dict[str, Any]) -> None:
    n_nodes = len(pairs) // 2
    # inputs on the left, intermediate nodes zig-zag left to right, output on the right
    spacing = 1.8
    pos = {0: (0.0, 1.4), 1: (0.0, -1.4)}
    for i in range(n_nodes):
        pos[i + 2] = (spacing * (i + 1), 0.8 if i % 2 == 0 else -0.8)
    out = n_nodes + 2
    pos[out] = (spacing * (n_nodes + 1) + 0.4, 0.0)
    names = {0: r"$c_{k-2}$", 1: r"$c_{k-1}$", out: r"$c_{k}$", **{i + 2: str(i) for i in range(n_nodes)}}

    taken: list[tuple[float, float]] = []

    def arrow(src: int, dst: int, rad: float, label: str | None, t: float = 0.6) -> None:
        color = colors[label] if label else "0.6"
        draw_edge(ax, pos[src], pos[dst], rad, label, color, list(pos.values()), taken, t)

    for i in range(n_nodes):
        (op_a, in_a), (op_b, in_b) = pairs[2 * i], pairs[2 * i + 1]
        if in_a == in_b:  # ENAS may read one input twice: bend the two arrows apart
            arrow(in_a, i + 2, 0.35, op_a)
            arrow(in_b, i + 2, -0.35, op_b)
        else:  # labels at different distances, so two edges into one node do not cover each other
            arrow(in_a, i + 2, _bend(pos, in_a, i + 2), op_a, t=0.5)
            arrow(in_b, i + 2, _bend(pos, in_b, i + 2), op_b, t=0.72)
    for c in concat:
        arrow(c, out, 0.0, None)
    draw_nodes(ax, pos, names, {k: "input" if k < 2 else "output" if k == out else "node" for k in pos})
    ax.set_xlim(-0.6, pos[out][0] + 0.6)
    ax.set_ylim(-2.1, 2.1)
    ax.set_aspect("equal")
    ax.set_axis_off()
    unused = [i for i in range(n_nodes) if i + 2 not in concat]
    note = f"; nodes {', '.join(map(str, unused))} not in the output" if unused else ""
    ax.set_title(f"{title}: {n_nodes} nodes, output concatenates {len(concat)}{note}", fontsize=10)


def genotype_figure(genotype: dict[str, Any]) -> Figure:
    """Diagram of the normal and reduce cells of a DARTS/ENAS genotype (no graphviz); a
    NAS-Bench-201 genotype (``{"nb201": ...}``) is drawn by :func:`nb201_cell_figure`.

    Nodes: the cell inputs ``c_{k-2}``, ``c_{k-1}``, the intermediate nodes 0..n-1 and the
    output ``c_{k}``; an arrow labelled with the op name for every ``[op, input]`` pair
    (arrow and label coloured by op, the same colour in both cells), grey arrows from the
    concatenated nodes to the output. A node that reads the same input
    twice (ENAS) gets two bent arrows.

    Args:
        genotype: ``{"normal": [[op, input], ...], "normal_concat": [2, 3, ...], "reduce":
            [...], "reduce_concat": [...]}``: two pairs per node; input 0/1 are the cell
            inputs, input ``i + 2`` is node ``i``. A missing ``*_concat`` means all nodes.

    Returns:
        a ``matplotlib.figure.Figure``, one panel per cell present (normal above reduce).

    Raises:
        TypeError: ``genotype`` is not a mapping.
        ValueError: neither cell present, a malformed pair, an input a node cannot read, or
            a concat entry that is not an intermediate node.
    """
    if not isinstance(genotype, dict):
        raise TypeError(f"genotype must be a mapping with 'normal' and/or 'reduce'; got {type(genotype).__name__}")
    if "nb201" in genotype:  # a NAS-Bench-201 cell: one op per edge of a 4-node DAG
        from .nb201_cell import nb201_cell_figure

        return nb201_cell_figure(genotype)
    cells = [c for c in CELL_ORDER if c in genotype]
    if not cells:
        raise ValueError(f"genotype has neither 'normal' nor 'reduce'; got keys {sorted(genotype)}")
    checked = {c: _check_cell(genotype, c) for c in cells}
    ops = sorted({op for pairs, _ in checked.values() for op, _ in pairs})
    import matplotlib as mpl

    cmap = mpl.colormaps["tab10" if len(ops) <= 10 else "tab20"]
    colors = {op: cmap(k % 20) for k, op in enumerate(ops)}  # one colour per op, shared by both cells
    width = max(len(p) // 2 for p, _ in checked.values())
    fig = new_figure((1.9 * width + 3.4, 3.4 * len(cells)))
    axes = fig.subplots(len(cells), 1, squeeze=False)[:, 0]
    for ax, cell in zip(axes, cells):
        _draw_cell(ax, *checked[cell], title=f"{cell} cell", colors=colors)
    return fig
