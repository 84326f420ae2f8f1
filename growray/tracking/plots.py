"""Plots logged as run artifacts.

Figures are built with ``matplotlib.figure.Figure`` directly (Agg canvas), not pyplot:
no global figure registry, no GUI backend, safe in Ray workers. matplotlib is imported
inside the functions.

Growth: :func:`growth_timeline_figure`. Multi-objective: :func:`pareto_figure`. NAS:
:func:`alpha_heatmap_figure`, :func:`alpha_history_figure` (architecture weights) and
:func:`genotype_figure` (the discrete cells, drawn without graphviz).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

__all__ = [
    "alpha_heatmap_figure",
    "alpha_history_figure",
    "genotype_figure",
    "growth_timeline_figure",
    "pareto_figure",
]

_REQUIRED_EVENT_KEYS = ("step", "site", "width_after")
_MAX_ANNOTATED_EVENTS = 40


def _new_figure(figsize: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def growth_timeline_figure(initial_widths: dict[str, int], events: list[dict[str, Any]], final_step: int):
    """Width of every growth site against the optimizer step.

    Args:
        initial_widths: ``{site: width}`` before training.
        events: growth/prune events, each a dict with at least ``step``, ``site`` and
            ``width_after`` (``n_added``, negative for removals, is shown when present).
            Events of sites missing from ``initial_widths`` start at their first event
            (at ``width_after - n_added`` when ``n_added`` is given).
        final_step: the last optimizer step; every line is extended to it.

    Returns:
        a ``matplotlib.figure.Figure``: one step line per site, a marker at each event.
    """
    for i, ev in enumerate(events):
        missing = [k for k in _REQUIRED_EVENT_KEYS if k not in ev]
        if missing:
            raise ValueError(
                f"growth event {i} lacks {', '.join(missing)}; every event needs "
                f"{', '.join(_REQUIRED_EVENT_KEYS)} (got keys {sorted(ev)})"
            )
    ordered = sorted(events, key=lambda e: e["step"])
    series: dict[str, tuple[list[int], list[int]]] = {site: ([0], [int(w)]) for site, w in initial_widths.items()}
    marks: dict[str, list[tuple[int, int, Any]]] = {}
    for ev in ordered:
        site, step, width = str(ev["site"]), int(ev["step"]), int(ev["width_after"])
        if site not in series:
            before = width - int(ev["n_added"]) if "n_added" in ev else width
            series[site] = ([step], [before])
        xs, ys = series[site]
        xs.append(step)
        ys.append(width)
        marks.setdefault(site, []).append((step, width, ev.get("n_added")))

    from matplotlib.ticker import MaxNLocator

    fig = _new_figure((8, 4.5))
    ax = fig.add_subplot()
    colors = [c["color"] for c in _color_cycle()]
    annotate = len(ordered) <= _MAX_ANNOTATED_EVENTS
    for i, (site, (xs, ys)) in enumerate(series.items()):
        color = colors[i % len(colors)]
        end = max(int(final_step), xs[-1])
        # Sites often grow in lockstep: vary style and width so no line hides another.
        style = ("-", "--", ":", "-.")[i % 4]
        ax.step(xs + [end], ys + [ys[-1]], where="post", color=color, label=site, lw=2.6 - 0.5 * (i % 3), ls=style)
        pts = marks.get(site, [])
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o", color=color, ms=5)
        if annotate:
            for step, width, n in pts:
                if n is not None:
                    ax.annotate(
                        f"{int(n):+d}",
                        (step, width),
                        textcoords="offset points",
                        xytext=(3, 4),
                        fontsize=7,
                        color=color,
                    )
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("width (units)")
    n_events = len(ordered)
    ax.set_title(f"Width of each growth site ({n_events} event{'s' if n_events != 1 else ''})")
    ax.set_xlim(left=0, right=max(int(final_step), 1))
    top = max((max(ys) for _, ys in series.values()), default=1)
    ax.set_ylim(0, top * 1.12 + 1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if series:
        ax.legend(title="site", loc="best", fontsize=8)
    return fig


def _color_cycle():
    import matplotlib as mpl

    return list(mpl.rcParams["axes.prop_cycle"])


def pareto_figure(points: list[list[float]], names: list[str], modes: list[str], on_front: list[bool]):
    """Objective values of every trial; the Pareto front highlighted, dominated trials faded.

    Two objectives: one panel. Three or more: one panel per pair. Each axis label says
    which way is better.
    """
    import itertools

    if not points:
        raise ValueError("pareto_figure needs at least one point")
    pairs = list(itertools.combinations(range(len(names)), 2))
    fig = _new_figure((5.0 * len(pairs) if len(pairs) <= 3 else 12, 4.2))
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


# --- NAS: architecture weights ------------------------------------------------------------

_CELL_ORDER = ("normal", "reduce")


def _cell_names(keys: list[str]) -> list[str]:
    """Cell types in display order: normal, reduce, then any others alphabetically."""
    return [c for c in _CELL_ORDER if c in keys] + sorted(k for k in keys if k not in _CELL_ORDER)


def _check_weights(
    alphas: dict[str, Any], op_names: list[str], edge_labels: list[str], where: str
) -> dict[str, np.ndarray]:
    """``{cell: (n_edges, n_ops) array}`` after checking shapes and that values are weights."""
    if not isinstance(alphas, dict) or not alphas:
        raise ValueError(
            f"{where} must be a non-empty mapping {{cell type: [[weight per op] per edge]}}; got {alphas!r}"
        )
    shape = (len(edge_labels), len(op_names))
    if 0 in shape:
        raise ValueError(
            f"{where}: op_names and edge_labels must be non-empty; got {len(op_names)} ops, {len(edge_labels)} edges"
        )
    out = {}
    for cell in _cell_names(list(alphas)):
        try:
            w = np.asarray(alphas[cell], dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise ValueError(f"{where}[{cell!r}] must be a rectangular list of numbers: {e}") from e
        if w.shape != shape:
            raise ValueError(
                f"{where}[{cell!r}] has shape {w.shape}; expected {shape} "
                f"(one row per edge label, one column per op name)"
            )
        if not np.all(np.isfinite(w)) or w.min() < -1e-6 or w.max() > 1 + 1e-6:
            raise ValueError(
                f"{where}[{cell!r}] must hold weights in [0, 1] (softmax over the ops, not raw α); "
                f"got values in [{np.nanmin(w):.3g}, {np.nanmax(w):.3g}]"
            )
        out[cell] = w
    return out


def _tex_label(label: str) -> str:
    """``n0←c_{k-2}`` -> ``n0←$c_{k-2}$``: subscripts as mathtext, the rest as plain text."""
    if "$" in label:
        return label
    return re.sub(r"[A-Za-z]\w*_\{[^{}$]*\}", lambda m: f"${m.group(0)}$", label)


def _chosen_ops(w: np.ndarray, op_names: list[str]) -> np.ndarray:
    """Per edge, the strongest op other than ``none`` (the op DARTS discretisation would keep)."""
    masked = w.copy()
    if "none" in op_names and len(op_names) > 1:
        masked[:, op_names.index("none")] = -np.inf
    return masked.argmax(axis=1)


def alpha_heatmap_figure(
    alphas: dict[str, list[list[float]]], op_names: list[str], edge_labels: list[str], title: str = ""
):
    """One annotated heatmap per cell type: rows are edges, columns ops, colour the weight.

    Args:
        alphas: ``{cell type: [[weight per op] per edge]}``, the softmax of α per edge
            (what ``model.alphas()`` returns), e.g. ``{"normal": ..., "reduce": ...}``.
        op_names: column labels, in the order of the weights.
        edge_labels: row labels, e.g. ``"n1←c_{k-1}"``.
        title: figure title (optional).

    Returns:
        a ``matplotlib.figure.Figure``. Each edge's strongest op other than ``none`` (the
        one DARTS' discretisation would keep if the edge is kept) is outlined and bold.

    Raises:
        ValueError: a matrix whose shape disagrees with the labels, or values outside [0, 1].
    """
    weights = _check_weights(alphas, op_names, edge_labels, "alphas")
    from matplotlib.patches import Rectangle

    n_edges, n_ops = len(edge_labels), len(op_names)
    cells = list(weights)
    fig = _new_figure((len(cells) * (0.62 * n_ops + 2.4) + 1.0, 0.34 * n_edges + 2.2))
    axes = fig.subplots(1, len(cells), squeeze=False)[0]
    fontsize = 7 if n_ops * n_edges > 40 else 9
    image = None
    for ax, cell in zip(axes, cells):
        w = weights[cell]
        image = ax.imshow(w, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
        chosen = _chosen_ops(w, op_names)
        for i in range(n_edges):
            for j in range(n_ops):
                ax.text(
                    j,
                    i,
                    f"{w[i, j]:.2f}",
                    ha="center",
                    va="center",
                    fontsize=fontsize,
                    color="black" if w[i, j] > 0.55 else "white",
                    fontweight="bold" if j == chosen[i] else "normal",
                )
            ax.add_patch(Rectangle((chosen[i] - 0.5, i - 0.5), 1, 1, fill=False, ec="tab:red", lw=1.6))
        ax.set_xticks(range(n_ops), op_names, rotation=40, ha="right", fontsize=8)
        ax.set_yticks(range(n_edges), [_tex_label(e) for e in edge_labels], fontsize=8)
        ax.set_title(f"{cell} cell")
    fig.colorbar(image, ax=list(axes), label="weight (softmax over ops)", shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def alpha_history_figure(
    history: list[dict[str, list[list[float]]]],
    op_names: list[str],
    edge_labels: list[str],
    epochs: list[int] | None = None,
):
    """How each edge's op mixture evolves: one small stacked-area panel per edge and cell type.

    Each panel stacks the op weights of one edge against the epoch (they sum to 1 under a
    softmax), so a drift towards one op, e.g. the skip_connect collapse, shows as one band
    taking over. Panels share axes; one legend maps colours to ops. Readable up to about
    14 edges x 8 ops x 50 epochs per cell type.

    Args:
        history: one ``{cell type: [[weight per op] per edge]}`` per recorded epoch, oldest
            first; every entry has the same cell types.
        op_names: ops, in the order of the weights.
        edge_labels: one label per edge, in row order.
        epochs: the epoch of each entry (x axis); by default entries are numbered 0, 1, ...

    Returns:
        a ``matplotlib.figure.Figure`` with one block of panels per cell type.

    Raises:
        ValueError: an empty history, entries with different cell types, or a matrix whose
            shape disagrees with the labels.
    """
    if not history:
        raise ValueError("alpha_history_figure needs at least one recorded epoch; got an empty history")
    if epochs is not None and len(epochs) != len(history):
        raise ValueError(f"epochs must give one epoch per history entry ({len(history)}); got {len(epochs)}")
    checked = [_check_weights(h, op_names, edge_labels, f"history[{t}]") for t, h in enumerate(history)]
    cells = list(checked[0])
    for t, h in enumerate(checked):
        if list(h) != cells:
            raise ValueError(f"history[{t}] has cell types {list(h)}; history[0] has {cells}")
    series = {c: np.stack([h[c] for h in checked]) for c in cells}  # (n_epochs, n_edges, n_ops)
    x_label = "record" if epochs is None else "epoch"
    xs = np.arange(len(history), dtype=float) if epochs is None else np.asarray(epochs, dtype=float)
    if len(history) == 1:  # a band needs two x values
        xs = np.array([xs[0], xs[0] + 1.0])
        series = {c: np.concatenate([s, s]) for c, s in series.items()}

    n_edges, n_ops = len(edge_labels), len(op_names)
    n_cols = min(n_edges, 7)
    n_rows = math.ceil(n_edges / n_cols)
    palette = "tab10" if n_ops <= 10 else "tab20"
    import matplotlib as mpl

    colors = [mpl.colormaps[palette](k % 20) for k in range(n_ops)]
    fig = _new_figure((1.9 * n_cols + 1.8, len(cells) * (1.45 * n_rows + 0.6) + 0.3))
    subfigs = fig.subfigures(len(cells), 1, squeeze=False)[:, 0]
    handles = None
    for sub, cell in zip(subfigs, cells):
        axes = sub.subplots(n_rows, n_cols, sharex=True, sharey=True, squeeze=False)
        for e in range(n_rows * n_cols):
            ax = axes[e // n_cols, e % n_cols]
            if e >= n_edges:
                ax.set_axis_off()
                continue
            handles = ax.stackplot(xs, series[cell][:, e, :].T, colors=colors, labels=op_names)
            ax.set_title(_tex_label(edge_labels[e]), fontsize=8)
            ax.set_ylim(0, max(1.0, float(series[cell][:, e, :].sum(axis=1).max())))
            ax.set_xlim(xs[0], xs[-1])
            ax.tick_params(labelsize=7)
        for ax in axes[-1]:
            ax.set_xlabel(x_label, fontsize=8)
        sub.suptitle(f"{cell} cell: op weights per edge over {len(history)} record(s)", fontsize=10)
    fig.legend(handles, op_names, loc="outside right upper", fontsize=8, title="op")
    return fig


# --- NAS: discrete cells -------------------------------------------------------------------

_NODE_COLORS = {"input": "#c1e1c1", "node": "#add8e6", "output": "#eee8aa"}  # as DARTS' graphviz plots


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


def _draw_cell(ax, pairs: list[tuple[str, int]], concat: list[int], title: str, colors: dict[str, Any]) -> None:
    n_nodes = len(pairs) // 2
    # inputs on the left, intermediate nodes zig-zag left to right, output on the right
    spacing = 1.8
    pos = {0: (0.0, 1.4), 1: (0.0, -1.4)}
    for i in range(n_nodes):
        pos[i + 2] = (spacing * (i + 1), 0.8 if i % 2 == 0 else -0.8)
    out = n_nodes + 2
    pos[out] = (spacing * (n_nodes + 1) + 0.4, 0.0)
    names = {0: r"$c_{k-2}$", 1: r"$c_{k-1}$", out: r"$c_{k}$", **{i + 2: str(i) for i in range(n_nodes)}}

    def arrow(src: int, dst: int, rad: float, label: str | None, t: float = 0.6) -> None:
        (x1, y1), (x2, y2) = pos[src], pos[dst]
        color = colors[label] if label else "0.6"
        ax.annotate(
            "",
            xy=(x2, y2),
            xytext=(x1, y1),
            zorder=1,
            arrowprops={
                "arrowstyle": "-|>",
                "color": color,
                "lw": 1.4 if label else 1.0,
                "shrinkA": 13,
                "shrinkB": 13,
                "connectionstyle": f"arc3,rad={rad}",
            },
        )
        if label:  # a point of arc3's quadratic Bézier, nearer the destination than the source
            cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
            lx = (1 - t) ** 2 * x1 + 2 * (1 - t) * t * cx + t**2 * x2
            ly = (1 - t) ** 2 * y1 + 2 * (1 - t) * t * cy + t**2 * y2
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
    for k, (x, y) in pos.items():
        kind = "input" if k < 2 else "output" if k == out else "node"
        ax.text(
            x,
            y,
            names[k],
            ha="center",
            va="center",
            fontsize=10,
            zorder=4,
            bbox={"boxstyle": "round,pad=0.35", "fc": _NODE_COLORS[kind], "ec": "0.3"},
        )
    ax.set_xlim(-0.6, pos[out][0] + 0.6)
    ax.set_ylim(-2.1, 2.1)
    ax.set_aspect("equal")
    ax.set_axis_off()
    unused = [i for i in range(n_nodes) if i + 2 not in concat]
    note = f"; nodes {', '.join(map(str, unused))} not in the output" if unused else ""
    ax.set_title(f"{title}: {n_nodes} nodes, output concatenates {len(concat)}{note}", fontsize=10)


def genotype_figure(genotype: dict[str, Any]):
    """Diagram of the normal and reduce cells of a DARTS/ENAS genotype (no graphviz).

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
    cells = [c for c in _CELL_ORDER if c in genotype]
    if not cells:
        raise ValueError(f"genotype has neither 'normal' nor 'reduce'; got keys {sorted(genotype)}")
    checked = {c: _check_cell(genotype, c) for c in cells}
    ops = sorted({op for pairs, _ in checked.values() for op, _ in pairs})
    import matplotlib as mpl

    cmap = mpl.colormaps["tab10" if len(ops) <= 10 else "tab20"]
    colors = {op: cmap(k % 20) for k, op in enumerate(ops)}  # one colour per op, shared by both cells
    width = max(len(p) // 2 for p, _ in checked.values())
    fig = _new_figure((1.9 * width + 3.4, 3.4 * len(cells)))
    axes = fig.subplots(len(cells), 1, squeeze=False)[:, 0]
    for ax, cell in zip(axes, cells):
        _draw_cell(ax, *checked[cell], title=f"{cell} cell", colors=colors)
    return fig
