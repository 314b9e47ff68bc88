"""What one record is: a sample, an executor run, a judge evaluation or request, a trainer scalar.

Every figure is read from whatever the trainer hands over (:mod:`otel_grpo.recording.values`:
never raises; an unreadable value is counted and warned about once) and added as plain sums,
under one lock, to the window it belongs to (:class:`~otel_grpo.recording.windows.WindowBook`
decides which): about a microsecond per sample, no SDK call. Judge evaluations and requests
also go straight into the run totals, so a scrape sees a judge outage at once.

A sample is one executed workflow: an executor run starts it (pending in its window until a
reward scores it), a reward computation scores it; an execution still unscored when its
window closes counts there as an incorrect sample, and a later reward for it is not counted
again (``exporter/late_rewards``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from otel_grpo import semconv
from otel_grpo.recording.context import (
    SCORER_NOT_SCORED,
    SCORER_RULE,
    SampleState,
    current_sample,
    current_split_var,
)
from otel_grpo.recording.stats import LabelKey, Window
from otel_grpo.recording.values import MAX_MAGNITUDE, to_bool, to_cost, to_float, to_reward
from otel_grpo.recording.windows import HEALTH_LATE_SAMPLES, WindowBook, is_late, late_var

logger = logging.getLogger(__name__)

_SCORER_INDEX = {name: index for index, name in enumerate(semconv.SCORERS)}
_MAX = MAX_MAGNITUDE

HEALTH_LATE_REWARDS = "late_rewards"
"""Exporter-health count: rewards for samples already counted (their step closed before the reward came)."""


class Recorder(WindowBook):
    """Samples, executor runs, judge events and scalars of one telemetry session, into its windows."""

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

    # --- samples -------------------------------------------------------------------------
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
        if late_var.get():
            self._count_health(HEALTH_LATE_SAMPLES)
            return
        if type(reward) is float and -_MAX <= reward <= _MAX and correctness is None:
            reward_value = correctness_value = reward  # the common case, without a call
        else:
            reward_value, correctness_value = self._scores(reward, correctness)
        if state is None:
            state = current_sample()
        if state is None:
            src = self.labels.source(source)
            ptype = self.labels.problem_type(problem_type, src)
            with self.lock:
                self._add_sample(self._target(), src, ptype, reward_value, correctness_value, SCORER_RULE, None, group)
            return
        with self.lock:
            if state.recorded:  # its window closed before this reward came, or it was scored already
                late = not state.executed or state.execution_ok  # a failed execution was counted, reward 0
            else:
                late = False
                state.recorded = True
                target = self._target(state.window)
                group = group if group is not None else state.group
                labels = (state.source, state.problem_type)
                self._add_sample(target, *labels, reward_value, correctness_value, state.scorer(), state, group)
                return
        if late:
            self._count_health(HEALTH_LATE_REWARDS)

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
        labels_key = (src, labels.problem_type(problem_type, src))
        ok = success if success is True or success is False else self._success(success)
        if executed is None:
            executed = cost is not None or duration_s is not None or not ok
        reward_value, correctness_value, scorer = self._workflow_score(ok, reward, correctness, scored_by)
        if not executed:
            cost_value, invalid_cost = 0.0, False
        elif type(cost) is float and 0.0 <= cost <= _MAX:
            cost_value, invalid_cost = cost, False
        else:
            cost_value, invalid_cost = self._cost(cost)
        with self.lock:  # the run and the sample together: a close cannot come between them
            window = self._target()
            if window is None:  # late: the run counts, the sample goes into no row
                if executed:
                    self._add_execution(None, labels_key, cost_value, ok, invalid_cost)
                self._add_sample(None, *labels_key, reward_value, correctness_value, scorer)
            else:
                correct = correctness_value >= self.threshold
                window.add_workflow(
                    labels_key, reward_value, correctness_value, correct, scorer, cost_value, ok, invalid_cost, executed
                )
                if len(window.sample_rows) < self.max_sample_rows:
                    window.sample_rows.append((src, labels_key[1], reward_value, correctness_value, None, None, None))
                if group is not None:
                    window.count_group(group, src, reward_value)
        if executed and duration_s is not None:
            self._record_duration(duration_s, window, src, ok)

    def _workflow_score(self, ok: bool, reward: Any, correctness: Any, scored_by: str) -> tuple[float, float, int]:
        """(reward, correctness, scorer) of a workflow: a failed execution is unscored, with reward 0."""
        if not ok:
            return 0.0, 0.0, SCORER_NOT_SCORED
        scorer = SCORER_RULE if scored_by == semconv.SCORED_BY_RULE else self._scorer(scored_by)
        if type(reward) is float and -_MAX <= reward <= _MAX:
            if correctness is None:
                return reward, reward, scorer
            if type(correctness) is float and -_MAX <= correctness <= _MAX:
                return reward, correctness, scorer
        reward_value, correctness_value = self._scores(reward, correctness)
        return reward_value, correctness_value, scorer

    def _success(self, success: Any) -> bool:
        if success is True or success is False:
            return success
        ok = to_bool(success)
        if ok is None:
            self.invalid.report("success flag", success)
            return True  # unreadable: counted, and taken as the default (a run that worked)
        return ok

    def _scorer(self, scored_by: str) -> int:
        scorer = _SCORER_INDEX.get(scored_by)
        if scorer is None or scorer == SCORER_NOT_SCORED:
            self.invalid.report("scored_by", scored_by)
            return SCORER_RULE
        return scorer

    def _cost(self, cost: Any) -> tuple[float, bool]:
        if type(cost) is float and 0.0 <= cost <= _MAX:
            return cost, False
        return to_cost(cost, self.invalid)

    def _add_execution(self, window: Window | None, labels: LabelKey, cost: float, ok: bool, invalid: bool) -> None:
        """One executor run into ``window``; late (None): straight into the run totals (lock held)."""
        if window is not None:
            window.add_execution(labels, cost, ok, invalid)
            return
        late = Window(current_split_var().get() or semconv.SPLIT_TRAIN, -1)
        late.add_execution(labels, cost, ok, invalid)
        self.totals.add_executions(late.split, late)

    def _record_duration(self, raw: Any, window: Window | None, source: str, ok: bool) -> None:
        seconds = self._duration(raw)
        if seconds is not None:
            split = window.split if window is not None else self.current_split()
            self._exec_duration.record(seconds, (split, source, "true" if ok else "false"))

    def _duration(self, raw: Any) -> float | None:
        """A duration in seconds, or None (an unreadable or negative one is counted invalid)."""
        if type(raw) is float and 0.0 <= raw <= _MAX:
            return raw
        if raw is None:
            return None
        seconds = to_float(raw)
        if seconds is None or seconds < 0:
            self.invalid.report("duration", raw)
            return None
        return seconds

    def has_pending(self) -> bool:
        """Whether the current window holds executions a reward could claim (read without the lock)."""
        window = self.current_window()
        return window is not None and bool(window.by_problem)

    def claim_pending(self, problem_key: Any, answer_key: Any = None) -> SampleState | None:
        """The executed, not yet scored sample of this window that a reward for ``problem_key`` scores.

        Pairs a reward computation with its own executor run when the two ran apart: in
        another context (a thread pool), or in a later loop that scores every execution
        of the step (two-phase scoring). Among the executions of the same problem (a GRPO
        group), the one whose answer is the reward's prediction (``answer_key``) wins,
        else the earliest. None when no execution of that problem is waiting.
        """
        if problem_key is None:
            return None
        with self.lock:
            window = self.current_window()
            if window is None:
                return None
            waiting = [s for s in window.by_problem.get(problem_key, ()) if not s.rewarded]
            if not waiting:
                return None
            chosen = next((s for s in waiting if answer_key is not None and s.answer_key == answer_key), waiting[0])
            chosen.rewarded = True
            return chosen

    # --- executor runs -------------------------------------------------------------------
    def record_executor_run(
        self,
        cost: Any = 0.0,
        duration_s: Any = None,
        success: Any = True,
        *,
        source: Any = None,
        problem_type: Any = None,
    ) -> None:
        """Record one workflow execution: its cost (USD), wall time and outcome.

        Inside a sample that has not run yet, the run starts that sample: it is pending in its
        window until a reward scores it (or the window closes: an incorrect, unscored sample).
        A failed execution is an incorrect sample with reward 0 at once.
        """
        state = current_sample()
        labels = (state.source, state.problem_type) if state is not None else self._labels(source, problem_type)
        if type(cost) is float and 0.0 <= cost <= _MAX:
            cost_value, invalid = cost, False
        else:
            cost_value, invalid = self._cost(cost)
        ok = success if success is True or success is False else self._success(success)
        seconds = None if duration_s is None else self._duration(duration_s)
        with self.lock:
            window = self._target()
            self._add_execution(window, labels, cost_value, ok, invalid)
            if state is not None and not state.recorded and not state.executed and window is not None:
                self._start_sample(state, window, ok, cost_value, seconds)
        if seconds is not None:
            split = window.split if window is not None else self.current_split()
            self._exec_duration.record(seconds, (split, labels[0], "true" if ok else "false"))

    def _labels(self, source: Any, problem_type: Any) -> LabelKey:
        src = self.labels.source(source)
        return src, self.labels.problem_type(problem_type, src)

    def _start_sample(self, state: SampleState, window: Window, ok: bool, cost: float, seconds: float | None) -> None:
        """The executor run of ``state``: pending in ``window`` until scored; failed: counted now (lock held)."""
        state.executed, state.execution_ok = True, ok
        if self.max_sample_rows:
            state.cost, state.latency = cost, seconds
        if not ok:  # a failed execution: an incorrect sample with reward 0, not scored
            state.recorded = True
            self._add_sample(window, state.source, state.problem_type, 0.0, 0.0, SCORER_NOT_SCORED, state)
            return
        state.window = window
        window.pending.add(state)
        if state.problem_key is not None:
            window.by_problem.setdefault(state.problem_key, []).append(state)

    # --- judge ---------------------------------------------------------------------------
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
            outcome, error_type = semconv.OUTCOME_API_FAILURE, error_type or semconv.ERROR_OTHER
        src, ptype = self.resolve_labels(source, problem_type)
        verdict_label = self._verdict_label(outcome, verdict)
        error = (error_type or semconv.ERROR_OTHER) if outcome == semconv.OUTCOME_API_FAILURE else ""
        with self.lock:
            window = self._target()
            split = window.split if window is not None else self.current_split()
            self.totals.judge.add_evaluation((split, src, ptype, outcome, verdict_label, error))
            if window is not None:
                window.judge_outcomes[outcome] = window.judge_outcomes.get(outcome, 0) + 1
        state = current_sample()
        if state is not None:
            state.judge_outcome = outcome
            state.judge_evaluations += 1
            state.judge_succeeded = state.judge_succeeded or outcome == semconv.OUTCOME_SUCCESS
        seconds = self._duration(duration_s)
        if seconds is not None:
            self._judge_duration.record(seconds, (split, src, outcome))

    def record_judge_latency(self, seconds: Any, *, source: Any = None, outcome: str = semconv.OUTCOME_SUCCESS) -> None:
        """One judge latency on its own, for judges scored per batch (TRL): ``judge/latency_*`` per request."""
        duration = self._duration(seconds)
        if duration is not None:
            src, _ = self.resolve_labels(source, None)
            self._judge_duration.record(duration, (self.current_split(), src, outcome))

    def _verdict_label(self, outcome: str, verdict: Any) -> str:
        if verdict is not None and verdict is not True and verdict is not False:
            readable = to_bool(verdict)
            if readable is None:
                self.invalid.report("judge verdict", verdict)
            verdict = readable
        if outcome != semconv.OUTCOME_SUCCESS or verdict is None:
            return semconv.VERDICT_NONE
        return semconv.VERDICT_CORRECT if verdict else semconv.VERDICT_INCORRECT

    def record_judge_request(
        self, *, error_type: str | None = None, input_tokens: Any = None, output_tokens: Any = None, source: Any = None
    ) -> None:
        """Record one HTTP request to the judge endpoint and price its tokens."""
        src, _ = self.resolve_labels(source, None)
        tokens_in, tokens_out = self._tokens(input_tokens), self._tokens(output_tokens)
        price_in, price_out = self._prices
        cost = (tokens_in * price_in + tokens_out * price_out) / 1e6
        with self.lock:
            window = self._target()
            split = window.split if window is not None else self.current_split()
            self.totals.judge.add_request((split, src, error_type or ""), int(tokens_in), int(tokens_out), cost)
            if cost > 0:
                if split == semconv.SPLIT_TRAIN:
                    self.totals.train_cost += cost
                if window is not None:
                    window.judge_cost[src] = window.judge_cost.get(src, 0.0) + cost

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
        with self.lock:
            window = self._target()
            split = window.split if window is not None else self.current_split()
            self.totals.judge.add_llm_request((split, src, error_type or ""))

    # --- trainer scalars -----------------------------------------------------------------
    def record_scalars(self, values: dict[str, Any] | Iterable[tuple[str, Any]]) -> None:
        """Record trainer scalars (loss, kl_div, temperature, ...) for the current training step."""
        items = values.items() if isinstance(values, dict) else values
        readable: dict[str, float] = {}
        for name, raw in items:
            label = name if isinstance(name, str) else str(name)
            value = to_float(raw)
            if value is None:
                if raw is not None:
                    self.invalid.report(f"scalar {label:.40}", raw)
                continue
            readable[label] = value
        if not readable or is_late():
            return
        with self.lock:
            window = self._open_train_window() or self._loose[semconv.SPLIT_TRAIN]
            window.scalars.update(readable)


__all__ = ["HEALTH_LATE_REWARDS", "HEALTH_LATE_SAMPLES", "Recorder"]
