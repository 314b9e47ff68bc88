"""Offline report of a WandB run: the workspace's panel groups, drawn with matplotlib.

``otel-grpo report RUN_DIR [--out report.html] [--png overview.png] [--png-dir DIR]`` reads the run
with :func:`otel_grpo.tools.runreader.read_run` (an offline run directory works: nothing is
fetched) and renders the panels of :func:`otel_grpo.tools.dashboards.wandb_workspace.build_workspace_spec`
into one self-contained HTML file, every chart a base64-embedded PNG; ``--png`` also writes every
panel group into one PNG (one group under the other), ``--png-dir`` one PNG per group.

Modules, by concern: :mod:`.data` (series, latest values, and what a chart covers in words, from
the key contract's :func:`otel_grpo.keys.window_of`), :mod:`.sections` (which panels, in which
sections), :mod:`.charts` (drawing one panel, readable at its native size), :mod:`.layout` (a
section's figure, the PNGs), :mod:`.page` (the HTML) and :mod:`.cli`.

Panels are drawn as in WandB, except: the scatter shows one point per validation pass
(WandB shows one per run); the Dataset Statistics table is built from the same latest
``dataset/{source}/*`` values as the per-dataset bar chart, so both show the same step; a
scalar panel whose key a line chart of its section already draws is left out (the line chart's
title gives the latest value); a line panel of more than four keys is drawn as small multiples;
bars are horizontal. The report adds charts for keys the workspace draws nowhere: GRPO
zero-advantage rates, executor latency and exporter health (:func:`.sections.extra_panels`).
For a workspace spec without a "Reward integrity" section the report draws its own
(:func:`integrity_panels`). Every chart's title says what it covers (per step, per validation
pass, or cumulative since the run started) and which step or steps; every series of a chart has
its own colour, marker and line style, and two series share one y axis unless their units differ.
"""

from __future__ import annotations

from otel_grpo.tools.report.charts import chart_title, draw_panel
from otel_grpo.tools.report.cli import main
from otel_grpo.tools.report.data import report_datasets, steps_text
from otel_grpo.tools.report.layout import render_groups, render_overview, section_figures
from otel_grpo.tools.report.page import render_report
from otel_grpo.tools.report.sections import integrity_panels, report_sections

__all__ = [
    "chart_title",
    "draw_panel",
    "integrity_panels",
    "main",
    "render_groups",
    "render_overview",
    "render_report",
    "report_datasets",
    "report_sections",
    "section_figures",
    "steps_text",
]
