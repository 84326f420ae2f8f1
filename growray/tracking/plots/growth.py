"""Growth: the width of every growth site against the optimizer step, the cap, and the curves."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

from ._figure import color_cycle, new_figure

__all__ = ["growth_timeline_figure"]

_REQUIRED_EVENT_KEYS = ("step", "site", "width_after")
_MAX_ANNOTATED_EVENTS = 40


def growth_timeline_figure(
    initial_widths: dict[str, int],
    events: list[dict[str, Any]],
    final_step: int,
    *,
    max_width: int | None = None,
    curves: dict[str, list[tuple[int, float]]] | None = None,
) -> Figure:
    """Width of every growth site against the optimizer step, with the training curves.

    The title counts growth *events* (the steps at which the network changed; one event may
    widen several sites) and site changes apart, so 5 events on 2 sites read "5 growth events
    (10 site changes)", not 10.

    Args:
        initial_widths: ``{site: width}`` before training.
        events: growth/prune events, each a dict with at least ``step``, ``site`` and
            ``width_after`` (``n_added``, negative for removals, is shown when present).
            Events of sites missing from ``initial_widths`` start at their first event
            (at ``width_after - n_added`` when ``n_added`` is given).
        final_step: the last optimizer step; every line is extended to it.
        max_width: the width cap (``growth.max_width``), drawn as a dotted line.
        curves: ``{name: [(step, value), ...]}`` (``val/acc``, ``train/loss``) drawn on a
            second y axis, so one sees whether growth helped.

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

    fig = new_figure((8, 4.5))
    ax = fig.add_subplot()
    colors = [c["color"] for c in color_cycle()]
    annotate = len(ordered) <= _MAX_ANNOTATED_EVENTS
    for i, (site, (xs, ys)) in enumerate(series.items()):
        color = colors[i % len(colors)]
        end = max(int(final_step), xs[-1])
        # Sites often grow in lockstep: vary style and width so no line hides another.
        style = ("-", "--", ":", "-.")[i % 4]
        ax.step([*xs, end], [*ys, ys[-1]], where="post", color=color, label=site, lw=2.6 - 0.5 * (i % 3), ls=style)
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
    top = max((max(ys) for _, ys in series.values()), default=1)
    handles, labels = ax.get_legend_handles_labels()
    if max_width is not None:
        cap = ax.axhline(int(max_width), color="0.35", ls=(0, (1, 2)), lw=1.2)
        handles.append(cap)
        labels.append(f"max_width {int(max_width)}")
        top = max(top, int(max_width))
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("width (units)")
    n_events = len({int(ev["step"]) for ev in ordered})
    changes = f" ({len(ordered)} site changes)" if len(ordered) != n_events else ""
    ax.set_title(f"Width of each growth site: {n_events} growth event{'s' if n_events != 1 else ''}{changes}")
    ax.set_xlim(left=0, right=max(int(final_step), 1))
    ax.set_ylim(0, top * 1.12 + 1)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    drawn = {k: v for k, v in (curves or {}).items() if v}
    if drawn:
        twin = ax.twinx()
        grey = ("0.15", "0.55", "0.35", "0.7")
        for j, (name, points) in enumerate(drawn.items()):
            (line,) = twin.plot(
                [p[0] for p in points], [p[1] for p in points], color=grey[j % 4], lw=1.3, marker=".", ms=4
            )
            handles.append(line)
            labels.append(name)
        highest = max(v for points in drawn.values() for _, v in points)
        twin.set_ylim(0, max(1.0, highest) * 1.05)
        twin.set_ylabel(" / ".join(drawn))
    if handles:
        ax.legend(handles, labels, loc="upper left", fontsize=8, framealpha=0.85)
    return fig
