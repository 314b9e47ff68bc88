"""The trainer's roles: training step, validation, executor run and reward computation.

Each factory takes the ``instrumentation`` config section and returns a wrapper built
by :func:`~otel_grpo.instrumentation.wrapping.make_role_wrapper`. The judge role lives
in :mod:`otel_grpo.instrumentation.judge_role`.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from otel_grpo import semconv
from otel_grpo.api import Telemetry
from otel_grpo.config import InstrumentationConfig
from otel_grpo.instrumentation.wrapping import (
    Wrapper,
    bind_argument,
    make_role_wrapper,
    sample_span_attrs,
    span_for,
)
from otel_grpo.recording.context import (
    CALL_EXECUTOR,
    ExecutorRunState,
    current_sample,
    enter_call,
    exit_call,
    reset_sample,
    set_sample,
)

logger = logging.getLogger(__name__)


# --- training step and validation -----------------------------------------------------------
def _numeric_items(result: Any, names: list[str]) -> dict[str, Any]:
    if not isinstance(result, dict):
        return {}
    return {name: result[name] for name in names if name in result}


def step_wrapper(options: InstrumentationConfig) -> Wrapper:
    """Wraps ``train_step(step)``: a step window, scalars from its returned dict, temperature."""

    def before(tel: Telemetry, wrapped, instance, args, kwargs):
        step = bind_argument(wrapped, args, kwargs, options.arguments.step, position=0)
        scope = tel.step(step)
        scope.__enter__()
        return scope

    def after(tel: Telemetry, scope, result, exc, wrapped, instance, args, kwargs) -> None:
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
            scope.close(exc is None)

    return make_role_wrapper("train_step", before, after)


def validation_wrapper(options: InstrumentationConfig) -> Wrapper:
    """Wraps ``evaluate_on_val_set(...)``: a validation window logged at the latest step."""

    def before(tel: Telemetry, wrapped, instance, args, kwargs):
        scope = tel.validation()
        scope.__enter__()
        return scope

    def after(tel: Telemetry, scope, result, exc, wrapped, instance, args, kwargs) -> None:
        scope.close(exc is None)

    return make_role_wrapper("evaluate", before, after)


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


def executor_wrapper(options: InstrumentationConfig) -> Wrapper:
    """Wraps ``execute_workflow``: one executor run, and the start of one sample."""

    def before(tel: Telemetry, wrapped, instance, args, kwargs):
        source = kwargs.get(options.arguments.workflow_kwargs_source)
        if source is None:
            source = bind_argument(wrapped, args, kwargs, options.arguments.source)
        ptype = bind_argument(wrapped, args, kwargs, options.arguments.problem_type, position=2)
        problem = bind_argument(wrapped, args, kwargs, "problem", position=1)
        group = _group_key(problem, source)
        state = tel.recorder.new_sample(source, ptype, group)
        state.problem_key = _problem_key(problem)
        set_sample(state)  # stays current in this task so the reward computation pairs with it
        span_cm = span_for(tel, "grpo.execute_workflow", sample_span_attrs, state)
        span_cm.__enter__()
        call_token = enter_call(CALL_EXECUTOR, ExecutorRunState(state.source, state.problem_type))
        return state, span_cm, time.perf_counter(), call_token

    def after(tel: Telemetry, state, result, exc, wrapped, instance, args, kwargs) -> None:
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
                sample.answer_key = _problem_key(result[0])
            tel.recorder.record_executor_run(cost, duration if duration is not None else elapsed, success)
        finally:
            if exc is None:
                span_cm.__exit__(None, None, None)

    return make_role_wrapper("execute", before, after)


_key_hash: Callable[[Any], int] = hash


def set_key_hash(function: Callable[[Any], int] | None) -> None:
    """Use ``function`` (None: the built-in ``hash``) for the problem, answer and group keys.

    The built-in ``hash`` of a string differs from process to process; when executor runs
    and rewards are paired across processes (Ray), every process must use the same stable
    hash, e.g. :func:`stable_key_hash`.
    """
    global _key_hash
    _key_hash = function or hash


def stable_key_hash(value: Any) -> int:
    """A 64-bit hash of a string (or of a tuple of strings) that is the same in every process."""
    text = value if isinstance(value, str) else repr(value)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def _problem_key(problem: Any) -> Any:
    if problem is None:
        return None
    try:
        return _key_hash(problem if isinstance(problem, str) else repr(problem)[:2048])
    except Exception:  # noqa: BLE001
        return None


def _group_key(problem: Any, source: Any) -> Any:
    if problem is None:
        return None
    try:
        return _key_hash((str(source), problem if isinstance(problem, str) else repr(problem)[:2048]))
    except Exception:  # noqa: BLE001
        return None


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


def reward_scores(state: Any, window: Any, problem_key: Any, answer_key: Any) -> bool:
    """Does a reward for (problem, prediction) score ``state``, the execution this context ran last?"""
    if state is None or not state.executed or state.rewarded:
        return False
    if state.window is not None and state.window is not window:
        return False
    own_problem = state.problem_key
    if problem_key is not None and own_problem is not None and own_problem != problem_key:
        return False
    own_answer = state.answer_key
    return answer_key is None or own_answer is None or own_answer == answer_key


def reward_wrapper(options: InstrumentationConfig) -> Wrapper:
    """Wraps ``compute_reward``: scores the sample its executor run started, or a new one."""

    def before(tel: Telemetry, wrapped, instance, args, kwargs):
        problem = bind_argument(wrapped, args, kwargs, "problem", position=0)
        problem_key = _problem_key(problem)
        answer_key = _problem_key(bind_argument(wrapped, args, kwargs, "prediction", position=1))
        state = current_sample()
        token = None
        if not reward_scores(state, tel.recorder.current_window(), problem_key, answer_key):
            # Not the execution this context ran last: find this problem's own execution (a
            # thread pool, or a loop that scores every execution of the step after running them).
            state = tel.recorder.claim_pending(problem_key, answer_key)
            if state is not None:
                token = set_sample(state)
        if state is not None:
            state.rewarded = True
            if state.source == semconv.UNKNOWN:
                source = bind_argument(wrapped, args, kwargs, options.arguments.source)
                if source is not None:
                    state.source = tel.recorder.labels.source(source)
        else:  # a reward with no executor run: a sample of its own
            source = bind_argument(wrapped, args, kwargs, options.arguments.source)
            ptype = bind_argument(wrapped, args, kwargs, options.arguments.problem_type, position=3)
            state = tel.recorder.new_sample(source, ptype, _group_key(problem, source))
            state.rewarded = True
            token = set_sample(state)
        span_cm = span_for(tel, "grpo.compute_reward", sample_span_attrs, state)
        span = span_cm.__enter__()
        return state, token, span_cm, span

    def after(tel: Telemetry, st, result, exc, wrapped, instance, args, kwargs) -> None:
        state, token, span_cm, span = st
        try:
            if exc is not None:
                if not state.recorded:  # the reward computation raised: an incorrect sample
                    tel.recorder.record_sample(0.0, 0.0, state=state)
            elif not state.recorded:
                reward, correctness = _reward_from_result(result)
                tel.recorder.record_sample(reward, correctness, state=state)
            span.set_attribute(semconv.ATTR_SCORED_BY, semconv.SCORERS[state.scorer()])
        finally:
            span_cm.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)
            if token is not None:
                reset_sample(token)

    return make_role_wrapper("compute_reward", before, after)
