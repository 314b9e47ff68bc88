"""Where records go: the open windows, the records made between windows, and closing a window.

A training step and a validation pass each open a :class:`~otel_grpo.recording.stats.Window`.
:meth:`WindowBook.close_window` adds it to the run's cumulative totals
(:mod:`otel_grpo.recording.totals`: what the OpenTelemetry readers publish) and returns a frozen
:class:`~otel_grpo.summary.WindowSummary`: the window's own sums and a snapshot of the run
totals, taken under the same lock. The WandB writer makes the row from that summary alone.

* A step that raised: its samples go into no row and no total; its executor runs, cost and
  judge figures count.
* An execution still unscored when its window closes counts there, as an incorrect sample.
* Records made while no window is open wait for the next window of their split to close
  (a thread recording between two steps), so every sample is in exactly one row.
* Records replayed inside :meth:`WindowBook.late_records` (a Ray call the trainer did not wait
  for) count toward the cumulative figures only; their samples go into no row.

What one record is and how it is read lives in :mod:`otel_grpo.recording.recorder`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import MappingProxyType
from typing import Any

from opentelemetry.metrics import NoOpMeter

from otel_grpo import semconv
from otel_grpo.recording.context import (
    SCORER_NOT_SCORED,
    LabelGuard,
    SampleState,
    current_split_var,
    current_window_var,
)
from otel_grpo.recording.histogram import AttributeHistogram
from otel_grpo.recording.instruments import Histograms
from otel_grpo.recording.stats import Window
from otel_grpo.recording.totals import RunTotals
from otel_grpo.recording.values import InvalidValueLog
from otel_grpo.summary import SampleStats, WindowSummary

_SPLITS = (semconv.SPLIT_TRAIN, semconv.SPLIT_VAL)

HEALTH_LATE_SAMPLES = "late_samples"
"""Exporter-health count: samples recorded late (inside :meth:`WindowBook.late_records`): in no row."""

Count = Callable[[str, int], None]
"""Adds to an exporter-health count: ``count(event, amount)``."""

_late_var: ContextVar[bool] = ContextVar("otel_grpo_late_records", default=False)
late_var = _late_var
"""The contextvar that is true inside :meth:`WindowBook.late_records` (read on the hot path)."""
_window_var = current_window_var()
_split_var = current_split_var()


def is_late() -> bool:
    """True inside :meth:`WindowBook.late_records`."""
    return _late_var.get()


class WindowBook:
    """The open windows of one telemetry session, the run totals, and where each record goes."""

    def __init__(
        self,
        histograms: Histograms | None = None,
        *,
        accuracy_threshold: float = 0.9,
        labels: LabelGuard | None = None,
        judge_prices: tuple[float, float] = (0.0, 0.0),
        max_sample_rows: int = 16,
        count: Count | None = None,
    ) -> None:
        self.threshold = accuracy_threshold
        self.max_sample_rows = max_sample_rows
        self.labels = labels or LabelGuard()
        self.invalid = InvalidValueLog()
        self._prices = judge_prices
        self._count = count
        if histograms is None:  # no meter: kept for the rows, published nowhere
            histograms = Histograms(NoOpMeter(semconv.METER_NAME), mirror=False)
        self.lock = threading.RLock()
        """Guards the open windows and :attr:`totals` (the instruments read the totals under it)."""
        self.totals = RunTotals(histograms.executor_duration, histograms.judge_duration)
        self._exec_duration = histograms.executor_duration
        self._judge_duration = histograms.judge_duration
        self.genai_duration: AttributeHistogram = histograms.genai_duration
        self.genai_tokens: AttributeHistogram = histograms.genai_tokens
        self._open: list[Window] = []  # open windows, innermost last (threads without a context)
        self._loose = {split: Window(split, -1) for split in _SPLITS}  # records made between windows
        self._carry: dict[int, tuple[float, bool]] = {}  # step -> spend of its attempts that raised

    # --- windows -------------------------------------------------------------------------
    def open_window(self, split: str, step: int | None = None) -> tuple[Window, tuple]:
        """Open a step (``train``) or validation (``val``) window in this context.

        A window without a number (a validation) belongs to the training step running now, in
        this context or the process, else to the latest step.
        """
        if step is None:
            step = self._default_step()
        window = Window(split=split, step=int(step))
        with self.lock:
            self._open.append(window)
        tokens = (current_window_var().set(window), current_split_var().set(split))
        return window, tokens

    def _default_step(self) -> int:
        train = self._open_train_window()
        if train is not None:
            return train.step
        last = self.totals.last_step
        return last if last is not None else 0

    def _open_train_window(self) -> Window | None:
        """The innermost open training-step window of this context, else of the process."""
        window = current_window_var().get()
        if window is not None and not window.closed and window.split == semconv.SPLIT_TRAIN:
            return window
        with self.lock:
            trains = [w for w in self._open if w.split == semconv.SPLIT_TRAIN]
        return trains[-1] if trains else None

    def close_window(self, window: Window, tokens: tuple | None, ok: bool) -> WindowSummary | None:
        """Close ``window`` and return its summary (None when it was closed already).

        ``ok`` False (the step raised): its samples go into no row and no total.
        """
        _reset_context(tokens)
        with self.lock:
            if window.closed:
                return None
            window.closed = True
            if window in self._open:
                self._open.remove(window)
            if ok:
                self._absorb_loose(window)
            self._finish_pending(window)
            return self._fold(window, ok)

    def _absorb_loose(self, window: Window) -> None:
        """Records of the window's split made while no window was open belong to it (lock held)."""
        loose = self._loose[window.split]
        if loose.samples or loose.executions or loose.judge_outcomes or loose.judge_cost or loose.pending:
            window.absorb(loose)
            loose.closed = True  # its pending samples are the window's now (finished at its close)
            self._loose[window.split] = Window(window.split, -1)
        elif loose.scalars:
            window.scalars = {**loose.scalars, **window.scalars}
            loose.scalars = {}

    def _finish_pending(self, window: Window) -> None:
        """Executions still unscored at close: incorrect samples with reward 0, not scored (lock held)."""
        for state in list(window.pending):
            if not state.recorded:
                state.recorded = True
                self._add_sample(window, state.source, state.problem_type, 0.0, 0.0, SCORER_NOT_SCORED, state)
        window.pending.clear()
        window.by_problem.clear()

    def _fold(self, window: Window, ok: bool) -> WindowSummary:
        """Add the closed window to the run totals and summarise both (lock held)."""
        split, totals = window.split, self.totals
        totals.add_executions(split, window)
        if ok:
            totals.add_samples(split, window)
        totals.count_window(split, window.step, ok)
        carried = self._carried(window, ok)
        return WindowSummary(
            split=split,
            step=window.step,
            ok=ok,
            samples=MappingProxyType(window.samples),
            executions=MappingProxyType(window.executions_by_source()),
            judge_outcomes=MappingProxyType(window.judge_outcomes),
            judge_cost=MappingProxyType(window.judge_cost),
            groups=MappingProxyType({s: (c[0], c[1]) for s, c in window.group_counts.items()}),
            scalars=MappingProxyType(window.scalars),
            sample_rows=tuple(window.sample_rows),
            carried_cost=carried,
            run=totals.snapshot(),
        )

    def _carried(self, window: Window, ok: bool) -> tuple[float, bool]:
        """The spend of earlier attempts of this training step that raised (lock held)."""
        if window.split != semconv.SPLIT_TRAIN:
            return 0.0, False
        cost = sum(e.cost for e in window.executions.values()) + sum(window.judge_cost.values())
        spent = cost > 0 or any(e.runs for e in window.executions.values())
        if not ok:  # its spend counts in the row of the step's next attempt
            before = self._carry.get(window.step, (0.0, False))
            self._carry[window.step] = (before[0] + cost, before[1] or spent)
            return 0.0, False
        carried = self._carry.pop(window.step, (0.0, False))
        for earlier in [s for s in self._carry if s < window.step]:  # attempts never retried
            del self._carry[earlier]
        return carried

    def current_window(self) -> Window | None:
        """The innermost open window of this context, else the process-wide one."""
        window = _window_var.get()
        if window is not None and not window.closed:
            return window
        windows = self._open
        return windows[-1] if windows else None

    def current_split(self) -> str:
        """``val`` inside a validation window, else ``train``."""
        split = current_split_var().get()
        if split is not None:
            return split
        window = self.current_window()
        return window.split if window is not None else semconv.SPLIT_TRAIN

    @property
    def last_step(self) -> int | None:
        """Number of the most recent training step window that closed."""
        return self.totals.last_step

    def _target(self, window: Window | None = None) -> Window | None:
        """Where a record goes now (lock held): ``window`` if open, else this context's, else the
        process's innermost open window, else the records of its split between windows; None late."""
        if _late_var.get():
            return None
        if window is not None and not window.closed:
            return window
        window = _window_var.get()
        if window is not None and not window.closed:
            return window
        windows = self._open
        if windows:
            return windows[-1]
        return self._loose[_split_var.get() or semconv.SPLIT_TRAIN]

    @contextmanager
    def late_records(self) -> Iterator[None]:
        """Record what arrives after its window closed (a Ray call the trainer did not wait for).

        Inside the block, executor runs, costs and judge evaluations and requests still count
        toward the run's cumulative figures; samples go into no row and no total (the trainer
        did not use them in their step, like the samples of a step that raised) and are
        counted in ``exporter/late_samples``.
        """
        token = _late_var.set(True)
        try:
            yield
        finally:
            _late_var.reset(token)

    def _add_sample(
        self,
        window: Window | None,
        source: str,
        ptype: str,
        reward: float,
        correctness: float,
        scorer: int,
        state: SampleState | None = None,
        group: Any = None,
    ) -> None:
        """Add one sample to ``window`` (lock held); None: late, counted in no row."""
        if window is None:
            self._count_health(HEALTH_LATE_SAMPLES)
            return
        stats = window.samples.get((source, ptype))
        if stats is None:
            stats = window.samples[(source, ptype)] = SampleStats()
        stats.add(reward, correctness, correctness >= self.threshold, scorer)
        if state is not None and state.executed and state in window.pending:
            window.pending.discard(state)
            waiting = window.by_problem.get(state.problem_key)
            if waiting is not None and state in waiting:
                waiting.remove(state)
        if len(window.sample_rows) < self.max_sample_rows:
            details = (state.cost, state.judge_outcome, state.latency) if state is not None else (None, None, None)
            window.sample_rows.append((source, ptype, reward, correctness, *details))
        if group is None and state is not None:
            group = state.group
        if group is not None:
            window.count_group(group, source, reward)

    def _count_health(self, event: str, amount: int = 1) -> None:
        """Add ``amount`` to the exporter-health count ``event`` (``exporter/{event}`` in the rows)."""
        if self._count is not None:
            self._count(event, amount)


def _reset_context(tokens: tuple | None) -> None:
    """Restore the window and split that were current before the window opened."""
    if tokens is None:
        return
    for var, token in zip((current_window_var(), current_split_var()), tokens, strict=False):
        try:
            var.reset(token)
        except ValueError:  # closed in another context than it opened in
            var.set(None)


__all__ = ["HEALTH_LATE_SAMPLES", "WindowBook", "is_late"]
