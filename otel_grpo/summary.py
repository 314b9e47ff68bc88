"""The closed window: what the recorder hands to the writers when a training step or validation pass ends.

This module is the contract between recording (:mod:`otel_grpo.recording`) and export
(:mod:`otel_grpo.exporters`): plain data, no behaviour beyond summing, no imports of ours.

* :class:`SampleStats` and :class:`ExecStats` are the sums one series of samples or
  executor runs accumulates (a window's, or the run's);
* :class:`WindowSummary` is one closed window: its own sums, counts and first samples,
  and a :class:`RunSnapshot` of the run's cumulative totals taken at the same moment, under
  the recorder's lock, so every figure of a row comes from one consistent state.

A window's dictionaries are handed over as they are (the window is closed: nothing writes
to them any more) behind read-only views; the snapshot's are copies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

SCORER_COUNT = 4
"""Scorers a sample can have (``semconv.SCORERS``: rule, judge, judge_failed, not_scored)."""

Buckets = tuple[tuple[float, ...], tuple[int, ...]]
"""A histogram as (upper bounds, counts per bucket; the last bucket is above the last bound)."""

SampleRow = tuple[object, ...]
"""One sample of a window, in the order of ``keys.SAMPLE_FIELDS`` (for the per-sample table)."""


@dataclass(slots=True)
class SampleStats:
    """Sums over the scored samples of one series (a (source, problem type) of a window or of the run)."""

    samples: int = 0
    correct: int = 0
    reward_sum: float = 0.0
    correctness_sum: float = 0.0
    reward_min: float = math.inf
    reward_max: float = -math.inf
    # Samples, then correct samples, per scorer (index into semconv.SCORERS).
    by_scorer: list[int] = field(default_factory=lambda: [0] * (2 * SCORER_COUNT))

    def add(self, reward: float, correctness: float, correct: bool, scorer: int = 0) -> None:
        """Add one sample, scored by ``semconv.SCORERS[scorer]``."""
        self.samples += 1
        self.correct += correct
        by_scorer = self.by_scorer
        by_scorer[scorer] += 1
        if correct:
            by_scorer[SCORER_COUNT + scorer] += 1
        self.reward_sum += reward
        self.correctness_sum += correctness
        if reward < self.reward_min:
            self.reward_min = reward
        if reward > self.reward_max:
            self.reward_max = reward

    def merge(self, other: SampleStats) -> None:
        """Add every sample of ``other``."""
        self.samples += other.samples
        self.correct += other.correct
        self.reward_sum += other.reward_sum
        self.correctness_sum += other.correctness_sum
        self.reward_min = min(self.reward_min, other.reward_min)
        self.reward_max = max(self.reward_max, other.reward_max)
        self.by_scorer = [a + b for a, b in zip(self.by_scorer, other.by_scorer, strict=True)]

    def scored_by(self, scorer: int) -> tuple[int, int]:
        """(samples, correct samples) scored by ``semconv.SCORERS[scorer]``."""
        return self.by_scorer[scorer], self.by_scorer[SCORER_COUNT + scorer]


@dataclass(slots=True)
class ExecStats:
    """Executor runs of one series: how many, how many succeeded, their cost (USD), invalid costs."""

    runs: int = 0
    ok: int = 0
    cost: float = 0.0
    invalid_cost: int = 0

    def add(self, cost: float, ok: bool, invalid: bool) -> None:
        """Add one executor run."""
        self.runs += 1
        self.ok += ok
        self.cost += cost
        self.invalid_cost += invalid

    def merge(self, other: ExecStats) -> None:
        """Add every run of ``other``."""
        self.runs += other.runs
        self.ok += other.ok
        self.cost += other.cost
        self.invalid_cost += other.invalid_cost


@dataclass(frozen=True, slots=True)
class RunSnapshot:
    """The run's cumulative figures (all splits, since the run started) at a window's close."""

    judge_outcomes: Mapping[str, int] = field(default_factory=dict)  # outcome -> evaluations
    judge_verdicts: Mapping[str, int] = field(default_factory=dict)  # correct | incorrect -> evaluations
    judge_by_source: Mapping[str, tuple[int, int]] = field(default_factory=dict)  # source -> (evals, successes)
    judge_requests: int = 0
    judge_cost: float = 0.0
    judge_tokens: Mapping[str, int] = field(default_factory=dict)  # input | output -> tokens
    judge_latency: Buckets | None = None
    executor_latency: Buckets | None = None
    executor_runs: int = 0
    executor_cost: float = 0.0
    invalid_costs: int = 0
    executor_llm_requests: int = 0
    train_cost: float = 0.0  # train-split executor + priced judge cost, every step attempt
    train_correct: int = 0  # correct train samples of the steps that completed
    judged_samples: int = 0  # samples scored judge or judge_failed (all splits)


@dataclass(frozen=True, slots=True)
class WindowSummary:
    """One closed window (a training step or a validation pass) and the run's totals at its close."""

    split: str  # train | val
    step: int
    ok: bool  # False: the step raised; its samples are in no row and no total, its spend counts
    samples: Mapping[tuple[str, str], SampleStats]  # (source, problem type) -> the window's samples
    executions: Mapping[str, ExecStats]  # source -> the window's executor runs
    judge_outcomes: Mapping[str, int]  # outcome -> the window's judge evaluations
    judge_cost: Mapping[str, float]  # source -> the window's priced judge cost
    groups: Mapping[str, tuple[int, int]]  # source -> (GRPO groups of >= 2 samples, groups with all rewards equal)
    scalars: Mapping[str, float]  # the trainer's scalars (train windows)
    sample_rows: tuple[SampleRow, ...]  # the window's first samples
    carried_cost: tuple[float, bool]  # earlier attempts of this step that raised: (cost, anything carried a cost)
    run: RunSnapshot

    @property
    def spend(self) -> tuple[float, bool]:
        """The window's executor + priced judge cost, and whether anything in it carried a cost."""
        cost = sum(e.cost for e in self.executions.values()) + sum(self.judge_cost.values())
        runs = sum(e.runs for e in self.executions.values())
        return cost, runs > 0 or cost > 0


__all__ = ["Buckets", "ExecStats", "RunSnapshot", "SCORER_COUNT", "SampleRow", "SampleStats", "WindowSummary"]
