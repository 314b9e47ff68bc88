"""The trainer's roles and the wrappers that record them: which arguments each reads, which call it starts.

Each factory takes the ``instrumentation`` config section and returns a wrapper built by
:func:`~otel_grpo.instrumentation.wrapping.make_role_wrapper`: as the wrapped method is called it
reads the configured arguments (by name, by position, or their defaults) and starts the role's
typed call (:mod:`~otel_grpo.instrumentation.calls`, :mod:`~otel_grpo.instrumentation.judge_call`).
:data:`ROLE_WRAPPERS` is the registry every patcher uses.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from otel_grpo.api import Telemetry
from otel_grpo.config import InstrumentationConfig
from otel_grpo.instrumentation.calls import ExecutorRunCall, RewardCall, StepCall, ValidationCall
from otel_grpo.instrumentation.judge_call import JudgeEvaluationCall
from otel_grpo.instrumentation.wrapping import Wrapper, make_role_wrapper


def step_wrapper(options: InstrumentationConfig) -> Wrapper:
    """Wraps ``train_step(step)``: a step window, scalars from its returned dict, temperature."""
    scalars = list(options.scalars)
    getter = options.temperature_method

    def start(tel: Telemetry, values: tuple, instance: Any) -> StepCall:
        temperature = getattr(instance, getter, None) if getter and instance is not None else None
        return StepCall.start(tel, values[0], scalars, temperature)

    return make_role_wrapper("train_step", ((options.arguments.step, 0),), start)


def validation_wrapper(options: InstrumentationConfig) -> Wrapper:
    """Wraps ``evaluate_on_val_set(...)``: a validation window logged at the step during which it runs."""

    def start(tel: Telemetry, values: tuple, instance: Any) -> ValidationCall:
        return ValidationCall.start(tel)

    return make_role_wrapper("evaluate", (), start)


def executor_wrapper(options: InstrumentationConfig) -> Wrapper:
    """Wraps ``execute_workflow``: one executor run, and the start of one sample."""
    names = options.arguments
    params = ((names.workflow_kwargs_source, None), (names.source, None), (names.problem_type, 2), ("problem", 1))

    def start(tel: Telemetry, values: tuple, instance: Any) -> ExecutorRunCall:
        kwargs_source, source, problem_type, problem = values
        return ExecutorRunCall.start(tel, source if kwargs_source is None else kwargs_source, problem_type, problem)

    return make_role_wrapper("execute", params, start)


def reward_wrapper(options: InstrumentationConfig) -> Wrapper:
    """Wraps ``compute_reward``: scores the sample its executor run started, or a new one."""
    names = options.arguments
    params = (("problem", 0), (names.prediction, 1), (names.source, None), (names.problem_type, 3))

    def start(tel: Telemetry, values: tuple, instance: Any) -> RewardCall:
        return RewardCall.start(tel, *values)

    return make_role_wrapper("compute_reward", params, start)


def judge_wrapper(options: InstrumentationConfig) -> Wrapper:
    """Wraps the judge function: one judge evaluation, parent of its HTTP attempts."""
    names = options.arguments
    stats_attribute = options.eval_stats_attribute

    def start(tel: Telemetry, values: tuple, instance: Any) -> JudgeEvaluationCall:
        stats_of = None
        if stats_attribute and instance is not None:

            def stats_of() -> Any:
                return getattr(instance, stats_attribute, None)

        return JudgeEvaluationCall.start(tel, values[0], values[1], stats_of)

    return make_role_wrapper("judge", ((names.source, None), (names.problem_type, 3)), start)


ROLE_WRAPPERS: dict[str, Callable[[InstrumentationConfig], Wrapper]] = {
    "train_step": step_wrapper,
    "evaluate": validation_wrapper,
    "execute": executor_wrapper,
    "compute_reward": reward_wrapper,
    "judge": judge_wrapper,
}
"""Role name (as in ``instrumentation.targets``) -> factory of its wrapper."""

__all__ = [
    "ROLE_WRAPPERS",
    "executor_wrapper",
    "judge_wrapper",
    "reward_wrapper",
    "step_wrapper",
    "validation_wrapper",
]
