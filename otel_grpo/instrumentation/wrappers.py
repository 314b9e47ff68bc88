"""Which wrapper records which role of the trainer (the registry the patchers use)."""

from __future__ import annotations

from collections.abc import Callable

from otel_grpo.config import InstrumentationConfig
from otel_grpo.instrumentation.judge_role import classify_judge_outcome, judge_wrapper
from otel_grpo.instrumentation.roles import executor_wrapper, reward_wrapper, step_wrapper, validation_wrapper
from otel_grpo.instrumentation.wrapping import Wrapper, bind_argument

ROLE_WRAPPERS: dict[str, Callable[[InstrumentationConfig], Wrapper]] = {
    "train_step": step_wrapper,
    "evaluate": validation_wrapper,
    "execute": executor_wrapper,
    "compute_reward": reward_wrapper,
    "judge": judge_wrapper,
}
"""Role name (as in ``instrumentation.targets``) -> factory of its wrapper."""

__all__ = ["ROLE_WRAPPERS", "Wrapper", "bind_argument", "classify_judge_outcome"]
