"""The open window: what a training step or validation pass gathers until it closes.

The sums themselves (:class:`~otel_grpo.summary.SampleStats`, :class:`~otel_grpo.summary.ExecStats`)
are part of the window summary contract in :mod:`otel_grpo.summary`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from otel_grpo.summary import ExecStats, SampleRow, SampleStats

SeriesKey = tuple[str, str, str]  # (split, source, problem_type)
LabelKey = tuple[str, str]  # (source, problem_type)


@dataclass(eq=False)
class Window:
    """One training step or one validation pass, open (or the records of a split between two windows)."""

    split: str
    step: int
    samples: dict[LabelKey, SampleStats] = field(default_factory=dict)
    executions: dict[LabelKey, ExecStats] = field(default_factory=dict)
    judge_outcomes: dict[str, int] = field(default_factory=dict)  # outcome -> evaluations
    judge_cost: dict[str, float] = field(default_factory=dict)  # source -> priced judge cost
    groups: dict[Any, list] = field(default_factory=dict)  # group key -> [source, first reward, all equal, n]
    group_counts: dict[str, list[int]] = field(default_factory=dict)  # source -> [groups of >= 2, zero adv]
    scalars: dict[str, float] = field(default_factory=dict)
    pending: set = field(default_factory=set)  # executed, not yet scored samples
    by_problem: dict[Any, list] = field(default_factory=dict)  # problem key -> pending samples, in order
    sample_rows: list[SampleRow] = field(default_factory=list)  # the first ``max_sample_rows`` samples
    started: float = field(default_factory=time.monotonic)
    closed: bool = False

    def add_sample(self, labels: LabelKey, reward: float, correctness: float, correct: bool, scorer: int) -> None:
        """Add one scored sample of ``labels`` (call with the recorder's lock held)."""
        stats = self.samples.get(labels)
        if stats is None:
            stats = self.samples[labels] = SampleStats()
        stats.add(reward, correctness, correct, scorer)

    def add_execution(self, labels: LabelKey, cost: float, ok: bool, invalid: bool) -> None:
        """Add one executor run of ``labels`` (call with the recorder's lock held)."""
        stats = self.executions.get(labels)
        if stats is None:
            stats = self.executions[labels] = ExecStats()
        stats.add(cost, ok, invalid)

    def add_workflow(
        self,
        labels: LabelKey,
        reward: float,
        correctness: float,
        correct: bool,
        scorer: int,
        cost: float,
        ok: bool,
        invalid: bool,
        executed: bool,
    ) -> None:
        """Add one executed workflow: its executor run (when ``executed``) and its sample (lock held)."""
        stats = self.samples.get(labels)
        if stats is None:
            stats = self.samples[labels] = SampleStats()
        stats.add(reward, correctness, correct, scorer)
        if executed:
            runs = self.executions.get(labels)
            if runs is None:
                runs = self.executions[labels] = ExecStats()
            runs.add(cost, ok, invalid)

    def count_group(self, group: Any, source: str, reward: float) -> None:
        """Count a sample of GRPO group ``group``, kept up to date so closing is O(sources) (lock held)."""
        entry = self.groups.get(group)
        if entry is None:
            self.groups[group] = [source, reward, True, 1]
            return
        counts = self.group_counts.get(entry[0])
        if counts is None:
            counts = self.group_counts[entry[0]] = [0, 0]
        equal = entry[1] == reward
        if entry[3] == 1:
            counts[0] += 1
            counts[1] += equal
        elif entry[2] and not equal:
            counts[1] -= 1
        entry[2] = entry[2] and equal
        entry[3] += 1

    def absorb(self, other: Window) -> None:
        """Take over everything ``other`` gathered (the records of this split made between two windows)."""
        for labels, stats in other.samples.items():
            self.samples.setdefault(labels, SampleStats()).merge(stats)
        for labels, runs in other.executions.items():
            self.executions.setdefault(labels, ExecStats()).merge(runs)
        for outcome, count in other.judge_outcomes.items():
            self.judge_outcomes[outcome] = self.judge_outcomes.get(outcome, 0) + count
        for source, cost in other.judge_cost.items():
            self.judge_cost[source] = self.judge_cost.get(source, 0.0) + cost
        for source, (groups, zero) in other.group_counts.items():
            counts = self.group_counts.setdefault(source, [0, 0])
            counts[0] += groups
            counts[1] += zero
        self.scalars = {**other.scalars, **self.scalars}
        self.pending |= other.pending
        for key, states in other.by_problem.items():
            self.by_problem.setdefault(key, []).extend(states)
        self.sample_rows.extend(other.sample_rows)

    def executions_by_source(self) -> dict[str, ExecStats]:
        """The window's executor runs summed per source."""
        out: dict[str, ExecStats] = {}
        for (source, _ptype), runs in self.executions.items():
            stats = out.get(source)
            if stats is None:
                stats = out[source] = ExecStats()
            stats.merge(runs)
        return out


__all__ = ["ExecStats", "LabelKey", "SampleStats", "SeriesKey", "Window"]
