"""Read a report figure the way a person sees its PNG: every text drawn, its size in pixels and its box.

:func:`drawn_texts` draws the figure with the Agg renderer (as the PNG is written) and records
each text the renderer really draws (tick labels outside the view are not drawn, so they are not
counted). :func:`readability_problems` lists what reads badly at the native size: text under
10 px, text outside the figure, texts overlapping, more than 4 series on one chart, a legend on
the data, a rate or cost axis that neither starts at 0 nor says it is zoomed, a chart title that
does not say what it covers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from otel_grpo.tools.runreader import FRACTION, PERCENT, USD

MIN_TEXT_PX = 10.0
MAX_SERIES = 4
#: What a chart title's second line must say: what the chart covers...
COVERAGE = re.compile(
    r"^(per step|per validation pass|cumulative since the run started|one point per validation pass"
    r"|step \d+ only|run totals? at|validation pass of step|each one's latest|latest row)"
)
#: ... and which step or steps.
STEPS = re.compile(r"\bsteps? \d+")
RATE_OR_COST_UNITS = (PERCENT, FRACTION, USD)


@dataclass
class Drawn:
    """A text the renderer drew: its string, its size in pixels and its box in the figure's pixels."""

    text: str
    px: float
    box: Any
    artist: Any


@contextmanager
def _recording(found: dict[int, tuple[Any, float]]) -> Iterator[None]:
    from matplotlib.backends.backend_agg import RendererAgg

    original = RendererAgg.draw_text

    def spy(self, gc, x, y, s, prop, angle, ismath=False, mtext=None):  # noqa: ANN001, ANN202
        if mtext is not None and s.strip():
            found[id(mtext)] = (mtext, prop.get_size_in_points())
        return original(self, gc, x, y, s, prop, angle, ismath, mtext)

    RendererAgg.draw_text = spy
    try:
        yield
    finally:
        RendererAgg.draw_text = original


def drawn_texts(fig: Any) -> tuple[list[Drawn], tuple[int, int]]:
    """Every non-empty text the figure draws, and the figure's (width, height) in pixels."""
    from otel_grpo.tools.report.layout import figure_pixels

    found: dict[int, tuple[Any, float]] = {}
    with _recording(found):
        pixels = figure_pixels(fig)
    renderer = fig.canvas.get_renderer()
    dpi = fig.dpi
    texts = [
        Drawn(artist.get_text(), points * dpi / 72.0, artist.get_window_extent(renderer), artist)
        for artist, points in found.values()
    ]
    return texts, (pixels.shape[1], pixels.shape[0])


def _overlap(a: Any, b: Any, slack: float = 1.0) -> bool:
    return min(a.x1, b.x1) - max(a.x0, b.x0) > slack and min(a.y1, b.y1) - max(a.y0, b.y0) > slack


def _panels(fig: Any) -> list[Any]:
    """The subfigures holding one chart each (a section figure holds one per panel)."""
    subs = list(getattr(fig, "subfigs", []))
    return subs or [fig]


def _axes_groups(fig: Any) -> list[list[Any]]:
    """Visible axes, an axes and its twin (same position) in one group."""
    groups: dict[tuple[float, ...], list[Any]] = {}
    for ax in fig.get_axes():
        if ax.get_visible() and ax.axison:
            groups.setdefault(tuple(round(v, 1) for v in ax.get_window_extent().bounds), []).append(ax)
    return list(groups.values())


def series_count(axes: list[Any]) -> int:
    """Series drawn on one chart (an axes and its twin): lines, scatters and bar groups."""
    return sum(len(ax.get_lines()) + len(ax.collections) + len(ax.containers) for ax in axes)


def axis_problems(axes: list[Any]) -> list[str]:
    """Rate and cost axes that neither start at 0 nor say they are zoomed; legends on the data."""
    problems = []
    for ax in axes:
        for name, label, (low, _) in (("y", ax.get_ylabel(), ax.get_ylim()), ("x", ax.get_xlabel(), ax.get_xlim())):
            unit = label[label.rfind("(") + 1 : label.rfind(")")].split(";")[0] if "(" in label else label
            if (unit in RATE_OR_COST_UNITS or label in RATE_OR_COST_UNITS) and low != 0 and "zoomed" not in label:
                problems.append(f"{name} axis {label!r} starts at {low}, not 0, and does not say it is zoomed")
        legend = ax.get_legend()
        if legend is not None:
            box = legend.get_window_extent()
            for other in axes:
                if _overlap(box, other.get_window_extent(), slack=0.0):
                    problems.append(f"legend {[t.get_text() for t in legend.get_texts()]} lies on the data")
    return problems


def title_problems(fig: Any) -> list[str]:
    """Chart titles (each subfigure's) that do not say what the chart covers and which steps."""
    problems = []
    for panel in _panels(fig):
        title = panel._suptitle.get_text() if panel._suptitle is not None else ""
        lines = title.split("\n")
        coverage = " ".join(lines[1:])
        if len(lines) < 2 or not COVERAGE.search(lines[1]) or not STEPS.search(coverage):
            problems.append(f"title {title!r} does not say what it covers and which step(s)")
    return problems


def table_problems(fig: Any) -> list[str]:
    """Table cells whose text runs out of the cell (the old "commonsenseqa" overflow)."""
    problems = []
    for ax in fig.get_axes():
        for table in ax.tables:
            for cell in table.get_celld().values():
                box, text = cell.get_window_extent(), cell.get_text()
                inner = text.get_window_extent()
                if text.get_text() and (inner.x0 < box.x0 - 0.5 or inner.x1 > box.x1 + 0.5):
                    problems.append(f"{text.get_text()!r} runs out of its table cell")
    return problems


def readability_problems(fig: Any) -> list[str]:
    """Everything that reads badly in ``fig`` at its native size (empty when it reads well)."""
    texts, (width, height) = drawn_texts(fig)
    problems = [f"{t.text!r} is {t.px:.1f} px high" for t in texts if t.px < MIN_TEXT_PX]
    problems += [
        f"{t.text!r} is cut at the figure's edge: {t.box.bounds}"
        for t in texts
        if t.box.x0 < -0.5 or t.box.y0 < -0.5 or t.box.x1 > width + 0.5 or t.box.y1 > height + 0.5
    ]
    for i, a in enumerate(texts):
        problems += [f"{a.text!r} overlaps {b.text!r}" for b in texts[i + 1 :] if _overlap(a.box, b.box)]
    problems += table_problems(fig)
    for group in _axes_groups(fig):
        if series_count(group) > MAX_SERIES:
            problems.append(f"{series_count(group)} series on one chart: {[ax.get_title() for ax in group]}")
        problems += axis_problems(group)
    return problems + title_problems(fig)
