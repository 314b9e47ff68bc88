"""Drawing one panel into a matplotlib figure (or subfigure), readable at its native size.

Every text is at least :data:`SMALL` points, 11 px at :data:`DPI`. A chart draws at most
:data:`~otel_grpo.tools.report.sections.MAX_SERIES` series: a panel of more keys becomes
small multiples (one small chart per key, one shared y axis). Legends sit above the axes, never
on the data. Bars are horizontal, so long dataset names fit beside them. Rate, share, cost, count
and latency axes start at 0; the validation scatter's cost axis is zoomed and says so. Each
figure's title says what the chart covers (per step, cumulative, one validation pass) and which
steps (:func:`~otel_grpo.tools.report.data.over_steps`, :func:`~otel_grpo.tools.report.data.at_step`).
Latency percentiles are bucket estimates (as Prometheus' ``histogram_quantile`` gives), and their
charts say so.
"""

from __future__ import annotations

import contextlib
import math
import textwrap
from collections.abc import Iterator, Sequence
from typing import Any

from otel_grpo import keys
from otel_grpo.tools.report.data import (
    IN_LEGEND,
    TABLE_COLUMNS,
    X_AXIS,
    at_step,
    latest_at,
    over_steps,
    series,
    short_labels,
    steps_text,
    table_rows,
    windows,
    with_derived,
)
from otel_grpo.tools.report.sections import MAX_SERIES, is_small_multiples
from otel_grpo.tools.runreader import COUNT, FRACTION, PERCENT, SECONDS_ESTIMATE, USD, format_value, unit_of

DPI = 100
#: Font sizes in points (x DPI / 72 = pixels): ticks, labels, legends and notes; titles of small
#: multiples; chart titles; section headings.
SMALL, MEDIUM, TITLE, SECTION = 8.0, 9.0, 10.0, 14.0
RC = {
    "font.size": SMALL,
    "axes.labelsize": SMALL,
    "axes.titlesize": MEDIUM,
    "xtick.labelsize": SMALL,
    "ytick.labelsize": SMALL,
    "legend.fontsize": SMALL,
    "figure.titlesize": TITLE,
    "figure.dpi": DPI,
    "savefig.dpi": DPI,
}
COLORS = ("#1f77b4", "#d95f02", "#2ca02c", "#7570b3")
MARKERS = ("o", "s", "^", "D")
LINESTYLES = ("-", "--", ":", "-.")
BUCKET_ESTIMATE = "p50/p95: bucket estimates"
#: Axes of these units start at 0 (percentages span 0-100 and fractions 0-1 when the values fit).
FROM_ZERO = (PERCENT, FRACTION, USD, COUNT, SECONDS_ESTIMATE)
ZOOMED = "zoomed, not from 0"
_BOUNDS = {PERCENT: 100.0, FRACTION: 1.0}
_CHAR_EM = 0.6  # a DejaVu Sans character is about 0.6 em wide: wrapping titles and legends


@contextlib.contextmanager
def style() -> Iterator[None]:
    """The report's matplotlib settings (font sizes, dpi), for building and saving its figures."""
    import matplotlib

    with matplotlib.rc_context(RC):
        yield


def unit_label(unit: str) -> str:
    """An axis label for ``unit``."""
    return "s (bucket estimate)" if unit == SECONDS_ESTIMATE else unit


def floor_axis(ax: Any, unit: str, values: Sequence[float], *, axis: str = "y", room: float = 1.08) -> None:
    """Start a rate, share, cost, count or latency axis at 0; percentages on 0-100 and fractions on 0-1
    when the values fit, so two charts of one unit read alike."""
    if unit not in FROM_ZERO or not values or min(values) < 0:
        return
    top = _BOUNDS.get(unit)
    if top is None or max(values) > top:
        top = max(values) or 1.0
    (ax.set_ylim if axis == "y" else ax.set_xlim)(0, top * room)
    if unit == COUNT:
        from matplotlib.ticker import MaxNLocator

        (ax.yaxis if axis == "y" else ax.xaxis).set_major_locator(MaxNLocator(integer=True))
    if unit in _BOUNDS and top == _BOUNDS[unit]:  # no tick past 100 % or 1
        ticks = [t for t in (ax.get_yticks() if axis == "y" else ax.get_xticks()) if 0 <= t <= top + 1e-9]
        (ax.set_yticks if axis == "y" else ax.set_xticks)(ticks)


def wrap(text: str, width_in: float, fontsize: float = TITLE) -> str:
    """``text``, each line wrapped to fit ``width_in`` inches at ``fontsize``."""
    chars = max(20, int(width_in * 72 / (fontsize * _CHAR_EM)))
    return "\n".join(textwrap.fill(line, chars) for line in text.split("\n"))


def _needs_twin(units: list[str], maxima: list[float]) -> bool:
    """Two series get a right axis only when their units differ, or both are unitless or both
    costs (USD: a step's cost and the cost per correct answer) and their scales differ more
    than tenfold: never two series of one other unit (p50 and p95 seconds, two shares)."""
    if len(units) != 2 or len(maxima) != 2:
        return False
    if units[0] != units[1]:
        return True
    return units[0] in ("", USD) and min(maxima) > 0 and max(maxima) / min(maxima) > 10


def _legend_above(ax: Any, handles: list[Any], width_in: float) -> None:
    """The legend in one row above the axes (two, or one, columns when one row is too wide)."""
    labels = [h.get_label() for h in handles]
    room = width_in * 72 * 0.9 / (SMALL * _CHAR_EM)  # characters that fit across the chart
    ncol = len(labels)
    while ncol > 1 and sum(len(t) + 5 for t in sorted(labels, key=len)[-ncol:]) > room:
        ncol -= 1
    ax.legend(
        handles=handles,
        loc="lower left",
        bbox_to_anchor=(0, 1.02),
        ncol=ncol,
        frameon=False,
        borderaxespad=0,
        handlelength=2.4,
        columnspacing=1.2,
        fontsize=SMALL,
    )


def _integer_steps(ax: Any, x_key: str) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel(x_key)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))


Series = list[tuple[str, str, list[tuple[float, float]]]]  # (key, label, points) of a chart


def _plot(target: Any, i: int, key: str, label: str, pts: list[tuple[float, float]]) -> Any:
    """Series ``i`` of a chart: its own colour, marker and line style."""
    xs, ys = zip(*pts, strict=True)
    (line,) = target.plot(
        xs,
        ys,
        marker=MARKERS[i % len(MARKERS)],
        markersize=3.5 if len(pts) <= 40 else 0,
        linestyle=LINESTYLES[i % len(LINESTYLES)],
        linewidth=1.5 if i == 0 else 1.2,
        markerfacecolor="none" if i % 2 else COLORS[i % len(COLORS)],
        color=COLORS[i % len(COLORS)],
        label=label,
    )
    return line


def _floor_axes(on_axes: list[tuple[Any, Series]]) -> None:
    """Each y axis of one unit from 0 (see :func:`floor_axis`)."""
    for target, on_axis in on_axes:
        units = {unit_of(key) for key, _, _ in on_axis}
        if len(units) == 1:
            floor_axis(target, units.pop(), [v for _, _, pts in on_axis for _, v in pts])


def _line_detail(panel: dict[str, Any], plotted: Series) -> str:
    """What a line chart covers and which steps; the latest value of a single series; "all 0"."""
    steps = [x for _, _, pts in plotted for x, _ in pts]
    detail = over_steps([key for key, _, _ in plotted] or panel["keys"], steps)
    if len(plotted) == 1:
        key, _, pts = plotted[0]
        unit = unit_of(key)
        detail += f"; latest {format_value(pts[-1][1], unit)}" + (f" {unit}" if unit in (USD, PERCENT) else "")
    elif plotted and all(v == 0 for _, _, pts in plotted for _, v in pts):
        detail += "; all 0"
    return detail


def _line(fig: Any, panel: dict[str, Any], history: list[dict[str, Any]], width_in: float) -> tuple[int, str]:
    ax = fig.subplots()
    labels = panel.get("labels") or short_labels(panel["keys"])
    x_key = panel.get("x", X_AXIS)
    found = [(key, label, series(history, key, x_key)) for key, label in zip(panel["keys"], labels, strict=True)]
    plotted: Series = [(key, label, pts) for key, label, pts in found if pts]
    units, maxima = [unit_of(k) for k, _, _ in plotted], [max(abs(v) for _, v in pts) for _, _, pts in plotted]
    twin = ax.twinx() if _needs_twin(units, maxima) else None
    mixed = len(windows([key for key, _, _ in plotted])) > 1
    handles = []
    for i, (key, label, pts) in enumerate(plotted):
        target = twin if (twin is not None and i == 1) else ax
        label += f" ({IN_LEGEND[keys.window_of(key)]})" if mixed else ""
        handles.append(_plot(target, i, key, label + (" (right axis)" if target is twin else ""), pts))
        if target is not ax or i == 0:
            target.set_ylabel(unit_label(unit_of(key)))
    _floor_axes([(ax, plotted)] if twin is None else [(ax, plotted[:1]), (twin, plotted[1:])])
    _integer_steps(ax, x_key)
    if len(handles) > 1:
        _legend_above(ax, handles, width_in)
    ax.grid(alpha=0.3)
    return sum(len(pts) for _, _, pts in plotted), _line_detail(panel, plotted)


def _small_multiples(
    fig: Any, panel: dict[str, Any], history: list[dict[str, Any]], width_in: float
) -> tuple[int, str]:
    """One small chart per key, :data:`MAX_SERIES` to a row, on one shared y axis."""
    from matplotlib.ticker import MaxNLocator

    panel_keys = panel["keys"]
    labels = panel.get("labels") or short_labels(panel_keys)
    x_key = panel.get("x", X_AXIS)
    columns = min(MAX_SERIES, len(panel_keys))
    axes = fig.subplots(math.ceil(len(panel_keys) / columns), columns, sharex=True, sharey=True, squeeze=False)
    flat = axes.ravel()
    values: list[float] = []
    steps: list[float] = []
    for i, (ax, key, label) in enumerate(zip(flat, panel_keys, labels, strict=False)):
        pts = series(history, key, x_key)
        ax.set_title(label, fontsize=MEDIUM)
        ax.grid(alpha=0.3)
        if pts:
            xs, ys = zip(*pts, strict=True)
            ax.plot(xs, ys, color=COLORS[0], marker=MARKERS[0], markersize=3 if len(pts) <= 40 else 0, linewidth=1.3)
            values.extend(ys)
            steps.extend(xs)
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", color="#777", transform=ax.transAxes)
        if i + columns >= len(panel_keys):  # nothing below it: its own step axis
            ax.xaxis.set_tick_params(labelbottom=True)
            ax.set_xlabel(x_key)
        if i % columns == 0:
            ax.set_ylabel(unit_label(unit_of(key)))
    for ax in flat[len(panel_keys) :]:
        ax.remove()
    floor_axis(flat[0], unit_of(panel_keys[0]), values)
    flat[0].xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))  # shared by every small chart
    return len(steps), f"{over_steps(panel_keys, steps)}; one chart per key, one y axis"


def _bar(fig: Any, panel: dict[str, Any], history: list[dict[str, Any]]) -> tuple[int, str]:
    """Horizontal bars of the latest value of each key, the value written at the bar's end."""
    ax = fig.subplots()
    panel_keys = panel["keys"]
    found = [
        (label, key, latest_at(history, key)) for key, label in zip(panel_keys, short_labels(panel_keys), strict=True)
    ]
    bars = [(label, key, at[0], at[1]) for label, key, at in found if at is not None]
    if not bars:
        ax.axis("off")
        return 0, "no step"
    names, drawn_keys, values, steps = zip(*bars, strict=True)
    ax.barh(range(len(values)), values, color=COLORS[0], height=0.62 if len(values) > 3 else 0.4)
    ax.set_yticks(range(len(values)), names)
    ax.invert_yaxis()
    unit = unit_of(panel_keys[0])
    for i, value in enumerate(values):
        text = format_value(float(value), unit)
        ax.annotate(text, (value, i), xytext=(3, 0), textcoords="offset points", va="center", ha="left")
    floor_axis(ax, unit, [float(v) for v in values], axis="x", room=1.3)
    ax.set_xlabel(unit_label(unit))
    ax.grid(axis="x", alpha=0.3)
    return len(values), at_step(drawn_keys, steps)


def _scalar(fig: Any, panel: dict[str, Any], history: list[dict[str, Any]]) -> tuple[int, str]:
    key = panel["keys"][0]
    ax = fig.subplots()
    ax.axis("off")
    found = latest_at(history, key)
    if found is None:
        return 0, "no step"
    value, step = found
    ax.text(
        0.5,
        0.55,
        format_value(value, unit_of(key)),
        ha="center",
        va="center",
        fontsize=30,
        weight="bold",
        transform=ax.transAxes,
    )
    ax.text(0.5, 0.2, key, ha="center", va="center", fontsize=MEDIUM, color="#555", transform=ax.transAxes)
    return 1, at_step([key], [step])


def _scatter(fig: Any, panel: dict[str, Any], history: list[dict[str, Any]]) -> tuple[int, str]:
    """One point per validation pass, joined in step order; the first and the last say their step."""
    from matplotlib.ticker import MaxNLocator

    ax = fig.subplots()
    panel_keys = panel["keys"]
    x_key, y_key = panel.get("x", panel_keys[0]), panel.get("y", panel_keys[1])
    pts = [(row[x_key], row[y_key], row.get(X_AXIS)) for row in history if _numbers(row, x_key, y_key)]
    ax.set_ylabel(f"{y_key} ({unit_label(unit_of(y_key))})")
    ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.grid(alpha=0.3)
    if not pts:
        ax.set_xlabel(x_key)
        return 0, "no step"
    xs, ys, steps = zip(*pts, strict=True)
    ax.plot(xs, ys, color="#aaaaaa", linewidth=0.9, zorder=1)
    ax.scatter(xs, ys, s=28, color=COLORS[0], zorder=2)
    floor_axis(ax, unit_of(y_key), [float(y) for y in ys])
    ax.margins(x=0.15)
    x0, x1 = ax.get_xlim()
    zoomed = f"; {ZOOMED}" if x0 > 0 else ""
    ax.set_xlabel(f"{x_key} ({unit_label(unit_of(x_key))}{zoomed})")
    y0, y1 = ax.get_ylim()
    first, last = pts[0], pts[-1]
    ends = [first] if first[:2] == last[:2] else [first, last]  # the same point: one label for both
    for x, y, step in ends:
        right, low = x > (x0 + x1) / 2, y < (y0 + y1) / 2
        text = f"steps {first[2]} and {last[2]}" if len(ends) == 1 and len(pts) > 1 else f"step {step}"
        ax.annotate(
            text,
            (x, y),
            xytext=(-6 if right else 6, 6 if low else -6),
            textcoords="offset points",
            ha="right" if right else "left",
            va="bottom" if low else "top",
        )
    return len(pts), f"one point per validation pass, {steps_text(steps)}"


def _numbers(row: dict[str, Any], *names: str) -> bool:
    return all(isinstance(row.get(n), (int, float)) and not isinstance(row.get(n), bool) for n in names)


def cell(column: str, value: Any) -> str:
    """A Dataset Statistics cell, formatted for its column's unit."""
    return "" if value is None else format_value(value, unit_of(keys.dataset("x", column)))


def table_header() -> list[str]:
    """The Dataset Statistics columns, with their units (not for counts)."""
    units = {c: unit_of(keys.dataset("x", c)) for c in TABLE_COLUMNS}
    return [f"{c} ({units[c]})" if units[c] not in ("", COUNT) else c for c in TABLE_COLUMNS]


def table_keys(records: Any) -> list[str]:
    """The keys the Dataset Statistics table shows (what it covers: per step)."""
    return [keys.dataset(row[0], "count") for row in table_rows(records)[0]]


def _table(fig: Any, records: Any) -> tuple[int, str]:
    rows, steps = table_rows(records)
    ax = fig.subplots()
    ax.axis("off")
    if not rows:
        return 0, "no step"
    cells = [[cell(column, v) for column, v in zip(TABLE_COLUMNS, row, strict=False)] for row in rows]
    table = ax.table(cellText=cells, colLabels=table_header(), loc="upper center", cellLoc="right")
    table.auto_set_font_size(False)
    table.set_fontsize(SMALL + 1)
    table.auto_set_column_width(list(range(len(TABLE_COLUMNS))))
    table.scale(1.0, 1.45)
    for (row, column), box in table.get_celld().items():
        if column == 0 and row > 0:  # the dataset names, left-aligned
            box.get_text().set_horizontalalignment("left")
    return len(rows), at_step(table_keys(records), steps)


def chart_title(panel: dict[str, Any], detail: str) -> str:
    """A chart's title: the panel's title, then what it covers and which steps (and notes) on a second line."""
    return f"{panel['title']}\n{detail}"


def draw_panel(fig: Any, panel: dict[str, Any], records: Any, width_in: float) -> tuple[int, str]:
    """Draw ``panel`` into ``fig`` (a figure or subfigure ``width_in`` inches wide), titled with what
    it covers; returns the number of data points drawn and the title."""
    kind, history = panel["type"], with_derived(records.history, panel)
    drawn, detail = 0, "no step"
    if kind == "line" and is_small_multiples(panel):
        drawn, detail = _small_multiples(fig, panel, history, width_in)
    elif kind == "line":
        drawn, detail = _line(fig, panel, history, width_in)
    elif kind == "bar":
        drawn, detail = _bar(fig, panel, history)
    elif kind == "scalar":
        drawn, detail = _scalar(fig, panel, history)
    elif kind == "scatter":
        drawn, detail = _scatter(fig, panel, history)
    elif kind == "table":
        drawn, detail = _table(fig, records)
    if any(unit_of(key) == SECONDS_ESTIMATE for key in panel["keys"]):
        detail += f"; {BUCKET_ESTIMATE}"
    if panel.get("note"):
        detail += f"; {panel['note']}"
    title = chart_title(panel, detail)
    fig.suptitle(wrap(title.replace("; ", "\n", 1), width_in), fontsize=TITLE)  # the notes on a line of their own
    if drawn == 0:
        fig.text(0.5, 0.5, "no data", ha="center", va="center", color="#777")
    return drawn, title
