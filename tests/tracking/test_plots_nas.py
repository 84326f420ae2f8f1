"""NAS plots: α heatmaps, α history and the genotype cell diagram, from tiny data."""

from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.text import Annotation

from growray.tracking.plots import (
    alpha_heatmap_figure,
    alpha_history_figure,
    genotype_figure,
)

OPS = ["none", "skip_connect", "sep_conv_3x3"]
EDGES = ["n0←c_{k-2}", "n0←c_{k-1}", "n1←c_{k-2}", "n1←c_{k-1}", "n1←n0"]  # 2 nodes: 5 edges


def softmax_rows(a: np.ndarray) -> np.ndarray:
    e = np.exp(a - a.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def png_pixels(fig) -> np.ndarray:
    """Save as PNG (dpi 40: fast) and read it back; fails on an empty or blank image."""
    import matplotlib.image

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=40)
    data = buf.getvalue()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000
    pixels = matplotlib.image.imread(io.BytesIO(data), format="png")
    assert pixels.std() > 0.05  # something was drawn
    return pixels


@pytest.fixture
def alphas() -> dict[str, list[list[float]]]:
    rng = np.random.default_rng(0)
    normal = softmax_rows(rng.normal(size=(5, 3)))
    normal[0] = [0.9, 0.06, 0.04]  # "none" strongest: the outline must go to the next op
    return {"normal": normal.tolist(), "reduce": softmax_rows(rng.normal(size=(5, 3))).tolist()}


def test_alpha_heatmap_draws_both_cells_and_marks_the_kept_op(alphas: dict) -> None:
    from matplotlib.patches import Rectangle

    fig = alpha_heatmap_figure(alphas, OPS, EDGES, title="softmax(α)")
    heatmaps = [ax for ax in fig.axes if ax.images and ax.get_title()]
    assert [ax.get_title() for ax in heatmaps] == ["normal cell", "reduce cell"]
    kept_by_cell = {}
    for ax, cell in zip(heatmaps, ("normal", "reduce")):
        w = np.asarray(alphas[cell])
        np.testing.assert_allclose(ax.images[0].get_array(), w)
        assert ax.get_yticklabels()[0].get_text() == "n0←$c_{k-2}$"
        texts = [t.get_text() for t in ax.texts]
        assert texts == [f"{v:.2f}" for v in w.ravel()]  # every cell annotated
        boxes = [p for p in ax.patches if isinstance(p, Rectangle)]
        kept = [round(b.get_x() + 0.5) for b in sorted(boxes, key=lambda b: b.get_y())]
        expected = [1 + int(np.argmax(row[1:])) for row in w]  # argmax excluding "none"
        assert kept == expected
        kept_by_cell[cell] = kept
    assert np.argmax(alphas["normal"][0]) == 0 and kept_by_cell["normal"][0] == 1  # "none" at 0.9 is not kept
    png_pixels(fig)


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"normal": [[0.5, 0.5]] * 5}, r"shape \(5, 2\); expected \(5, 3\)"),
        ({"normal": [[2.0, -1.0, 0.0]] * 5}, "softmax over the ops, not raw α"),
        ({"normal": [[np.nan, 0.5, 0.5]] * 5}, r"weights in \[0, 1\]"),
        ({}, "non-empty mapping"),
    ],
)
def test_alpha_heatmap_rejects_bad_input(bad: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        alpha_heatmap_figure(bad, OPS, EDGES)


def test_alpha_history_one_stacked_panel_per_edge(alphas: dict) -> None:
    rng = np.random.default_rng(1)
    history = []
    for t in range(6):  # drift towards skip_connect
        logits = rng.normal(size=(2, 5, 3)) * 0.1
        logits[..., 1] += t
        history.append({"normal": softmax_rows(logits[0]).tolist(), "reduce": softmax_rows(logits[1]).tolist()})
    fig = alpha_history_figure(history, OPS, EDGES, epochs=[0, 2, 4, 6, 8, 10])
    panels = [ax for ax in fig.axes if ax.axison]
    assert len(panels) == 2 * len(EDGES)  # the grid has 7 columns: the spare ones are hidden
    first = panels[0]
    assert first.get_title() == "n0←$c_{k-2}$" and first.get_xlim() == (0.0, 10.0)
    assert len(first.collections) == len(OPS)  # one band per op
    # the top band's upper edge is the sum of the weights: 1 at every epoch
    top = first.collections[-1].get_paths()[0].vertices
    upper = [top[np.isclose(top[:, 0], x), 1].max() for x in (0, 2, 4, 6, 8, 10)]
    np.testing.assert_allclose(upper, 1.0, atol=1e-9)
    # and the skip_connect band (the second) widens as the weights drift towards it
    band = first.collections[1].get_paths()[0].vertices
    widths = [np.ptp(band[np.isclose(band[:, 0], x), 1]) for x in (0, 10)]
    assert widths[1] > widths[0] + 0.3
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == OPS
    png_pixels(fig)


def test_alpha_history_single_epoch_and_errors(alphas: dict) -> None:
    single = alpha_history_figure([alphas], OPS, EDGES)  # a band needs two x values: drawn over [0, 1]
    assert single.axes[0].get_xlim() == (0.0, 1.0) and len(single.axes[0].collections) == len(OPS)
    with pytest.raises(ValueError, match="at least one recorded epoch"):
        alpha_history_figure([], OPS, EDGES)
    with pytest.raises(ValueError, match=r"history\[1\] has cell types \['normal'\]"):
        alpha_history_figure([alphas, {"normal": alphas["normal"]}], OPS, EDGES)
    with pytest.raises(ValueError, match="one epoch per history entry"):
        alpha_history_figure([alphas, alphas], OPS, EDGES, epochs=[1])


def cell_labels(ax) -> list[str]:
    return [t.get_text() for t in ax.texts if t.get_text() in {"sep_conv_3x3", "skip_connect", "max_pool_3x3"}]


def test_genotype_figure_darts_cells() -> None:
    genotype = {
        "normal": [["sep_conv_3x3", 0], ["skip_connect", 1], ["sep_conv_3x3", 2], ["skip_connect", 0]],
        "normal_concat": [2, 3],
        "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 1], ["skip_connect", 2], ["max_pool_3x3", 1]],
        "reduce_concat": [2, 3],
    }
    fig = genotype_figure(genotype)
    normal, reduce = fig.axes
    assert normal.get_title().startswith("normal cell: 2 nodes") and reduce.get_title().startswith("reduce cell")
    assert sorted(cell_labels(normal)) == ["sep_conv_3x3", "sep_conv_3x3", "skip_connect", "skip_connect"]
    nodes = {t.get_text() for t in normal.texts}
    assert {"$c_{k-2}$", "$c_{k-1}$", "0", "1", "$c_{k}$"} <= nodes
    # one arrow per pair and one per concatenated node
    assert sum(1 for t in normal.texts if isinstance(t, Annotation)) == 4 + 2
    # the same op has the same colour in both cells
    colors = {t.get_text(): t.get_color() for ax in fig.axes for t in ax.texts if t.get_text() == "skip_connect"}
    assert len(colors) == 1
    png_pixels(fig)


def test_genotype_figure_same_input_twice_and_loose_ends() -> None:
    """ENAS: node 0 reads c_{k-1} twice; only node 1 (the loose end) is concatenated."""
    genotype = {
        "normal": [["sep_conv_3x3", 1], ["skip_connect", 1], ["sep_conv_3x3", 2], ["sep_conv_3x3", 0]],
        "normal_concat": [3],
        "reduce": [["max_pool_3x3", 0], ["max_pool_3x3", 0], ["skip_connect", 2], ["skip_connect", 2]],
        "reduce_concat": [3],
    }
    fig = genotype_figure(genotype)
    for ax in fig.axes:
        assert "nodes 0 not in the output" in ax.get_title()
        assert len(cell_labels(ax)) == 4
        arrows = [t for t in ax.texts if isinstance(t, Annotation)]
        assert len(arrows) == 4 + 1
    # the two edges into node 0 of the reduce cell are bent apart: distinct labels positions
    reduce = fig.axes[1]
    pool = [t.get_position() for t in reduce.texts if t.get_text() == "max_pool_3x3"]
    assert len(pool) == 2 and abs(pool[0][1] - pool[1][1]) > 0.2
    png_pixels(fig)


def test_genotype_figure_defaults_and_errors() -> None:
    fig = genotype_figure({"normal": [["skip_connect", 0], ["skip_connect", 1]]})  # one cell, no concat
    assert len(fig.axes) == 1 and "output concatenates 1" in fig.axes[0].get_title()
    with pytest.raises(ValueError, match=r"genotype\['normal'\]\[2\] must be \[op name, input\] with input in 0\.\.2"):
        genotype_figure({"normal": [["a", 0], ["b", 1], ["c", 3], ["d", 0]]})
    with pytest.raises(ValueError, match="two per node"):
        genotype_figure({"normal": [["a", 0]]})
    with pytest.raises(ValueError, match=r"genotype\['normal_concat'\] must list intermediate nodes 2\.\.2"):
        genotype_figure({"normal": [["a", 0], ["b", 1]], "normal_concat": [1]})
    with pytest.raises(ValueError, match="neither 'normal' nor 'reduce'"):
        genotype_figure({"cells": []})
    with pytest.raises(TypeError, match="must be a mapping"):
        genotype_figure([["skip_connect", 0]])  # type: ignore[arg-type]
