"""A closed window's summary -> ``{WandB key: value}`` (the contract of :mod:`otel_grpo.keys`).

Pure functions: no wandb import, no I/O, no globals, no state. :func:`window_row` builds
the :class:`WindowRow` of one :class:`~otel_grpo.summary.WindowSummary` with the
``compute_*`` functions below, each of which lists the keys it produces: the window's
own figures from its sums, the cumulative ones from the run snapshot taken at the same
moment.

Units: accuracy and success rates under train/, dataset/ and val/ are percentages
(0-100); judge/ rates are fractions (0-1). A key whose denominator is empty in its
window is omitted, never written as 0, and nothing is written where nothing was
measured (no executor run: no execution or cost figure).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from otel_grpo import keys
from otel_grpo import semconv as sc
from otel_grpo.summary import Buckets, ExecStats, RunSnapshot, SampleRow, SampleStats, WindowSummary

__all__ = [
    "Row",
    "SampleRow",
    "SourceFigures",
    "WindowRow",
    "compute_cost_metrics",
    "compute_dataset_metrics",
    "compute_executor_metrics",
    "compute_exporter_metrics",
    "compute_grpo_metrics",
    "compute_integrity_metrics",
    "compute_judge_metrics",
    "compute_judge_step_metrics",
    "compute_source_figures",
    "compute_step_cost",
    "compute_train_metrics",
    "compute_val_metrics",
    "quantile",
    "window_row",
]

Row = dict[str, float]  # {WandB key: value}; counts are ints

_RULE, _JUDGE, _JUDGE_FAILED = (
    sc.SCORERS.index(s) for s in (sc.SCORED_BY_RULE, sc.SCORED_BY_JUDGE, sc.SCORED_BY_JUDGE_FAILED)
)


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


# --- helpers ------------------------------------------------------------------------------------
def _pct(num: float, den: float) -> float:
    return 100.0 * num / den


def quantile(bounds: tuple[float, ...], counts: Iterable[int], q: float) -> float | None:
    """Estimate the ``q`` quantile from bucket counts, as Prometheus' histogram_quantile does."""
    counts = list(counts)
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


def _latency_metrics(buckets: Buckets | None, key: Callable[[str], str]) -> Row:
    if buckets is None:
        return {}
    row: Row = {}
    for q, label in keys.QUANTILES:
        value = quantile(buckets[0], buckets[1], q)
        if value is not None:
            row[key(label)] = value
    return row


def _scored(samples: Mapping[tuple[str, str], SampleStats]) -> dict[tuple[str, str], SampleStats]:
    return {k: v for k, v in samples.items() if v.samples > 0}


def _by(series: Mapping[tuple[str, str], SampleStats], index: int) -> dict[str, SampleStats]:
    """Sums per source (``index`` 0) or per problem type (``index`` 1), sorted by name."""
    out: dict[str, SampleStats] = {}
    for labels, sums in series.items():
        out.setdefault(labels[index], SampleStats()).merge(sums)
    return dict(sorted(out.items()))


def _per_run(runs: ExecStats | None) -> float | None:
    """Mean executor cost per run; None without a run."""
    return runs.cost / runs.runs if runs is not None and runs.runs > 0 else None


# --- the window's own figures ---------------------------------------------------------------------
def compute_train_metrics(window: WindowSummary) -> Row:
    """The step's own train figures.

    Keys: ``train/{scalar}`` (each scalar the trainer reported: loss, kl_div, temperature...),
    ``train/avg_reward``, ``train/min_reward``, ``train/max_reward``, ``train/accuracy``,
    and per problem type ``train/accuracy_{ptype}``, ``train/avg_score_{ptype}``, ``train/count_{ptype}``.
    """
    row: Row = {
        keys.train(name): value
        for name, value in sorted(window.scalars.items())
        if name not in keys.COMPUTED_TRAIN_NAMES
    }
    series = _scored(window.samples)
    n = sum(v.samples for v in series.values())
    if n > 0:
        row[keys.TRAIN_AVG_REWARD] = sum(v.reward_sum for v in series.values()) / n
        row[keys.TRAIN_MIN_REWARD] = min(v.reward_min for v in series.values())
        row[keys.TRAIN_MAX_REWARD] = max(v.reward_max for v in series.values())
        row[keys.TRAIN_ACCURACY] = _pct(sum(v.correct for v in series.values()), n)
    for ptype, v in _by(series, 1).items():
        row[keys.train_by_problem_type("accuracy", ptype)] = _pct(v.correct, v.samples)
        row[keys.train_by_problem_type("avg_score", ptype)] = v.correctness_sum / v.samples
        row[keys.train_by_problem_type("count", ptype)] = int(v.samples)
    return row


def compute_source_figures(window: WindowSummary) -> tuple[SourceFigures, ...]:
    """Per source, the train samples of the step (the Dataset Statistics table's rows), sorted by source."""
    return tuple(
        SourceFigures(
            source=source,
            accuracy=_pct(v.correct, v.samples),
            count=int(v.samples),
            avg_reward=v.reward_sum / v.samples,
            avg_cost=_per_run(window.executions.get(source)),
        )
        for source, v in _by(_scored(window.samples), 0).items()
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


def _integrity_key(train: bool) -> Callable[[str, str | None], str]:
    def key(figure: str, source: str | None = None) -> str:
        if train:
            return keys.train(figure) if source is None else keys.dataset(source, figure)
        return keys.val(figure, source)

    return key


def _judge_shares(sums: SampleStats, judged: bool, key: Callable[[str, str | None], str], source: str | None) -> Row:
    """Judge share, judge-failed share and accuracy without judge-failed samples of ``sums``."""
    row: Row = {}
    failed, failed_correct = sums.scored_by(_JUDGE_FAILED)
    judged_samples = sums.scored_by(_JUDGE)[0] + failed
    scored = judged_samples + sums.scored_by(_RULE)[0]
    if judged and scored > 0:
        row[key(keys.JUDGE_SHARE, source)] = judged_samples / scored
        row[key(keys.JUDGE_FAILED_SHARE, source)] = failed / scored
    if sums.samples - failed > 0:
        row[key(keys.ACCURACY_EXCL_JUDGE_FAILED, source)] = _pct(sums.correct - failed_correct, sums.samples - failed)
    return row


def _source_integrity(window: WindowSummary, source: str, sums: SampleStats, judged: bool, train: bool) -> Row:
    """One source's reward-integrity figures (see :func:`compute_integrity_metrics`)."""
    key = _integrity_key(train)
    row = _judge_shares(sums, judged, key, source)
    runs = window.executions.get(source)
    if train and runs is not None and runs.runs > 0:
        row[key(keys.EXEC_SUCCESS_RATE, source)] = _pct(runs.ok, runs.runs)
    judge_cost = window.judge_cost.get(source, 0.0)
    if sums.correct > 0 and ((runs is not None and runs.runs > 0) or judge_cost > 0):
        row[key(keys.COST_PER_CORRECT, source)] = ((runs.cost if runs else 0.0) + judge_cost) / sums.correct
    return row


def compute_integrity_metrics(window: WindowSummary, judged: bool) -> Row:
    """Reward integrity and cost insight of one window (``judged``: the run has had a judge evaluation).

    Scored samples are those whose execution did not fail. Keys for train:
    ``train/judge_share``, ``train/judge_failed_share``, ``train/accuracy_excl_judge_failed`` and per source
    ``dataset/{source}/judge_share``, ``/judge_failed_share`` (fractions; once ``judged``),
    ``/accuracy_excl_judge_failed`` (percent), ``/exec_success_rate`` (percent of the source's executor
    runs; omitted without one), ``/cost_per_correct`` (executor + priced judge cost / correct samples, USD;
    omitted when nothing of the source carried a cost). For val the same under ``val/`` and
    ``val/{source}/``, except exec_success_rate (``val/success_rate`` has it).
    """
    train = window.split == sc.SPLIT_TRAIN
    key = _integrity_key(train)
    row: Row = {}
    totals = SampleStats()
    for source, sums in _by(_scored(window.samples), 0).items():
        row.update(_source_integrity(window, source, sums, judged, train))
        totals.merge(sums)
    row.update(_judge_shares(totals, judged, key, None))
    return row


def compute_step_cost(window: WindowSummary) -> Row:
    """Key: ``cost/step_cost``: the step's train executor + priced judge cost, with the cost of earlier
    attempts of the same step that raised; omitted when nothing in the step carried a cost (no executor
    run, no priced judge request)."""
    cost, spent = window.spend
    carried_cost, carried_spent = window.carried_cost
    if not (spent or carried_spent):
        return {}
    return {keys.COST_STEP: cost + carried_cost}


def compute_grpo_metrics(window: WindowSummary) -> Row:
    """Keys: ``grpo/{source}/zero_advantage_rate`` per source with groups, ``grpo/zero_advantage_rate``."""
    row: Row = {}
    all_groups = zero = 0
    for source, (groups, zero_advantage) in sorted(window.groups.items()):
        if groups > 0:
            row[keys.grpo_zero_advantage_rate(source)] = zero_advantage / groups
            all_groups += groups
            zero += zero_advantage
    if all_groups > 0:
        row[keys.grpo_zero_advantage_rate()] = zero / all_groups
    return row


def compute_judge_step_metrics(window: WindowSummary) -> Row:
    """Keys: ``judge/step_{outcome}_rate`` for each outcome, this step's evaluations only."""
    evaluations = sum(window.judge_outcomes.values())
    if evaluations <= 0:
        return {}
    return {
        keys.judge_outcome_rate(outcome, step=True): window.judge_outcomes.get(outcome, 0) / evaluations
        for outcome in sc.JUDGE_OUTCOMES
    }


def compute_val_metrics(window: WindowSummary) -> Row:
    """One validation pass.

    Keys: ``val/accuracy``, ``val/avg_correctness``, ``val/success_rate`` and ``val/avg_cost`` (over the
    pass's executor runs; omitted without one), and per source ``val/{source}/accuracy``,
    ``val/{source}/count``, ``val/{source}/avg_cost`` (omitted for a source without an executor run).
    Empty when the pass scored no sample.
    """
    by_source = _by(_scored(window.samples), 0)
    n = sum(v.samples for v in by_source.values())
    if n == 0:
        return {}
    row: Row = {
        keys.VAL_ACCURACY: _pct(sum(v.correct for v in by_source.values()), n),
        keys.VAL_AVG_CORRECTNESS: sum(v.correctness_sum for v in by_source.values()) / n,
    }
    runs = ExecStats()
    for stats in window.executions.values():
        runs.merge(stats)
    if runs.runs > 0:
        row[keys.VAL_SUCCESS_RATE] = _pct(runs.ok, runs.runs)
        row[keys.VAL_AVG_COST] = runs.cost / runs.runs
    for source, v in by_source.items():
        row[keys.val("accuracy", source)] = _pct(v.correct, v.samples)
        row[keys.val("count", source)] = int(v.samples)
        per_run = _per_run(window.executions.get(source))
        if per_run is not None:
            row[keys.val("avg_cost", source)] = per_run
    return row


# --- the run's cumulative figures -----------------------------------------------------------------
def compute_judge_metrics(run: RunSnapshot) -> Row:
    """Judge evaluations since the run started; empty until the first one.

    Keys: ``judge/total_calls``, ``judge/{outcome}_rate`` for each outcome,
    ``judge/correct_predictions``, ``judge/incorrect_predictions``, ``judge/correct_ratio``
    (once a verdict was read), ``judge/{source}_success_rate``, ``judge/latency_p50_s``,
    ``judge/latency_p95_s``, ``judge/input_tokens``, ``judge/output_tokens``.
    """
    evaluations = sum(run.judge_outcomes.values())
    if evaluations <= 0:
        return {}
    row: Row = {keys.JUDGE_TOTAL_CALLS: int(evaluations)}
    for outcome in sc.JUDGE_OUTCOMES:
        row[keys.judge_outcome_rate(outcome)] = run.judge_outcomes.get(outcome, 0) / evaluations
    correct = run.judge_verdicts.get(sc.VERDICT_CORRECT, 0)
    incorrect = run.judge_verdicts.get(sc.VERDICT_INCORRECT, 0)
    row[keys.JUDGE_CORRECT_PREDICTIONS] = int(correct)
    row[keys.JUDGE_INCORRECT_PREDICTIONS] = int(incorrect)
    if correct + incorrect > 0:
        row[keys.JUDGE_CORRECT_RATIO] = correct / (correct + incorrect)
    for source, (evals, success) in sorted(run.judge_by_source.items()):
        if evals > 0:
            row[keys.judge_source_success_rate(source)] = success / evals
    row.update(_latency_metrics(run.judge_latency, keys.judge_latency))
    for kind in keys.JUDGE_TOKEN_KINDS:
        if kind in run.judge_tokens:
            row[keys.judge_tokens(kind)] = int(run.judge_tokens[kind])
    return row


def compute_cost_metrics(run: RunSnapshot) -> Row:
    """Cost since the run started, all splits.

    Keys: ``cost/total_cost``, ``cost/executor_calls``, ``cost/avg_cost_per_sample`` (once an
    executor ran); ``cost/judge_calls``, ``cost/judge_cost``, ``cost/invalid_cost_count``
    (once an executor ran or a judge request was made); ``cost/cost_per_correct`` (once a train
    sample was correct and something in the run carried a cost).
    """
    row: Row = {}
    if run.executor_runs > 0:
        row[keys.COST_TOTAL] = run.executor_cost
        row[keys.COST_EXECUTOR_CALLS] = int(run.executor_runs)
        row[keys.COST_AVG_PER_SAMPLE] = run.executor_cost / run.executor_runs
    if run.executor_runs > 0 or run.judge_requests > 0:
        row[keys.COST_JUDGE_CALLS] = int(run.judge_requests)
        row[keys.COST_JUDGE_COST] = run.judge_cost
        row[keys.COST_INVALID_COUNT] = int(run.invalid_costs)
    if run.train_correct > 0 and (run.executor_runs > 0 or run.train_cost > 0):
        row[keys.COST_PER_CORRECT_TOTAL] = run.train_cost / run.train_correct
    return row


def compute_executor_metrics(run: RunSnapshot) -> Row:
    """Executor runs since the run started.

    Keys: ``executor/latency_p50_s``, ``executor/latency_p95_s`` (once an executor ran),
    ``executor/llm_requests`` (once an executor ran or made an LLM request).
    """
    row: Row = {}
    if run.executor_runs > 0:
        row.update(_latency_metrics(run.executor_latency, keys.executor_latency))
    if run.executor_runs > 0 or run.executor_llm_requests > 0:
        row[keys.EXECUTOR_LLM_REQUESTS] = int(run.executor_llm_requests)
    return row


def compute_exporter_metrics(health: Mapping[str, int]) -> Row:
    """Keys: ``exporter/{event}`` for each health count (rows_written, rows_dropped, export_errors, ...)."""
    return {keys.exporter(event): int(value) for event, value in sorted(health.items())}


def window_row(window: WindowSummary, health: Mapping[str, int]) -> WindowRow:
    """The row of a closed window, from its summary alone.

    An empty :class:`WindowRow` for a step that raised (its samples are in no row; its cost and
    judge figures are in the run totals, so later rows show them) and for a validation pass
    with no samples. ``health`` is the exporter-health counts including this row.
    """
    if not window.ok:
        return WindowRow()
    row: Row = {keys.STEP: int(window.step)}
    sources: tuple[SourceFigures, ...] = ()
    run = window.run
    # The judge shares appear from the run's first judge evaluation (or first sample a judge scored).
    judged = sum(run.judge_outcomes.values()) > 0 or run.judged_samples > 0
    if window.split == sc.SPLIT_TRAIN:
        sources = compute_source_figures(window)
        row.update(compute_train_metrics(window))
        row.update(compute_dataset_metrics(sources))
        row.update(compute_grpo_metrics(window))
        row.update(compute_judge_step_metrics(window))
        row.update(compute_integrity_metrics(window, judged))
        row.update(compute_step_cost(window))
    else:
        validation = compute_val_metrics(window)
        if not validation:
            return WindowRow()
        row.update(validation)
        row.update(compute_integrity_metrics(window, judged))
    row.update(compute_judge_metrics(run))
    row.update(compute_cost_metrics(run))
    row.update(compute_executor_metrics(run))
    row.update(compute_exporter_metrics(health))
    return WindowRow(row, sources)
