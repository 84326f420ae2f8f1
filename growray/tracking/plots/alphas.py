"""NAS architecture weights: α heatmaps per cell type and the op mixture of every edge over time."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from ._figure import new_figure

if TYPE_CHECKING:
    import numpy as np
    from matplotlib.figure import Figure

__all__ = ["CELL_ORDER", "alpha_heatmap_figure", "alpha_history_figure", "tex_label"]

CELL_ORDER = ("normal", "reduce")


def _cell_names(keys: list[str]) -> list[str]:
    """Cell types in display order: normal, reduce, then any others alphabetically."""
    return [c for c in CELL_ORDER if c in keys] + sorted(k for k in keys if k not in CELL_ORDER)


def _check_weights(
    alphas: dict[str, Any], op_names: list[str], edge_labels: list[str], where: str
) -> dict[str, np.ndarray]:
    """``{cell: (n_edges, n_ops) array}`` after checking shapes and that values are weights."""
    import numpy as np

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


def tex_label(label: str) -> str:
    """``n0←c_{k-2}`` -> ``n0←$c_{k-2}$``: subscripts as mathtext, the rest as plain text."""
    if "$" in label:
        return label
    return re.sub(r"[A-Za-z]\w*_\{[^{}$]*\}", lambda m: f"${m.group(0)}$", label)


def _chosen_ops(w: np.ndarray, op_names: list[str]) -> np.ndarray:
    """Per edge, the strongest op other than ``none`` (the op DARTS discretisation would keep)."""
    import numpy as np

    masked = w.copy()
    if "none" in op_names and len(op_names) > 1:
        masked[:, op_names.index("none")] = -np.inf
    return masked.argmax(axis=1)


def alpha_heatmap_figure(
    alphas: dict[str, list[list[float]]], op_names: list[str], edge_labels: list[str], title: str = ""
) -> Figure:
    """One annotated heatmap per cell type: rows are edges, columns ops, colour the weight.

    Args:
        alphas: ``{cell type: [[weight per op] per edge]}``, the softmax of α per edge
            (what ``model.alphas()`` returns), e.g. ``{"normal": ..., "reduce": ...}``.
        op_names: column labels, in the order of the weights.
        edge_labels: row labels, e.g. ``"n1←c_{k-1}"``.
        title: figure title (optional).

    Returns:
        a ``matplotlib.figure.Figure``. Each edge's strongest op other than ``none`` (the
        one DARTS' discretisation would keep if the edge is kept) is outlined and bold. The
        colour scale runs from the smallest to the largest weight shown (every cell alike).

    Raises:
        ValueError: a matrix whose shape disagrees with the labels, or values outside [0, 1].
    """

    weights = _check_weights(alphas, op_names, edge_labels, "alphas")
    from matplotlib.patches import Rectangle

    n_edges, n_ops = len(edge_labels), len(op_names)
    cells = list(weights)
    fig = new_figure((len(cells) * (0.62 * n_ops + 2.4) + 1.0, 0.34 * n_edges + 2.2))
    axes = fig.subplots(1, len(cells), squeeze=False)[0]
    fontsize = 7 if n_ops * n_edges > 40 else 9
    # the colour scale spans the data (shared by the cells), not 0-1: early in a search every
    # weight sits near 1/n_ops (0.11-0.14 for 8 ops), which a fixed 0-1 scale shows as one colour
    low = min(float(w.min()) for w in weights.values())
    high = max(float(w.max()) for w in weights.values())
    if high - low < 1e-6:
        low, high = low - 0.005, high + 0.005
    middle = (low + high) / 2
    images = []
    for ax, cell in zip(axes, cells):
        w = weights[cell]
        images.append(ax.imshow(w, cmap="viridis", vmin=low, vmax=high, aspect="auto"))
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
                    color="black" if w[i, j] > middle else "white",
                    fontweight="bold" if j == chosen[i] else "normal",
                )
            ax.add_patch(Rectangle((chosen[i] - 0.5, i - 0.5), 1, 1, fill=False, ec="tab:red", lw=1.6))
        ax.set_xticks(range(n_ops), op_names, rotation=40, ha="right", fontsize=8)
        ax.set_yticks(range(n_edges), [tex_label(e) for e in edge_labels], fontsize=8)
        ax.set_title(f"{cell} cell")
    fig.colorbar(images[-1], ax=list(axes), label=f"weight (softmax over ops; {low:.2f}-{high:.2f})", shrink=0.8)
    if title:
        fig.suptitle(title)
    return fig


def alpha_history_figure(
    history: list[dict[str, list[list[float]]]],
    op_names: list[str],
    edge_labels: list[str],
    epochs: list[int] | None = None,
) -> Figure:
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
    import numpy as np

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
    fig = new_figure((1.9 * n_cols + 1.8, len(cells) * (1.45 * n_rows + 0.6) + 0.3))
    subfigs = fig.subfigures(len(cells), 1, squeeze=False)[:, 0]
    handles: list[Any] = []  # one band per op, from the last panel drawn (they all share the colours)
    for sub, cell in zip(subfigs, cells):
        axes = sub.subplots(n_rows, n_cols, sharex=True, sharey=True, squeeze=False)
        for e in range(n_rows * n_cols):
            ax = axes[e // n_cols, e % n_cols]
            if e >= n_edges:
                ax.set_axis_off()
                continue
            handles = ax.stackplot(xs, series[cell][:, e, :].T, colors=colors, labels=op_names)
            ax.set_title(tex_label(edge_labels[e]), fontsize=8)
            ax.set_ylim(0, max(1.0, float(series[cell][:, e, :].sum(axis=1).max())))
            ax.set_xlim(xs[0], xs[-1])
            ax.tick_params(labelsize=7)
        for ax in axes[-1]:
            ax.set_xlabel(x_label, fontsize=8)
        sub.suptitle(f"{cell} cell: op weights per edge over {len(history)} record(s)", fontsize=10)
    fig.legend(handles, op_names, loc="outside right upper", fontsize=8, title="op")
    return fig
