"""Offline HTML report of a WandB run: the workspace's panel groups, drawn with matplotlib.

``otel-grpo report RUN_DIR [--out report.html] [--png overview.png]`` reads the run
with :func:`otel_grpo.tools.runreader.read_run` (an offline run directory works: nothing is
fetched) and renders the panels of :func:`otel_grpo.tools.dashboards.wandb_workspace.build_workspace_spec`
(Training overview, Datasets, Judge, Validation, Cost) into one self-contained HTML
file, every chart a base64-embedded PNG. ``--png`` also writes all panels into one image.

Panels are drawn as in WandB, except: the scatter shows one point per validation pass
(WandB shows one per run); the Dataset Statistics table is built from the same latest
``dataset/{source}/*`` values as the per-dataset bar chart, so both show the same step;
a scalar panel whose key a line chart of its section already draws is left out (the
line chart's title gives the latest value). The "Reward integrity" section is the
workspace's; for a workspace spec without one, the report draws its own
(:func:`integrity_panels`, after Validation): judge share and judge-failed share, judge-failed
share per dataset, train accuracy against accuracy excluding judge-failed samples (derived
per step from the sources' figures, see
:func:`otel_grpo.tools.runreader.accuracy_excl_judge_failed`), cost per correct answer per
dataset, and step cost with the run's cost per correct answer. Every chart's title says which step or
steps it shows, every series has its own colour, marker and line style, and two series
share one y axis unless their units differ. Latency percentiles are bucket estimates
(as Prometheus' ``histogram_quantile`` gives), and their charts say so.
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from otel_grpo import keys
from otel_grpo.extras import MissingExtraError, require_extra
from otel_grpo.tools.dashboards.wandb_workspace import DEFAULT_DATASETS, build_workspace_spec
from otel_grpo.tools.runreader import (
    FRACTION,
    PERCENT,
    SECONDS_ESTIMATE,
    USD,
    accuracy_excl_judge_failed,
    format_value,
    unit_of,
)

__all__ = ["integrity_panels", "main", "render_overview", "render_report", "report_datasets"]

X_AXIS = keys.STEP
TABLE_COLUMNS = keys.DATASET_STATISTICS_COLUMNS
_DELIMS = "/_"
_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X", "*", "<", ">"]
_LINESTYLES = ["-", "--", ":", "-."]
BUCKET_ESTIMATE = "p50/p95: bucket estimates"
#: Charts per row of the overview PNG: a section with more panels takes several rows.
OVERVIEW_COLUMNS = 5


# --- data -------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _series(history: list[dict[str, Any]], key: str, x: str = X_AXIS) -> list[tuple[float, float]]:
    """``(x, value)`` points of ``key``, the last value per x, sorted by x."""
    points: dict[float, float] = {}
    for row in history:
        xv, yv = row.get(x), row.get(key)
        if _is_number(xv) and _is_number(yv):
            points[float(xv)] = float(yv)
    return sorted(points.items())


def _latest(history: list[dict[str, Any]], key: str) -> float | None:
    found = _latest_at(history, key)
    return None if found is None else found[0]


def _latest_at(history: list[dict[str, Any]], key: str) -> tuple[float, Any] | None:
    """The latest value of ``key`` and the ``train/step`` of its row."""
    for row in reversed(history):
        if _is_number(row.get(key)):
            return float(row[key]), row.get(X_AXIS)
    return None


def steps_text(steps: Sequence[Any], *, latest: bool = False) -> str:
    """``"step 12"``, ``"steps 1-30"`` or, for latest values from different rows, ``"latest, steps 11-12"``."""
    found = sorted({int(s) for s in steps if _is_number(s)})
    if not found:
        return "no step"
    if len(found) == 1:
        return f"step {found[0]}"
    span = f"steps {found[0]}-{found[-1]}"
    return f"latest of each, {span}" if latest else span


def report_datasets(records: Any) -> list[str]:
    """Datasets to draw: the run's configured ``wandb.dashboard.datasets`` that have data,
    then any other source seen; the configured list when nothing was seen."""
    configured: list[str] = list(DEFAULT_DATASETS)
    try:
        cfg = records.config.get("otel_grpo", {})
        configured = list(cfg["wandb"]["dashboard"]["datasets"]) or configured
    except (AttributeError, KeyError, TypeError):
        pass
    seen = keys.sources_in(records.keys())
    if not seen:
        return configured
    return [s for s in configured if s in seen] + [s for s in seen if s not in configured]


def _table_rows(records: Any) -> tuple[list[list[Any]], list[Any]]:
    """The Dataset Statistics table and the steps it shows.

    Each source's row is its latest ``dataset/{source}/*`` figures: the values the
    per-dataset bar chart shows, so the two never disagree (the ``dataset_statistics``
    table file is logged only every ``table_every`` steps and can be older).
    """
    rows: list[list[Any]] = []
    steps: list[Any] = []
    for source in sorted(report_datasets(records)):
        for row in reversed(records.history):
            if keys.dataset(source, "count") in row:
                rows.append([source, *(row.get(keys.dataset(source, figure)) for figure in keys.DATASET_FIGURES)])
                steps.append(row.get(X_AXIS))
                break
    return rows, steps


def _short_labels(keys: list[str]) -> list[str]:
    """Series labels: the keys without their common prefix/suffix (cut at / or _)."""
    if len(keys) < 2:
        return [k.rsplit("/", 1)[-1] for k in keys]
    prefix = keys[0]
    for k in keys[1:]:
        while not k.startswith(prefix):
            prefix = prefix[:-1]
    cut = max(prefix.rfind(d) for d in _DELIMS) + 1
    prefix = prefix[:cut]
    suffix = keys[0]
    for k in keys[1:]:
        while not k.endswith(suffix):
            suffix = suffix[1:]
    positions = [suffix.find(d) for d in _DELIMS if suffix.find(d) >= 0]
    suffix = suffix[min(positions) :] if positions else ""
    labels = []
    for k in keys:
        core = k[len(prefix) : len(k) - len(suffix)] if len(k) > len(prefix) + len(suffix) else ""
        labels.append(core)
    if not all(labels):  # one key is the others' prefix and suffix: each key's own name
        return [k.rsplit("/", 1)[-1] for k in keys]
    return labels


# --- drawing ----------------------------------------------------------------------------
def _is_latency(panel_keys: Sequence[str]) -> bool:
    return any(unit_of(key) == SECONDS_ESTIMATE for key in panel_keys)


def _unit_label(unit: str) -> str:
    return "s (bucket estimate)" if unit == SECONDS_ESTIMATE else unit


def _fixed_range(target: Any, unit: str, values: Sequence[float]) -> None:
    """Percentages on 0-100 and fractions on 0-1 (when the values fit): two series of different
    units then sit apart on the chart even when one is the other scaled (accuracy, reward)."""
    bounds = {PERCENT: 100.0, FRACTION: 1.0}.get(unit)
    if bounds is not None and values and min(values) >= 0 and max(values) <= bounds:
        target.set_ylim(-0.03 * bounds, 1.05 * bounds)


def _needs_twin(units: list[str], maxima: list[float]) -> bool:
    """Two series get a right axis only when their units differ, or both are unitless or both
    costs (USD: a step's cost and the cost per correct answer) and their scales differ more
    than tenfold: never two series of one other unit (p50 and p95 seconds, two shares)."""
    if len(units) != 2 or len(maxima) != 2:
        return False
    if units[0] != units[1]:
        return True
    return units[0] in ("", USD) and min(maxima) > 0 and max(maxima) / min(maxima) > 10


def _line(ax: Any, panel: dict[str, Any], history: list[dict[str, Any]], compact: bool) -> tuple[int, str]:
    panel_keys = panel["keys"]
    labels = panel.get("labels") or _short_labels(panel_keys)
    x_key = panel.get("x", X_AXIS)
    series = [(key, label, _series(history, key, x_key)) for key, label in zip(panel_keys, labels, strict=True)]
    units = [unit_of(key) for key, _, pts in series if pts]
    maxima = [max(abs(v) for _, v in pts) for _, _, pts in series if pts]
    twin = None
    if _needs_twin(units, maxima):
        twin = ax.twinx()
        twin.tick_params(labelsize=7)
    handles, drawn, steps = [], 0, []
    plotted = [(key, label, pts) for key, label, pts in series if pts]
    for i, (key, label, pts) in enumerate(plotted):
        target = twin if (twin is not None and i == 1) else ax
        xs, ys = zip(*pts, strict=True)
        (line,) = target.plot(
            xs,
            ys,
            marker=_MARKERS[i % len(_MARKERS)],
            markersize=3 if len(pts) <= 40 else 0,
            markevery=max(1, len(pts) // 30),
            linestyle=_LINESTYLES[i % len(_LINESTYLES)],
            linewidth=1.4 if i == 0 else 1.1,
            markerfacecolor="none" if i % 2 else _COLORS[i % len(_COLORS)],
            color=_COLORS[i % len(_COLORS)],
            label=label + (" (right axis)" if target is twin else ""),
        )
        if target is not ax or i == 0:
            target.set_ylabel(_unit_label(unit_of(key)), fontsize=7)
        handles.append(line)
        drawn += len(pts)
        steps.extend(xs)
    on_axes = [(ax, plotted if twin is None else plotted[:1])] + ([(twin, plotted[1:])] if twin is not None else [])
    for target, on_axis in on_axes:
        axis_units = {unit_of(key) for key, _, _ in on_axis}
        if len(axis_units) == 1:
            _fixed_range(target, axis_units.pop(), [v for _, _, pts in on_axis for _, v in pts])
    ax.set_xlabel(x_key, fontsize=7)
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
    if handles:
        ax.legend(handles=handles, fontsize=6 if compact else 7, loc="best")
    ax.grid(alpha=0.3)
    detail = steps_text(steps)
    if len(plotted) == 1:
        key, _, pts = plotted[0]
        unit = unit_of(key)
        detail += f", latest {format_value(pts[-1][1], unit)}" + (f" {unit}" if unit in ("USD", "%") else "")
    if _is_latency(panel_keys):
        detail += f"; {BUCKET_ESTIMATE}"
    if panel.get("note"):
        detail += f"; {panel['note']}"
    return drawn, detail


def _bar(ax: Any, panel: dict[str, Any], history: list[dict[str, Any]]) -> tuple[int, str]:
    panel_keys = panel["keys"]
    labels = _short_labels(panel_keys)
    found = [(label, _latest_at(history, key)) for key, label in zip(panel_keys, labels, strict=True)]
    bars = [(label, at[0], at[1]) for label, at in found if at is not None]
    if not bars:
        return 0, "no step"
    names, values, steps = zip(*bars, strict=True)
    ax.bar(range(len(values)), values, color=[_COLORS[i % len(_COLORS)] for i in range(len(values))])
    ax.set_xticks(
        range(len(values)),
        names,
        rotation=30 if len(values) > 3 else 0,
        ha="right" if len(values) > 3 else "center",
        fontsize=7,
    )
    unit = unit_of(panel_keys[0])
    for i, value in enumerate(values):
        ax.text(i, value, format_value(float(value), unit), ha="center", va="bottom", fontsize=6)
    ax.set_ylabel(_unit_label(unit), fontsize=7)
    _fixed_range(ax, unit, [float(v) for v in values])
    ax.grid(axis="y", alpha=0.3)
    return len(values), steps_text(steps, latest=True)


def _scalar(ax: Any, panel: dict[str, Any], history: list[dict[str, Any]], compact: bool) -> tuple[int, str]:
    key = panel["keys"][0]
    ax.axis("off")
    found = _latest_at(history, key)
    if found is None:
        return 0, "no step"
    value, step = found
    unit = unit_of(key)
    ax.text(
        0.5,
        0.5,
        format_value(value, unit),
        ha="center",
        va="center",
        fontsize=28 if compact else 36,
        weight="bold",
        transform=ax.transAxes,
    )
    ax.text(0.5, 0.12, key, ha="center", fontsize=8, color="#555", transform=ax.transAxes)
    return 1, steps_text([step])


def _scatter(ax: Any, panel: dict[str, Any], history: list[dict[str, Any]]) -> tuple[int, str]:
    from matplotlib.ticker import MaxNLocator

    panel_keys = panel["keys"]
    x_key, y_key = panel.get("x", panel_keys[0]), panel.get("y", panel_keys[1])
    pts = [
        (row[x_key], row[y_key], row.get(X_AXIS))
        for row in history
        if _is_number(row.get(x_key)) and _is_number(row.get(y_key))
    ]
    ax.set_xlabel(f"{x_key} ({_unit_label(unit_of(x_key))})", fontsize=7)
    ax.set_ylabel(f"{y_key} ({_unit_label(unit_of(y_key))})", fontsize=7)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.grid(alpha=0.3)
    if not pts:
        return 0, "no step"
    xs, ys, steps = zip(*pts, strict=True)
    ax.scatter(xs, ys, s=22, color=_COLORS[0])
    for x, y, step in pts[-8:]:
        if step is not None:
            ax.annotate(f"step {step}", (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
    return len(pts), f"one point per validation pass, {steps_text(steps)}"


def _table(ax: Any, records: Any) -> tuple[int, str]:
    rows, steps = _table_rows(records)
    ax.axis("off")
    if not rows:
        return 0, "no step"
    cells = [[_cell(column, v) for column, v in zip(TABLE_COLUMNS, row, strict=False)] for row in rows]
    table = ax.table(cellText=cells, colLabels=_table_header(), loc="center", cellLoc="center")
    table.auto_set_font_size(False)
    table.set_fontsize(7)
    table.scale(1.15, 1.35)
    return len(rows), steps_text(steps, latest=True)


def _cell(column: str, value: Any) -> str:
    """A Dataset Statistics cell, formatted for its column's unit."""
    return "" if value is None else format_value(value, unit_of(keys.dataset("x", column)))


def _table_header() -> list[str]:
    return [f"{c} ({unit_of(keys.dataset('x', c))})" if unit_of(keys.dataset("x", c)) else c for c in TABLE_COLUMNS]


def chart_title(panel: dict[str, Any], detail: str) -> str:
    """A chart's title: the panel's title, then the step(s) it shows (and notes) on a second line."""
    return f"{panel['title']}\n{detail}"


def _draw(ax: Any, panel: dict[str, Any], records: Any, *, compact: bool = False) -> tuple[int, str]:
    """Draw ``panel`` on ``ax``; returns the number of data points drawn and the chart's title."""
    kind, history = panel["type"], _with_derived(records.history, panel)
    ax.tick_params(labelsize=7)
    drawn, detail = 0, "no step"
    if kind == "line":
        drawn, detail = _line(ax, panel, history, compact)
    elif kind == "bar":
        drawn, detail = _bar(ax, panel, history)
    elif kind == "scalar":
        drawn, detail = _scalar(ax, panel, history, compact)
    elif kind == "scatter":
        drawn, detail = _scatter(ax, panel, history)
    elif kind == "table":
        drawn, detail = _table(ax, records)
    title = chart_title(panel, detail)
    ax.set_title(title, fontsize=9 if compact else 10)
    if drawn == 0:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", color="#999", transform=ax.transAxes)
    return drawn, title


def _png(fig: Any, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _spec_for(records: Any) -> dict[str, Any]:
    return build_workspace_spec("offline", None, report_datasets(records))


#: The train-wide accuracy excluding judge-failed samples: drawn from the row when the run has
#: the key, else derived from the row's per-source figures.
TRAIN_ACCURACY_EXCL_JUDGE_FAILED = keys.TRAIN_ACCURACY_EXCL_JUDGE_FAILED
#: Derived figures a panel may draw: ``{key: row -> value or None}``.
DERIVED = {TRAIN_ACCURACY_EXCL_JUDGE_FAILED: accuracy_excl_judge_failed}
#: Where the report's own "Reward integrity" section goes when the workspace has none (as in
#: the workspace and the Grafana dashboard: after Validation).
INTEGRITY_AFTER = "Validation"


def _with_derived(history: list[dict[str, Any]], panel: dict[str, Any]) -> list[dict[str, Any]]:
    """``history``, with the panel's ``derived`` keys filled in on the rows that lack them."""
    derived = [key for key in panel.get("derived", ()) if key in DERIVED]
    if not derived:
        return history
    rows = []
    for row in history:
        missing = {key: DERIVED[key](row) for key in derived if not _is_number(row.get(key))}
        rows.append({**row, **{k: v for k, v in missing.items() if v is not None}} if missing else row)
    return rows


def integrity_panels(records: Any) -> list[dict[str, Any]]:
    """The report's own "Reward integrity" panels, for a workspace spec that has none (same shape).

    Judge share and judge-failed share (train); judge-failed share per dataset; train
    accuracy against accuracy excluding judge-failed samples; cost per correct answer per
    dataset (latest); step cost, with the run's cost per correct answer on the right axis.
    Per-dataset series are the report's datasets that have the key in the run.
    """
    present = records.keys()
    sources = report_datasets(records)

    def per_source(figure: str) -> list[str]:
        return [k for k in (keys.dataset(s, figure) for s in sources) if k in present]

    accuracy_excl = TRAIN_ACCURACY_EXCL_JUDGE_FAILED
    return [
        {
            "type": "line",
            "title": "Judge share & judge-failed share (train)",
            "keys": [keys.TRAIN_JUDGE_SHARE, keys.TRAIN_JUDGE_FAILED_SHARE],
            "labels": ["judge share", "judge-failed share"],
            "x": X_AXIS,
        },
        {
            "type": "line",
            "title": "Judge-failed share per dataset",
            "keys": per_source(keys.JUDGE_FAILED_SHARE),
            "x": X_AXIS,
        },
        {
            "type": "line",
            "title": "Train accuracy vs accuracy excl. judge-failed (%)",
            "keys": [keys.TRAIN_ACCURACY, accuracy_excl],
            "labels": ["accuracy", "accuracy excl. judge-failed"],
            "x": X_AXIS,
            "derived": [] if accuracy_excl in present else [accuracy_excl],
            "note": "" if accuracy_excl in present else "excl.: samples-weighted over dataset/*",
        },
        {
            "type": "bar",
            "title": "Cost per correct answer per dataset (USD)",
            "keys": per_source(keys.COST_PER_CORRECT),
            "x": X_AXIS,
        },
        {
            "type": "line",
            "title": "Step cost & cost per correct answer since the start (USD)",
            "keys": [keys.COST_STEP, keys.COST_PER_CORRECT_TOTAL],
            "labels": ["step cost", "cost per correct, since the start"],
            "x": X_AXIS,
        },
    ]


def report_sections(records: Any) -> list[tuple[str, list[dict[str, Any]]]]:
    """(section name, panels) to draw: the workspace's, without a scalar panel whose key a
    line chart of the same section already draws (the line chart's title gives its latest value);
    when the workspace has no "Reward integrity" section, the report's own after Validation."""
    sections = []
    for section in _spec_for(records)["sections"]:
        on_lines = {key for panel in section["panels"] if panel["type"] == "line" for key in panel["keys"]}
        panels = [p for p in section["panels"] if not (p["type"] == "scalar" and p["keys"][0] in on_lines)]
        sections.append((section["name"], panels))
    names = [name for name, _ in sections]
    if keys.INTEGRITY_GROUP not in names:
        at = names.index(INTEGRITY_AFTER) + 1 if INTEGRITY_AFTER in names else len(names)
        sections.insert(at, (keys.INTEGRITY_GROUP, integrity_panels(records)))
    return sections


def _unique_title(counts: dict[str, int], section: str, title: str) -> str:
    return title if title not in counts else f"{section}: {title}"


def _table_html(records: Any, panel: dict[str, Any], panel_keys: str) -> tuple[int, str]:
    rows, steps = _table_rows(records)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in _table_header())
    body = (
        "".join(
            "<tr>"
            + "".join(f"<td>{html.escape(_cell(c, v))}</td>" for c, v in zip(TABLE_COLUMNS, row, strict=False))
            + "</tr>"
            for row in rows
        )
        or f"<tr><td colspan='{len(TABLE_COLUMNS)}'>no data</td></tr>"
    )
    detail = steps_text(steps, latest=True) if rows else "no step"
    return len(rows), (
        f"<figure class='wide'><figcaption><b>{html.escape(panel['title'])}</b>, {html.escape(detail)} "
        f"(the latest <code>dataset/SOURCE/*</code> values, as in the bar chart) "
        f"<code>{html.escape(panel_keys)}</code></figcaption>"
        f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></figure>"
    )


def render_report(records: Any, out_path: str | Path, *, title: str | None = None) -> dict[str, int]:
    """Write the HTML report of ``records`` (a :class:`~otel_grpo.tools.runreader.RunRecords`) to ``out_path``.

    Returns ``{chart title: data points drawn}`` (bars, line points, scatter points,
    table rows; a scalar counts 1) for every chart drawn.
    """
    from matplotlib.figure import Figure

    counts: dict[str, int] = {}
    parts: list[str] = []
    for section_name, panels in report_sections(records):
        parts.append(f"<h2>{html.escape(section_name)}</h2>\n<div class='grid'>")
        for panel in panels:
            name = _unique_title(counts, section_name, panel["title"])
            panel_keys = ", ".join(panel["keys"])
            if panel["type"] == "table":
                counts[name], part = _table_html(records, panel, panel_keys)
                parts.append(part)
                continue
            fig = Figure(figsize=(5.2, 3.4))
            ax = fig.add_subplot(1, 1, 1)
            counts[name], full_title = _draw(ax, panel, records)
            data = base64.b64encode(_png(fig, 80)).decode("ascii")
            first, _, detail = full_title.partition("\n")
            parts.append(
                f"<figure><img alt='{html.escape(first)}' src='data:image/png;base64,{data}'>"
                f"<figcaption><b>{html.escape(first)}</b>, {html.escape(detail)}<br>"
                f"<code>{html.escape(panel_keys)}</code> ({counts[name]} points)</figcaption></figure>"
            )
        parts.append("</div>")
    heading = title or f"otel-grpo report: {Path(records.path).name}"
    rows_of = getattr(records, "otel_grpo_rows", None)
    ours = len(rows_of()) if callable(rows_of) else len(records.history)
    doc = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(heading)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 24px; color: #222; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 12px; }}
figure {{ margin: 0; border: 1px solid #ddd; border-radius: 6px; padding: 6px; background: #fff; }}
figure.wide {{ flex-basis: 100%; }}
figcaption {{ font-size: 12px; color: #555; }}
table {{ border-collapse: collapse; font-size: 13px; margin-top: 6px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 10px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
</style></head><body>
<h1>{html.escape(heading)}</h1>
<p>Run <code>{html.escape(str(records.path))}</code>: {ours} rows written by otel-grpo.
Every line chart is plotted against <code>{X_AXIS}</code>, and every chart says which step or steps
it shows. Accuracy and success rates under train/, dataset/ and val/ are percentages (0-100),
judge/ rates are fractions (0-1), costs are USD. Latency percentiles are bucket estimates from
histograms, as Prometheus' <code>histogram_quantile</code> gives, not exact percentiles of the calls.
Reward integrity: the judge share is the fraction of scored samples with a judge evaluation, the
judge-failed share the fraction whose judge evaluations all failed (their reward is the trainer's
fallback, not a verdict); accuracy excl. judge-failed leaves those samples out.</p>
{chr(10).join(parts)}
</body></html>
"""
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc, encoding="utf-8")
    return counts


def render_overview(
    records: Any, out_png: str | Path, *, dpi: int = 60, sections: Sequence[str] | None = None
) -> dict[str, int]:
    """Draw every chart (or those of ``sections``) into one PNG; returns points per chart.

    A section's charts fill rows of at most :data:`OVERVIEW_COLUMNS` charts."""
    from matplotlib.figure import Figure

    chosen = [(name, panels) for name, panels in report_sections(records) if sections is None or name in sections]
    columns = min(OVERVIEW_COLUMNS, max(len(panels) for _, panels in chosen))
    rows = [max(1, math.ceil(len(panels) / columns)) for _, panels in chosen]
    fig = Figure(figsize=(4.2 * columns, 3.6 * sum(rows)), layout="constrained")
    subfigs = fig.subfigures(len(chosen), 1, height_ratios=rows) if len(chosen) > 1 else [fig]
    counts: dict[str, int] = {}
    for subfig, n_rows, (section_name, panels) in zip(subfigs, rows, chosen, strict=True):
        subfig.suptitle(section_name, fontsize=13, weight="bold", x=0.01, ha="left")
        axes = subfig.subplots(n_rows, columns, squeeze=False).ravel()
        for ax, panel in zip(axes, panels, strict=False):
            counts[_unique_title(counts, section_name, panel["title"])], _ = _draw(ax, panel, records, compact=True)
        for ax in axes[len(panels) :]:
            ax.axis("off")
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(_png(fig, dpi))
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    """``otel-grpo report RUN_DIR [--out report.html] [--png overview.png]``."""
    parser = argparse.ArgumentParser(
        prog="otel-grpo report", description="Render a self-contained HTML report of a WandB run directory."
    )
    parser.add_argument("run_dir", help="an offline-run-* directory, a wandb/ directory, or a .wandb file")
    parser.add_argument("--out", default="report.html", help="HTML file to write (default: report.html)")
    parser.add_argument("--png", help="also write every panel into this one PNG")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        require_extra("report", feature="otel-grpo report")
    except MissingExtraError as exc:
        print(exc, file=sys.stderr)
        return 2
    from otel_grpo.tools.runreader import read_run

    try:
        records = read_run(args.run_dir)
    except (FileNotFoundError, NotADirectoryError, RuntimeError, OSError) as exc:
        print(f"otel-grpo report: cannot read a WandB run at {args.run_dir}: {exc}", file=sys.stderr)
        return 2
    if not records.history:
        print(f"otel-grpo report: the run at {records.path} has no history rows", file=sys.stderr)
        return 2
    counts = render_report(records, args.out)
    empty = [name for name, n in counts.items() if n == 0]
    print(
        f"otel-grpo report: wrote {args.out} ({len(counts)} charts"
        + (f"; no data for: {', '.join(empty)}" if empty else "")
        + ")"
    )
    if args.png:
        render_overview(records, args.png)
        print(f"otel-grpo report: wrote {args.png}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
