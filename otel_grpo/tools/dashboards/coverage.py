"""What a dashboard panel covers, said in its title: ``"{name}, {coverage}"``.

A WandB panel's coverage comes from its keys (:func:`otel_grpo.keys.window_of`): a line of
per-step keys is "per step", of cumulative keys "cumulative since the run started"; a bar or
scalar shows the latest value, so "latest step" or "run total". A Grafana panel's comes from
its queries (:func:`grafana_coverage`): an ``increase``/``delta``/``rate`` over ``[$window]`` covers
the selected window (Grafana writes the variable's value in the title: "last 15m"), a plain
counter everything since the run started, a gauge the trainer sets each step its latest step.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from otel_grpo import keys

#: A line of values over ``train/step``: what each point covers.
OVER_STEPS = {
    keys.WINDOW_STEP: "per step",
    keys.WINDOW_VALIDATION: "per validation pass",
    keys.WINDOW_RUN: "cumulative since the run started",
}
#: A bar, scalar or scatter of the latest (summary) values.
LATEST = {
    keys.WINDOW_STEP: "latest step",
    keys.WINDOW_VALIDATION: "latest validation pass",
    keys.WINDOW_RUN: "run total",
}
#: The ``dataset_statistics`` table panel: the table is logged every ``table_every`` steps.
LATEST_TABLE = "step of the latest table"
#: A panel of the step counter alone.
LATEST_STEP_NUMBER = "latest"

#: Grafana: a query over the ``window`` dashboard variable (``[$window]``).
SELECTED_WINDOW = "last $window"
#: Grafana: a plain counter, summed: everything since the run started.
SINCE_START = "since the run started"
#: Grafana: a gauge set at each step's end (loss, KL, the step number), on a time axis / as one number.
GAUGE_OVER_TIME = "per step"
GAUGE_NOW = "latest"
WINDOW_SELECTOR = "[$window]"

_METRIC = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{")


def titled(name: str, phrases: Iterable[str]) -> str:
    """``"{name}, {phrase} & {phrase}"``: a title that says what its panel covers."""
    return f"{name}, {' & '.join(phrases)}"


def _once(items: Iterable[str]) -> list[str]:
    found: list[str] = []
    for item in items:
        if item not in found:
            found.append(item)
    return found


def wandb_coverage(kind: str, panel_keys: Sequence[str]) -> list[str]:
    """What a WandB panel of ``kind`` over ``panel_keys`` covers, one phrase per window, in key order."""
    if list(panel_keys) == [keys.STEP]:
        return [LATEST_STEP_NUMBER]
    if kind == "table":
        return [LATEST_TABLE]
    phrases = OVER_STEPS if kind == "line" else LATEST
    return _once(phrases[keys.window_of(key)] for key in panel_keys)


def grafana_coverage(exprs: Iterable[str], over_time: bool, gauges: frozenset[str]) -> list[str]:
    """What a Grafana panel whose queries are ``exprs`` covers, one phrase per kind of query.

    ``over_time``: a time series (else one number per series, as a stat, bar gauge, pie or
    table shows). ``gauges``: the Prometheus names of the gauges the trainer sets each step.
    """

    def one(expr: str) -> str:
        if WINDOW_SELECTOR in expr:
            return SELECTED_WINDOW
        metrics = set(_METRIC.findall(expr))
        if metrics and metrics <= gauges:
            return GAUGE_OVER_TIME if over_time else GAUGE_NOW
        return SINCE_START

    return _once(one(expr) for expr in exprs)
