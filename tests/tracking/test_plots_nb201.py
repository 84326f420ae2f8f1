"""The NAS-Bench-201 cell diagram: the arrows drawn are the genotype's edges, each with its op."""

from __future__ import annotations

import io

import pytest
from matplotlib.colors import to_rgba
from matplotlib.text import Annotation

from growray.nas import Nb201Genotype
from growray.tracking.plots import genotype_figure, nb201_cell_figure

CELL = "|nor_conv_3x3~0|+|none~0|skip_connect~1|+|avg_pool_3x3~0|nor_conv_1x1~1|none~2|"


def drawn_edges(ax) -> dict[tuple[int, int], tuple[str, str]]:
    """``{(input node, node): (op, linestyle)}`` read back from the artists of a cell panel:
    an arrow's ends are node boxes, and its op is the label of the arrow's colour."""
    texts = [t for t in ax.texts if not isinstance(t, Annotation)]
    nodes = {t.get_position(): int(t.get_text()) for t in texts if t.get_fontsize() == 10}
    label_colors: dict[tuple, set[str]] = {}
    for t in texts:
        if t.get_fontsize() == 7:
            label_colors.setdefault(to_rgba(t.get_color()), set()).add(t.get_text())
    assert all(len(ops) == 1 for ops in label_colors.values()), label_colors  # one op per colour
    op_of = {c: next(iter(ops)) for c, ops in label_colors.items()}
    out = {}
    for arrow in (t for t in ax.texts if isinstance(t, Annotation)):
        patch = arrow.arrow_patch
        edge = (nodes[tuple(arrow.xyann)], nodes[tuple(arrow.xy)])
        assert edge not in out, f"edge {edge} drawn twice"
        out[edge] = (op_of[to_rgba(patch.get_edgecolor())], patch.get_linestyle())
    return out


def test_the_diagram_draws_every_edge_with_its_op_and_none_dashed() -> None:
    geno = Nb201Genotype.from_arch_str(CELL)
    fig = genotype_figure(geno.to_dict())  # dispatches to nb201_cell_figure
    (ax,) = fig.axes
    nodes = [t for t in ax.texts if not isinstance(t, Annotation) and t.get_fontsize() == 10]
    assert sorted(t.get_text() for t in nodes) == ["0", "1", "2", "3"]
    edges = drawn_edges(ax)
    assert {e: op for e, (op, _) in edges.items()} == {(i, j): op for op, j, i in geno.edges()}
    assert {e for e, (_, ls) in edges.items() if ls == "--"} == {(0, 2), (2, 3)}  # the two none edges
    assert all(ls in ("-", "solid") for op, ls in edges.values() if op != "none")
    assert ax.get_title() == f"NAS-Bench-201 cell, table key {geno.table_key()}\n{CELL}"
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    assert buf.getvalue()[:4] == b"\x89PNG"


def test_no_two_arcs_of_the_benchmark_cell_cross_sides() -> None:
    """Edges from even nodes arc above the line of nodes, from odd nodes below; neighbours straight."""
    ax = nb201_cell_figure("444444").axes[0]  # a table key; all avg_pool
    rads = {}
    for arrow in (t for t in ax.texts if isinstance(t, Annotation)):
        style = arrow.arrow_patch.get_connectionstyle()
        rads[(round(arrow.xyann[0] / 2), round(arrow.xy[0] / 2))] = style.rad
    assert rads == {(0, 1): 0.0, (1, 2): 0.0, (2, 3): 0.0, (0, 2): -0.55, (0, 3): -0.55, (1, 3): 0.55}


def test_other_cell_sizes_and_bad_input() -> None:
    ax = nb201_cell_figure({"nb201": "|skip_connect~0|+|skip_connect~0|nor_conv_1x1~1|"}).axes[0]
    assert ax.get_title().startswith("cell of 3 nodes (not in NAS-Bench-201's table)")
    assert set(drawn_edges(ax)) == {(0, 1), (0, 2), (1, 2)}
    with pytest.raises(ValueError, match="a NAS-Bench-201 genotype is"):
        nb201_cell_figure({"nb201": CELL, "normal": []})
    with pytest.raises(ValueError, match="node 2 of"):
        nb201_cell_figure("|skip_connect~0|+|skip_connect~0|")
