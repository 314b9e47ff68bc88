"""The Grafana dashboard for otel-grpo, as code.

``python -m otel_grpo.tools.dashboards.grafana`` writes ``config/grafana/dashboards/otel-grpo.json``
(``--check`` only verifies it is up to date). The output is deterministic, and a test
asserts the committed file equals :func:`render_dashboard`.

Panels follow docs/keys.md's four groups (training overview, datasets, judge, validation)
plus reward integrity, cost and exporter health. Every query uses the Prometheus names the Collector's
``prometheus`` exporter (and the in-process endpoint) produce from
:mod:`otel_grpo.semconv`, looked up through :func:`prometheus_metric_names`, and is
filtered by the ``job`` (= service.name) and ``grpo_run_id`` dashboard variables.
Windowed figures (accuracy, average reward, shares, per-second rates, latency) use the
``window`` variable; every panel title says what its queries cover ("last $window", "since
the run started"; :mod:`.coverage`).

The parts, each importable from here too: :mod:`.grafana_promql` (Prometheus names,
labels and PromQL builders), :mod:`.grafana_panels` (panel JSON), :mod:`.grafana_rows` and
:mod:`.grafana_integrity` (the rows' panels),
:mod:`.grafana_layout` (rows, variables, :func:`build_dashboard`). This module renders
the file, lists every query for the tests, and is the command line.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path

from otel_grpo.tools.dashboards.grafana_layout import DASHBOARD_UID, build_dashboard
from otel_grpo.tools.dashboards.grafana_panels import DATASOURCE
from otel_grpo.tools.dashboards.grafana_promql import (
    CORRECT,
    COUNTER,
    EXEC_COST,
    EXEC_COST_INVALID,
    EXEC_DURATION,
    EXEC_RUNS,
    EXPORTER_EVENTS,
    EXTRA_SERIES,
    GAUGE,
    GROUPS,
    GROUPS_ZERO_ADV,
    HISTOGRAM,
    INSTRUMENT_KINDS,
    JUDGE_COST,
    JUDGE_DURATION,
    JUDGE_EVALS,
    JUDGE_REQUESTS,
    LABEL_NAMES,
    REWARD_SUM,
    SAMPLES,
    SCORED_BY,
    SCORED_BY_CORRECT,
    TOKEN_USAGE,
    TRAIN_SCALAR,
    TRAIN_STEP,
    TRAIN_STEPS_FAILED,
    UP_DOWN,
    VAL_RUNS,
    prometheus_metric_names,
    prometheus_series_names,
)

__all__ = [
    "CORRECT",
    "COUNTER",
    "DASHBOARD_UID",
    "DATASOURCE",
    "DEFAULT_OUTPUT",
    "DEFAULT_VARIABLES",
    "EXEC_COST",
    "EXEC_COST_INVALID",
    "EXEC_DURATION",
    "EXEC_RUNS",
    "EXPORTER_EVENTS",
    "EXTRA_SERIES",
    "GAUGE",
    "GROUPS",
    "GROUPS_ZERO_ADV",
    "HISTOGRAM",
    "INSTRUMENT_KINDS",
    "JUDGE_COST",
    "JUDGE_DURATION",
    "JUDGE_EVALS",
    "JUDGE_REQUESTS",
    "LABEL_NAMES",
    "REWARD_SUM",
    "SAMPLES",
    "SCORED_BY",
    "SCORED_BY_CORRECT",
    "TOKEN_USAGE",
    "TRAIN_SCALAR",
    "TRAIN_STEP",
    "TRAIN_STEPS_FAILED",
    "UP_DOWN",
    "VAL_RUNS",
    "all_promql_expressions",
    "build_dashboard",
    "main",
    "prometheus_metric_names",
    "prometheus_series_names",
    "render_dashboard",
    "substitute_variables",
]

DEFAULT_OUTPUT = Path(__file__).resolve().parents[3] / "config" / "grafana" / "dashboards" / "otel-grpo.json"


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
