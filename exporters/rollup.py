"""Running totals -> ``{WandB key: value}`` (the contract of :mod:`otel_grpo.keys`).

No wandb import, no I/O, no globals. At each window end the WandB exporter calls

1. :func:`~otel_grpo.exporters.totals.flatten`: the SDK's ``MetricsData`` (DELTA
   temporality, one collection per window end) as plain points;
2. :func:`~otel_grpo.exporters.totals.accumulate`: fold them into its :class:`RunTotals`;
3. :func:`window_row`: the :class:`WindowRow` of the window that just ended, built by the
   ``compute_*`` functions below, each of which lists the keys it produces.

The same functions rebuild rows from any OTLP stream converted to deltas.

Units: accuracy and success rates under train/, dataset/ and val/ are percentages
(0-100); judge/ rates are fractions (0-1). A key whose denominator is empty in its
window is omitted, never written as 0.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from otel_grpo import keys
from otel_grpo import semconv as sc
from otel_grpo.exporters.totals import (
    Buckets,
    Hist,
    Point,
    RunTotals,
    SampleSums,
    WindowAgg,
    accumulate,
    flatten,
)

__all__ = [
    "Hist",
    "Point",
    "Row",
    "RunTotals",
    "SampleRow",
    "SourceFigures",
    "WindowEnd",
    "WindowRow",
    "accumulate",
    "compute_cost_metrics",
    "compute_dataset_metrics",
    "compute_executor_metrics",
    "compute_exporter_metrics",
    "compute_grpo_metrics",
    "compute_integrity_metrics",
    "compute_step_cost",
    "compute_judge_metrics",
    "compute_judge_step_metrics",
    "compute_source_figures",
    "compute_train_metrics",
    "compute_val_metrics",
    "flatten",
    "quantile",
    "window_row",
]

Row = dict[str, float]  # {WandB key: value}; counts are ints
SampleRow = tuple[object, ...]  # one sample of a window, in the order of keys.SAMPLE_FIELDS


class WindowEnd(NamedTuple):
    """The window whose end triggered the collection, and what the trainer side hands with it."""

    split: str  # train | val
    step: int
    ok: bool = True  # False: the step raised; no row, totals still advance
    write: bool = True  # False: a step skipped by log_frequency
    samples: tuple[SampleRow, ...] = ()  # the window's first samples, for the per-sample table


@dataclass(frozen=True)
class SourceFigures:
    """One source's train samples in a window: its ``dataset/{source}/*`` keys and table row."""

    source: str
    accuracy: float  # percent
    count: int
    avg_reward: float
    avg_cost: float | None  # USD per executor run; None when the source had no executor run


@dataclass(frozen=True)
class WindowRow:
    """What a window end produced: the row to write (``data``) and the per-source figures behind it."""

    data: Row = field(default_factory=dict)
    sources: tuple[SourceFigures, ...] = ()


# --- the row ------------------------------------------------------------------------------------
def _pct(num: float, den: float) -> float:
    return 100.0 * num / den


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


def _latency_metrics(store: Buckets, key: Callable[[str], str]) -> Row:
    if not store:
        return {}
    bounds, counts = max(store.items(), key=lambda item: sum(item[1]))
    row: Row = {}
    for q, label in keys.QUANTILES:
        value = quantile(bounds, counts, q)
        if value is not None:
            row[key(label)] = value
    return row


def _scored(agg: WindowAgg) -> dict[tuple[str, str], SampleSums]:
    return {k: v for k, v in agg.samples.items() if v.samples > 0}


def _by(series: dict[tuple[str, str], SampleSums], index: int) -> dict[str, SampleSums]:
    """Sums per source (``index`` 0) or per problem type (``index`` 1), sorted by name."""
    out: dict[str, SampleSums] = {}
    for labels, sums in series.items():
        out.setdefault(labels[index], SampleSums()).merge(sums)
    return dict(sorted(out.items()))


def compute_train_metrics(agg: WindowAgg) -> Row:
    """The step's own train figures.

    Keys: ``train/{scalar}`` (each scalar the trainer reported: loss, kl_div, temperature...),
    ``train/avg_reward``, ``train/min_reward``, ``train/max_reward``, ``train/accuracy``,
    and per problem type ``train/accuracy_{ptype}``, ``train/avg_score_{ptype}``, ``train/count_{ptype}``.
    """
    row: Row = {
        keys.train(name): value for name, value in sorted(agg.scalars.items()) if name not in keys.COMPUTED_TRAIN_NAMES
    }
    series = _scored(agg)
    n = sum(v.samples for v in series.values())
    if n > 0:
        row[keys.TRAIN_AVG_REWARD] = sum(v.reward_sum for v in series.values()) / n
        extremes = [agg.minmax[k] for k in series if k in agg.minmax]
        if extremes:
            row[keys.TRAIN_MIN_REWARD] = min(low for low, _ in extremes)
            row[keys.TRAIN_MAX_REWARD] = max(high for _, high in extremes)
        row[keys.TRAIN_ACCURACY] = _pct(sum(v.correct for v in series.values()), n)
    for ptype, v in _by(series, 1).items():
        row[keys.train_by_problem_type("accuracy", ptype)] = _pct(v.correct, v.samples)
        row[keys.train_by_problem_type("avg_score", ptype)] = v.correctness_sum / v.samples
        row[keys.train_by_problem_type("count", ptype)] = int(v.samples)
    return row


def _per_run(agg: WindowAgg, source: str) -> float | None:
    """Mean executor cost per executor run of ``source`` in the window; None when it had no run."""
    runs = agg.exec_runs.get(source, 0)
    return agg.exec_cost.get(source, 0.0) / runs if runs > 0 else None


def compute_source_figures(agg: WindowAgg) -> tuple[SourceFigures, ...]:
    """Per source, the train samples of the step (the Dataset Statistics table's rows), sorted by source."""
    return tuple(
        SourceFigures(
            source=source,
            accuracy=_pct(v.correct, v.samples),
            count=int(v.samples),
            avg_reward=v.reward_sum / v.samples,
            avg_cost=_per_run(agg, source),
        )
        for source, v in _by(_scored(agg), 0).items()
    )


def compute_dataset_metrics(sources: Iterable[SourceFigures]) -> Row:
    """Keys: ``dataset/{source}/accuracy``, ``/count``, ``/avg_reward``, and ``/avg_cost`` (mean cost per
    executor run; omitted for a source with no executor run) for each source."""
    row: Row = {}
    for figures in sources:
        row[keys.dataset(figures.source, "accuracy")] = figures.accuracy
        row[keys.dataset(figures.source, "count")] = figures.count
        row[keys.dataset(figures.source, "avg_reward")] = figures.avg_reward
        if figures.avg_cost is not None:
            row[keys.dataset(figures.source, "avg_cost")] = figures.avg_cost
    return row


def compute_integrity_metrics(agg: WindowAgg, split: str, judged: bool) -> Row:
    """Reward integrity and cost insight of one window (``judged``: the run has had a judge evaluation).

    Scored samples are those whose execution did not fail. Keys for train:
    ``train/judge_share``, ``train/judge_failed_share``, ``train/accuracy_excl_judge_failed`` and per source
    ``dataset/{source}/judge_share``, ``/judge_failed_share`` (fractions; once ``judged``),
    ``/accuracy_excl_judge_failed`` (percent), ``/exec_success_rate`` (percent of the source's executor
    runs; omitted without one), ``/cost_per_correct`` (executor + priced judge cost / correct samples, USD;
    omitted when nothing of the source carried a cost). For val the same under ``val/`` and
    ``val/{source}/``, except exec_success_rate (``val/success_rate`` has it).
    """
    train = split == sc.SPLIT_TRAIN

    def key(figure: str, source: str | None = None) -> str:
        if train:
            return keys.train(figure) if source is None else keys.dataset(source, figure)
        return keys.val(figure, source)

    per_source: dict[str, dict[str, list[float]]] = {}
    for (source, scorer), counts in agg.scored_by.items():
        per_source.setdefault(source, {})[scorer] = counts
    row: Row = {}
    scored_all = judged_all = failed_all = kept_all = kept_correct_all = 0.0
    for source, sums in _by(_scored(agg), 0).items():
        scorers = per_source.get(source, {})

        def n(scorer: str, index: int = 0, scorers: dict[str, list[float]] = scorers) -> float:
            return scorers.get(scorer, (0, 0))[index]

        failed = n(sc.SCORED_BY_JUDGE_FAILED)
        judged_samples = n(sc.SCORED_BY_JUDGE) + failed
        scored = judged_samples + n(sc.SCORED_BY_RULE)
        scored_all += scored
        judged_all += judged_samples
        failed_all += failed
        if judged and scored > 0:
            row[key(keys.JUDGE_SHARE, source)] = judged_samples / scored
            row[key(keys.JUDGE_FAILED_SHARE, source)] = failed / scored
        kept, kept_correct = sums.samples - failed, sums.correct - n(sc.SCORED_BY_JUDGE_FAILED, 1)
        kept_all += kept
        kept_correct_all += kept_correct
        if kept > 0:
            row[key(keys.ACCURACY_EXCL_JUDGE_FAILED, source)] = _pct(kept_correct, kept)
        runs = agg.exec_runs.get(source, 0)
        if train and runs > 0:
            row[key(keys.EXEC_SUCCESS_RATE, source)] = _pct(agg.exec_ok.get(source, 0), runs)
        judge_cost = agg.judge_cost.get(source, 0.0)
        if sums.correct > 0 and (runs > 0 or judge_cost > 0):
            row[key(keys.COST_PER_CORRECT, source)] = (agg.exec_cost.get(source, 0.0) + judge_cost) / sums.correct
    if judged and scored_all > 0:
        row[key(keys.JUDGE_SHARE)] = judged_all / scored_all
        row[key(keys.JUDGE_FAILED_SHARE)] = failed_all / scored_all
    if kept_all > 0:
        row[key(keys.ACCURACY_EXCL_JUDGE_FAILED)] = _pct(kept_correct_all, kept_all)
    return row


def _spend(agg: WindowAgg) -> tuple[float, bool]:
    """The window's executor + priced judge cost, and whether anything in it carried a cost."""
    cost = sum(agg.exec_cost.values()) + sum(agg.judge_cost.values())
    return cost, sum(agg.exec_runs.values()) > 0 or cost > 0


def compute_step_cost(agg: WindowAgg, carried: tuple[float, bool] = (0.0, False)) -> Row:
    """Key: ``cost/step_cost``: the step's train executor + priced judge cost, plus ``carried`` (the cost
    of earlier attempts of the same step that raised, and whether they carried one); omitted when
    nothing in the step carried a cost (no executor run, no priced judge request)."""
    cost, spent = _spend(agg)
    if not (spent or carried[1]):
        return {}
    return {keys.COST_STEP: cost + carried[0]}


def compute_grpo_metrics(agg: WindowAgg) -> Row:
    """Keys: ``grpo/{source}/zero_advantage_rate`` per source with groups, ``grpo/zero_advantage_rate``."""
    row: Row = {}
    all_groups = zero = 0.0
    for source, (groups, zero_advantage) in sorted(agg.groups.items()):
        if groups > 0:
            row[keys.grpo_zero_advantage_rate(source)] = zero_advantage / groups
            all_groups += groups
            zero += zero_advantage
    if all_groups > 0:
        row[keys.grpo_zero_advantage_rate()] = zero / all_groups
    return row


def compute_judge_step_metrics(agg: WindowAgg) -> Row:
    """Keys: ``judge/step_{outcome}_rate`` for each outcome, this step's evaluations only."""
    evaluations = sum(agg.judge.values())
    if evaluations <= 0:
        return {}
    return {
        keys.judge_outcome_rate(outcome, step=True): agg.judge.get(outcome, 0) / evaluations
        for outcome in sc.JUDGE_OUTCOMES
    }


def compute_val_metrics(agg: WindowAgg) -> Row:
    """One validation pass.

    Keys: ``val/accuracy``, ``val/avg_correctness``, ``val/success_rate`` and ``val/avg_cost`` (over the
    pass's executor runs; omitted without one), and per source ``val/{source}/accuracy``,
    ``val/{source}/count``, ``val/{source}/avg_cost`` (omitted for a source without an executor run).
    Empty when the pass scored no sample.
    """
    by_source = _by(_scored(agg), 0)
    n = sum(v.samples for v in by_source.values())
    if n == 0:
        return {}
    row: Row = {
        keys.VAL_ACCURACY: _pct(sum(v.correct for v in by_source.values()), n),
        keys.VAL_AVG_CORRECTNESS: sum(v.correctness_sum for v in by_source.values()) / n,
    }
    runs = sum(agg.exec_runs.values())
    if runs > 0:
        row[keys.VAL_SUCCESS_RATE] = _pct(sum(agg.exec_ok.values()), runs)
        row[keys.VAL_AVG_COST] = sum(agg.exec_cost.values()) / runs
    for source, v in by_source.items():
        row[keys.val("accuracy", source)] = _pct(v.correct, v.samples)
        row[keys.val("count", source)] = int(v.samples)
        per_run = _per_run(agg, source)
        if per_run is not None:
            row[keys.val("avg_cost", source)] = per_run
    return row


def compute_judge_metrics(totals: RunTotals) -> Row:
    """Judge evaluations since the run started; empty until the first one.

    Keys: ``judge/total_calls``, ``judge/{outcome}_rate`` for each outcome,
    ``judge/correct_predictions``, ``judge/incorrect_predictions``, ``judge/correct_ratio``
    (once a verdict was read), ``judge/{source}_success_rate``, ``judge/latency_p50_s``,
    ``judge/latency_p95_s``, ``judge/input_tokens``, ``judge/output_tokens``.
    """
    evaluations = sum(totals.judge_outcomes.values())
    if evaluations <= 0:
        return {}
    row: Row = {keys.JUDGE_TOTAL_CALLS: int(evaluations)}
    for outcome in sc.JUDGE_OUTCOMES:
        row[keys.judge_outcome_rate(outcome)] = totals.judge_outcomes.get(outcome, 0) / evaluations
    correct = totals.judge_verdicts.get(sc.VERDICT_CORRECT, 0)
    incorrect = totals.judge_verdicts.get(sc.VERDICT_INCORRECT, 0)
    row[keys.JUDGE_CORRECT_PREDICTIONS] = int(correct)
    row[keys.JUDGE_INCORRECT_PREDICTIONS] = int(incorrect)
    if correct + incorrect > 0:
        row[keys.JUDGE_CORRECT_RATIO] = correct / (correct + incorrect)
    for source, (evals, success) in sorted(totals.judge_by_source.items()):
        if evals > 0:
            row[keys.judge_source_success_rate(source)] = success / evals
    row.update(_latency_metrics(totals.judge_latency, keys.judge_latency))
    for kind in keys.JUDGE_TOKEN_KINDS:
        if kind in totals.judge_tokens:
            row[keys.judge_tokens(kind)] = int(totals.judge_tokens[kind])
    return row


def compute_cost_metrics(totals: RunTotals) -> Row:
    """Cost since the run started, all splits.

    Keys: ``cost/total_cost``, ``cost/executor_calls``, ``cost/avg_cost_per_sample`` (once an
    executor ran); ``cost/judge_calls``, ``cost/judge_cost``, ``cost/invalid_cost_count``
    (once an executor ran or a judge request was made).
    """
    row: Row = {}
    if totals.exec_runs > 0:
        row[keys.COST_TOTAL] = totals.cost_total
        row[keys.COST_EXECUTOR_CALLS] = int(totals.exec_runs)
        row[keys.COST_AVG_PER_SAMPLE] = totals.cost_total / totals.exec_runs
    if totals.exec_runs > 0 or totals.judge_requests > 0:
        row[keys.COST_JUDGE_CALLS] = int(totals.judge_requests)
        row[keys.COST_JUDGE_COST] = totals.judge_cost
        row[keys.COST_INVALID_COUNT] = int(totals.invalid_costs)
    if totals.train_correct > 0 and (totals.exec_runs > 0 or totals.train_cost > 0):
        row[keys.COST_PER_CORRECT_TOTAL] = totals.train_cost / totals.train_correct
    return row


def compute_executor_metrics(totals: RunTotals) -> Row:
    """Executor runs since the run started.

    Keys: ``executor/latency_p50_s``, ``executor/latency_p95_s`` (once an executor ran),
    ``executor/llm_requests`` (once an executor ran or made an LLM request).
    """
    row: Row = {}
    if totals.exec_runs > 0:
        row.update(_latency_metrics(totals.exec_latency, keys.executor_latency))
    if totals.exec_runs > 0 or totals.executor_llm_requests > 0:
        row[keys.EXECUTOR_LLM_REQUESTS] = int(totals.executor_llm_requests)
    return row


def compute_exporter_metrics(health: Mapping[str, int]) -> Row:
    """Keys: ``exporter/{event}`` for each health count (rows_written, rows_dropped, export_errors, ...)."""
    return {keys.exporter(event): int(value) for event, value in sorted(health.items())}


def window_row(totals: RunTotals, window: WindowEnd, health: Mapping[str, int]) -> WindowRow:
    """The row for ``window`` from already accumulated ``totals``; resets its split's window.

    An empty :class:`WindowRow` when no row is due: a step that raised (its samples are
    dropped, its cost and judge calls stay in the totals), a step skipped by
    ``log_frequency``, or a validation pass with no samples. ``health`` is the exporter's
    counts including this row.
    """
    agg = totals.pending.get(window.split)
    if agg is None:
        return WindowRow()
    totals.pending[window.split] = WindowAgg()
    train = window.split == sc.SPLIT_TRAIN
    step = int(window.step)
    if train and not window.ok:  # its spend counts toward the step's next attempt
        cost, spent = _spend(agg)
        before = totals.step_cost_carry.get(step, (0.0, False))
        totals.step_cost_carry[step] = (before[0] + cost, before[1] or spent)
    if not window.ok or not window.write:
        return WindowRow()
    row: Row = {keys.STEP: step}
    sources: tuple[SourceFigures, ...] = ()
    # The judge shares appear from the run's first judge evaluation (or first sample a judge scored).
    judged = sum(totals.judge_outcomes.values()) > 0 or totals.judged_samples > 0
    if train:
        sources = compute_source_figures(agg)
        row.update(compute_train_metrics(agg))
        row.update(compute_dataset_metrics(sources))
        row.update(compute_grpo_metrics(agg))
        row.update(compute_judge_step_metrics(agg))
        row.update(compute_integrity_metrics(agg, window.split, judged))
        carried = totals.step_cost_carry.pop(step, (0.0, False))
        for earlier in [s for s in totals.step_cost_carry if s < step]:  # attempts never retried
            del totals.step_cost_carry[earlier]
        row.update(compute_step_cost(agg, carried))
    else:
        validation = compute_val_metrics(agg)
        if not validation:
            return WindowRow()
        row.update(validation)
        row.update(compute_integrity_metrics(agg, window.split, judged))
    row.update(compute_judge_metrics(totals))
    row.update(compute_cost_metrics(totals))
    row.update(compute_executor_metrics(totals))
    row.update(compute_exporter_metrics(health))
    return WindowRow(row, sources)
