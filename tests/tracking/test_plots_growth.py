"""The growth timeline's title, cap and curves; the α heatmap's scale; genotype labels."""

from __future__ import annotations

import math

import numpy as np
from matplotlib.text import Annotation

from growray.tracking.plots import growth_timeline_figure
from growray.tracking.plots.alphas import alpha_heatmap_figure
from growray.tracking.plots.genotype import genotype_figure

# 5 events, each widening 2 sites at the same step
EVENTS = [
    {"step": 40 * (k + 1), "site": site, "width_after": 8 + 4 * (k + 1), "n_added": 4}
    for k in range(5)
    for site in ("hidden.0", "hidden.1")
]
CURVES = {
    "val/acc": [(20 * i, 0.1 + 0.07 * i) for i in range(1, 13)],
    "train/loss": [(20 * i, 2.3 / i) for i in range(1, 13)],
}


def test_timeline_counts_events_once_and_draws_the_cap_and_the_curves() -> None:
    fig = growth_timeline_figure({"hidden.0": 8, "hidden.1": 8}, EVENTS, 240, max_width=48, curves=CURVES)
    widths, curves = fig.axes
    assert widths.get_title() == "Width of each growth site: 5 growth events (10 site changes)"
    cap = [line for line in widths.get_lines() if list(line.get_ydata()) == [48, 48]]
    assert len(cap) == 1
    assert curves.get_ylabel() == "val/acc / train/loss"
    drawn = {tuple(line.get_ydata()) for line in curves.get_lines()}
    assert tuple(v for _, v in CURVES["val/acc"]) in drawn and tuple(v for _, v in CURVES["train/loss"]) in drawn
    assert curves.get_ylim()[1] >= 2.3  # the loss fits on the second axis
    legend = [t.get_text() for t in widths.get_legend().get_texts()]
    assert legend == ["hidden.0", "hidden.1", "max_width 48", "val/acc", "train/loss"]


def test_timeline_single_site_and_no_curves() -> None:
    fig = growth_timeline_figure({"hidden.0": 8}, EVENTS[:1], 100)
    assert len(fig.axes) == 1
    assert fig.axes[0].get_title() == "Width of each growth site: 1 growth event"


def test_heatmap_colour_scale_spans_the_data() -> None:
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 0.1, (3, 8))
    w = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)  # all near 1/8
    fig = alpha_heatmap_figure({"normal": w.tolist()}, [f"op{i}" for i in range(8)], ["a", "b", "c"])
    image = fig.axes[0].images[0]
    assert image.get_clim() == (float(w.min()), float(w.max()))
    assert w.max() - w.min() < 0.1  # a fixed 0-1 scale would show one colour


def test_genotype_labels_keep_clear_of_the_nodes() -> None:
    genotype = {
        "normal": [
            ["sep_conv_3x3", 0], ["sep_conv_3x3", 1], ["skip_connect", 0], ["sep_conv_3x3", 1],
            ["skip_connect", 0], ["sep_conv_3x3", 1], ["sep_conv_3x3", 0], ["skip_connect", 2],
        ],
        "normal_concat": [2, 3, 4, 5],
    }  # fmt: skip
    ax = genotype_figure(genotype).axes[0]
    nodes = [t.get_position() for t in ax.texts if not isinstance(t, Annotation) and t.get_fontsize() == 10]
    labels = [t.get_position() for t in ax.texts if not isinstance(t, Annotation) and t.get_fontsize() == 7]
    assert len(nodes) == 7 and len(labels) == 8
    for x, y in labels:  # ellipse-scaled distance, as the placement measures it
        assert min(math.hypot(x - a, (y - b) * 1.6) for a, b in nodes) >= 0.6 - 1e-9, (x, y)
