"""The accumulators: sums over samples and executor runs, and the window a step or validation fills."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

SeriesKey = tuple[str, str, str]  # (split, source, problem_type)
SCORER_COUNT = 4  # len(semconv.SCORERS): rule, judge, judge_failed, not_scored
ExecKey = tuple[str, str, str, str]  # (split, source, problem_type, success "true"|"false")


@dataclass(slots=True)
class SampleStats:
    """Sums over scored samples of one series."""

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


@dataclass(slots=True)
class ExecStats:
    """Executor runs and cost of one series."""

    runs: int = 0
    cost: float = 0.0
    invalid_cost: int = 0


@dataclass(eq=False)
class Window:
    """One training step or one validation pass."""

    split: str
    step: int
    samples: dict[tuple[str, str], SampleStats] = field(default_factory=dict)
    groups: dict[Any, list] = field(default_factory=dict)  # key -> [source, first reward, all equal, n]
    group_counts: dict[str, list[int]] = field(default_factory=dict)  # source -> [groups of >= 2, zero adv]
    scalars: dict[str, float] = field(default_factory=dict)
    pending: set = field(default_factory=set)  # executed, not yet scored samples
    by_problem: dict[Any, list] = field(default_factory=dict)  # problem key -> pending samples, in order
    executions: dict[ExecKey, ExecStats] = field(default_factory=dict)  # committed at close
    sample_rows: list = field(default_factory=list)  # the first ``max_sample_rows`` samples, for tables
    started: float = field(default_factory=time.monotonic)
    closed: bool = False
