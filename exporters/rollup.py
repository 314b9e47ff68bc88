"""Collected metric data + running totals -> the WandB key contract (SPEC.md).

No wandb import, no I/O, no globals: :func:`flatten` turns the SDK's ``MetricsData``
(DELTA temporality, one collection per window end) into plain points, and
:func:`rollup` folds them into :class:`RunTotals` and returns the row for the window
that just ended. The same function can rebuild rows from any OTLP stream converted
to deltas.

Units: accuracy and success rates under train/, dataset/ and val/ are percentages
(0-100); judge/ rates are fractions (0-1). A key whose denominator is empty in its
window is omitted, never written as 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from otel_grpo import semconv as sc

SPLITS = (sc.SPLIT_TRAIN, sc.SPLIT_VAL)


class Hist(NamedTuple):
    """A histogram data point (explicit buckets)."""

    bounds: tuple[float, ...]
    counts: tuple[int, ...]
    total: float
    count: int


class Point(NamedTuple):
    """One data point: instrument name, attributes, and a number or a :class:`Hist`."""

    name: str
    attrs: dict[str, Any]
    value: Any


class WindowEnd(NamedTuple):
    """The window whose end triggered the collection."""

    split: str  # train | val
    step: int
    ok: bool = True  # False: the step raised; no row, totals still advance
    write: bool = True  # False: a step skipped by log_frequency


def flatten(metrics_data: Any) -> list[Point]:
    """Flatten an SDK ``MetricsData`` into :class:`Point` s."""
    points: list[Point] = []
    if metrics_data is None:
        return points
    for resource_metrics in metrics_data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for dp in metric.data.data_points:
                    attrs = dict(dp.attributes or {})
                    if hasattr(dp, "bucket_counts"):
                        value: Any = Hist(tuple(dp.explicit_bounds), tuple(dp.bucket_counts),
                                          float(dp.sum), int(dp.count))
                    else:
                        value = dp.value
                    points.append(Point(metric.name, attrs, value))
    return points


@dataclass
class _SampleAgg:
    samples: float = 0
    correct: float = 0
    reward_sum: float = 0.0
    correctness_sum: float = 0.0


@dataclass
class WindowAgg:
    """What one split has accumulated since its last row."""

    samples: dict[tuple[str, str], _SampleAgg] = field(default_factory=dict)
    minmax: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    exec_runs: dict[str, float] = field(default_factory=dict)
    exec_ok: dict[str, float] = field(default_factory=dict)
    exec_cost: dict[str, float] = field(default_factory=dict)
    judge: dict[str, float] = field(default_factory=dict)
    groups: dict[str, list[float]] = field(default_factory=dict)
    scalars: dict[str, float] = field(default_factory=dict)


@dataclass
class RunTotals:
    """Running totals kept by the exporter across rows (all splits)."""

    pending: dict[str, WindowAgg] = field(default_factory=lambda: {s: WindowAgg() for s in SPLITS})
    judge_outcomes: dict[str, float] = field(default_factory=dict)
    judge_verdicts: dict[str, float] = field(default_factory=dict)
    judge_by_source: dict[str, list[float]] = field(default_factory=dict)  # source -> [evals, success]
    judge_errors: dict[str, float] = field(default_factory=dict)
    judge_requests: float = 0
    judge_cost: float = 0.0
    judge_tokens: dict[str, float] = field(default_factory=dict)
    judge_latency: dict[tuple, list[int]] = field(default_factory=dict)  # bounds -> counts
    exec_latency: dict[tuple, list[int]] = field(default_factory=dict)
    cost_total: float = 0.0
    exec_runs: float = 0
    executor_llm_requests: float = 0  # GenAI requests made inside executor runs (never judge requests)
    invalid_costs: float = 0
    health: dict[str, float] = field(default_factory=dict)


def _add_buckets(store: dict[tuple, list[int]], hist: Hist) -> None:
    counts = store.setdefault(hist.bounds, [0] * len(hist.counts))
    for i, c in enumerate(hist.counts):
        counts[i] += c


def quantile(bounds: tuple[float, ...], counts: list[int], q: float) -> float | None:
    """Estimate the ``q`` quantile from bucket counts, as Prometheus' histogram_quantile does."""
    total = sum(counts)
    if total == 0:
        return None
    rank = q * total
    cumulative = 0
    for i, count in enumerate(counts):
        if cumulative + count >= rank and count > 0:
            if i >= len(bounds):  # +Inf bucket: the highest finite bound
                return float(bounds[-1]) if bounds else None
            lower = 0.0 if i == 0 else float(bounds[i - 1])
            upper = float(bounds[i])
            return lower + (upper - lower) * (rank - cumulative) / count
        cumulative += count
    return float(bounds[-1]) if bounds else None


def _quantiles(store: dict[tuple, list[int]], q: float) -> float | None:
    if not store:
        return None
    bounds, counts = max(store.items(), key=lambda item: sum(item[1]))
    return quantile(bounds, counts, q)


def accumulate(totals: RunTotals, points: Iterable[Point]) -> None:
    """Fold one collection's delta points into ``totals``.

    Gauges (min/max reward, trainer scalars) report the last closed window in full at
    every collection, so they replace what the previous collection left.
    """
    for agg in totals.pending.values():
        agg.minmax.clear()
        agg.scalars.clear()
    for name, attrs, value in points:
        split = attrs.get(sc.ATTR_SPLIT, sc.SPLIT_TRAIN)
        agg = totals.pending.get(split)
        source = attrs.get(sc.ATTR_SOURCE, sc.UNKNOWN)
        ptype = attrs.get(sc.ATTR_PROBLEM_TYPE, sc.UNKNOWN)
        if name in _SAMPLE_FIELDS and agg is not None:
            if value:
                s = agg.samples.setdefault((source, ptype), _SampleAgg())
                setattr(s, _SAMPLE_FIELDS[name], getattr(s, _SAMPLE_FIELDS[name]) + value)
        elif name in (sc.REWARD_MIN[0], sc.REWARD_MAX[0]) and agg is not None:
            pair = agg.minmax.setdefault((source, ptype), [math.inf, -math.inf])
            pair[0 if name == sc.REWARD_MIN[0] else 1] = float(value)
        elif name == sc.EXECUTOR_RUNS[0]:
            totals.exec_runs += value
            if agg is not None and value:
                agg.exec_runs[source] = agg.exec_runs.get(source, 0) + value
                if attrs.get(sc.ATTR_SUCCESS) == "true":
                    agg.exec_ok[source] = agg.exec_ok.get(source, 0) + value
        elif name == sc.EXECUTOR_COST[0]:
            totals.cost_total += value
            if agg is not None and value:
                agg.exec_cost[source] = agg.exec_cost.get(source, 0.0) + value
        elif name == sc.EXECUTOR_COST_INVALID[0]:
            totals.invalid_costs += value
        elif name == sc.JUDGE_EVALUATIONS[0] and value:
            outcome = attrs.get(sc.ATTR_JUDGE_OUTCOME, sc.OUTCOME_API_FAILURE)
            totals.judge_outcomes[outcome] = totals.judge_outcomes.get(outcome, 0) + value
            verdict = attrs.get(sc.ATTR_JUDGE_VERDICT, sc.VERDICT_NONE)
            if outcome == sc.OUTCOME_SUCCESS and verdict != sc.VERDICT_NONE:
                totals.judge_verdicts[verdict] = totals.judge_verdicts.get(verdict, 0) + value
            per_source = totals.judge_by_source.setdefault(source, [0, 0])
            per_source[0] += value
            per_source[1] += value if outcome == sc.OUTCOME_SUCCESS else 0
            error = attrs.get(sc.ATTR_ERROR_TYPE)
            if error:
                totals.judge_errors[error] = totals.judge_errors.get(error, 0) + value
            if agg is not None:
                agg.judge[outcome] = agg.judge.get(outcome, 0) + value
        elif name == sc.JUDGE_REQUESTS[0]:
            totals.judge_requests += value
        elif name == sc.EXECUTOR_LLM_REQUESTS[0]:
            totals.executor_llm_requests += value
        elif name == sc.JUDGE_COST[0]:
            totals.judge_cost += value
        elif name == sc.JUDGE_DURATION[0] and isinstance(value, Hist):
            _add_buckets(totals.judge_latency, value)
        elif name == sc.EXECUTOR_DURATION[0] and isinstance(value, Hist):
            _add_buckets(totals.exec_latency, value)
        elif name == sc.GEN_AI_TOKEN_USAGE[0] and isinstance(value, Hist):
            # Only the judge's tokens: an executor LLM request's go to no judge/ key.
            if attrs.get(sc.ATTR_LLM_ROLE, "judge") == "judge":
                kind = attrs.get(sc.GEN_AI_TOKEN_TYPE, "input")
                totals.judge_tokens[kind] = totals.judge_tokens.get(kind, 0) + value.total
        elif name in (sc.GROUPS[0], sc.GROUPS_ZERO_ADVANTAGE[0]) and agg is not None and value:
            g = agg.groups.setdefault(source, [0, 0])
            g[0 if name == sc.GROUPS[0] else 1] += value
        elif name == sc.TRAIN_SCALAR[0]:
            totals.pending[sc.SPLIT_TRAIN].scalars[str(attrs.get(sc.ATTR_SCALAR_NAME))] = float(value)


_SAMPLE_FIELDS = {
    sc.SAMPLES[0]: "samples",
    sc.SAMPLES_CORRECT[0]: "correct",
    sc.REWARD_SUM[0]: "reward_sum",
    sc.CORRECTNESS_SUM[0]: "correctness_sum",
}

# Keys computed by the rollup: a trainer scalar with one of these names is not copied.
COMPUTED_TRAIN_KEYS = frozenset({
    "step", "avg_reward", "max_reward", "min_reward", "accuracy",
})


def _pct(num: float, den: float) -> float:
    return 100.0 * num / den


def _train_keys(agg: WindowAgg, row: dict[str, Any]) -> None:
    for name, value in sorted(agg.scalars.items()):
        if name not in COMPUTED_TRAIN_KEYS:
            row[f"train/{name}"] = value
    series = {k: v for k, v in agg.samples.items() if v.samples > 0}
    n = sum(v.samples for v in series.values())
    if n > 0:
        row["train/avg_reward"] = sum(v.reward_sum for v in series.values()) / n
        mins = [agg.minmax[k][0] for k in series if k in agg.minmax]
        maxs = [agg.minmax[k][1] for k in series if k in agg.minmax]
        if mins:
            row["train/min_reward"] = min(mins)
            row["train/max_reward"] = max(maxs)
        row["train/accuracy"] = _pct(sum(v.correct for v in series.values()), n)
    by_ptype: dict[str, _SampleAgg] = {}
    by_source: dict[str, _SampleAgg] = {}
    for (source, ptype), v in series.items():
        for bucket, key in ((by_ptype, ptype), (by_source, source)):
            acc = bucket.setdefault(key, _SampleAgg())
            acc.samples += v.samples
            acc.correct += v.correct
            acc.reward_sum += v.reward_sum
            acc.correctness_sum += v.correctness_sum
    for ptype, v in sorted(by_ptype.items()):
        row[f"train/accuracy_{ptype}"] = _pct(v.correct, v.samples)
        row[f"train/avg_score_{ptype}"] = v.correctness_sum / v.samples
        row[f"train/count_{ptype}"] = int(v.samples)
    for source, v in sorted(by_source.items()):
        row[f"dataset/{source}/accuracy"] = _pct(v.correct, v.samples)
        row[f"dataset/{source}/count"] = int(v.samples)
        row[f"dataset/{source}/avg_reward"] = v.reward_sum / v.samples
        row[f"dataset/{source}/avg_cost"] = agg.exec_cost.get(source, 0.0) / v.samples
    all_groups = zero = 0.0
    for source, (groups, zero_adv) in sorted(agg.groups.items()):
        if groups > 0:
            row[f"grpo/{source}/zero_advantage_rate"] = zero_adv / groups
            all_groups += groups
            zero += zero_adv
    if all_groups > 0:
        row["grpo/zero_advantage_rate"] = zero / all_groups
    evaluations = sum(agg.judge.values())
    if evaluations > 0:
        for outcome in sc.JUDGE_OUTCOMES:
            row[f"judge/step_{outcome}_rate"] = agg.judge.get(outcome, 0) / evaluations


def _val_keys(agg: WindowAgg, row: dict[str, Any]) -> None:
    by_source: dict[str, _SampleAgg] = {}
    for (source, _ptype), v in agg.samples.items():
        if v.samples > 0:
            acc = by_source.setdefault(source, _SampleAgg())
            acc.samples += v.samples
            acc.correct += v.correct
            acc.correctness_sum += v.correctness_sum
    n = sum(v.samples for v in by_source.values())
    if n == 0:
        return
    row["val/accuracy"] = _pct(sum(v.correct for v in by_source.values()), n)
    row["val/avg_correctness"] = sum(v.correctness_sum for v in by_source.values()) / n
    row["val/success_rate"] = _pct(sum(agg.exec_ok.values()), n)
    row["val/avg_cost"] = sum(agg.exec_cost.values()) / n
    for source, v in sorted(by_source.items()):
        row[f"val/{source}/accuracy"] = _pct(v.correct, v.samples)
        row[f"val/{source}/count"] = int(v.samples)
        row[f"val/{source}/avg_cost"] = agg.exec_cost.get(source, 0.0) / v.samples


def _cumulative_keys(totals: RunTotals, row: dict[str, Any]) -> None:
    evaluations = sum(totals.judge_outcomes.values())
    if evaluations > 0:
        row["judge/total_calls"] = int(evaluations)
        for outcome in sc.JUDGE_OUTCOMES:
            row[f"judge/{outcome}_rate"] = totals.judge_outcomes.get(outcome, 0) / evaluations
        correct = totals.judge_verdicts.get(sc.VERDICT_CORRECT, 0)
        incorrect = totals.judge_verdicts.get(sc.VERDICT_INCORRECT, 0)
        row["judge/correct_predictions"] = int(correct)
        row["judge/incorrect_predictions"] = int(incorrect)
        if correct + incorrect > 0:
            row["judge/correct_ratio"] = correct / (correct + incorrect)
        for source, (evals, success) in sorted(totals.judge_by_source.items()):
            if evals > 0:
                row[f"judge/{source}_success_rate"] = success / evals
        for q, label in ((0.5, "p50"), (0.95, "p95")):
            value = _quantiles(totals.judge_latency, q)
            if value is not None:
                row[f"judge/latency_{label}_s"] = value
        for kind in ("input", "output"):
            if kind in totals.judge_tokens:
                row[f"judge/{kind}_tokens"] = int(totals.judge_tokens[kind])
    if totals.exec_runs > 0:
        row["cost/total_cost"] = totals.cost_total
        row["cost/executor_calls"] = int(totals.exec_runs)
        row["cost/avg_cost_per_sample"] = totals.cost_total / totals.exec_runs
        for q, label in ((0.5, "p50"), (0.95, "p95")):
            value = _quantiles(totals.exec_latency, q)
            if value is not None:
                row[f"executor/latency_{label}_s"] = value
    if totals.exec_runs > 0 or totals.executor_llm_requests > 0:
        row["executor/llm_requests"] = int(totals.executor_llm_requests)
    if totals.exec_runs > 0 or totals.judge_requests > 0:
        row["cost/judge_calls"] = int(totals.judge_requests)
        row["cost/judge_cost"] = totals.judge_cost
        row["cost/invalid_cost_count"] = int(totals.invalid_costs)


def rollup(points: Iterable[Point], totals: RunTotals, window: WindowEnd) -> dict[str, Any]:
    """Fold ``points`` into ``totals`` and return the WandB row for ``window``.

    Returns ``{}`` when no row is due: a step that raised (its samples are dropped,
    its cost and judge calls stay in the totals), a step skipped by ``log_frequency``,
    or a validation pass with no samples. ``totals`` is updated in place.
    """
    accumulate(totals, points)
    return window_row(totals, window)


def window_row(totals: RunTotals, window: WindowEnd) -> dict[str, Any]:
    """The row for ``window`` from already accumulated ``totals``; resets its split's window."""
    agg = totals.pending.get(window.split)
    if agg is None:
        return {}
    totals.pending[window.split] = WindowAgg()
    if not window.ok or not window.write:
        return {}
    row: dict[str, Any] = {"train/step": int(window.step)}
    if window.split == sc.SPLIT_TRAIN:
        _train_keys(agg, row)
    else:
        _val_keys(agg, row)
        if len(row) == 1:
            return {}
    _cumulative_keys(totals, row)
    for event, value in sorted(totals.health.items()):
        row[f"exporter/{event}"] = int(value)
    return row
