"""The Grafana dashboard's layout: the rows in display order, the dashboard variables, the grid.

Each row is built by one function: the training, datasets, judge and validation rows
in :mod:`.grafana_rows`, the reward-integrity row in :mod:`.grafana_integrity`, the cost
and exporter-health rows here. :func:`build_dashboard`
places their panels on Grafana's 24-column grid.
"""

from __future__ import annotations

from otel_grpo.tools.dashboards.grafana_integrity import integrity_row
from otel_grpo.tools.dashboards.grafana_panels import (
    DATASOURCE,
    query_targets,
    stat,
    timeseries,
)
from otel_grpo.tools.dashboards.grafana_promql import (
    EXEC_COST,
    EXEC_COST_INVALID,
    EXEC_DURATION,
    EXEC_RUNS,
    EXPORTER_EVENTS,
    JUDGE_COST,
    JUDGE_REQUESTS,
    L_EVENT,
    L_RUN,
    L_SPLIT,
    L_SUCCESS,
    TRAIN_STEPS_FAILED,
    VAL_RUNS,
    increase_sum,
    per_second,
    quantile,
    sel,
    share,
    total,
)
from otel_grpo.tools.dashboards.grafana_rows import (
    Row,
    datasets_row,
    judge_row,
    training_row,
    validation_row,
)

DASHBOARD_UID = "otel-grpo"


def dashboard_rows() -> list[Row]:
    """(row title, [(panel, width, height), ...]) in display order."""
    return [
        training_row(),
        datasets_row(),
        judge_row(),
        integrity_row(),
        validation_row(),
        cost_row(),
        exporter_health_row(),
    ]


def cost_row() -> Row:
    """The Cost row."""
    return (
        "Cost",
        [
            (
                stat(
                    "Executor cost",
                    "Executor cost since the run started (all splits).",
                    total(EXEC_COST),
                    "currencyUSD",
                    2,
                ),
                4,
                6,
            ),
            (
                stat(
                    "Judge cost",
                    "Judge token cost since the run started, priced from config.",
                    total(JUDGE_COST),
                    "currencyUSD",
                    2,
                ),
                4,
                6,
            ),
            (
                stat(
                    "Avg cost per executor run",
                    "Executor cost / executor runs since the run started.",
                    f"sum({sel(EXEC_COST)}) / (sum({sel(EXEC_RUNS)}) > 0)",
                    "currencyUSD",
                    4,
                ),
                4,
                6,
            ),
            (
                stat("Executor runs", "Workflow executions since the run started.", total(EXEC_RUNS), "none", 0),
                4,
                6,
            ),
            (
                stat(
                    "Judge requests",
                    "HTTP requests to the judge since the run started.",
                    total(JUDGE_REQUESTS),
                    "none",
                    0,
                ),
                4,
                6,
            ),
            (
                stat(
                    "Invalid costs",
                    "Executor runs whose reported cost was not a valid number.",
                    total(EXEC_COST_INVALID),
                    "none",
                    0,
                ),
                4,
                6,
            ),
            (
                timeseries(
                    "Cost rate (USD/h)",
                    "Spend per hour, executor and judge, averaged over the selected window.",
                    query_targets(
                        (f"3600 * {per_second(EXEC_COST)}", "executor"),
                        (f"3600 * {per_second(JUDGE_COST)}", "judge"),
                    ),
                    "currencyUSD",
                    minimum=0,
                ),
                8,
                8,
            ),
            (
                timeseries(
                    "Executor latency (s)",
                    "p50 and p95 of workflow execution time over the selected window (bucket estimates).",
                    query_targets((quantile(0.5, EXEC_DURATION), "p50"), (quantile(0.95, EXEC_DURATION), "p95")),
                    "s",
                    minimum=0,
                ),
                8,
                8,
            ),
            (
                timeseries(
                    "Executor success rate",
                    "Share of executions that succeeded over the selected window, per split.",
                    query_targets(
                        (
                            share(
                                increase_sum(EXEC_RUNS, (L_SPLIT,), **{L_SUCCESS: "true"}),
                                increase_sum(EXEC_RUNS, (L_SPLIT,)),
                            ),
                            f"{{{{{L_SPLIT}}}}}",
                        )
                    ),
                    "percentunit",
                    minimum=0,
                    maximum=1,
                ),
                8,
                8,
            ),
        ],
    )


def exporter_health_row() -> Row:
    """The Exporter health row."""
    return (
        "Exporter health",
        [
            (
                timeseries(
                    "Exporter events",
                    "WandB exporter health over the selected window: rows written, rows dropped, "
                    "export errors, invalid values.",
                    query_targets((increase_sum(EXPORTER_EVENTS, (L_EVENT,)), f"{{{{{L_EVENT}}}}}")),
                    "none",
                    minimum=0,
                ),
                16,
                6,
            ),
            (
                stat("Failed training steps", "Training steps that raised.", total(TRAIN_STEPS_FAILED), "none", 0),
                4,
                6,
            ),
            (stat("Validation passes", "Validation passes completed.", total(VAL_RUNS), "none", 0), 4, 6),
        ],
    )


def dashboard_variables() -> list[dict]:
    def query_var(name: str, label: str, query: str) -> dict:
        return {
            "name": name,
            "label": label,
            "type": "query",
            "datasource": DATASOURCE,
            "definition": query,
            "query": query,
            "refresh": 2,
            "regex": "",
            "sort": 1,
            "includeAll": True,
            "multi": True,
            "allValue": ".*",
            "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
            "options": [],
            "hide": 0,
        }

    windows = ["5m", "15m", "30m", "1h", "3h", "6h"]
    default_window = "15m"
    return [
        query_var("job", "Job", f'label_values(target_info{{{L_RUN}!=""}}, job)'),
        query_var("grpo_run_id", "Run", f'label_values(target_info{{job=~"$job", {L_RUN}!=""}}, {L_RUN})'),
        {
            "name": "window",
            "label": "Window",
            "type": "custom",
            "description": "Window of every windowed panel (their titles say 'last $window'): accuracy, "
            "average reward, shares, per-second rates, latency percentiles.",
            "query": ",".join(windows),
            "current": {"selected": True, "text": default_window, "value": default_window},
            "options": [{"selected": w == default_window, "text": w, "value": w} for w in windows],
            "includeAll": False,
            "multi": False,
            "hide": 0,
        },
    ]


def build_dashboard() -> dict:
    """Return the dashboard as a JSON-able dict (same output on every call)."""
    panels: list[dict] = []
    next_id = 1
    y = 0
    for row_title, row_panels in dashboard_rows():
        panels.append(
            {
                "type": "row",
                "title": row_title,
                "id": next_id,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
                "panels": [],
            }
        )
        next_id += 1
        y += 1
        x = 0
        line_height = 0
        for panel, width, height in row_panels:
            if x + width > 24:
                x = 0
                y += line_height
                line_height = 0
            placed = {"id": next_id, "gridPos": {"h": height, "w": width, "x": x, "y": y}} | panel
            panels.append(placed)
            next_id += 1
            x += width
            line_height = max(line_height, height)
        y += line_height
    return {
        "uid": DASHBOARD_UID,
        "title": "otel-grpo: GRPO training",
        "description": "GRPO training telemetry from otel-grpo (OpenTelemetry -> Collector -> Prometheus).",
        "tags": ["otel-grpo", "grpo", "opentelemetry"],
        "timezone": "browser",
        "editable": False,
        "graphTooltip": 1,
        "refresh": "30s",
        "schemaVersion": 39,
        "version": 1,
        "time": {"from": "now-6h", "to": "now"},
        "timepicker": {},
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "links": [],
        "annotations": {
            "list": [
                {
                    "builtIn": 1,
                    "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                    "enable": True,
                    "hide": True,
                    "iconColor": "rgba(0, 211, 255, 1)",
                    "name": "Annotations & Alerts",
                    "type": "dashboard",
                }
            ]
        },
        "templating": {"list": dashboard_variables()},
        "panels": panels,
    }
