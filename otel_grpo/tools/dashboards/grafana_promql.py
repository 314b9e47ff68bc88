"""Prometheus names and PromQL for the Grafana dashboard.

The Prometheus name of every instrument otel-grpo records (as the Collector's
``prometheus`` exporter and the in-process endpoint produce them from
:mod:`otel_grpo.semconv`), the label names, and the small PromQL builders the panels'
queries are written with. Every selector is filtered by the ``job`` (= service.name)
and ``grpo_run_id`` dashboard variables.
"""

from __future__ import annotations

import re

from otel_grpo import semconv as sc

# --- the metric name table ---------------------------------------------------------------

COUNTER = "counter"  # monotonic sum -> <base>_total
UP_DOWN = "up_down_counter"  # non-monotonic cumulative sum -> gauge, no suffix
GAUGE = "gauge"
HISTOGRAM = "histogram"  # -> <base>_bucket, <base>_sum, <base>_count

#: Every instrument otel-grpo records, with its kind (which decides the suffixes).
INSTRUMENT_KINDS: tuple[tuple[tuple[str, str, str], str], ...] = (
    (sc.SAMPLES, COUNTER),
    (sc.SAMPLES_CORRECT, COUNTER),
    (sc.SAMPLES_SCORED_BY, COUNTER),
    (sc.SAMPLES_SCORED_BY_CORRECT, COUNTER),
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
SCORED_BY = _N[sc.SAMPLES_SCORED_BY[0]]
SCORED_BY_CORRECT = _N[sc.SAMPLES_SCORED_BY_CORRECT[0]]
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
L_SCORED_BY = _label(sc.ATTR_SCORED_BY)

#: The label names a query may use besides job/instance/le (for the name test).
LABEL_NAMES = frozenset(
    {L_SPLIT, L_SOURCE, L_SUCCESS, L_OUTCOME, L_VERDICT, L_SCALAR, L_EVENT, L_ERROR, L_RUN, L_TOKEN_TYPE, L_SCORED_BY}
    | {_label(sc.ATTR_PROBLEM_TYPE), "job", "instance", "le"}
)

# --- PromQL helpers ----------------------------------------------------------------------


def sel(metric: str, **matchers: str) -> str:
    """``metric{job=~"$job", grpo_run_id=~"$grpo_run_id", <matchers>}``.

    A matcher value starting with ``~`` is a regex match (``=~``), one starting with
    ``!`` a negative match (``!=``).
    """
    parts = ['job=~"$job"', f'{L_RUN}=~"$grpo_run_id"']
    for key, value in matchers.items():
        if value.startswith("~"):
            parts.append(f'{key}=~"{value[1:]}"')
        elif value.startswith("!"):
            parts.append(f'{key}!="{value[1:]}"')
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
    """``histogram_quantile`` over the ``window`` of a ``..._seconds`` histogram."""
    return f"histogram_quantile({q}, sum by (le) (rate({sel(histogram + '_bucket', **matchers)}[$window])))"


def per_second(metric: str, by: tuple[str, ...] = (), **matchers: str) -> str:
    """``sum by (...) (rate(<selector>[$window]))``: the mean rate over the ``window``."""
    return f"sum{_by(by)} (rate({sel(metric, **matchers)}[$window]))"


def total(metric: str, **matchers: str) -> str:
    """Cumulative total across the selected processes; 0 when nothing was recorded."""
    return f"sum({sel(metric, **matchers)}) or vector(0)"


# --- reward integrity (docs/keys.md, "Reward integrity and cost insight", "scored by") -------
# A sample is scored by rule, judge or judge_failed, or not scored (its execution failed).
# Every figure is a ratio of sums of counter increases over the window, summed over all
# processes (instance) and series before dividing: never a mean of per-process ratios.

SCORED = {L_SCORED_BY: "!" + sc.NOT_SCORED}  # scored samples: not `not_scored`
JUDGED = {L_SCORED_BY: f"~{sc.SCORED_BY_JUDGE}|{sc.SCORED_BY_JUDGE_FAILED}"}  # >= 1 judge evaluation
JUDGE_FAILED = {L_SCORED_BY: sc.SCORED_BY_JUDGE_FAILED}
NOT_JUDGE_FAILED = {L_SCORED_BY: "!" + sc.SCORED_BY_JUDGE_FAILED}


def judge_share(split: str, by: tuple[str, ...] = (), **matchers: str) -> str:
    """Scored samples with a judge evaluation / scored samples (fraction 0-1) over the ``window``."""
    return share(
        increase_sum(SCORED_BY, by, **{L_SPLIT: split}, **JUDGED, **matchers),
        increase_sum(SCORED_BY, by, **{L_SPLIT: split}, **SCORED, **matchers),
    )


def judge_failed_share(split: str, by: tuple[str, ...] = (), **matchers: str) -> str:
    """Samples scored ``judge_failed`` / scored samples (fraction 0-1) over the ``window``."""
    return share(
        increase_sum(SCORED_BY, by, **{L_SPLIT: split}, **JUDGE_FAILED, **matchers),
        increase_sum(SCORED_BY, by, **{L_SPLIT: split}, **SCORED, **matchers),
    )


def accuracy_excl_judge_failed(split: str, by: tuple[str, ...] = (), **matchers: str) -> str:
    """Percentage of correct samples among those not scored ``judge_failed`` (failed executions stay in)."""
    return share(
        increase_sum(SCORED_BY_CORRECT, by, **{L_SPLIT: split}, **NOT_JUDGE_FAILED, **matchers),
        increase_sum(SCORED_BY, by, **{L_SPLIT: split}, **NOT_JUDGE_FAILED, **matchers),
        scale="100",
    )


def cost_per_correct(split: str, by: tuple[str, ...] = (), **matchers: str) -> str:
    """Executor + priced judge cost / correct samples of ``split`` over the ``window`` (USD), as the rows'
    ``cost_per_correct``; absent with no correct sample, and where nothing carried a cost."""
    executor = increase_sum(EXEC_COST, by, **{L_SPLIT: split}, **matchers)
    judge = increase_sum(JUDGE_COST, by, **{L_SPLIT: split}, **matchers)
    cost = f"(({executor}) + (({judge}) or 0 * ({executor}))) or ({judge})"
    return f"({cost}) / ({increase_sum(CORRECT, by, **{L_SPLIT: split}, **matchers)} > 0)"


def cost_per_correct_total(split: str) -> str:
    """Executor + priced judge cost / correct samples of ``split`` since the run started (USD)."""
    costs = " + ".join(f"(sum({sel(metric, **{L_SPLIT: split})}) or vector(0))" for metric in (EXEC_COST, JUDGE_COST))
    return f"({costs}) / (sum({sel(CORRECT, **{L_SPLIT: split})}) > 0)"
