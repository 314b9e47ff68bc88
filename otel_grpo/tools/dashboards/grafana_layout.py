"""The Grafana dashboard's layout: which panels, in which rows, and the dashboard variables.

Panels follow SPEC.md's four groups (training overview, datasets, judge, validation)
plus cost and exporter health. Windowed figures (accuracy, average reward, rates of
outcomes) use the ``window`` variable; per-second rates use Grafana's
``$__rate_interval``.
"""

from __future__ import annotations

from otel_grpo import semconv as sc
from otel_grpo.tools.dashboards.grafana_panels import (
    DATASOURCE,
    axis_override,
    bargauge,
    piechart,
    query_targets,
    stat,
    table,
    timeseries,
)
from otel_grpo.tools.dashboards.grafana_promql import (
    EXEC_COST,
    EXEC_COST_INVALID,
    EXEC_DURATION,
    EXEC_RUNS,
    EXPORTER_EVENTS,
    GROUPS,
    GROUPS_ZERO_ADV,
    JUDGE_COST,
    JUDGE_DURATION,
    JUDGE_EVALS,
    JUDGE_REQUESTS,
    L_ERROR,
    L_EVENT,
    L_OUTCOME,
    L_RUN,
    L_SCALAR,
    L_SOURCE,
    L_SPLIT,
    L_SUCCESS,
    L_TOKEN_TYPE,
    L_VERDICT,
    SAMPLES,
    TOKEN_USAGE,
    TRAIN_SCALAR,
    TRAIN_STEP,
    TRAIN_STEPS_FAILED,
    VAL_RUNS,
    accuracy,
    average_reward,
    increase_sum,
    quantile,
    sel,
    share,
    total,
)

DASHBOARD_UID = "otel-grpo"

TRAIN = sc.SPLIT_TRAIN
VAL = sc.SPLIT_VAL


def dashboard_rows() -> list[tuple[str, list[tuple[dict, int, int]]]]:
    """(row title, [(panel, width, height), ...]) in display order."""
    by_source = (L_SOURCE,)
    highlighted = {L_SOURCE: "~gsm8k|math"}
    judge_all = increase_sum(JUDGE_EVALS)
    judge_by_source = f"sum by ({L_SOURCE}) ({sel(JUDGE_EVALS)})"
    return [
        (
            "Training overview",
            [
                (
                    timeseries(
                        "Loss & KL divergence",
                        "Last loss and kl_div the trainer reported (grpo.train.scalar).",
                        query_targets(
                            (
                                f"max by ({L_SCALAR}) ({sel(TRAIN_SCALAR, **{L_SCALAR: '~loss|kl_div'})})",
                                f"{{{{{L_SCALAR}}}}}",
                            )
                        ),
                        "short",
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Train & validation accuracy (%)",
                        "100 x correct / samples over the selected window (correct = correctness >= threshold).",
                        query_targets((accuracy(TRAIN), "train"), (accuracy(VAL), "val")),
                        "percent",
                        minimum=0,
                        maximum=100,
                    ),
                    8,
                    8,
                ),
                (stat("Training step", "Last completed training step.", f"max({sel(TRAIN_STEP)})", "none", 0), 4, 8),
            ],
        ),
        (
            "Datasets",
            [
                (
                    bargauge(
                        "Train accuracy per dataset (%)",
                        "Accuracy of each dataset's train samples over the selected window.",
                        accuracy(TRAIN, by_source),
                        f"{{{{{L_SOURCE}}}}}",
                        "percent",
                        100,
                    ),
                    8,
                    9,
                ),
                (
                    timeseries(
                        "GSM8K & MATH accuracy (%)",
                        "Train accuracy of gsm8k and math over the selected window.",
                        query_targets((accuracy(TRAIN, by_source, **highlighted), f"{{{{{L_SOURCE}}}}}")),
                        "percent",
                        minimum=0,
                        maximum=100,
                    ),
                    8,
                    9,
                ),
                (
                    timeseries(
                        "GSM8K & MATH average reward",
                        "Mean reward of gsm8k and math train samples over the selected window.",
                        query_targets((average_reward(TRAIN, by_source, **highlighted), f"{{{{{L_SOURCE}}}}}")),
                        "short",
                    ),
                    8,
                    9,
                ),
                (
                    table(
                        "Dataset statistics (train)",
                        "Per dataset, over the selected window: accuracy, samples, mean reward; "
                        "and samples since the run started.",
                        [
                            ("Accuracy (%)", accuracy(TRAIN, by_source), "percent", 1),
                            ("Samples", increase_sum(SAMPLES, by_source, **{L_SPLIT: TRAIN}), "none", 0),
                            ("Avg reward", average_reward(TRAIN, by_source), "none", 3),
                            (
                                "Samples since start",
                                f"sum by ({L_SOURCE}) ({sel(SAMPLES, **{L_SPLIT: TRAIN})})",
                                "none",
                                0,
                            ),
                        ],
                        L_SOURCE,
                        "Dataset",
                    ),
                    16,
                    9,
                ),
                (
                    timeseries(
                        "Zero-advantage groups (%)",
                        "Share of GRPO groups whose K rewards were all equal (no learning signal).",
                        query_targets(
                            (
                                share(
                                    increase_sum(GROUPS_ZERO_ADV, by_source, **{L_SPLIT: TRAIN}),
                                    increase_sum(GROUPS, by_source, **{L_SPLIT: TRAIN}),
                                    scale="100",
                                ),
                                f"{{{{{L_SOURCE}}}}}",
                            )
                        ),
                        "percent",
                        minimum=0,
                        maximum=100,
                    ),
                    8,
                    9,
                ),
            ],
        ),
        (
            "Judge",
            [
                (
                    timeseries(
                        "Judge outcome rates",
                        "Share of judge evaluations ending in success, parse_failure or api_failure "
                        "over the selected window (the three sum to 1).",
                        query_targets(
                            (
                                f"{increase_sum(JUDGE_EVALS, (L_OUTCOME,))} / on() group_left() ({judge_all} > 0)",
                                f"{{{{{L_OUTCOME}}}}}",
                            )
                        ),
                        "percentunit",
                        minimum=0,
                        maximum=1,
                    ),
                    8,
                    8,
                ),
                (
                    piechart(
                        "Judge verdicts (since start)",
                        "Verdicts of successful judge evaluations since the run started.",
                        f"sum by ({L_VERDICT}) ({sel(JUDGE_EVALS, **{L_OUTCOME: sc.OUTCOME_SUCCESS})})",
                        f"{{{{{L_VERDICT}}}}}",
                    ),
                    5,
                    8,
                ),
                (
                    bargauge(
                        "Judge success rate per dataset (since start)",
                        "Successful / all judge evaluations per dataset since the run started.",
                        share(
                            f"sum by ({L_SOURCE}) ({sel(JUDGE_EVALS, **{L_OUTCOME: sc.OUTCOME_SUCCESS})})",
                            judge_by_source,
                        ),
                        f"{{{{{L_SOURCE}}}}}",
                        "percentunit",
                        1,
                    ),
                    5,
                    8,
                ),
                (
                    timeseries(
                        "Judge latency",
                        "p50 and p95 of judge evaluation time (retries included).",
                        query_targets((quantile(0.5, JUDGE_DURATION), "p50"), (quantile(0.95, JUDGE_DURATION), "p95")),
                        "s",
                        minimum=0,
                    ),
                    6,
                    8,
                ),
                (
                    timeseries(
                        "Judge HTTP requests",
                        "Requests per second to the judge endpoint, by error type (ok = no error).",
                        query_targets(
                            (
                                f"sum by ({L_ERROR}) (label_replace(rate({sel(JUDGE_REQUESTS)}[$__rate_interval]), "
                                f'"{L_ERROR}", "ok", "{L_ERROR}", ""))',
                                f"{{{{{L_ERROR}}}}}",
                            )
                        ),
                        "reqps",
                        minimum=0,
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Judge tokens",
                        "GenAI token usage per second, input and output.",
                        query_targets(
                            (
                                f"sum by ({L_TOKEN_TYPE}) (rate({sel(TOKEN_USAGE + '_sum')}[$__rate_interval]))",
                                f"{{{{{L_TOKEN_TYPE}}}}}",
                            )
                        ),
                        "short",
                        minimum=0,
                    ),
                    12,
                    8,
                ),
            ],
        ),
        (
            "Validation",
            [
                (
                    timeseries(
                        "Validation accuracy per dataset (%)",
                        "Accuracy of each dataset's validation samples over the selected window.",
                        query_targets((accuracy(VAL, by_source), f"{{{{{L_SOURCE}}}}}")),
                        "percent",
                        minimum=0,
                        maximum=100,
                    ),
                    12,
                    8,
                ),
                (
                    timeseries(
                        "Validation avg cost vs accuracy",
                        "Mean executor cost per validation sample (right axis) against validation "
                        "accuracy (left axis), over the selected window.",
                        query_targets(
                            (
                                f"{increase_sum(EXEC_COST, **{L_SPLIT: VAL})}"
                                f" / ({increase_sum(SAMPLES, **{L_SPLIT: VAL})} > 0)",
                                "avg cost per sample",
                            ),
                            (accuracy(VAL), "accuracy"),
                        ),
                        "percent",
                        minimum=0,
                        overrides=[axis_override("A", "currencyUSD", "right"), axis_override("B", "percent", "left")],
                    ),
                    12,
                    8,
                ),
            ],
        ),
        (
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
                        "Spend per hour: executor and judge.",
                        query_targets(
                            (f"3600 * sum(rate({sel(EXEC_COST)}[$__rate_interval]))", "executor"),
                            (f"3600 * sum(rate({sel(JUDGE_COST)}[$__rate_interval]))", "judge"),
                        ),
                        "currencyUSD",
                        minimum=0,
                    ),
                    8,
                    8,
                ),
                (
                    timeseries(
                        "Executor latency",
                        "p50 and p95 of workflow execution time.",
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
        ),
        (
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
        ),
    ]


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
            "description": "Window of accuracy, average reward and outcome-share panels.",
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
