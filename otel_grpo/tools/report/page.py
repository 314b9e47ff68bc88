"""The self-contained HTML report: every section's charts as base64-embedded PNGs, with captions."""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

from otel_grpo.tools.report.charts import cell, table_header
from otel_grpo.tools.report.data import TABLE_COLUMNS, X_AXIS, at_step, table_rows
from otel_grpo.tools.report.layout import panel_figure, png_bytes
from otel_grpo.tools.report.sections import HEALTH_GROUP, MAX_SERIES, report_sections

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
.grid { display: flex; flex-wrap: wrap; gap: 12px; }
figure { margin: 0; border: 1px solid #ddd; border-radius: 6px; padding: 6px; background: #fff; }
figure.wide { flex-basis: 100%; }
figcaption { font-size: 13px; color: #444; max-width: 1000px; }
table { border-collapse: collapse; font-size: 14px; margin-top: 6px; }
th, td { border: 1px solid #ccc; padding: 3px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
"""


def _intro(records: Any) -> str:
    rows_of = getattr(records, "otel_grpo_rows", None)
    ours = len(rows_of()) if callable(rows_of) else len(records.history)
    return f"""<p>Run <code>{html.escape(str(records.path))}</code>: {ours} rows written by otel-grpo.
Every line chart is plotted against <code>{X_AXIS}</code>. Every chart's title says what it covers:
<b>per step</b> (<code>train/</code>, <code>dataset/</code>, <code>grpo/</code>, <code>judge/step_*</code>,
<code>cost/step_cost</code>: that step's samples alone), <b>per validation pass</b> (<code>val/</code>), or
<b>cumulative since the run started</b> (the rest of <code>judge/</code>, <code>cost/</code>, <code>executor/</code>
and <code>exporter/</code>); a chart of latest values says "step N only" or "run total at step N".
Accuracy and success rates under train/, dataset/ and val/ are percentages (0-100), judge/ and grpo/
rates are fractions (0-1), costs are USD; rate, cost, count and latency axes start at 0 (a zoomed axis
says so). A panel of more than {MAX_SERIES} series is drawn as small multiples, one chart per key.
Latency percentiles are bucket estimates from histograms, as Prometheus' <code>histogram_quantile</code>
gives, not exact percentiles of the calls. Reward integrity: the judge share is the fraction of scored
samples with a judge evaluation, the judge-failed share the fraction whose judge evaluations all failed
(their reward is the trainer's fallback, not a verdict); accuracy excl. judge-failed leaves those samples
out. Drawn: the WandB workspace's panels, plus GRPO zero-advantage rates, executor latency and
{HEALTH_GROUP.lower()}, for the keys this run has.</p>"""


def _table_html(records: Any, panel: dict[str, Any], panel_keys: str) -> tuple[int, str]:
    rows, steps = table_rows(records)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in table_header())
    body = (
        "".join(
            "<tr>"
            + "".join(f"<td>{html.escape(cell(c, v))}</td>" for c, v in zip(TABLE_COLUMNS, row, strict=False))
            + "</tr>"
            for row in rows
        )
        or f"<tr><td colspan='{len(TABLE_COLUMNS)}'>no data</td></tr>"
    )
    detail = at_step([f"dataset/{row[0]}/count" for row in rows], steps) if rows else "no step"
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
    counts: dict[str, int] = {}
    parts: list[str] = []
    for section_name, panels in report_sections(records):
        parts.append(f"<h2>{html.escape(section_name)}</h2>\n<div class='grid'>")
        for panel in panels:
            name = panel["title"] if panel["title"] not in counts else f"{section_name}: {panel['title']}"
            panel_keys = ", ".join(panel["keys"])
            if panel["type"] == "table":
                counts[name], part = _table_html(records, panel, panel_keys)
                parts.append(part)
                continue
            fig, counts[name], full_title = panel_figure(panel, records)
            data = base64.b64encode(png_bytes(fig)).decode("ascii")
            first, _, detail = full_title.partition("\n")
            wide = " class='wide'" if fig.get_figwidth() > 6 else ""
            parts.append(
                f"<figure{wide}><img alt='{html.escape(first)}' src='data:image/png;base64,{data}'>"
                f"<figcaption><b>{html.escape(first)}</b>, {html.escape(detail)}<br>"
                f"<code>{html.escape(panel_keys)}</code> ({counts[name]} points)</figcaption></figure>"
            )
        parts.append("</div>")
    heading = title or f"otel-grpo report: {Path(records.path).name}"
    doc = (
        f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(heading)}</title>"
        f"<style>{STYLE}</style></head><body>\n<h1>{html.escape(heading)}</h1>\n{_intro(records)}\n"
        + "\n".join(parts)
        + "\n</body></html>\n"
    )
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(doc, encoding="utf-8")
    return counts
