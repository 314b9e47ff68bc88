"""Collected metric data -> running totals: the first half of the rollup (:mod:`otel_grpo.exporters.rollup`).

No wandb import, no I/O, no globals. :func:`flatten` turns the SDK's ``MetricsData``
(DELTA temporality, one collection per window end) into plain :class:`Point` s, and
:func:`accumulate` folds them into the :class:`RunTotals` the exporter keeps: per split,
what the open window has gathered since its last row; per run, the cumulative judge,
cost and latency figures.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from opentelemetry.sdk.metrics.export import HistogramDataPoint, MetricsData, NumberDataPoint
from opentelemetry.util.types import AttributeValue

from otel_grpo import semconv as sc

SPLITS = (sc.SPLIT_TRAIN, sc.SPLIT_VAL)


@dataclass(frozen=True)
class Hist:
    """A histogram data point (explicit buckets)."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float
    count: int


class Point(NamedTuple):
    """One data point: instrument name, attributes, and a number or a :class:`Hist`."""

    name: str
    attrs: Mapping[str, AttributeValue]
    value: float | Hist


def flatten(metrics_data: MetricsData | list[Point] | None) -> list[Point]:
    """Flatten an SDK ``MetricsData`` into :class:`Point` s (a list of points is returned as it is)."""
    if isinstance(metrics_data, list):
        return list(metrics_data)
    points: list[Point] = []
    if metrics_data is None:
        return points
    for resource_metrics in metrics_data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for dp in metric.data.data_points:
                    value: float | Hist
                    if isinstance(dp, HistogramDataPoint):
                        value = Hist(tuple(dp.explicit_bounds), tuple(dp.bucket_counts), float(dp.sum), int(dp.count))
                    elif isinstance(dp, NumberDataPoint):
                        value = dp.value
                    else:  # exponential histograms: otel-grpo's instruments make none
                        continue
                    points.append(Point(metric.name, dict(dp.attributes or {}), value))
    return points


# --- running totals ---------------------------------------------------------------------------
@dataclass
class SampleSums:
    """Sums over the scored samples of one (source, problem_type) in a window."""

    samples: float = 0
    correct: float = 0
    reward_sum: float = 0.0
    correctness_sum: float = 0.0

    def merge(self, other: SampleSums) -> None:
        """Add ``other``'s sums to these."""
        self.samples += other.samples
        self.correct += other.correct
        self.reward_sum += other.reward_sum
        self.correctness_sum += other.correctness_sum


@dataclass
class WindowAgg:
    """What one split has accumulated since its last row."""

    samples: dict[tuple[str, str], SampleSums] = field(default_factory=dict)
    minmax: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    exec_runs: dict[str, float] = field(default_factory=dict)
    exec_ok: dict[str, float] = field(default_factory=dict)
    exec_cost: dict[str, float] = field(default_factory=dict)
    judge: dict[str, float] = field(default_factory=dict)
    judge_cost: dict[str, float] = field(default_factory=dict)  # source -> priced judge cost (USD)
    scored_by: dict[tuple[str, str], list[float]] = field(default_factory=dict)  # (source, scorer) -> [n, correct]
    groups: dict[str, list[float]] = field(default_factory=dict)
    scalars: dict[str, float] = field(default_factory=dict)


Buckets = dict[tuple[float, ...], list[int]]  # histogram bounds -> summed bucket counts


@dataclass
class RunTotals:
    """Running totals kept by the exporter across rows (all splits)."""

    pending: dict[str, WindowAgg] = field(default_factory=lambda: {s: WindowAgg() for s in SPLITS})
    judge_outcomes: dict[str, float] = field(default_factory=dict)
    judge_verdicts: dict[str, float] = field(default_factory=dict)
    judge_by_source: dict[str, list[float]] = field(default_factory=dict)  # source -> [evals, success]
    judge_requests: float = 0
    judge_cost: float = 0.0
    judge_tokens: dict[str, float] = field(default_factory=dict)
    judge_latency: Buckets = field(default_factory=dict)
    exec_latency: Buckets = field(default_factory=dict)
    cost_total: float = 0.0
    exec_runs: float = 0
    executor_llm_requests: float = 0  # GenAI requests made inside executor runs (never judge requests)
    invalid_costs: float = 0
    train_cost: float = 0.0  # train-split executor + priced judge cost, every step attempt
    train_correct: float = 0  # correct train samples
    judged_samples: float = 0  # samples scored judge or judge_failed (all splits)
    # step -> (cost of its attempts that raised, whether anything in them carried a cost)
    step_cost_carry: dict[int, tuple[float, bool]] = field(default_factory=dict)


def _add(store: dict[str, float], key: str, value: float) -> None:
    store[key] = store.get(key, 0) + value


def _add_buckets(store: Buckets, hist: Hist) -> None:
    counts = store.setdefault(hist.bounds, [0] * len(hist.counts))
    for i, c in enumerate(hist.counts):
        counts[i] += c


class _Labels(NamedTuple):
    window: WindowAgg | None  # None: a split with no window (never written)
    source: str
    problem_type: str


def _labels(totals: RunTotals, point: Point) -> _Labels:
    attrs = point.attrs
    split = str(attrs.get(sc.ATTR_SPLIT, sc.SPLIT_TRAIN))
    return _Labels(
        totals.pending.get(split),
        str(attrs.get(sc.ATTR_SOURCE, sc.UNKNOWN)),
        str(attrs.get(sc.ATTR_PROBLEM_TYPE, sc.UNKNOWN)),
    )


def _number(point: Point) -> float:
    return 0.0 if isinstance(point.value, Hist) else point.value


def _fold_sample_sum(totals: RunTotals, point: Point) -> None:
    window, source, ptype = _labels(totals, point)
    value = _number(point)
    if window is None or not value:
        return
    sums = window.samples.setdefault((source, ptype), SampleSums())
    if point.name == sc.SAMPLES[0]:
        sums.samples += value
    elif point.name == sc.SAMPLES_CORRECT[0]:
        sums.correct += value
        if window is totals.pending[sc.SPLIT_TRAIN]:
            totals.train_correct += value
    elif point.name == sc.REWARD_SUM[0]:
        sums.reward_sum += value
    else:
        sums.correctness_sum += value


def _fold_reward_extreme(totals: RunTotals, point: Point) -> None:
    # A gauge of the last closed window, in full at every collection: it replaces, never adds.
    window, source, ptype = _labels(totals, point)
    if window is not None:
        pair = window.minmax.setdefault((source, ptype), [math.inf, -math.inf])
        pair[0 if point.name == sc.REWARD_MIN[0] else 1] = float(_number(point))


def _fold_executor_run(totals: RunTotals, point: Point) -> None:
    window, source, _ = _labels(totals, point)
    value = _number(point)
    totals.exec_runs += value
    if window is not None and value:
        _add(window.exec_runs, source, value)
        if point.attrs.get(sc.ATTR_SUCCESS) == "true":
            _add(window.exec_ok, source, value)


def _fold_scored_by(totals: RunTotals, point: Point) -> None:
    window, source, _ = _labels(totals, point)
    value = _number(point)
    scorer = str(point.attrs.get(sc.ATTR_SCORED_BY))
    if point.name == sc.SAMPLES_SCORED_BY[0] and scorer in (sc.SCORED_BY_JUDGE, sc.SCORED_BY_JUDGE_FAILED):
        totals.judged_samples += value
    if window is not None and value:
        counts = window.scored_by.setdefault((source, scorer), [0, 0])
        counts[0 if point.name == sc.SAMPLES_SCORED_BY[0] else 1] += value


def _fold_spend(totals: RunTotals, point: Point, per_source: Callable[[WindowAgg], dict[str, float]]) -> float:
    """Add a cost point to its window (``per_source`` picks the store) and to the train spend; its value."""
    window, source, _ = _labels(totals, point)
    value = _number(point)
    if window is not None and value:
        _add(per_source(window), source, value)
        if window is totals.pending[sc.SPLIT_TRAIN]:
            totals.train_cost += value
    return value


def _fold_executor_cost(totals: RunTotals, point: Point) -> None:
    totals.cost_total += _fold_spend(totals, point, lambda window: window.exec_cost)


def _fold_invalid_cost(totals: RunTotals, point: Point) -> None:
    totals.invalid_costs += _number(point)


def _fold_judge_evaluation(totals: RunTotals, point: Point) -> None:
    value = _number(point)
    if not value:
        return
    window, source, _ = _labels(totals, point)
    outcome = str(point.attrs.get(sc.ATTR_JUDGE_OUTCOME, sc.OUTCOME_API_FAILURE))
    _add(totals.judge_outcomes, outcome, value)
    verdict = str(point.attrs.get(sc.ATTR_JUDGE_VERDICT, sc.VERDICT_NONE))
    if outcome == sc.OUTCOME_SUCCESS and verdict != sc.VERDICT_NONE:
        _add(totals.judge_verdicts, verdict, value)
    per_source = totals.judge_by_source.setdefault(source, [0, 0])
    per_source[0] += value
    per_source[1] += value if outcome == sc.OUTCOME_SUCCESS else 0
    if window is not None:
        _add(window.judge, outcome, value)


def _fold_judge_request(totals: RunTotals, point: Point) -> None:
    totals.judge_requests += _number(point)


def _fold_executor_llm_request(totals: RunTotals, point: Point) -> None:
    totals.executor_llm_requests += _number(point)


def _fold_judge_cost(totals: RunTotals, point: Point) -> None:
    totals.judge_cost += _fold_spend(totals, point, lambda window: window.judge_cost)


def _fold_judge_duration(totals: RunTotals, point: Point) -> None:
    if isinstance(point.value, Hist):
        _add_buckets(totals.judge_latency, point.value)


def _fold_executor_duration(totals: RunTotals, point: Point) -> None:
    if isinstance(point.value, Hist):
        _add_buckets(totals.exec_latency, point.value)


def _fold_token_usage(totals: RunTotals, point: Point) -> None:
    # Only the judge's tokens: an executor LLM request's go to no judge/ key.
    if isinstance(point.value, Hist) and point.attrs.get(sc.ATTR_LLM_ROLE, "judge") == "judge":
        _add(totals.judge_tokens, str(point.attrs.get(sc.GEN_AI_TOKEN_TYPE, "input")), point.value.total)


def _fold_groups(totals: RunTotals, point: Point) -> None:
    window, source, _ = _labels(totals, point)
    value = _number(point)
    if window is not None and value:
        counts = window.groups.setdefault(source, [0, 0])
        counts[0 if point.name == sc.GROUPS[0] else 1] += value


def _fold_train_scalar(totals: RunTotals, point: Point) -> None:
    # A gauge of the last closed step, like the reward extremes.
    totals.pending[sc.SPLIT_TRAIN].scalars[str(point.attrs.get(sc.ATTR_SCALAR_NAME))] = float(_number(point))


_FOLDS: dict[str, Callable[[RunTotals, Point], None]] = {
    **{
        instrument[0]: _fold_sample_sum
        for instrument in (sc.SAMPLES, sc.SAMPLES_CORRECT, sc.REWARD_SUM, sc.CORRECTNESS_SUM)
    },
    sc.SAMPLES_SCORED_BY[0]: _fold_scored_by,
    sc.SAMPLES_SCORED_BY_CORRECT[0]: _fold_scored_by,
    sc.REWARD_MIN[0]: _fold_reward_extreme,
    sc.REWARD_MAX[0]: _fold_reward_extreme,
    sc.EXECUTOR_RUNS[0]: _fold_executor_run,
    sc.EXECUTOR_COST[0]: _fold_executor_cost,
    sc.EXECUTOR_COST_INVALID[0]: _fold_invalid_cost,
    sc.JUDGE_EVALUATIONS[0]: _fold_judge_evaluation,
    sc.JUDGE_REQUESTS[0]: _fold_judge_request,
    sc.EXECUTOR_LLM_REQUESTS[0]: _fold_executor_llm_request,
    sc.JUDGE_COST[0]: _fold_judge_cost,
    sc.JUDGE_DURATION[0]: _fold_judge_duration,
    sc.EXECUTOR_DURATION[0]: _fold_executor_duration,
    sc.GEN_AI_TOKEN_USAGE[0]: _fold_token_usage,
    sc.GROUPS[0]: _fold_groups,
    sc.GROUPS_ZERO_ADVANTAGE[0]: _fold_groups,
    sc.TRAIN_SCALAR[0]: _fold_train_scalar,
}


def accumulate(totals: RunTotals, points: Iterable[Point]) -> None:
    """Fold one collection's delta points into ``totals`` (instruments the rollup does not read are skipped).

    Gauges (min/max reward, trainer scalars) report the last closed window in full at
    every collection, so they replace what the previous collection left.
    """
    for agg in totals.pending.values():
        agg.minmax.clear()
        agg.scalars.clear()
    for point in points:
        fold = _FOLDS.get(point.name)
        if fold is not None:
            fold(totals, point)
