"""The Grafana dashboard for otel-grpo, as code.

``python -m otel_grpo.tools.dashboards.grafana`` writes ``config/grafana/dashboards/otel-grpo.json``
(``--check`` only verifies it is up to date). The output is deterministic, and a test
asserts the committed file equals :func:`render_dashboard`.

Panels follow SPEC.md's four groups (training overview, datasets, judge, validation)
plus cost and exporter health. Every query uses the Prometheus names the Collector's
``prometheus`` exporter (and the in-process endpoint) produce from
:mod:`otel_grpo.semconv`, looked up through :func:`prometheus_metric_names`, and is
filtered by the ``job`` (= service.name) and ``grpo_run_id`` dashboard variables.
Windowed figures (accuracy, average reward, rates of outcomes) use the ``window``
variable; per-second rates use Grafana's ``$__rate_interval``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from otel_grpo import semconv as sc

DATASOURCE = {"type": "prometheus", "uid": "prometheus"}
DASHBOARD_UID = "otel-grpo"
DEFAULT_OUTPUT = Path(__file__).resolve().parents[3] / "config" / "grafana" / "dashboards" / "otel-grpo.json"

# --- the metric name table ---------------------------------------------------------------

COUNTER = "counter"  # monotonic sum -> <base>_total
UP_DOWN = "up_down_counter"  # non-monotonic cumulative sum -> gauge, no suffix
GAUGE = "gauge"
HISTOGRAM = "histogram"  # -> <base>_bucket, <base>_sum, <base>_count

#: Every instrument otel-grpo records, with its kind (which decides the suffixes).
INSTRUMENT_KINDS: tuple[tuple[tuple[str, str, str], str], ...] = (
    (sc.SAMPLES, COUNTER),
    (sc.SAMPLES_CORRECT, COUNTER),
    (sc.EXECUTOR_RUNS, COUNTER),
    (sc.EXECUTOR_COST, COUNTER),
    (sc.EXECUTOR_COST_INVALID, COUNTER),
    (sc.GROUPS, COUNTER),
    (sc.GROUPS_ZERO_ADVANTAGE, COUNTER),
    (sc.TRAIN_STEPS, COUNTER),
    (sc.TRAIN_STEPS_FAILED, COUNTER),
    (sc.VAL_RUNS, COUNTER),
    (sc.REWARD_SUM, UP_DOWN),
    (sc.CORRECTNESS_SUM, UP_DOWN),
    (sc.REWARD_MIN, GAUGE),
    (sc.REWARD_MAX, GAUGE),
    (sc.TRAIN_SCALAR, GAUGE),
    (sc.TRAIN_STEP, GAUGE),
    (sc.JUDGE_EVALUATIONS, COUNTER),
    (sc.JUDGE_REQUESTS, COUNTER),
    (sc.JUDGE_COST, COUNTER),
    (sc.EXPORTER_EVENTS, COUNTER),
    (sc.EXECUTOR_DURATION, HISTOGRAM),
    (sc.JUDGE_DURATION, HISTOGRAM),
    (sc.GEN_AI_OPERATION_DURATION, HISTOGRAM),
    (sc.GEN_AI_TOKEN_USAGE, HISTOGRAM),
)

#: Non-otel-grpo series the dashboard may reference.
EXTRA_SERIES = frozenset({"target_info"})


def prometheus_metric_names() -> dict[str, str]:
    """Map each instrument name to its Prometheus name (histograms: the base name)."""
    return {
        instrument[0]: sc.prometheus_name(instrument, monotonic_sum=kind == COUNTER)
        for instrument, kind in INSTRUMENT_KINDS
    }


def prometheus_series_names() -> frozenset[str]:
    """Every series name a query may use: plain names plus histogram ``_bucket/_sum/_count``."""
    names: set[str] = set()
    kinds = {instrument[0]: kind for instrument, kind in INSTRUMENT_KINDS}
    for instrument_name, base in prometheus_metric_names().items():
        if kinds[instrument_name] == HISTOGRAM:
            names.update(f"{base}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(base)
    return frozenset(names)


def _label(key: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


_N = prometheus_metric_names()
SAMPLES = _N[sc.SAMPLES[0]]
CORRECT = _N[sc.SAMPLES_CORRECT[0]]
REWARD_SUM = _N[sc.REWARD_SUM[0]]
EXEC_RUNS = _N[sc.EXECUTOR_RUNS[0]]
EXEC_COST = _N[sc.EXECUTOR_COST[0]]
EXEC_COST_INVALID = _N[sc.EXECUTOR_COST_INVALID[0]]
GROUPS = _N[sc.GROUPS[0]]
GROUPS_ZERO_ADV = _N[sc.GROUPS_ZERO_ADVANTAGE[0]]
TRAIN_STEPS_FAILED = _N[sc.TRAIN_STEPS_FAILED[0]]
VAL_RUNS = _N[sc.VAL_RUNS[0]]
TRAIN_SCALAR = _N[sc.TRAIN_SCALAR[0]]
TRAIN_STEP = _N[sc.TRAIN_STEP[0]]
JUDGE_EVALS = _N[sc.JUDGE_EVALUATIONS[0]]
JUDGE_REQUESTS = _N[sc.JUDGE_REQUESTS[0]]
JUDGE_COST = _N[sc.JUDGE_COST[0]]
EXPORTER_EVENTS = _N[sc.EXPORTER_EVENTS[0]]
EXEC_DURATION = _N[sc.EXECUTOR_DURATION[0]]
JUDGE_DURATION = _N[sc.JUDGE_DURATION[0]]
TOKEN_USAGE = _N[sc.GEN_AI_TOKEN_USAGE[0]]

L_SPLIT = _label(sc.ATTR_SPLIT)
L_SOURCE = _label(sc.ATTR_SOURCE)
L_SUCCESS = _label(sc.ATTR_SUCCESS)
L_OUTCOME = _label(sc.ATTR_JUDGE_OUTCOME)
L_VERDICT = _label(sc.ATTR_JUDGE_VERDICT)
L_SCALAR = _label(sc.ATTR_SCALAR_NAME)
L_EVENT = _label(sc.ATTR_HEALTH_EVENT)
L_ERROR = _label(sc.ATTR_ERROR_TYPE)
L_RUN = _label(sc.ATTR_RUN_ID)
L_TOKEN_TYPE = _label(sc.GEN_AI_TOKEN_TYPE)

#: The label names a query may use besides job/instance/le (for the name test).
LABEL_NAMES = frozenset(
    {L_SPLIT, L_SOURCE, L_SUCCESS, L_OUTCOME, L_VERDICT, L_SCALAR, L_EVENT, L_ERROR, L_RUN, L_TOKEN_TYPE}
    | {_label(sc.ATTR_PROBLEM_TYPE), "job", "instance", "le"}
)

# --- PromQL helpers ----------------------------------------------------------------------


def sel(metric: str, **matchers: str) -> str:
    """``metric{job=~"$job", grpo_run_id=~"$grpo_run_id", <matchers>}``.

    A matcher value starting with ``~`` is a regex match (``=~``).
    """
    parts = ['job=~"$job"', f'{L_RUN}=~"$grpo_run_id"']
    for key, value in matchers.items():
        if value.startswith("~"):
            parts.append(f'{key}=~"{value[1:]}"')
        else:
            parts.append(f'{key}="{value}"')
    return f"{metric}{{{', '.join(parts)}}}"


def _by(labels: tuple[str, ...]) -> str:
    return f" by ({', '.join(labels)})" if labels else ""


def increase_sum(metric: str, by: tuple[str, ...] = (), window: str = "$window", **matchers: str) -> str:
    """``sum by (...) (increase(<selector>[window]))``."""
    return f"sum{_by(by)} (increase({sel(metric, **matchers)}[{window}]))"


def share(numerator: str, denominator: str, scale: str = "") -> str:
    """``numerator / denominator`` that is 0 (not absent) when the numerator has no series
    and absent (not NaN) when the denominator is 0. Both must be grouped alike."""
    prefix = f"{scale} * " if scale else ""
    return f"{prefix}({numerator} or 0 * {denominator}) / ({denominator} > 0)"


def accuracy(split: str, by: tuple[str, ...] = (), **matchers: str) -> str:
    """Percentage of correct samples of ``split`` over the ``window``."""
    return share(
        increase_sum(CORRECT, by, **{L_SPLIT: split}, **matchers),
        increase_sum(SAMPLES, by, **{L_SPLIT: split}, **matchers),
        scale="100",
    )


def average_reward(split: str, by: tuple[str, ...] = (), **matchers: str) -> str:
    """Mean reward of ``split`` samples over the ``window`` (reward sum is an up-down counter)."""
    rewards = f"sum{_by(by)} (delta({sel(REWARD_SUM, **{L_SPLIT: split}, **matchers)}[$window]))"
    return f"{rewards} / ({increase_sum(SAMPLES, by, **{L_SPLIT: split}, **matchers)} > 0)"


def quantile(q: float, histogram: str, **matchers: str) -> str:
    """``histogram_quantile`` over ``$__rate_interval`` of a ``..._seconds`` histogram."""
    return (
        f"histogram_quantile({q}, sum by (le) "
        f"(rate({sel(histogram + '_bucket', **matchers)}[$__rate_interval])))"
    )


def total(metric: str, **matchers: str) -> str:
    """Cumulative total across the selected processes; 0 when nothing was recorded."""
    return f"sum({sel(metric, **matchers)}) or vector(0)"


# --- panel builders --------------------------------------------------------------------------


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


def _targets(*specs: tuple[str, str], instant: bool = False, table: bool = False) -> list[dict]:
    refs = "ABCDEFGH"
    return [
        _target(expr, legend, refs[i], instant=instant, table=table) for i, (expr, legend) in enumerate(specs)
    ]


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


def timeseries(title: str, description: str, targets: list[dict], unit: str, *, minimum: float | None = None,
               maximum: float | None = None, overrides: list | None = None) -> dict:
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
        "title": title,
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
    return {
        "type": "stat",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": _targets((expr, title)),
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


def bargauge(title: str, description: str, expr: str, legend: str, unit: str, maximum: float) -> dict:
    """Horizontal bars, one per series (instant query)."""
    return {
        "type": "bargauge",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": _targets((expr, legend), instant=True),
        "fieldConfig": {"defaults": _defaults(unit, 0, maximum, decimals=1), "overrides": []},
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
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "targets": _targets((expr, legend), instant=True),
        "fieldConfig": {"defaults": _defaults("short"), "overrides": []},
        "options": {
            "reduceOptions": _LAST,
            "pieType": "pie",
            "displayLabels": ["percent"],
            "legend": {
                "displayMode": "table", "placement": "right", "showLegend": True, "values": ["value", "percent"],
            },
            "tooltip": {"mode": "single", "sort": "none"},
        },
    }


def table(title: str, description: str, columns: list[tuple[str, str, str, int]], key: str, key_title: str) -> dict:
    """One row per ``key`` label value; ``columns`` = (header, expr, unit, decimals)."""
    targets = _targets(*[(expr, header) for header, expr, _, _ in columns], instant=True, table=True)
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
        "title": title,
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


def _axis_override(ref: str, unit: str, placement: str) -> dict:
    return {
        "matcher": {"id": "byFrameRefID", "options": ref},
        "properties": [
            {"id": "unit", "value": unit},
            {"id": "custom.axisPlacement", "value": placement},
        ],
    }


# --- the panels --------------------------------------------------------------------------------

TRAIN = sc.SPLIT_TRAIN
VAL = sc.SPLIT_VAL


def _rows() -> list[tuple[str, list[tuple[dict, int, int]]]]:
    """(row title, [(panel, width, height), ...]) in display order."""
    by_source = (L_SOURCE,)
    highlighted = {L_SOURCE: "~gsm8k|math"}
    judge_all = increase_sum(JUDGE_EVALS)
    judge_by_source = f"sum by ({L_SOURCE}) ({sel(JUDGE_EVALS)})"
    return [
        ("Training overview", [
            (timeseries(
                "Loss & KL divergence",
                "Last loss and kl_div the trainer reported (grpo.train.scalar).",
                _targets((f"max by ({L_SCALAR}) ({sel(TRAIN_SCALAR, **{L_SCALAR: '~loss|kl_div'})})",
                          f"{{{{{L_SCALAR}}}}}")),
                "short",
            ), 12, 8),
            (timeseries(
                "Train & validation accuracy (%)",
                "100 x correct / samples over the selected window (correct = correctness >= threshold).",
                _targets((accuracy(TRAIN), "train"), (accuracy(VAL), "val")),
                "percent", minimum=0, maximum=100,
            ), 8, 8),
            (stat("Training step", "Last completed training step.", f"max({sel(TRAIN_STEP)})", "none", 0), 4, 8),
        ]),
        ("Datasets", [
            (bargauge(
                "Train accuracy per dataset (%)",
                "Accuracy of each dataset's train samples over the selected window.",
                accuracy(TRAIN, by_source), f"{{{{{L_SOURCE}}}}}", "percent", 100,
            ), 8, 9),
            (timeseries(
                "GSM8K & MATH accuracy (%)",
                "Train accuracy of gsm8k and math over the selected window.",
                _targets((accuracy(TRAIN, by_source, **highlighted), f"{{{{{L_SOURCE}}}}}")),
                "percent", minimum=0, maximum=100,
            ), 8, 9),
            (timeseries(
                "GSM8K & MATH average reward",
                "Mean reward of gsm8k and math train samples over the selected window.",
                _targets((average_reward(TRAIN, by_source, **highlighted), f"{{{{{L_SOURCE}}}}}")),
                "short",
            ), 8, 9),
            (table(
                "Dataset statistics (train)",
                "Per dataset, over the selected window: accuracy, samples, mean reward; "
                "and samples since the run started.",
                [
                    ("Accuracy (%)", accuracy(TRAIN, by_source), "percent", 1),
                    ("Samples", increase_sum(SAMPLES, by_source, **{L_SPLIT: TRAIN}), "none", 0),
                    ("Avg reward", average_reward(TRAIN, by_source), "none", 3),
                    ("Samples since start", f"sum by ({L_SOURCE}) ({sel(SAMPLES, **{L_SPLIT: TRAIN})})", "none", 0),
                ],
                L_SOURCE, "Dataset",
            ), 16, 9),
            (timeseries(
                "Zero-advantage groups (%)",
                "Share of GRPO groups whose K rewards were all equal (no learning signal).",
                _targets((share(increase_sum(GROUPS_ZERO_ADV, by_source, **{L_SPLIT: TRAIN}),
                                increase_sum(GROUPS, by_source, **{L_SPLIT: TRAIN}), scale="100"),
                          f"{{{{{L_SOURCE}}}}}")),
                "percent", minimum=0, maximum=100,
            ), 8, 9),
        ]),
        ("Judge", [
            (timeseries(
                "Judge outcome rates",
                "Share of judge evaluations ending in success, parse_failure or api_failure "
                "over the selected window (the three sum to 1).",
                _targets((f"{increase_sum(JUDGE_EVALS, (L_OUTCOME,))} / on() group_left() ({judge_all} > 0)",
                          f"{{{{{L_OUTCOME}}}}}")),
                "percentunit", minimum=0, maximum=1,
            ), 8, 8),
            (piechart(
                "Judge verdicts (since start)",
                "Verdicts of successful judge evaluations since the run started.",
                f"sum by ({L_VERDICT}) ({sel(JUDGE_EVALS, **{L_OUTCOME: sc.OUTCOME_SUCCESS})})",
                f"{{{{{L_VERDICT}}}}}",
            ), 5, 8),
            (bargauge(
                "Judge success rate per dataset (since start)",
                "Successful / all judge evaluations per dataset since the run started.",
                share(f"sum by ({L_SOURCE}) ({sel(JUDGE_EVALS, **{L_OUTCOME: sc.OUTCOME_SUCCESS})})", judge_by_source),
                f"{{{{{L_SOURCE}}}}}", "percentunit", 1,
            ), 5, 8),
            (timeseries(
                "Judge latency",
                "p50 and p95 of judge evaluation time (retries included).",
                _targets((quantile(0.5, JUDGE_DURATION), "p50"), (quantile(0.95, JUDGE_DURATION), "p95")),
                "s", minimum=0,
            ), 6, 8),
            (timeseries(
                "Judge HTTP requests",
                "Requests per second to the judge endpoint, by error type (ok = no error).",
                _targets((f'sum by ({L_ERROR}) (label_replace(rate({sel(JUDGE_REQUESTS)}[$__rate_interval]), '
                          f'"{L_ERROR}", "ok", "{L_ERROR}", ""))', f"{{{{{L_ERROR}}}}}")),
                "reqps", minimum=0,
            ), 12, 8),
            (timeseries(
                "Judge tokens",
                "GenAI token usage per second, input and output.",
                _targets((f"sum by ({L_TOKEN_TYPE}) (rate({sel(TOKEN_USAGE + '_sum')}[$__rate_interval]))",
                          f"{{{{{L_TOKEN_TYPE}}}}}")),
                "short", minimum=0,
            ), 12, 8),
        ]),
        ("Validation", [
            (timeseries(
                "Validation accuracy per dataset (%)",
                "Accuracy of each dataset's validation samples over the selected window.",
                _targets((accuracy(VAL, by_source), f"{{{{{L_SOURCE}}}}}")),
                "percent", minimum=0, maximum=100,
            ), 12, 8),
            (timeseries(
                "Validation avg cost vs accuracy",
                "Mean executor cost per validation sample (right axis) against validation "
                "accuracy (left axis), over the selected window.",
                _targets(
                    (f"{increase_sum(EXEC_COST, **{L_SPLIT: VAL})} / ({increase_sum(SAMPLES, **{L_SPLIT: VAL})} > 0)",
                     "avg cost per sample"),
                    (accuracy(VAL), "accuracy"),
                ),
                "percent", minimum=0,
                overrides=[_axis_override("A", "currencyUSD", "right"), _axis_override("B", "percent", "left")],
            ), 12, 8),
        ]),
        ("Cost", [
            (stat("Executor cost", "Executor cost since the run started (all splits).",
                  total(EXEC_COST), "currencyUSD", 2), 4, 6),
            (stat("Judge cost", "Judge token cost since the run started, priced from config.",
                  total(JUDGE_COST), "currencyUSD", 2), 4, 6),
            (stat("Avg cost per executor run", "Executor cost / executor runs since the run started.",
                  f"sum({sel(EXEC_COST)}) / (sum({sel(EXEC_RUNS)}) > 0)", "currencyUSD", 4), 4, 6),
            (stat("Executor runs", "Workflow executions since the run started.", total(EXEC_RUNS), "none", 0), 4, 6),
            (stat("Judge requests", "HTTP requests to the judge since the run started.",
                  total(JUDGE_REQUESTS), "none", 0), 4, 6),
            (stat("Invalid costs", "Executor runs whose reported cost was not a valid number.",
                  total(EXEC_COST_INVALID), "none", 0), 4, 6),
            (timeseries(
                "Cost rate (USD/h)",
                "Spend per hour: executor and judge.",
                _targets((f"3600 * sum(rate({sel(EXEC_COST)}[$__rate_interval]))", "executor"),
                         (f"3600 * sum(rate({sel(JUDGE_COST)}[$__rate_interval]))", "judge")),
                "currencyUSD", minimum=0,
            ), 8, 8),
            (timeseries(
                "Executor latency",
                "p50 and p95 of workflow execution time.",
                _targets((quantile(0.5, EXEC_DURATION), "p50"), (quantile(0.95, EXEC_DURATION), "p95")),
                "s", minimum=0,
            ), 8, 8),
            (timeseries(
                "Executor success rate",
                "Share of executions that succeeded over the selected window, per split.",
                _targets((share(increase_sum(EXEC_RUNS, (L_SPLIT,), **{L_SUCCESS: "true"}),
                                increase_sum(EXEC_RUNS, (L_SPLIT,))), f"{{{{{L_SPLIT}}}}}")),
                "percentunit", minimum=0, maximum=1,
            ), 8, 8),
        ]),
        ("Exporter health", [
            (timeseries(
                "Exporter events",
                "WandB exporter health over the selected window: rows written, rows dropped, "
                "export errors, invalid values.",
                _targets((increase_sum(EXPORTER_EVENTS, (L_EVENT,)), f"{{{{{L_EVENT}}}}}")),
                "none", minimum=0,
            ), 16, 6),
            (stat("Failed training steps", "Training steps that raised.", total(TRAIN_STEPS_FAILED), "none", 0), 4, 6),
            (stat("Validation passes", "Validation passes completed.", total(VAL_RUNS), "none", 0), 4, 6),
        ]),
    ]


def _variables() -> list[dict]:
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
            "options": [
                {"selected": w == default_window, "text": w, "value": w} for w in windows
            ],
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
    for row_title, row_panels in _rows():
        panels.append({
            "type": "row",
            "title": row_title,
            "id": next_id,
            "collapsed": False,
            "gridPos": {"h": 1, "w": 24, "x": 0, "y": y},
            "panels": [],
        })
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
        "templating": {"list": _variables()},
        "panels": panels,
    }


def render_dashboard() -> str:
    """The dashboard as the exact text of the committed JSON file."""
    return json.dumps(build_dashboard(), indent=2, ensure_ascii=False) + "\n"


# --- expressions for tests ---------------------------------------------------------------------

DEFAULT_VARIABLES: Mapping[str, str] = {
    "job": ".*",
    "grpo_run_id": ".*",
    "window": "5m",
    "__rate_interval": "1m",
    "__interval": "15s",
    "__range": "1h",
}
_VARIABLE_RE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def substitute_variables(expr: str, variables: Mapping[str, str] | None = None) -> str:
    """Replace Grafana variables (``$job``, ``${window}``, ``$__rate_interval``...)."""
    values = {**DEFAULT_VARIABLES, **(variables or {})}

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        if name not in values:
            raise KeyError(f"no value for dashboard variable ${name}")
        return values[name]

    return _VARIABLE_RE.sub(replace, expr)


def all_promql_expressions(variables: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """Every panel query as (panel title, executable PromQL), variables substituted.

    Defaults: ``job`` and ``grpo_run_id`` match anything, ``window`` = 5m,
    ``$__rate_interval`` = 1m, ``$__range`` = 1h; ``variables`` overrides them.
    """
    found = []
    for panel in build_dashboard()["panels"]:
        for target in panel.get("targets", []):
            found.append((panel["title"], substitute_variables(target["expr"], variables)))
    return found


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check``, verify) the dashboard JSON file."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="where to write the JSON")
    parser.add_argument("--check", action="store_true", help="exit 1 if the file is not up to date")
    args = parser.parse_args(argv)
    text = render_dashboard()
    if args.check:
        current = args.output.read_text(encoding="utf-8") if args.output.exists() else ""
        if current != text:
            sys.stderr.write(f"{args.output} is out of date: run python -m otel_grpo.tools.dashboards.grafana\n")
            return 1
        return 0
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
