"""The run's cumulative totals: what every closed window added, and every judge and executor event.

One :class:`RunTotals` per recorder, changed only under the recorder's lock. Two readers:
the observable instruments of :mod:`otel_grpo.recording.instruments` (OTLP, the Prometheus
endpoint, any reader of yours: CUMULATIVE), and :meth:`RunTotals.snapshot`, the
:class:`~otel_grpo.summary.RunSnapshot` a closing window hands to the WandB writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from otel_grpo import semconv
from otel_grpo.recording.histogram import BucketHistogram, merged_buckets
from otel_grpo.recording.stats import SeriesKey, Window
from otel_grpo.summary import SCORER_COUNT, ExecStats, RunSnapshot, SampleStats

_JUDGED = tuple(semconv.SCORERS.index(s) for s in (semconv.SCORED_BY_JUDGE, semconv.SCORED_BY_JUDGE_FAILED))

EvaluationKey = tuple[str, str, str, str, str, str]
"""(split, source, problem type, outcome, verdict label, error type or "") of a judge evaluation."""
RequestKey = tuple[str, str, str]
"""(split, source, error type or "") of a judge request or an executor LLM request."""


@dataclass
class JudgeTotals:
    """Judge evaluations, judge requests and executor LLM requests since the run started."""

    evaluations: dict[EvaluationKey, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)
    verdicts: dict[str, int] = field(default_factory=dict)
    by_source: dict[str, list[int]] = field(default_factory=dict)  # source -> [evaluations, successes]
    requests: dict[RequestKey, int] = field(default_factory=dict)
    request_count: int = 0
    cost: dict[tuple[str, str], float] = field(default_factory=dict)  # (split, source) -> USD
    cost_total: float = 0.0
    tokens: dict[str, int] = field(default_factory=dict)  # input | output -> tokens
    llm_requests: dict[RequestKey, int] = field(default_factory=dict)
    llm_request_count: int = 0

    def add_evaluation(self, key: EvaluationKey) -> None:
        """Count one judge evaluation."""
        self.evaluations[key] = self.evaluations.get(key, 0) + 1
        _, source, _, outcome, verdict, _ = key
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1
        if verdict != semconv.VERDICT_NONE:
            self.verdicts[verdict] = self.verdicts.get(verdict, 0) + 1
        counts = self.by_source.get(source)
        if counts is None:
            counts = self.by_source[source] = [0, 0]
        counts[0] += 1
        counts[1] += outcome == semconv.OUTCOME_SUCCESS

    def add_request(self, key: RequestKey, tokens_in: int, tokens_out: int, cost: float) -> None:
        """Count one judge request, its tokens and its priced cost."""
        self.requests[key] = self.requests.get(key, 0) + 1
        self.request_count += 1
        if tokens_in:
            self.tokens["input"] = self.tokens.get("input", 0) + tokens_in
        if tokens_out:
            self.tokens["output"] = self.tokens.get("output", 0) + tokens_out
        if cost > 0:
            where = key[:2]
            self.cost[where] = self.cost.get(where, 0.0) + cost
            self.cost_total += cost

    def add_llm_request(self, key: RequestKey) -> None:
        """Count one executor LLM request."""
        self.llm_requests[key] = self.llm_requests.get(key, 0) + 1
        self.llm_request_count += 1


@dataclass
class RunTotals:
    """Everything the run has recorded, cumulative, all splits."""

    executor_duration: BucketHistogram
    judge_duration: BucketHistogram
    samples: dict[SeriesKey, SampleStats] = field(default_factory=dict)
    executions: dict[SeriesKey, ExecStats] = field(default_factory=dict)
    groups: dict[tuple[str, str], list[int]] = field(default_factory=dict)  # (split, source) -> [groups, zero]
    judge: JudgeTotals = field(default_factory=JudgeTotals)
    steps: list[int] = field(default_factory=lambda: [0, 0, 0])  # completed, failed, validation passes
    last_step: int | None = None
    last_extremes: dict[SeriesKey, tuple[float, float]] = field(default_factory=dict)  # last window per split
    last_scalars: dict[str, float] = field(default_factory=dict)
    executor_runs: int = 0
    executor_cost: float = 0.0
    invalid_costs: int = 0
    train_cost: float = 0.0
    train_correct: int = 0
    judged_samples: int = 0

    def add_executions(self, split: str, window: Window) -> None:
        """The executor runs of a closing window (spent whether or not its step raised)."""
        for (source, ptype), runs in window.executions.items():
            key = (split, source, ptype)
            stats = self.executions.get(key)
            if stats is None:
                stats = self.executions[key] = ExecStats()
            stats.merge(runs)
            self.executor_runs += runs.runs
            self.executor_cost += runs.cost
            self.invalid_costs += runs.invalid_cost
            if split == semconv.SPLIT_TRAIN:
                self.train_cost += runs.cost

    def add_samples(self, split: str, window: Window) -> None:
        """The samples, groups and scalars of a window that closed normally."""
        self.last_extremes = {k: v for k, v in self.last_extremes.items() if k[0] != split}
        for (source, ptype), stats in window.samples.items():
            key = (split, source, ptype)
            self.samples.setdefault(key, SampleStats()).merge(stats)
            if stats.samples:
                self.last_extremes[key] = (stats.reward_min, stats.reward_max)
            self.judged_samples += sum(stats.by_scorer[i] for i in _JUDGED)
            if split == semconv.SPLIT_TRAIN:
                self.train_correct += stats.correct
        for source, (groups, zero) in window.group_counts.items():
            counts = self.groups.setdefault((split, source), [0, 0])
            counts[0] += groups
            counts[1] += zero
        if split == semconv.SPLIT_TRAIN:
            self.last_scalars = dict(window.scalars)

    def count_window(self, split: str, step: int, ok: bool) -> None:
        """One more completed (or failed) training step, or validation pass."""
        if split == semconv.SPLIT_TRAIN:
            self.last_step = step
            self.steps[0 if ok else 1] += 1
        elif ok:
            self.steps[2] += 1

    def snapshot(self) -> RunSnapshot:
        """The cumulative figures the WandB row needs, copied."""
        judge = self.judge
        return RunSnapshot(
            judge_outcomes=dict(judge.outcomes),
            judge_verdicts=dict(judge.verdicts),
            judge_by_source={source: (n, ok) for source, (n, ok) in judge.by_source.items()},
            judge_requests=judge.request_count,
            judge_cost=judge.cost_total,
            judge_tokens=dict(judge.tokens),
            judge_latency=merged_buckets(self.judge_duration),
            executor_latency=merged_buckets(self.executor_duration),
            executor_runs=self.executor_runs,
            executor_cost=self.executor_cost,
            invalid_costs=self.invalid_costs,
            executor_llm_requests=judge.llm_request_count,
            train_cost=self.train_cost,
            train_correct=self.train_correct,
            judged_samples=self.judged_samples,
        )


__all__ = ["EvaluationKey", "JudgeTotals", "RequestKey", "RunTotals", "SCORER_COUNT"]
