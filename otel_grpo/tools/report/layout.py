"""Laying the panels of a section out in one figure, and writing the report's PNGs.

A section's figure is :data:`COLUMNS` charts wide (:data:`CELL_WIDTH` inches each, at
:data:`~otel_grpo.tools.report.charts.DPI`: 1000 px), every chart in a subfigure of its own;
small multiples and the Dataset Statistics table take a whole row. Figures use constrained layout
and are saved at their own size (no ``bbox_inches="tight"``), so the PNG is exactly
``figure size x dpi``.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

from otel_grpo.tools.report.charts import DPI, SECTION, draw_panel, style
from otel_grpo.tools.report.data import table_rows
from otel_grpo.tools.report.sections import MAX_SERIES, is_small_multiples, report_sections, slug

COLUMNS = 2
CELL_WIDTH, CELL_HEIGHT = 5.0, 3.6  # inches, one chart
SCALAR_HEIGHT = 1.8  # inches, a single number
SMALL_MULTIPLE_HEIGHT = 2.1  # inches, one row of small multiples
HEADING_HEIGHT = 0.45  # inches, a section's heading
SECTION_GAP = 24  # pixels of white between two sections in one PNG


def panel_size(panel: dict[str, Any], records: Any) -> tuple[int, float]:
    """(columns, height in inches) a panel takes: one cell, or a whole row for small multiples and the table."""
    if is_small_multiples(panel):
        return COLUMNS, 0.9 + SMALL_MULTIPLE_HEIGHT * math.ceil(len(panel["keys"]) / MAX_SERIES)
    if panel["type"] == "table":
        return COLUMNS, 0.75 + 0.25 * (len(table_rows(records)[0]) + 1)
    return 1, SCALAR_HEIGHT if panel["type"] == "scalar" else CELL_HEIGHT


def layout_rows(panels: list[dict[str, Any]], records: Any) -> list[list[dict[str, Any]]]:
    """The panels in rows of the figure, in order, except that a one-cell panel takes the next
    one-cell panel beside it, ahead of any whole-row panel between them."""
    rows: list[list[dict[str, Any]]] = []
    queue = list(panels)
    while queue:
        panel = queue.pop(0)
        row = [panel]
        if panel_size(panel, records)[0] < COLUMNS:
            partner = next((i for i, p in enumerate(queue) if panel_size(p, records)[0] < COLUMNS), None)
            row += [queue.pop(partner)] if partner is not None else []
        rows.append(row)
    return rows


def section_figure(
    records: Any, name: str, panels: list[dict[str, Any]], taken: dict[str, int] | None = None
) -> tuple[Any, dict[str, int]]:
    """The figure of one section (its heading, then its panels) and ``{chart title: points drawn}``.

    A chart whose title is in ``taken`` (or earlier in the section) is named ``"{section}: {title}"``."""
    from matplotlib.figure import Figure

    rows = layout_rows(panels, records)
    heights = [max(panel_size(p, records)[1] for p in row) for row in rows]
    counts: dict[str, int] = {}
    with style():
        fig = Figure(figsize=(COLUMNS * CELL_WIDTH, HEADING_HEIGHT + sum(heights)), dpi=DPI, layout="constrained")
        fig.suptitle(name, fontsize=SECTION, weight="bold", x=0.01, ha="left")
        grid = fig.add_gridspec(len(rows), COLUMNS, height_ratios=heights)
        for r, row in enumerate(rows):
            for c, panel in enumerate(row):
                span = panel_size(panel, records)[0]
                title = panel["title"]
                if title in counts or title in (taken or {}):
                    title = f"{name}: {title}"
                counts[title], _ = draw_panel(
                    fig.add_subfigure(grid[r, c : c + span]), panel, records, span * CELL_WIDTH
                )
    return fig, counts


def section_figures(records: Any, sections: list[str] | None = None) -> list[tuple[str, Any, dict[str, int]]]:
    """``(section, figure, {chart title: points})`` for every section of the report (or of ``sections``)."""
    out: list[tuple[str, Any, dict[str, int]]] = []
    taken: dict[str, int] = {}
    for name, panels in report_sections(records):
        if sections is None or name in sections:
            fig, counts = section_figure(records, name, panels, taken)
            taken.update(counts)
            out.append((name, fig, counts))
    return out


def figure_pixels(fig: Any) -> Any:
    """The figure drawn at its own size: an ``(height, width, 4)`` RGBA array."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    with style():
        canvas.draw()
    return np.asarray(canvas.buffer_rgba()).copy()


def png_bytes(fig: Any) -> bytes:
    """The figure as PNG bytes, at its own size."""
    buf = io.BytesIO()
    with style():
        fig.savefig(buf, format="png", dpi=DPI)
    return buf.getvalue()


def render_overview(records: Any, out_png: str | Path, *, sections: list[str] | None = None) -> dict[str, int]:
    """Every section's figure (or those of ``sections``), one under the other, in one PNG.

    Returns ``{chart title: data points drawn}``."""
    import numpy as np
    from PIL import Image

    figures = section_figures(records, sections)
    images = [figure_pixels(fig) for _, fig, _ in figures]
    width = max(image.shape[1] for image in images)
    gap = np.full((SECTION_GAP, width, 4), 255, dtype=np.uint8)
    parts: list[Any] = []
    for image in images:
        pad = np.full((image.shape[0], width - image.shape[1], 4), 255, dtype=np.uint8)
        parts.extend([np.concatenate([image, pad], axis=1), gap])
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.concatenate(parts[:-1], axis=0)).convert("RGB").save(out, format="PNG", dpi=(DPI, DPI))
    return {title: n for _, _, counts in figures for title, n in counts.items()}


def render_groups(records: Any, out_dir: str | Path, *, prefix: str = "report") -> dict[Path, dict[str, int]]:
    """One PNG per section, ``{out_dir}/{prefix}-{slug}.png``; returns ``{path: {chart title: points}}``."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    written: dict[Path, dict[str, int]] = {}
    for name, fig, counts in section_figures(records):
        path = folder / f"{prefix}-{slug(name)}.png"
        path.write_bytes(png_bytes(fig))
        written[path] = counts
    return written


def panel_figure(panel: dict[str, Any], records: Any) -> tuple[Any, int, str]:
    """One panel alone in a figure (for the HTML report): ``(figure, points drawn, title)``."""
    from matplotlib.figure import Figure

    span, height = panel_size(panel, records)
    with style():
        fig = Figure(figsize=(span * CELL_WIDTH, height), dpi=DPI, layout="constrained")
        drawn, title = draw_panel(fig, panel, records, span * CELL_WIDTH)
    return fig, drawn, title
