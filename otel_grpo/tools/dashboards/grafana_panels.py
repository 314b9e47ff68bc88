"""Grafana panel builders: the JSON of a line chart, stat, bar gauge, pie chart and table.

Each builder takes a name, a description and PromQL (see
:mod:`otel_grpo.tools.dashboards.grafana_promql`) and returns the panel as a dict, titled
``"{name}, {what its queries cover}"`` (:func:`covered`): ``"Judge outcome rates, last $window"``
(Grafana shows the variable's value: "last 15m"), ``"Judge cost, since the run started"``;
:mod:`otel_grpo.tools.dashboards.grafana_layout` places them on the dashboard.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from otel_grpo.tools.dashboards.coverage import grafana_coverage, titled
from otel_grpo.tools.dashboards.grafana_promql import GAUGE, INSTRUMENT_KINDS, prometheus_metric_names

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
#: The Prometheus names of the gauges (set at each step's end: loss, KL, the step number).
GAUGES = frozenset(prometheus_metric_names()[instrument[0]] for instrument, kind in INSTRUMENT_KINDS if kind == GAUGE)


def covered(name: str, exprs: Iterable[str], *, over_time: bool) -> str:
    """``name``, then what the queries ``exprs`` cover (:func:`.coverage.grafana_coverage`)."""
    return titled(name, grafana_coverage(exprs, over_time, GAUGES))


def _target(expr: str, legend: str = "", ref: str = "A", *, instant: bool = False, table: bool = False) -> dict:
    target: dict[str, Any] = {
        "datasource": DATASOURCE,
        "editorMode": "code",
        "expr": expr,
        "legendFormat": legend or "__auto",
        "range": not instant,
        "instant": instant,
        "refId": ref,
    }
    if table:
        target["format"] = "table"
    return target


def query_targets(*specs: tuple[str, str], instant: bool = False, table: bool = False) -> list[dict]:
    """One query target per ``(expr, legend)``, with reference ids A, B, C..."""
    refs = "ABCDEFGH"
    return [_target(expr, legend, refs[i], instant=instant, table=table) for i, (expr, legend) in enumerate(specs)]


def _defaults(
    unit: str, minimum: float | None = None, maximum: float | None = None, decimals: int | None = None
) -> dict:
    defaults: dict[str, Any] = {"unit": unit}
    if minimum is not None:
        defaults["min"] = minimum
    if maximum is not None:
        defaults["max"] = maximum
    if decimals is not None:
        defaults["decimals"] = decimals
    return defaults


def timeseries(
    title: str,
    description: str,
    targets: list[dict],
    unit: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    overrides: list | None = None,
) -> dict:
    """A line chart."""
    defaults = _defaults(unit, minimum, maximum)
    defaults["custom"] = {
        "drawStyle": "line",
        "lineWidth": 2,
        "fillOpacity": 10,
        "showPoints": "never",
        "spanNulls": True,
    }
    return {
        "type": "timeseries",
        "title": covered(title, (t["expr"] for t in targets), over_time=True),
        "description": description,
        "datasource": DATASOURCE,
        "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
        "options": {
            "legend": {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []},
            "tooltip": {"mode": "multi", "sort": "desc"},
        },
    }


_LAST = {"calcs": ["lastNotNull"], "fields": "", "values": False}


def stat(title: str, description: str, expr: str, unit: str, decimals: int | None = None) -> dict:
    """A single number (last value)."""
    title = covered(title, [expr], over_time=False)
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": query_targets((expr, title)),
        "fieldConfig": {"defaults": _defaults(unit, decimals=decimals), "overrides": []},
        "options": {
            "reduceOptions": _LAST,
            "colorMode": "value",
            "graphMode": "area",
            "justifyMode": "auto",
            "orientation": "auto",
            "textMode": "value",
        },
    }


def bargauge(
    title: str, description: str, expr: str, legend: str, unit: str, maximum: float | None, decimals: int = 1
) -> dict:
    """Horizontal bars, one per series (instant query); ``maximum`` None: scaled to the data."""
    return {
        "type": "bargauge",
        "title": covered(title, [expr], over_time=False),
        "description": description,
        "datasource": DATASOURCE,
        "targets": query_targets((expr, legend), instant=True),
        "fieldConfig": {"defaults": _defaults(unit, 0, maximum, decimals=decimals), "overrides": []},
        "options": {
            "reduceOptions": _LAST,
            "orientation": "horizontal",
            "displayMode": "gradient",
            "valueMode": "color",
            "showUnfilled": True,
            "namePlacement": "left",
        },
    }


def piechart(title: str, description: str, expr: str, legend: str) -> dict:
    """A pie of the series' last values (instant query)."""
    return {
        "type": "piechart",
        "title": covered(title, [expr], over_time=False),
        "description": description,
        "datasource": DATASOURCE,
        "targets": query_targets((expr, legend), instant=True),
        "fieldConfig": {"defaults": _defaults("short"), "overrides": []},
        "options": {
            "reduceOptions": _LAST,
            "pieType": "pie",
            "displayLabels": ["percent"],
            "legend": {
                "displayMode": "table",
                "placement": "right",
                "showLegend": True,
                "values": ["value", "percent"],
            },
            "tooltip": {"mode": "single", "sort": "none"},
        },
    }


def table(title: str, description: str, columns: list[tuple[str, str, str, int]], key: str, key_title: str) -> dict:
    """One row per ``key`` label value; ``columns`` = (header, expr, unit, decimals)."""
    targets = query_targets(*[(expr, header) for header, expr, _, _ in columns], instant=True, table=True)
    refs = [t["refId"] for t in targets]
    rename = {key: key_title} | {f"Value #{ref}": header for ref, (header, _, _, _) in zip(refs, columns, strict=True)}
    index = {key: 0} | {f"Value #{ref}": i + 1 for i, ref in enumerate(refs)}
    overrides = [
        {
            "matcher": {"id": "byName", "options": header},
            "properties": [{"id": "unit", "value": unit}, {"id": "decimals", "value": decimals}],
        }
        for header, _, unit, decimals in columns
    ]
    return {
        "type": "table",
        "title": covered(title, (expr for _, expr, _, _ in columns), over_time=False),
        "description": description,
        "datasource": DATASOURCE,
        "targets": targets,
        "transformations": [
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {"excludeByName": {"Time": True}, "indexByName": index, "renameByName": rename},
            },
        ],
        "fieldConfig": {"defaults": {"custom": {"align": "auto"}}, "overrides": overrides},
        "options": {"showHeader": True, "cellHeight": "sm", "sortBy": [{"displayName": key_title, "desc": False}]},
    }


def axis_override(ref: str, unit: str, placement: str) -> dict:
    """A field override putting query ``ref`` on its own axis (``placement``: left/right) in ``unit``."""
    return {
        "matcher": {"id": "byFrameRefID", "options": ref},
        "properties": [
            {"id": "unit", "value": unit},
            {"id": "custom.axisPlacement", "value": placement},
        ],
    }
