"""One judge evaluation: its HTTP attempts, its single outcome, and the parent span of its requests.

:class:`JudgeEvaluationCall` starts when the trainer's judge function is called (or a
``with otel_grpo.judge_evaluation():`` block opens). While it runs, every HTTP request made in
its context is a judge request attached to it (the innermost-call rule of
:mod:`~otel_grpo.instrumentation.llm_http.classify`). When it ends it decides its one outcome
(:func:`classify_judge_outcome`): ``success``, ``parse_failure`` or ``api_failure``.
"""

from __future__ import annotations

import re
import time
from typing import Any

from otel_grpo import semconv
from otel_grpo.api import Telemetry
from otel_grpo.faults import fault_guard
from otel_grpo.instrumentation.judge_health import judge_health, judge_location
from otel_grpo.instrumentation.wrapping import close_span, open_span, span_attributes
from otel_grpo.recording.context import (
    CALL_JUDGE,
    JudgeAttempt,
    JudgeEvaluationState,
    enter_call,
    exit_call,
    judge_evaluation_var,
)

_EVAL_COUNTERS = {
    "success": ("llm_judge_success",),
    "parse": ("llm_judge_parse_failures", "llm_judge_parse_failure"),
    "api": ("llm_judge_api_failures", "llm_judge_api_failure"),
}
_VERDICT_RE = re.compile(r"<true_false>\s*(true|false)\s*</true_false>|\b(true|false)\b", re.I)

Outcome = tuple[str, Any, "str | None"]  # (outcome, verdict, error type)


def counter_snapshot(stats: Any) -> dict[str, float] | None:
    """The trainer's own judge counters (``eval_stats``) now, by kind; None without any."""
    if not isinstance(stats, dict):
        return None
    snap: dict[str, float] = {}
    for kind, names in _EVAL_COUNTERS.items():
        for name in names:
            value = stats.get(name)
            if isinstance(value, int | float):
                snap[kind] = float(value)
                break
    return snap or None


def _from_counters(verdict: Any, before: dict, after: dict, error_type: str | None) -> Outcome | None:
    """The outcome the trainer's counters moved to during this call (success over parse over api)."""
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in _EVAL_COUNTERS}
    if delta["success"] > 0:
        return semconv.OUTCOME_SUCCESS, verdict, None
    if delta["parse"] > 0:
        return semconv.OUTCOME_PARSE_FAILURE, None, None
    if delta["api"] > 0:
        return semconv.OUTCOME_API_FAILURE, None, error_type or semconv.ERROR_OTHER
    return None


def _from_attempts(verdict: Any, attempts: list[JudgeAttempt]) -> Outcome:
    """The outcome the HTTP attempts show: the last one failing, a reply without a verdict, or success."""
    last = attempts[-1] if attempts else None
    if last is None:
        if verdict is None:
            return semconv.OUTCOME_PARSE_FAILURE, None, None
        return semconv.OUTCOME_SUCCESS, verdict, None
    if last.error_type:
        return semconv.OUTCOME_API_FAILURE, None, last.error_type
    if last.content is not None and not _VERDICT_RE.search(last.content):
        return semconv.OUTCOME_PARSE_FAILURE, None, None
    return semconv.OUTCOME_SUCCESS, verdict, None


def classify_judge_outcome(
    result: Any, exc: BaseException | None, before: dict | None, after: dict | None, attempts: list
) -> Outcome:
    """Decide the one outcome of a judge evaluation: (outcome, verdict, error_type).

    An exception is an api_failure. Otherwise the change in the trainer's own
    ``eval_stats`` counters during this call decides, success over parse failure over
    api failure (a retried evaluation ends in its last state, so rates never exceed 1).
    Without counters, the HTTP attempts observed decide: the last attempt failing is
    an api_failure, a reply with no readable verdict a parse_failure.
    """
    last_error = attempts[-1].error_type if attempts and attempts[-1].error_type else None
    if exc is not None:
        return semconv.OUTCOME_API_FAILURE, None, last_error or type(exc).__qualname__
    verdict = bool(result) if isinstance(result, bool | int) else None
    if before is not None and after is not None:
        decided = _from_counters(verdict, before, after, last_error)
        if decided is not None:
            return decided
    return _from_attempts(verdict, attempts)


def evaluation_event(outcome: str, verdict: Any, error_type: str | None) -> dict[str, Any]:
    """Attributes of the ``gen_ai.evaluation.result`` event of one judge evaluation.

    Score label ``correct``/``incorrect`` with score value 1/0 when a verdict was read;
    ``failed`` with ``error.type`` (the api failure's kind, or ``parse_failure``) otherwise.
    """
    attrs: dict[str, Any] = {semconv.GEN_AI_EVALUATION_NAME: semconv.JUDGE_EVALUATION_NAME}
    if outcome == semconv.OUTCOME_SUCCESS and verdict is not None:
        attrs[semconv.GEN_AI_EVALUATION_SCORE_LABEL] = semconv.VERDICT_CORRECT if verdict else semconv.VERDICT_INCORRECT
        attrs[semconv.GEN_AI_EVALUATION_SCORE_VALUE] = 1.0 if verdict else 0.0
    elif outcome != semconv.OUTCOME_SUCCESS:
        attrs[semconv.GEN_AI_EVALUATION_SCORE_LABEL] = semconv.EVALUATION_LABEL_FAILED
        attrs[semconv.ATTR_ERROR_TYPE] = error_type or outcome
    return attrs


class JudgeEvaluationCall:
    """One call of the judge: the parent of its HTTP attempts, ending in exactly one outcome."""

    __slots__ = ("_tel", "evaluation", "_stats_of", "_before", "_span", "_started", "_tokens")

    def __init__(self, tel: Telemetry, evaluation: JudgeEvaluationState, stats_of: Any, span: Any, tokens: Any) -> None:
        self._tel = tel
        self.evaluation = evaluation
        self._stats_of = stats_of
        self._before = counter_snapshot(stats_of()) if stats_of is not None else None
        self._span = span
        self._tokens = tokens
        self._started = time.perf_counter()

    @classmethod
    def start(
        cls, tel: Telemetry, source: Any = None, problem_type: Any = None, stats_of: Any = None
    ) -> JudgeEvaluationCall:
        """Start an evaluation for the current sample (else ``source``); ``stats_of`` returns the
        trainer's own judge counters (``eval_stats``), read before and after the call."""
        src, ptype = tel.recorder.resolve_labels(source, problem_type)
        evaluation = JudgeEvaluationState(source=src, problem_type=ptype)
        tokens = (judge_evaluation_var().set(evaluation), enter_call(CALL_JUDGE, evaluation))
        span = open_span(tel, "grpo.judge.evaluate", lambda: span_attributes(tel, src, ptype))
        return cls(tel, evaluation, stats_of, span, tokens)

    def stop(self, result: Any) -> None:
        """The judge returned ``result`` (its verdict, when it is a bool)."""
        self._end(result, None)

    def fail(self, exc: BaseException) -> None:
        """The judge raised: an api failure."""
        self._end(None, exc)

    def _end(self, result: Any, exc: BaseException | None) -> None:
        judge_token, call_token = self._tokens
        exit_call(call_token)
        try:
            judge_evaluation_var().reset(judge_token)
        except ValueError:  # ended in another context than it started in
            judge_evaluation_var().set(None)
        try:
            after = counter_snapshot(self._stats_of()) if self._stats_of is not None else None
            attempts = self.evaluation.attempts
            outcome, verdict, error_type = classify_judge_outcome(result, exc, self._before, after, attempts)
            self._tel.recorder.record_judge_evaluation(
                outcome,
                verdict,
                time.perf_counter() - self._started,
                error_type=error_type,
                source=self.evaluation.source,
                problem_type=self.evaluation.problem_type,
            )
            self._annotate(outcome, verdict, error_type)
            self._observe_health(outcome, error_type)
        finally:
            close_span(self._span, exc)

    def _annotate(self, outcome: str, verdict: Any, error_type: str | None) -> None:
        span = self._span.span
        span.set_attribute(semconv.ATTR_JUDGE_OUTCOME, outcome)
        if verdict is not None and outcome == semconv.OUTCOME_SUCCESS:
            span.set_attribute(
                semconv.ATTR_JUDGE_VERDICT, semconv.VERDICT_CORRECT if verdict else semconv.VERDICT_INCORRECT
            )
        if error_type:
            span.set_attribute(semconv.ATTR_ERROR_TYPE, error_type)
        span.add_event(semconv.GEN_AI_EVALUATION_RESULT_EVENT, evaluation_event(outcome, verdict, error_type))

    def _observe_health(self, outcome: str, error_type: str | None) -> None:
        """Feed the outcome to the session's :class:`~otel_grpo.instrumentation.judge_health.JudgeHealth`."""
        tel = self._tel
        with fault_guard("the judge health check"):
            attempts = self.evaluation.attempts
            location = judge_location(attempts) if outcome == semconv.OUTCOME_API_FAILURE else None
            judge_health(tel).observe(outcome, error_type, location)


__all__ = ["JudgeEvaluationCall", "classify_judge_outcome", "counter_snapshot", "evaluation_event"]
