"""The hot path: what one sample, executor run and judge evaluation records.

Per-sample figures are pre-aggregated into plain Python accumulators under one lock
(about a microsecond per sample) and published through *observable* instruments,
which the SDK reads only when a reader collects. Slow events (executor runs, judge
evaluations and requests) also go to SDK histograms/counters, where ~10 µs is noise.

Windows: a training step and a validation pass each open a :class:`Window`. Samples
land in the window and are committed to the cumulative accumulators when it closes;
a step that raised is discarded, so its samples never leak into the next row.
A step's executor runs are committed when it closes too, whether or not it raised
(their cost was spent); judge evaluations and requests go to SDK counters at once.
The committed totals and the instruments live in :mod:`otel_grpo.recording.published`,
the accumulators in :mod:`otel_grpo.recording.stats`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry.metrics import Meter

from otel_grpo import semconv
from otel_grpo.recording.context import (
    SCORER_NOT_SCORED,
    SCORER_RULE,
    LabelGuard,
    SampleState,
    current_sample,
    current_split_var,
    current_window_var,
)
from otel_grpo.recording.published import PublishedTotals
from otel_grpo.recording.stats import ExecStats, SampleStats, Window
from otel_grpo.recording.values import MAX_MAGNITUDE, to_bool, to_cost, to_float, to_reward

logger = logging.getLogger(__name__)

_SCORER_INDEX = {name: index for index, name in enumerate(semconv.SCORERS)}

_MAX = MAX_MAGNITUDE

HEALTH_LATE_REWARDS = "late_rewards"
"""Exporter-health count: rewards for samples already counted (their step closed before the reward came)."""
HEALTH_LATE_SAMPLES = "late_samples"
"""Exporter-health count: samples recorded late (inside :meth:`Recorder.late_records`): in no row."""

_late_var: ContextVar[bool] = ContextVar("otel_grpo_late_records", default=False)


class Recorder(PublishedTotals):
    """Pre-aggregating recorder bound to one :class:`~opentelemetry.metrics.Meter`."""

    def __init__(
        self,
        meter: Meter,
        *,
        accuracy_threshold: float = 0.9,
        labels: LabelGuard | None = None,
        judge_prices: tuple[float, float] = (0.0, 0.0),
        health: Callable[[], dict[str, int]] | None = None,
        max_sample_rows: int = 16,
        preaggregate: bool = False,
        count: Callable[[str, int], None] | None = None,
    ) -> None:
        self.threshold = accuracy_threshold
        self._count = count
        self.max_sample_rows = max_sample_rows
        self.labels = labels or LabelGuard()
        self._prices = judge_prices
        self._global_windows: list[Window] = []  # open windows, innermost last (thread fallback)
        super().__init__(meter, health, preaggregate=preaggregate)

    # --- windows -------------------------------------------------------------------------
    def open_window(self, split: str, step: int | None = None) -> tuple[Window, tuple]:
        """Open a step (``train``) or validation (``val``) window in this context."""
        if step is None:
            step = self._default_step()
        window = Window(split=split, step=int(step))
        with self._lock:
            self._global_windows.append(window)
        tokens = (current_window_var().set(window), current_split_var().set(split))
        return window, tokens

    def _default_step(self) -> int:
        """The step a window without a number belongs to: the training step running now, else the latest."""
        train = self._open_train_window()
        if train is not None:
            return train.step
        return self._last_step if self._last_step is not None else 0

    def _open_train_window(self) -> Window | None:
        """The innermost open training-step window of this context, else of the process."""
        window = current_window_var().get()
        if window is not None and not window.closed and window.split == semconv.SPLIT_TRAIN:
            return window
        with self._lock:
            trains = [w for w in self._global_windows if w.split == semconv.SPLIT_TRAIN and not w.closed]
        return trains[-1] if trains else None

    def close_window(self, window: Window, tokens: tuple | None, ok: bool) -> None:
        """Close ``window``: commit its samples when ``ok``, discard them otherwise."""
        if tokens is not None:
            for var, token in zip((current_window_var(), current_split_var()), tokens, strict=False):
                try:
                    var.reset(token)
                except ValueError:
                    var.set(None)
        with self._lock:
            if window.closed:
                return
            window.closed = True
            try:
                self._global_windows.remove(window)
            except ValueError:
                pass
            pending = list(window.pending)
        for state in pending:  # executed but never scored: an incorrect sample
            self._finish_unscored(state, window)
        with self._lock:
            for key, staged in window.executions.items():  # spent whether or not the step raised
                stats = self._exec.get(key)
                if stats is None:
                    stats = self._exec[key] = ExecStats()
                stats.runs += staged.runs
                stats.cost += staged.cost
                stats.invalid_cost += staged.invalid_cost
            window.executions = {}
            if window.split == semconv.SPLIT_TRAIN:
                self._last_step = window.step
                if ok:
                    self._steps[0] += 1
                else:
                    self._steps[1] += 1
            elif ok:
                self._steps[2] += 1
            if not ok:
                return
            for (source, ptype), sample_stats in window.samples.items():
                self._samples.setdefault((window.split, source, ptype), SampleStats()).merge(sample_stats)
            self._sealed_minmax = {k: v for k, v in self._sealed_minmax.items() if k[0] != window.split}
            for (source, ptype), sample_stats in window.samples.items():
                if sample_stats.samples:
                    self._sealed_minmax[(window.split, source, ptype)] = (
                        sample_stats.reward_min,
                        sample_stats.reward_max,
                    )
            for source, (groups, zero) in window.group_counts.items():
                counts = self._groups.setdefault((window.split, source), [0, 0])
                counts[0] += groups
                counts[1] += zero
            if window.split == semconv.SPLIT_TRAIN:
                self._sealed_scalars = dict(window.scalars)

    def current_window(self) -> Window | None:
        """The innermost open window of this context, else the process-wide one."""
        window = current_window_var().get()
        if window is not None and not window.closed:
            return window
        windows = self._global_windows
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
        """Number of the most recent training step window."""
        return self._last_step

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

    # --- labels --------------------------------------------------------------------------
    def resolve_labels(self, source: Any = None, problem_type: Any = None) -> tuple[str, str]:
        """Labels for an event: the current sample's, else the given ones, normalised."""
        state = current_sample()
        if state is not None:
            return state.source, state.problem_type
        src = self.labels.source(source)
        return src, self.labels.problem_type(problem_type, src)

    def new_sample(self, source: Any = None, problem_type: Any = None, group: Any = None) -> SampleState:
        """A sample state with normalised labels (not yet made current)."""
        src = self.labels.source(source)
        return SampleState(source=src, problem_type=self.labels.problem_type(problem_type, src), group=group)

    # --- recording -----------------------------------------------------------------------
    def record_sample(
        self,
        reward: Any,
        correctness: Any = None,
        *,
        source: Any = None,
        problem_type: Any = None,
        group: Any = None,
        state: SampleState | None = None,
    ) -> None:
        """Record one scored sample (correctness defaults to the reward)."""
        if _late_var.get():
            self._count_health(HEALTH_LATE_SAMPLES)
            return
        reward_value, correctness_value = self._scores(reward, correctness)
        if state is None:
            state = current_sample()
        if state is not None:
            if not self._claim(state):
                if not state.executed or state.execution_ok:  # a failed execution was counted, reward 0
                    self._count_health(HEALTH_LATE_REWARDS)
                return
            src, ptype = state.source, state.problem_type
            group = group if group is not None else state.group
        else:
            src = self.labels.source(source)
            ptype = self.labels.problem_type(problem_type, src)
        window = (state.window if state is not None and state.window is not None else None) or self.current_window()
        scorer = state.scorer() if state is not None else SCORER_RULE
        self._add_sample(window, src, ptype, reward_value, correctness_value, group, state, scorer)

    def _scores(self, reward: Any, correctness: Any) -> tuple[float, float]:
        """(reward, correctness) as numbers; an unreadable reward makes an incorrect sample with reward 0."""
        if type(reward) is float and -_MAX <= reward <= _MAX:
            reward_value, invalid = reward, False  # the common case, without a call
        else:
            reward_value, invalid = to_reward(reward, self.invalid)
        if correctness is None or invalid:
            return reward_value, 0.0 if invalid else reward_value
        if type(correctness) is float and -_MAX <= correctness <= _MAX:
            return reward_value, correctness
        return reward_value, to_reward(correctness, self.invalid, "correctness")[0]

    def record_workflow(
        self,
        source: Any,
        reward: Any,
        correctness: Any = None,
        *,
        problem_type: Any = None,
        cost: Any = None,
        success: Any = True,
        duration_s: Any = None,
        group: Any = None,
        scored_by: str = semconv.SCORED_BY_RULE,
        executed: bool | None = None,
    ) -> None:
        """One executed workflow in one call: its executor run and its score.

        An executor run is counted when ``executed`` is true, or (``executed`` None) when
        ``cost`` or ``duration_s`` is given or ``success`` is false; then a missing cost is
        an invalid cost, as in :meth:`record_executor_run`.

        The same figures as ``with sample(): record_executor_run(); record_sample()``, for loops
        that have everything at hand. A failed execution is an incorrect sample with reward 0,
        not scored; ``scored_by`` says what scored the others (``rule``, ``judge``, ``judge_failed``).
        """
        labels = self.labels
        src = labels.source(source)
        ptype = labels.problem_type(problem_type, src)
        if _late_var.get():
            self._record_late_workflow(src, ptype, cost, success, duration_s, executed)
            return
        ok_flag = success if success is True or success is False else to_bool(success)
        if ok_flag is None:
            self.invalid.report("success flag", success)
            ok_flag = True
        if executed is None:
            executed = cost is not None or duration_s is not None or not ok_flag
        if ok_flag:
            reward_value, correctness_value = self._scores(reward, correctness)
            scorer = _SCORER_INDEX.get(scored_by)
            if scorer is None or scorer == SCORER_NOT_SCORED:
                self.invalid.report("scored_by", scored_by)
                scorer = SCORER_RULE
        else:
            reward_value = correctness_value = 0.0
            scorer = SCORER_NOT_SCORED
        window = self.current_window()
        key = None
        if executed:
            if type(cost) is float and 0.0 <= cost <= _MAX:
                cost_value, invalid_cost = cost, False
            else:
                cost_value, invalid_cost = to_cost(cost, self.invalid)
            split = window.split if window is not None else (current_split_var().get() or semconv.SPLIT_TRAIN)
            key = (split, src, ptype, "true" if ok_flag else "false")
        correct = correctness_value >= self.threshold
        with self._lock:  # the run and the sample together, under one lock: a close cannot come between
            open_window = window is not None and not window.closed
            if key is not None:
                runs = window.executions if open_window else self._exec  # type: ignore[union-attr]
                exec_stats = runs.get(key)
                if exec_stats is None:
                    exec_stats = runs[key] = ExecStats()
                exec_stats.runs += 1
                exec_stats.cost += cost_value
                exec_stats.invalid_cost += invalid_cost
            if open_window:
                stats = window.samples.get((src, ptype))  # type: ignore[union-attr]
                if stats is None:
                    stats = window.samples[(src, ptype)] = SampleStats()  # type: ignore[union-attr]
                stats.add(reward_value, correctness_value, correct, scorer)
                rows = window.sample_rows  # type: ignore[union-attr]
                if len(rows) < self.max_sample_rows:
                    rows.append((src, ptype, reward_value, correctness_value, None, None, None))
                if group is not None:
                    self._count_group(window, group, src, reward_value)  # type: ignore[arg-type]
        if not open_window:  # outside any window: committed straight away
            self._add_sample(window, src, ptype, reward_value, correctness_value, group, None, scorer)
        if key is not None and duration_s is not None:
            seconds = self._duration(duration_s)
            if seconds is not None:
                self._exec_duration.record(seconds, key[:3])

    def _record_late_workflow(
        self, source: str, ptype: str, cost: Any, success: Any, duration_s: Any, executed: bool | None
    ) -> None:
        """A workflow recorded late: its executor run counts (cumulative), its sample goes into no row."""
        self._count_health(HEALTH_LATE_SAMPLES)
        failed = success is False or to_bool(success) is False
        if executed or (executed is None and (cost is not None or duration_s is not None or failed)):
            self.record_executor_run(cost, duration_s, not failed, source=source, problem_type=ptype)

    def _add_sample(
        self,
        window: Window | None,
        source: str,
        ptype: str,
        reward: float,
        correctness: float,
        group: Any,
        state: SampleState | None = None,
        scorer: int = SCORER_RULE,
    ) -> None:
        correct = correctness >= self.threshold
        with self._lock:
            if window is None or window.closed:  # outside any window: commit straight away
                key = (self.current_split(), source, ptype)
                stats = self._samples.get(key)
                if stats is None:
                    stats = self._samples[key] = SampleStats()
                stats.add(reward, correctness, correct, scorer)
                return
            stats = window.samples.get((source, ptype))
            if stats is None:
                stats = window.samples[(source, ptype)] = SampleStats()
            stats.add(reward, correctness, correct, scorer)
            if state is not None and state.executed and state in window.pending:
                self._unpend(window, state)
            if len(window.sample_rows) < self.max_sample_rows:
                extra = state.extra if state is not None else {}
                window.sample_rows.append(
                    (source, ptype, reward, correctness, extra.get("cost"), extra.get("judge"), extra.get("latency"))
                )
            if group is not None:
                self._count_group(window, group, source, reward)

    @staticmethod
    def _count_group(window: Window, group: Any, source: str, reward: float) -> None:
        """Count a sample of GRPO group ``group`` (call with the lock held)."""
        entry = window.groups.get(group)
        if entry is None:
            window.groups[group] = [source, reward, True, 1]
            return
        # Counts kept up to date here, so closing a window is O(sources).
        counts = window.group_counts.get(entry[0])
        if counts is None:
            counts = window.group_counts[entry[0]] = [0, 0]
        equal = entry[1] == reward
        if entry[3] == 1:
            counts[0] += 1
            counts[1] += equal
        elif entry[2] and not equal:
            counts[1] -= 1
        entry[2] = entry[2] and equal
        entry[3] += 1

    def _finish_unscored(self, state: SampleState, window: Window | None) -> None:
        if _late_var.get():
            self._count_health(HEALTH_LATE_SAMPLES)
            return
        if self._claim(state):
            self._add_sample(window, state.source, state.problem_type, 0.0, 0.0, state.group, state, SCORER_NOT_SCORED)

    def _claim(self, state: SampleState) -> bool:
        """Mark ``state`` counted; False when it already was (by its window's close, or an earlier score).

        One lock decides, so a reward racing its step's close is counted exactly once.
        """
        with self._lock:
            if state.recorded:
                return False
            state.recorded = True
            return True

    def _count_health(self, event: str, amount: int = 1) -> None:
        """Add ``amount`` to the exporter-health count ``event`` (``exporter/{event}`` in the rows)."""
        if self._count is not None:
            self._count(event, amount)

    @staticmethod
    def _unpend(window: Window, state: SampleState) -> None:
        """Take ``state`` out of the window's pending samples (call with the lock held)."""
        window.pending.discard(state)
        waiting = window.by_problem.get(state.extra.get("problem_key"))
        if waiting is not None:
            try:
                waiting.remove(state)
            except ValueError:
                pass

    def claim_pending(self, problem_key: Any, answer_key: Any = None) -> SampleState | None:
        """The executed, not yet scored sample of this window that a reward for ``problem_key`` scores.

        Pairs a reward computation with its own executor run when the two ran apart: in
        another context (a thread pool), or in a later loop that scores every execution
        of the step (two-phase scoring). Among the executions of the same problem (a GRPO
        group), the one whose answer is the reward's prediction (``answer_key``) wins,
        else the earliest. None when no execution of that problem is waiting.
        """
        window = self.current_window()
        if window is None or problem_key is None:
            return None
        with self._lock:
            waiting = [s for s in window.by_problem.get(problem_key, ()) if not s.extra.get("rewarded")]
            if not waiting:
                return None
            chosen = waiting[0]
            if answer_key is not None:
                for state in waiting:
                    if state.extra.get("answer_key") == answer_key:
                        chosen = state
                        break
            chosen.extra["rewarded"] = True
            return chosen

    def record_executor_run(
        self,
        cost: Any = 0.0,
        duration_s: Any = None,
        success: Any = True,
        *,
        source: Any = None,
        problem_type: Any = None,
    ) -> None:
        """Record one workflow execution: its cost (USD), wall time and outcome."""
        state = current_sample()
        if state is not None:
            src, ptype = state.source, state.problem_type
        else:
            src = self.labels.source(source)
            ptype = self.labels.problem_type(problem_type, src)
        late = _late_var.get()
        window = None if late else self.current_window()
        split = window.split if window is not None else (current_split_var().get() or semconv.SPLIT_TRAIN)
        value, invalid = to_cost(cost, self.invalid)
        ok_flag = success if isinstance(success, bool) else to_bool(success)
        if ok_flag is None:
            self.invalid.report("success flag", success)
            ok_flag = True  # unreadable: counted, and taken as the default (a run that worked)
        ok = "true" if ok_flag else "false"
        key = (split, src, ptype, ok)
        starts_sample = state is not None and not state.recorded and not late
        with self._lock:
            if window is not None and not window.closed:
                stats = window.executions.get(key)
                if stats is None:
                    stats = window.executions[key] = ExecStats()
            else:
                stats = self._exec.get(key)
                if stats is None:
                    stats = self._exec[key] = ExecStats()
            stats.runs += 1
            stats.cost += value
            stats.invalid_cost += invalid
            if state is not None and starts_sample:
                state.executed, state.execution_ok, state.window = True, ok_flag, window
                if ok_flag and window is not None and not window.closed:
                    window.pending.add(state)  # scored later, or counted incorrect at window close
                    problem_key = state.extra.get("problem_key")
                    if problem_key is not None:
                        window.by_problem.setdefault(problem_key, []).append(state)
        seconds = self._duration(duration_s)
        if state is not None:
            if self.max_sample_rows:
                state.extra["cost"] = value
                state.extra["latency"] = seconds
            if starts_sample and not ok_flag:  # a failed execution: incorrect, reward 0
                self._finish_unscored(state, window)
        if seconds is not None:
            self._exec_duration.record(seconds, (split, src, ok))

    def _duration(self, raw: Any) -> float | None:
        """A duration in seconds, or None (an unreadable or negative one is counted invalid)."""
        if raw is None:
            return None
        seconds = to_float(raw)
        if seconds is None or seconds < 0:
            self.invalid.report("duration", raw)
            return None
        return seconds

    def record_judge_evaluation(
        self,
        outcome: str,
        verdict: Any = None,
        duration_s: Any = None,
        *,
        error_type: str | None = None,
        source: Any = None,
        problem_type: Any = None,
    ) -> None:
        """Record one judge evaluation ending in ``success``, ``parse_failure`` or ``api_failure``."""
        if outcome not in semconv.JUDGE_OUTCOMES:
            self.invalid.report("judge outcome", outcome)
            outcome = semconv.OUTCOME_API_FAILURE
            error_type = error_type or semconv.ERROR_OTHER
        src, ptype = self.resolve_labels(source, problem_type)
        split = self.current_split()
        if verdict is not None and verdict is not True and verdict is not False:
            readable = to_bool(verdict)
            if readable is None:
                self.invalid.report("judge verdict", verdict)
            verdict = readable
        if outcome == semconv.OUTCOME_SUCCESS and verdict is not None:
            verdict_label = semconv.VERDICT_CORRECT if verdict else semconv.VERDICT_INCORRECT
        else:
            verdict_label = semconv.VERDICT_NONE
        attrs = {
            semconv.ATTR_SPLIT: split,
            semconv.ATTR_SOURCE: src,
            semconv.ATTR_PROBLEM_TYPE: ptype,
            semconv.ATTR_JUDGE_OUTCOME: outcome,
            semconv.ATTR_JUDGE_VERDICT: verdict_label,
        }
        if outcome == semconv.OUTCOME_API_FAILURE:
            attrs[semconv.ATTR_ERROR_TYPE] = error_type or semconv.ERROR_OTHER
        self._judge_evals.add(1, attrs)
        state = current_sample()
        if state is not None:
            state.extra["judge"] = outcome
            state.judge_evaluations += 1
            if outcome == semconv.OUTCOME_SUCCESS:
                state.judge_succeeded = True
        seconds = self._duration(duration_s)
        if seconds is not None:
            self._judge_duration.record(
                seconds, {semconv.ATTR_SPLIT: split, semconv.ATTR_SOURCE: src, semconv.ATTR_JUDGE_OUTCOME: outcome}
            )

    def record_judge_request(
        self, *, error_type: str | None = None, input_tokens: Any = None, output_tokens: Any = None, source: Any = None
    ) -> None:
        """Record one HTTP request to the judge endpoint and price its tokens."""
        src, _ = self.resolve_labels(source, None)
        attrs = {semconv.ATTR_SPLIT: self.current_split(), semconv.ATTR_SOURCE: src}
        if error_type:
            attrs = {**attrs, semconv.ATTR_ERROR_TYPE: error_type}
        self._judge_requests.add(1, attrs)
        price_in, price_out = self._prices
        tokens_in, tokens_out = self._tokens(input_tokens), self._tokens(output_tokens)
        cost = (tokens_in * price_in + tokens_out * price_out) / 1e6
        if cost > 0:
            self._judge_cost.add(cost, {semconv.ATTR_SPLIT: attrs[semconv.ATTR_SPLIT], semconv.ATTR_SOURCE: src})

    def _tokens(self, raw: Any) -> float:
        """A token count (0 when absent; an unreadable or negative one is counted invalid)."""
        if raw is None:
            return 0.0
        value = to_float(raw)
        if value is None or value < 0:
            self.invalid.report("token count", raw)
            return 0.0
        return value

    def record_executor_llm_request(self, *, error_type: str | None = None, source: Any = None) -> None:
        """Record one GenAI HTTP request made inside an executor run (not a judge request)."""
        src, _ = self.resolve_labels(source, None)
        attrs = {semconv.ATTR_SPLIT: self.current_split(), semconv.ATTR_SOURCE: src}
        if error_type:
            attrs = {**attrs, semconv.ATTR_ERROR_TYPE: error_type}
        self._executor_llm_requests.add(1, attrs)

    def record_scalars(self, values: dict[str, Any] | Iterable[tuple[str, Any]]) -> None:
        """Record trainer scalars (loss, kl_div, temperature, ...) for the current step."""
        window = self.current_window()
        if window is not None and window.split != semconv.SPLIT_TRAIN:  # scalars belong to the step
            window = self._open_train_window()
        items = values.items() if isinstance(values, dict) else values
        for name, raw in items:
            label = name if isinstance(name, str) else str(name)
            value = to_float(raw)
            if value is None:
                if raw is not None:
                    self.invalid.report(f"scalar {label:.40}", raw)
                continue
            if window is not None and not window.closed:
                window.scalars[label] = value
            else:
                with self._lock:
                    self._sealed_scalars[label] = value
