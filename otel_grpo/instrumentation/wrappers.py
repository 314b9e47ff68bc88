"""Wrapper functions for the trainer's roles: step, validation, executor, reward, judge.

Each factory returns a ``wrapt``-style wrapper ``(wrapped, instance, args, kwargs)``
that works on sync and async callables. The rules (DESIGN.md): a wrapper never
changes a return value, never swallows or replaces an exception, and costs a single
``get_telemetry()`` lookup when otel-grpo is not set up. Anything that goes wrong in
our own bookkeeping is logged once and counted, never raised.
"""

from __future__ import annotations

import inspect
import logging
import re
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace

from otel_grpo import semconv
from otel_grpo.api import Telemetry, get_telemetry
from otel_grpo.faults import report_fault
from otel_grpo.instrumentation.report import first_call
from otel_grpo.recording.context import (
    CALL_EXECUTOR,
    CALL_JUDGE,
    ExecutorRunState,
    JudgeEvaluationState,
    current_sample,
    enter_call,
    exit_call,
    judge_evaluation_var,
    set_sample,
)

logger = logging.getLogger(__name__)

Wrapper = Callable[[Callable[..., Any], Any, tuple, dict], Any]

_active_roles: ContextVar[frozenset] = ContextVar("otel_grpo_active_roles", default=frozenset())


def _internal_error(where: str, exc: BaseException) -> None:
    report_fault(f"{where} instrumentation", exc)


_signature_cache: dict[Any, tuple[list[str], dict[str, Any]]] = {}
_async_cache: dict[Any, bool] = {}


def _params(wrapped: Callable[..., Any]) -> tuple[list[str], dict[str, Any]]:
    """Positional parameter names (without self) and defaults of ``wrapped``, cached."""
    key = getattr(wrapped, "__func__", wrapped)
    try:
        return _signature_cache[key]
    except (KeyError, TypeError):
        pass
    try:
        sig = inspect.signature(wrapped)
        names = [n for n, p in sig.parameters.items()
                 if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        defaults = {n: p.default for n, p in sig.parameters.items() if p.default is not p.empty}
    except (TypeError, ValueError):
        names, defaults = [], {}
    if names and names[0] in ("self", "cls") and not inspect.ismethod(wrapped):
        names = names[1:]
    try:
        _signature_cache[key] = (names, defaults)
    except TypeError:
        pass
    return names, defaults


def bind_argument(wrapped: Callable[..., Any], args: tuple, kwargs: dict, name: str,
                  position: int | None = None) -> Any:
    """Value of argument ``name`` of a call: by keyword, by signature position, else ``position``."""
    if name in kwargs:
        return kwargs[name]
    names, defaults = _params(wrapped)
    if name in names:
        idx = names.index(name)
        return args[idx] if idx < len(args) else defaults.get(name)
    if name in defaults:
        return defaults[name]
    if not names and position is not None and position < len(args):
        return args[position]
    return None


def _is_async(wrapped: Callable[..., Any]) -> bool:
    key = getattr(wrapped, "__func__", wrapped)
    try:
        return _async_cache[key]
    except (KeyError, TypeError):
        pass
    result = inspect.iscoroutinefunction(wrapped) or inspect.iscoroutinefunction(key)
    try:
        _async_cache[key] = result
    except TypeError:
        pass
    return result


def _make(role: str, before: Callable[..., Any], after: Callable[..., None]) -> Wrapper:
    """Build a sync/async wrapper from ``before`` (returns state) and ``after`` hooks.

    ``before(tel, wrapped, instance, args, kwargs) -> state``;
    ``after(tel, state, result, exc, wrapped, instance, args, kwargs)``.
    A role already active in this context (a nested or doubly wrapped call) passes through.
    """

    first = True

    def enter(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict):  # noqa: ANN202
        nonlocal first
        tel = get_telemetry()
        if tel is None:
            return None, None, None
        if first:  # say once what is instrumented; warn if no training step is
            first = False
            try:
                recorder = tel.recorder
                first_call(role, steps_seen=recorder.last_step is not None or recorder.current_window() is not None)
            except Exception as exc:  # noqa: BLE001
                _internal_error(role, exc)
        roles = _active_roles.get()
        if role in roles:
            return None, None, None
        token = _active_roles.set(roles | {role})
        try:
            return tel, before(tel, wrapped, instance, args, kwargs), token
        except Exception as exc:  # noqa: BLE001
            _internal_error(role, exc)
            _active_roles.reset(token)
            return None, None, None

    def leave(tel: Telemetry, state: Any, token: Any, result: Any, exc: BaseException | None,
              wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> None:
        try:
            _active_roles.reset(token)
        except ValueError:
            pass
        try:
            after(tel, state, result, exc, wrapped, instance, args, kwargs)
        except Exception as err:  # noqa: BLE001
            _internal_error(role, err)

    def sync_wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        if _is_async(wrapped):
            return async_wrapper(wrapped, instance, args, kwargs)
        tel, state, token = enter(wrapped, instance, args, kwargs)
        if tel is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            leave(tel, state, token, None, exc, wrapped, instance, args, kwargs)
            raise
        leave(tel, state, token, result, None, wrapped, instance, args, kwargs)
        return result

    async def async_wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        tel, state, token = enter(wrapped, instance, args, kwargs)
        if tel is None:
            return await wrapped(*args, **kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            leave(tel, state, token, None, exc, wrapped, instance, args, kwargs)
            raise
        leave(tel, state, token, result, None, wrapped, instance, args, kwargs)
        return result

    sync_wrapper.otel_grpo_role = role  # type: ignore[attr-defined]
    return sync_wrapper


# --- training step and validation -----------------------------------------------------------
def _numeric_items(result: Any, names: list[str]) -> dict[str, Any]:
    if not isinstance(result, dict):
        return {}
    return {name: result[name] for name in names if name in result}


def step_wrapper(options: Any) -> Wrapper:
    """Wraps ``train_step(step)``: a step window, scalars from its returned dict, temperature."""

    def before(tel: Telemetry, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        step = bind_argument(wrapped, args, kwargs, options.arguments.step, position=0)
        scope = tel.step(step)
        scope.__enter__()
        return scope

    def after(tel: Telemetry, scope, result, exc, wrapped, instance, args, kwargs) -> None:  # noqa: ANN001
        try:
            if exc is None:
                scalars = _numeric_items(result, list(options.scalars))
                method = options.temperature_method
                getter = getattr(instance, method, None) if method and instance is not None else None
                if callable(getter) and "temperature" not in scalars:
                    try:
                        scalars["temperature"] = getter(scope.step)
                    except Exception:  # noqa: BLE001 - a getter we could not call: no temperature
                        logger.debug("otel-grpo: %s(%s) failed", method, scope.step, exc_info=True)
                if scalars:
                    tel.record_scalars(scalars)
        finally:
            scope._exit(exc is None)

    return _make("train_step", before, after)


def validation_wrapper(options: Any) -> Wrapper:
    """Wraps ``evaluate_on_val_set(...)``: a validation window logged at the latest step."""

    def before(tel: Telemetry, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        scope = tel.validation()
        scope.__enter__()
        return scope

    def after(tel: Telemetry, scope, result, exc, wrapped, instance, args, kwargs) -> None:  # noqa: ANN001
        scope._exit(exc is None)

    return _make("evaluate", before, after)


# --- executor --------------------------------------------------------------------------------
def _execution_outcome(result: Any) -> tuple[Any, Any, bool]:
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
    success = True
    duration = None
    if isinstance(metadata, dict):
        success = metadata.get("success", True)  # read (and checked) by the recorder
        duration = metadata.get("execution_time")
    return cost, duration, success


def executor_wrapper(options: Any) -> Wrapper:
    """Wraps ``execute_workflow``: one executor run, and the start of one sample."""

    def before(tel: Telemetry, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        source = kwargs.get(options.arguments.workflow_kwargs_source)
        if source is None:
            source = bind_argument(wrapped, args, kwargs, options.arguments.source)
        ptype = bind_argument(wrapped, args, kwargs, options.arguments.problem_type, position=2)
        problem = bind_argument(wrapped, args, kwargs, "problem", position=1)
        group = _group_key(problem, source)
        state = tel.recorder.new_sample(source, ptype, group)
        state.extra["problem_key"] = _problem_key(problem)
        set_sample(state)  # stays current in this task so the reward computation pairs with it
        span_cm = _span(tel, "grpo.execute_workflow", _span_attrs, state)
        span_cm.__enter__()
        call_token = enter_call(CALL_EXECUTOR, ExecutorRunState(state.source, state.problem_type))
        return state, span_cm, time.perf_counter(), call_token

    def after(tel: Telemetry, state, result, exc, wrapped, instance, args, kwargs) -> None:  # noqa: ANN001
        sample, span_cm, started, call_token = state
        exit_call(call_token)
        elapsed = time.perf_counter() - started
        try:
            if exc is not None:
                tel.recorder.record_executor_run(0.0, elapsed, False)
                span_cm.__exit__(type(exc), exc, exc.__traceback__)
                return
            cost, duration, success = _execution_outcome(result)
            if isinstance(result, tuple | list) and result:
                sample.extra["answer_key"] = _problem_key(result[0])
            tel.recorder.record_executor_run(cost, duration if duration is not None else elapsed, success)
        finally:
            if exc is None:
                span_cm.__exit__(None, None, None)

    return _make("execute", before, after)


def _problem_key(problem: Any) -> Any:
    if problem is None:
        return None
    try:
        return hash(problem if isinstance(problem, str) else repr(problem)[:2048])
    except Exception:  # noqa: BLE001
        return None


def _group_key(problem: Any, source: Any) -> Any:
    if problem is None:
        return None
    try:
        return hash((str(source), problem if isinstance(problem, str) else repr(problem)[:2048]))
    except Exception:  # noqa: BLE001
        return None


class _NoSpan:
    """Stands in for a span context manager when tracing is off: costs nothing."""

    def __enter__(self) -> Any:
        return trace.INVALID_SPAN

    def __exit__(self, *exc: Any) -> bool:
        return False


_NO_SPAN = _NoSpan()


def _span(tel: Telemetry, name: str, attrs: Callable[[Telemetry, Any], dict[str, Any]], subject: Any) -> Any:
    """A current-span context manager, or a free stand-in when no tracer provider is set up."""
    if not tel.tracing:
        return _NO_SPAN
    return tel.tracer.start_as_current_span(name, attributes=attrs(tel, subject), end_on_exit=True)


def _judge_span_attrs(tel: Telemetry, evaluation: Any) -> dict[str, Any]:
    return {semconv.ATTR_SOURCE: evaluation.source, semconv.ATTR_PROBLEM_TYPE: evaluation.problem_type,
            semconv.ATTR_SPLIT: tel.recorder.current_split(), semconv.ATTR_STEP: tel.recorder.last_step or 0}


def _span_attrs(tel: Telemetry, state: Any) -> dict[str, Any]:
    return {semconv.ATTR_SOURCE: state.source, semconv.ATTR_PROBLEM_TYPE: state.problem_type,
            semconv.ATTR_SPLIT: tel.recorder.current_split(),
            semconv.ATTR_STEP: tel.recorder.last_step or 0}


# --- reward ----------------------------------------------------------------------------------
def _reward_from_result(result: Any) -> tuple[Any, Any]:
    """(reward, correctness) from a float, a dict or a tuple result."""
    if isinstance(result, dict):
        reward = result.get("reward", result.get("score"))
        correctness = result.get("correctness", result.get("correctness_score"))
        return reward, correctness
    if isinstance(result, tuple | list) and result:
        return result[0], (result[1] if len(result) > 1 and not isinstance(result[1], dict) else None)
    return result, None


def _scores(state: Any, window: Any, problem_key: Any, answer_key: Any) -> bool:
    """Does a reward for (problem, prediction) score ``state``, the execution this context ran last?"""
    if state is None or not state.executed or state.extra.get("rewarded"):
        return False
    if state.window is not None and state.window is not window:
        return False
    own_problem = state.extra.get("problem_key")
    if problem_key is not None and own_problem is not None and own_problem != problem_key:
        return False
    own_answer = state.extra.get("answer_key")
    return answer_key is None or own_answer is None or own_answer == answer_key


def reward_wrapper(options: Any) -> Wrapper:
    """Wraps ``compute_reward``: scores the sample its executor run started, or a new one."""

    def before(tel: Telemetry, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        problem = bind_argument(wrapped, args, kwargs, "problem", position=0)
        problem_key = _problem_key(problem)
        answer_key = _problem_key(bind_argument(wrapped, args, kwargs, "prediction", position=1))
        state = current_sample()
        token = None
        if not _scores(state, tel.recorder.current_window(), problem_key, answer_key):
            # Not the execution this context ran last: find this problem's own execution (a
            # thread pool, or a loop that scores every execution of the step after running them).
            state = tel.recorder.claim_pending(problem_key, answer_key)
            if state is not None:
                token = set_sample(state)
        if state is not None:
            state.extra["rewarded"] = True
            if state.source == semconv.UNKNOWN:
                source = bind_argument(wrapped, args, kwargs, options.arguments.source)
                if source is not None:
                    state.source = tel.recorder.labels.source(source)
        else:  # a reward with no executor run: a sample of its own
            source = bind_argument(wrapped, args, kwargs, options.arguments.source)
            ptype = bind_argument(wrapped, args, kwargs, options.arguments.problem_type, position=3)
            state = tel.recorder.new_sample(source, ptype, _group_key(problem, source))
            state.extra["rewarded"] = True
            token = set_sample(state)
        span_cm = _span(tel, "grpo.compute_reward", _span_attrs, state)
        span_cm.__enter__()
        return state, token, span_cm

    def after(tel: Telemetry, st, result, exc, wrapped, instance, args, kwargs) -> None:  # noqa: ANN001
        state, token, span_cm = st
        try:
            if exc is not None:
                if not state.recorded:  # the reward computation raised: an incorrect sample
                    tel.recorder.record_sample(0.0, 0.0, state=state)
            elif not state.recorded:
                reward, correctness = _reward_from_result(result)
                tel.recorder.record_sample(reward, correctness, state=state)
        finally:
            span_cm.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)
            if token is not None:
                from otel_grpo.recording.context import reset_sample

                reset_sample(token)

    return _make("compute_reward", before, after)


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


def classify_judge_outcome(result: Any, exc: BaseException | None, before: dict | None,
                           after: dict | None, attempts: list) -> tuple[str, Any, str | None]:
    """Decide the one outcome of a judge evaluation: (outcome, verdict, error_type).

    An exception is an api_failure. Otherwise the change in the trainer's own
    ``eval_stats`` counters during this call decides, success over parse failure over
    api failure (a retried evaluation ends in its last state, so rates never exceed 1).
    Without counters, the HTTP attempts observed decide: the last attempt failing is
    an api_failure, a reply with no readable verdict a parse_failure.
    """
    last = attempts[-1] if attempts else None
    error_type = (last.error_type if last is not None and last.error_type else None)
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


def judge_wrapper(options: Any) -> Wrapper:
    """Wraps the judge function: one judge evaluation, parent of its HTTP attempts."""

    def before(tel: Telemetry, wrapped, instance, args, kwargs):  # noqa: ANN001, ANN202
        source = bind_argument(wrapped, args, kwargs, options.arguments.source)
        ptype = bind_argument(wrapped, args, kwargs, options.arguments.problem_type, position=3)
        src, pt = tel.recorder.resolve_labels(source, ptype)
        evaluation = JudgeEvaluationState(source=src, problem_type=pt)
        token = judge_evaluation_var().set(evaluation)
        call_token = enter_call(CALL_JUDGE, evaluation)
        attr = options.eval_stats_attribute
        stats_before = _counter_snapshot(getattr(instance, attr, None)) if attr and instance is not None else None
        span_cm = _span(tel, "grpo.judge.evaluate", _judge_span_attrs, evaluation)
        span = span_cm.__enter__()
        return evaluation, token, stats_before, span_cm, span, time.perf_counter(), call_token

    def after(tel: Telemetry, st, result, exc, wrapped, instance, args, kwargs) -> None:  # noqa: ANN001
        evaluation, token, stats_before, span_cm, span, started, call_token = st
        exit_call(call_token)
        try:
            judge_evaluation_var().reset(token)
        except ValueError:
            judge_evaluation_var().set(None)
        try:
            attr = options.eval_stats_attribute
            stats_after = _counter_snapshot(getattr(instance, attr, None)) if attr and instance is not None \
                else None
            outcome, verdict, error_type = classify_judge_outcome(
                result, exc, stats_before, stats_after, evaluation.attempts)
            tel.recorder.record_judge_evaluation(
                outcome, verdict, time.perf_counter() - started, error_type=error_type,
                source=evaluation.source, problem_type=evaluation.problem_type)
            span.set_attribute(semconv.ATTR_JUDGE_OUTCOME, outcome)
            if verdict is not None and outcome == semconv.OUTCOME_SUCCESS:
                span.set_attribute(semconv.ATTR_JUDGE_VERDICT,
                                   semconv.VERDICT_CORRECT if verdict else semconv.VERDICT_INCORRECT)
            if error_type:
                span.set_attribute(semconv.ATTR_ERROR_TYPE, error_type)
        finally:
            span_cm.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)

    return _make("judge", before, after)


ROLE_WRAPPERS: dict[str, Callable[[Any], Wrapper]] = {
    "train_step": step_wrapper,
    "evaluate": validation_wrapper,
    "execute": executor_wrapper,
    "compute_reward": reward_wrapper,
    "judge": judge_wrapper,
}
