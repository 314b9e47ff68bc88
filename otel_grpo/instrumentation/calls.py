"""Typed calls of the trainer's roles: a training step, a validation pass, an executor run, a reward.

Each call starts (:meth:`start`), then ends with exactly one of ``stop(result)`` (it returned)
or ``fail(exc)`` (it raised), like the typed invocations of ``opentelemetry-util-genai``.
Starting one opens its window or sample and its span; ending it records what the call did.
The role wrappers (:mod:`~otel_grpo.instrumentation.roles`) start them from the arguments of
the wrapped call; the manual context managers (:mod:`~otel_grpo.instrumentation.manual`) start
them directly. The judge evaluation is in :mod:`~otel_grpo.instrumentation.judge_call`.
"""

from __future__ import annotations

import logging
import time
from contextvars import Token
from typing import Any

from otel_grpo import semconv
from otel_grpo.api import Telemetry, WindowScope
from otel_grpo.instrumentation.pairing import group_key, problem_key, reward_scores
from otel_grpo.instrumentation.wrapping import NO_SPAN, close_span, open_span, span_attributes
from otel_grpo.recording.context import (
    CALL_EXECUTOR,
    SampleState,
    current_sample,
    enter_call,
    exit_call,
    reset_sample,
    set_sample,
)

logger = logging.getLogger(__name__)


# --- windows ---------------------------------------------------------------------------------------
class StepCall:
    """One call of the training step: a step window; its scalars from the returned dict."""

    __slots__ = ("_tel", "_scope", "_scalars", "_temperature")

    def __init__(self, tel: Telemetry, scope: WindowScope, scalars: list[str], temperature: Any) -> None:
        self._tel = tel
        self._scope = scope
        self._scalars = scalars
        self._temperature = temperature

    @classmethod
    def start(cls, tel: Telemetry, step: Any, scalars: list[str], temperature: Any = None) -> StepCall:
        """Open the window of training step ``step``; ``temperature``: a getter called with the step number."""
        scope = tel.step(step)
        scope.__enter__()
        return cls(tel, scope, scalars, temperature)

    def stop(self, result: Any) -> None:
        """The step returned ``result`` (a dict whose ``scalars`` are recorded): close its window, write its row."""
        try:
            values = {n: result[n] for n in self._scalars if n in result} if isinstance(result, dict) else {}
            if callable(self._temperature) and "temperature" not in values:
                try:
                    values["temperature"] = self._temperature(self._scope.step)
                except Exception:  # noqa: BLE001 - a getter we could not call: no temperature
                    logger.debug("otel-grpo: the temperature getter failed for step %s", self._scope.step)
            if values:
                self._tel.record_scalars(values)
        finally:
            self._scope.close(True)

    def fail(self, exc: BaseException) -> None:
        """The step raised: its samples are dropped, its spend counts."""
        self._scope.close(False)


class ValidationCall:
    """One validation pass: a validation window, logged at the step during which it runs."""

    __slots__ = ("_scope",)

    def __init__(self, scope: WindowScope) -> None:
        self._scope = scope

    @classmethod
    def start(cls, tel: Telemetry) -> ValidationCall:
        """Open a validation window."""
        scope = tel.validation()
        scope.__enter__()
        return cls(scope)

    def stop(self, result: Any) -> None:
        """The pass returned: close its window, write its row."""
        self._scope.close(True)

    def fail(self, exc: BaseException) -> None:
        """The pass raised: no row."""
        self._scope.close(False)


# --- executor runs ---------------------------------------------------------------------------------
def execution_outcome(result: Any) -> tuple[Any, Any, Any]:
    """(cost, duration_s, success) from ``(answer, cost, metadata)`` and close variants."""
    cost: Any = 0.0
    metadata: Any = None
    if isinstance(result, tuple | list):
        if len(result) >= 2:
            cost = result[1]
        if len(result) >= 3:
            metadata = result[2]
    elif isinstance(result, dict):
        cost, metadata = result.get("cost", 0.0), result
    if isinstance(metadata, dict):
        return cost, metadata.get("execution_time"), metadata.get("success", True)
    return cost, None, True


class ExecutorRunCall:
    """One executor run (one workflow execution): it starts a sample, and is a GenAI caller of its own.

    The LLM requests made during it are executor LLM requests (never judge requests). It
    records its cost, wall time and success when it ends; a raise is a failed execution.
    """

    __slots__ = ("_tel", "sample", "_span", "_started", "_call_token", "_sample_token")

    def __init__(self, tel: Telemetry, sample: SampleState, span: Any, call_token: Any, sample_token: Any) -> None:
        self._tel = tel
        self.sample = sample
        self._span = span
        self._call_token = call_token
        self._sample_token = sample_token
        self._started = time.perf_counter()

    @classmethod
    def start(
        cls,
        tel: Telemetry,
        source: Any = None,
        problem_type: Any = None,
        problem: Any = None,
        *,
        sample: SampleState | None = None,
        scoped: bool = False,
    ) -> ExecutorRunCall:
        """Start a run of ``problem``: of ``sample`` when given, else of a new sample made current.

        ``scoped``: the new sample stops being current when the run ends (a ``with`` block); otherwise
        it stays current in this task, so the reward computation that follows pairs with it.
        """
        token = None
        if sample is None:
            sample = tel.recorder.new_sample(source, problem_type, group_key(problem, source))
            token = set_sample(sample)
        if problem is not None and sample.problem_key is None:
            sample.problem_key = problem_key(problem)
        span = NO_SPAN
        if tel.tracing:
            span = open_span(
                tel, "grpo.execute_workflow", lambda: span_attributes(tel, sample.source, sample.problem_type)
            )
        call_token = enter_call(CALL_EXECUTOR, sample)  # the run's sample says whose requests these are
        return cls(tel, sample, span, call_token, token if scoped else None)

    def stop(self, result: Any) -> None:
        """The run returned ``result`` (``(answer, cost, metadata)`` or a dict)."""
        exit_call(self._call_token)
        try:
            cost, duration, success = execution_outcome(result)
            if isinstance(result, tuple | list) and result:
                self.sample.answer_key = problem_key(result[0])
            if duration is None:
                duration = time.perf_counter() - self._started
            self._tel.recorder.record_executor_run(cost, duration, success)
        finally:
            if self._span is not NO_SPAN:
                close_span(self._span)
            if self._sample_token is not None:
                reset_sample(self._sample_token)

    def fail(self, exc: BaseException) -> None:
        """The run raised: a failed execution (an incorrect sample with reward 0)."""
        exit_call(self._call_token)
        try:
            self._tel.recorder.record_executor_run(0.0, time.perf_counter() - self._started, False)
        finally:
            close_span(self._span, exc)
            if self._sample_token is not None:
                reset_sample(self._sample_token)


# --- reward computations ----------------------------------------------------------------------------
def reward_from_result(result: Any) -> tuple[Any, Any]:
    """(reward, correctness) from a float, a dict or a tuple result."""
    if isinstance(result, dict):
        reward = result.get("reward", result.get("score"))
        correctness = result.get("correctness", result.get("correctness_score"))
        return reward, correctness
    if isinstance(result, tuple | list) and result:
        return result[0], (result[1] if len(result) > 1 and not isinstance(result[1], dict) else None)
    return result, None


class RewardCall:
    """One reward computation: it scores the sample its executor run started, or one of its own."""

    __slots__ = ("_tel", "sample", "_span", "_token")

    def __init__(self, tel: Telemetry, sample: SampleState, span: Any, token: Token | None) -> None:
        self._tel = tel
        self.sample = sample
        self._span = span
        self._token = token

    @classmethod
    def start(
        cls, tel: Telemetry, problem: Any, prediction: Any, source: Any = None, problem_type: Any = None
    ) -> RewardCall:
        """Find the sample a reward for (``problem``, ``prediction``) scores, and make it current."""
        recorder = tel.recorder
        current = current_sample()
        token = None
        claimed = None
        if current is not None and current.executed and not current.rewarded:
            problem_id, answer_id = problem_key(problem), problem_key(prediction)
            if reward_scores(current, recorder.current_window(), problem_id, answer_id):
                claimed = current
        if claimed is None:
            # Not the execution this context ran last: find this problem's own execution (a
            # thread pool, or a loop that scores every execution of the step after running them),
            # else a reward with no executor run: a sample of its own.
            if recorder.has_pending():
                claimed = recorder.claim_pending(problem_key(problem), problem_key(prediction))
            sample = claimed or recorder.new_sample(source, problem_type, group_key(problem, source))
            token = set_sample(sample)
        else:
            sample = claimed
        sample.rewarded = True
        if sample.source == semconv.UNKNOWN and source is not None:
            sample.source = recorder.labels.source(source)
        span = NO_SPAN
        if tel.tracing:
            span = open_span(
                tel, "grpo.compute_reward", lambda: span_attributes(tel, sample.source, sample.problem_type)
            )
        return cls(tel, sample, span, token)

    def stop(self, result: Any) -> None:
        """The computation returned ``result``: the sample's reward (and correctness)."""
        try:
            if not self.sample.recorded:
                if type(result) is float:  # the common case: a plain reward
                    self._tel.recorder.record_sample(result, state=self.sample)
                else:
                    reward, correctness = reward_from_result(result)
                    self._tel.recorder.record_sample(reward, correctness, state=self.sample)
            if self._span is not NO_SPAN:
                self._span.span.set_attribute(semconv.ATTR_SCORED_BY, semconv.SCORERS[self.sample.scorer()])
                close_span(self._span)
        finally:
            if self._token is not None:
                reset_sample(self._token)

    def fail(self, exc: BaseException) -> None:
        """The computation raised: an incorrect sample with reward 0."""
        try:
            if not self.sample.recorded:
                self._tel.recorder.record_sample(0.0, 0.0, state=self.sample)
        finally:
            close_span(self._span, exc)
            if self._token is not None:
                reset_sample(self._token)


__all__ = [
    "ExecutorRunCall",
    "RewardCall",
    "StepCall",
    "ValidationCall",
    "execution_outcome",
    "reward_from_result",
]
