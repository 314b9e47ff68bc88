"""The judge role: one judge evaluation, its single outcome, and the parent span of its HTTP attempts."""

from __future__ import annotations

import re
import time
from typing import Any

from otel_grpo import semconv
from otel_grpo.api import Telemetry
from otel_grpo.config import InstrumentationConfig
from otel_grpo.faults import report_fault
from otel_grpo.instrumentation.judge_health import judge_health, judge_location
from otel_grpo.instrumentation.wrapping import Wrapper, bind_argument, judge_span_attrs, make_role_wrapper, span_for
from otel_grpo.recording.context import CALL_JUDGE, JudgeEvaluationState, enter_call, exit_call, judge_evaluation_var

# --- judge -----------------------------------------------------------------------------------
_EVAL_COUNTERS = {
    "success": ("llm_judge_success",),
    "parse": ("llm_judge_parse_failures", "llm_judge_parse_failure"),
    "api": ("llm_judge_api_failures", "llm_judge_api_failure"),
}
_VERDICT_RE = re.compile(r"<true_false>\s*(true|false)\s*</true_false>|\b(true|false)\b", re.I)


def _counter_snapshot(stats: Any) -> dict[str, float] | None:
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


def classify_judge_outcome(
    result: Any, exc: BaseException | None, before: dict | None, after: dict | None, attempts: list
) -> tuple[str, Any, str | None]:
    """Decide the one outcome of a judge evaluation: (outcome, verdict, error_type).

    An exception is an api_failure. Otherwise the change in the trainer's own
    ``eval_stats`` counters during this call decides, success over parse failure over
    api failure (a retried evaluation ends in its last state, so rates never exceed 1).
    Without counters, the HTTP attempts observed decide: the last attempt failing is
    an api_failure, a reply with no readable verdict a parse_failure.
    """
    last = attempts[-1] if attempts else None
    error_type = last.error_type if last is not None and last.error_type else None
    if exc is not None:
        return semconv.OUTCOME_API_FAILURE, None, error_type or type(exc).__qualname__
    verdict = bool(result) if isinstance(result, bool | int) else None
    if before is not None and after is not None:
        delta = {k: after.get(k, 0) - before.get(k, 0) for k in _EVAL_COUNTERS}
        if delta["success"] > 0:
            return semconv.OUTCOME_SUCCESS, verdict, None
        if delta["parse"] > 0:
            return semconv.OUTCOME_PARSE_FAILURE, None, None
        if delta["api"] > 0:
            return semconv.OUTCOME_API_FAILURE, None, error_type or semconv.ERROR_OTHER
    if last is not None:
        if last.error_type:
            return semconv.OUTCOME_API_FAILURE, None, last.error_type
        if last.content is not None and not _VERDICT_RE.search(last.content):
            return semconv.OUTCOME_PARSE_FAILURE, None, None
        return semconv.OUTCOME_SUCCESS, verdict, None
    if verdict is None:
        return semconv.OUTCOME_PARSE_FAILURE, None, None
    return semconv.OUTCOME_SUCCESS, verdict, None


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


def _observe_health(tel: Telemetry, outcome: str, error_type: str | None, attempts: list) -> None:
    """Feed the outcome to the session's :class:`~otel_grpo.instrumentation.judge_health.JudgeHealth`."""
    try:
        location = judge_location(attempts, tel.config.judge) if outcome == semconv.OUTCOME_API_FAILURE else None
        judge_health(tel).observe(outcome, error_type, location)
    except Exception as exc:  # noqa: BLE001 - the health warning must never break the judge call
        report_fault("the judge health check", exc)


def judge_wrapper(options: InstrumentationConfig) -> Wrapper:
    """Wraps the judge function: one judge evaluation, parent of its HTTP attempts."""

    def before(tel: Telemetry, wrapped, instance, args, kwargs):
        source = bind_argument(wrapped, args, kwargs, options.arguments.source)
        ptype = bind_argument(wrapped, args, kwargs, options.arguments.problem_type, position=3)
        src, pt = tel.recorder.resolve_labels(source, ptype)
        evaluation = JudgeEvaluationState(source=src, problem_type=pt)
        token = judge_evaluation_var().set(evaluation)
        call_token = enter_call(CALL_JUDGE, evaluation)
        attr = options.eval_stats_attribute
        stats_before = _counter_snapshot(getattr(instance, attr, None)) if attr and instance is not None else None
        span_cm = span_for(tel, "grpo.judge.evaluate", judge_span_attrs, evaluation)
        span = span_cm.__enter__()
        return evaluation, token, stats_before, span_cm, span, time.perf_counter(), call_token

    def after(tel: Telemetry, st, result, exc, wrapped, instance, args, kwargs) -> None:
        evaluation, token, stats_before, span_cm, span, started, call_token = st
        exit_call(call_token)
        try:
            judge_evaluation_var().reset(token)
        except ValueError:
            judge_evaluation_var().set(None)
        try:
            attr = options.eval_stats_attribute
            stats_after = _counter_snapshot(getattr(instance, attr, None)) if attr and instance is not None else None
            outcome, verdict, error_type = classify_judge_outcome(
                result, exc, stats_before, stats_after, evaluation.attempts
            )
            tel.recorder.record_judge_evaluation(
                outcome,
                verdict,
                time.perf_counter() - started,
                error_type=error_type,
                source=evaluation.source,
                problem_type=evaluation.problem_type,
            )
            span.set_attribute(semconv.ATTR_JUDGE_OUTCOME, outcome)
            if verdict is not None and outcome == semconv.OUTCOME_SUCCESS:
                span.set_attribute(
                    semconv.ATTR_JUDGE_VERDICT, semconv.VERDICT_CORRECT if verdict else semconv.VERDICT_INCORRECT
                )
            if error_type:
                span.set_attribute(semconv.ATTR_ERROR_TYPE, error_type)
            span.add_event(semconv.GEN_AI_EVALUATION_RESULT_EVENT, evaluation_event(outcome, verdict, error_type))
            _observe_health(tel, outcome, error_type, evaluation.attempts)
        finally:
            span_cm.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)

    return make_role_wrapper("judge", before, after)
