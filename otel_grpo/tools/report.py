"""Offline HTML report of a WandB run: the workspace's panel groups, drawn with matplotlib.

``otel-grpo report RUN_DIR [--out report.html] [--png overview.png]`` reads the run
with :func:`otel_grpo.tools.runreader.read_run` (an offline run directory works: nothing is
fetched) and renders the panels of :func:`otel_grpo.tools.dashboards.wandb_workspace.build_workspace_spec`
(Training overview, Datasets, Judge, Validation, Cost) into one self-contained HTML
file, every chart a base64-embedded PNG. ``--png`` also writes all panels into one image.

Panels are drawn as in WandB, except the scatter, which shows one point per validation
pass (WandB shows one per run), and the Dataset Statistics table, which is the run's
latest ``dataset_statistics`` table file (else the latest ``dataset/{source}/*`` keys).
"""

from __future__ import annotations

import argparse
import base64
import html
import io
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from otel_grpo import keys
from otel_grpo.tools.dashboards.wandb_workspace import DEFAULT_DATASETS, build_workspace_spec

__all__ = ["main", "render_overview", "render_report", "report_datasets"]

X_AXIS = keys.STEP
TABLE_COLUMNS = keys.DATASET_STATISTICS_COLUMNS
_DELIMS = "/_"
_COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]


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
    for row in reversed(history):
        if _is_number(row.get(key)):
            return float(row[key])
    return None


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


def _table_rows(records: Any) -> list[list[Any]]:
    """The latest Dataset Statistics table: its table file, else the latest dataset/* keys."""
    run_dir = Path(records.path)
    table_key = keys.DATASET_STATISTICS_TABLE
    for row in reversed(records.history):
        ref = row.get(table_key)
        rel = ref.get("path") if isinstance(ref, dict) else row.get(f"{table_key}.path")
        if not rel:
            continue
        for base in (run_dir / "files", run_dir):
            path = base / rel
            if path.is_file():
                try:
                    table = json.loads(path.read_text(encoding="utf-8"))
                    index = {c: i for i, c in enumerate(table["columns"])}
                    return [[r[index[c]] if c in index else None for c in TABLE_COLUMNS] for r in table["data"]]
                except (OSError, ValueError, KeyError, TypeError, IndexError):
                    break
    sources = sorted(report_datasets(records))
    for row in reversed(records.history):
        rows = [
            [source, *(row.get(keys.dataset(source, figure)) for figure in keys.DATASET_FIGURES)]
            for source in sources
            if keys.dataset(source, "count") in row
        ]
        if rows:
            return rows
    return []


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
        labels.append(core or k)
    return labels


def _fmt(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


# --- drawing ----------------------------------------------------------------------------
def _draw(ax: Any, panel: dict[str, Any], records: Any, *, compact: bool = False) -> int:
    """Draw ``panel`` on ``ax``; returns the number of data points drawn."""
    from matplotlib.ticker import MaxNLocator

    kind, keys, history = panel["type"], panel["keys"], records.history
    ax.set_title(panel["title"], fontsize=9 if compact else 10)
    ax.tick_params(labelsize=7)
    drawn = 0
    if kind == "line":
        labels = _short_labels(keys)
        x_key = panel.get("x", X_AXIS)
        series = [(label, _series(history, key, x_key)) for key, label in zip(keys, labels, strict=True)]
        maxima = [max(abs(v) for _, v in pts) for _, pts in series if pts]
        twin = None
        if len(series) == 2 and len(maxima) == 2 and min(maxima) > 0 and max(maxima) / min(maxima) > 10:
            twin = ax.twinx()
            twin.tick_params(labelsize=7)
        handles = []
        for i, (label, pts) in enumerate(series):
            if not pts:
                continue
            target = twin if (twin is not None and i == 1) else ax
            xs, ys = zip(*pts, strict=True)
            (line,) = target.plot(
                xs,
                ys,
                marker="o" if len(pts) <= 30 else None,
                markersize=3,
                linewidth=1.4,
                color=_COLORS[i % len(_COLORS)],
                label=label + (" (right)" if target is twin else ""),
            )
            handles.append(line)
            drawn += len(pts)
        ax.set_xlabel(panel.get("x", X_AXIS), fontsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        if handles:
            ax.legend(handles=handles, fontsize=6 if compact else 7, loc="best")
        ax.grid(alpha=0.3)
    elif kind == "bar":
        labels = _short_labels(keys)
        bars = [(label, _latest(history, key)) for key, label in zip(keys, labels, strict=True)]
        bars = [(label, value) for label, value in bars if value is not None]
        if bars:
            names, values = zip(*bars, strict=True)
            ax.bar(range(len(values)), values, color=[_COLORS[i % len(_COLORS)] for i in range(len(values))])
            ax.set_xticks(
                range(len(values)),
                names,
                rotation=30 if len(values) > 3 else 0,
                ha="right" if len(values) > 3 else "center",
                fontsize=7,
            )
            for i, value in enumerate(values):
                ax.text(i, value, _fmt(float(value)), ha="center", va="bottom", fontsize=6)
            drawn = len(values)
        ax.grid(axis="y", alpha=0.3)
    elif kind == "scalar":
        value = _latest(history, keys[0])
        ax.axis("off")
        if value is not None:
            shown = str(int(value)) if float(value).is_integer() else f"{value:.4g}"
            ax.text(
                0.5,
                0.5,
                shown,
                ha="center",
                va="center",
                fontsize=28 if compact else 36,
                weight="bold",
                transform=ax.transAxes,
            )
            ax.text(0.5, 0.12, keys[0], ha="center", fontsize=8, color="#555", transform=ax.transAxes)
            drawn = 1
    elif kind == "scatter":
        x_key, y_key = panel.get("x", keys[0]), panel.get("y", keys[1])
        pts = [
            (row[x_key], row[y_key], row.get(X_AXIS))
            for row in history
            if _is_number(row.get(x_key)) and _is_number(row.get(y_key))
        ]
        if pts:
            xs, ys, _steps = zip(*pts, strict=True)
            ax.scatter(xs, ys, s=22, color=_COLORS[0])
            for x, y, step in pts[-8:]:
                if step is not None:
                    ax.annotate(f"step {step}", (x, y), fontsize=6, xytext=(3, 3), textcoords="offset points")
            drawn = len(pts)
        ax.set_xlabel(x_key, fontsize=7)
        ax.set_ylabel(y_key, fontsize=7)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.grid(alpha=0.3)
    elif kind == "table":
        rows = _table_rows(records)
        ax.axis("off")
        if rows:
            cells = [[_fmt(v) for v in row] for row in rows]
            table = ax.table(cellText=cells, colLabels=list(TABLE_COLUMNS), loc="center", cellLoc="center")
            table.auto_set_font_size(False)
            table.set_fontsize(7)
            table.scale(1.15, 1.35)
            drawn = len(rows)
    if drawn == 0:
        ax.text(0.5, 0.5, "no data", ha="center", va="center", color="#999", transform=ax.transAxes)
    return drawn


def _png(fig: Any, dpi: int) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _spec_for(records: Any) -> dict[str, Any]:
    return build_workspace_spec("offline", None, report_datasets(records))


def _unique_title(counts: dict[str, int], section: str, title: str) -> str:
    return title if title not in counts else f"{section}: {title}"


def render_report(records: Any, out_path: str | Path, *, title: str | None = None) -> dict[str, int]:
    """Write the HTML report of ``records`` (a :class:`~otel_grpo.tools.runreader.RunRecords`) to ``out_path``.

    Returns ``{chart title: data points drawn}`` (bars, line points, scatter points,
    table rows; a scalar counts 1) for every panel.
    """
    from matplotlib.figure import Figure

    spec = _spec_for(records)
    counts: dict[str, int] = {}
    parts: list[str] = []
    for section in spec["sections"]:
        parts.append(f"<h2>{html.escape(section['name'])}</h2>\n<div class='grid'>")
        for panel in section["panels"]:
            name = _unique_title(counts, section["name"], panel["title"])
            keys = ", ".join(panel["keys"])
            if panel["type"] == "table":
                rows = _table_rows(records)
                counts[name] = len(rows)
                head = "".join(f"<th>{html.escape(c)}</th>" for c in TABLE_COLUMNS)
                body = (
                    "".join("<tr>" + "".join(f"<td>{html.escape(_fmt(v))}</td>" for v in row) + "</tr>" for row in rows)
                    or f"<tr><td colspan='{len(TABLE_COLUMNS)}'>no data</td></tr>"
                )
                parts.append(
                    f"<figure class='wide'><figcaption><b>{html.escape(panel['title'])}</b> "
                    f"<code>{html.escape(keys)}</code></figcaption>"
                    f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></figure>"
                )
                continue
            fig = Figure(figsize=(5.2, 3.2))
            ax = fig.add_subplot(1, 1, 1)
            counts[name] = _draw(ax, panel, records)
            data = base64.b64encode(_png(fig, 80)).decode("ascii")
            parts.append(
                f"<figure><img alt='{html.escape(panel['title'])}' src='data:image/png;base64,{data}'>"
                f"<figcaption><code>{html.escape(keys)}</code> "
                f"({counts[name]} points)</figcaption></figure>"
            )
        parts.append("</div>")
    heading = title or f"otel-grpo report: {Path(records.path).name}"
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
<p>Run <code>{html.escape(str(records.path))}</code>: {len(records.history)} history rows.
Every panel is plotted against <code>{X_AXIS}</code>; accuracy and success rates under train/, dataset/
and val/ are percentages, judge/ rates are fractions.</p>
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
    """Draw every panel (or those of ``sections``) into one PNG; returns points per chart."""
    from matplotlib.figure import Figure

    spec = _spec_for(records)
    chosen = [s for s in spec["sections"] if sections is None or s["name"] in sections]
    columns = max(len(s["panels"]) for s in chosen)
    fig = Figure(figsize=(4.0 * columns, 3.3 * len(chosen)), layout="constrained")
    subfigs = fig.subfigures(len(chosen), 1) if len(chosen) > 1 else [fig]
    counts: dict[str, int] = {}
    for subfig, section in zip(subfigs, chosen, strict=True):
        subfig.suptitle(section["name"], fontsize=13, weight="bold", x=0.01, ha="left")
        axes = subfig.subplots(1, columns, squeeze=False)[0]
        for ax, panel in zip(axes, section["panels"], strict=False):
            counts[_unique_title(counts, section["name"], panel["title"])] = _draw(ax, panel, records, compact=True)
        for ax in axes[len(section["panels"]) :]:
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
