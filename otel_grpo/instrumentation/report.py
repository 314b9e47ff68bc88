"""Saying what was instrumented, and warning when the training step never was.

A target whose module or class name does not match the trainer (a typo in
``instrumentation.targets``, a renamed class) would otherwise do nothing, silently:
no rows, or rows without samples. So otel-grpo says once what it wrapped, and warns,
naming ``instrumentation.targets``, when a recorded call or the end of the program
comes without any training step having been instrumented.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable

logger = logging.getLogger(__name__)

TRAIN_STEP_ROLE = "train_step"


class _Report:
    lock = threading.Lock()
    wrapped: dict[str, str] = {}  # "Class.method" -> role
    warned = False
    announced = False
    targets_hint = ""


def set_targets_hint(targets: dict[str, str]) -> None:
    """Remember the configured targets, to name them in the warning."""
    _Report.targets_hint = ", ".join(f"{role}={target}" for role, target in sorted(targets.items()))


def report_instrumented(wrapped: Iterable[tuple[str, str]], announce: bool = True) -> None:
    """Remember the methods just wrapped (``(role, "Class.method")`` pairs); ``announce`` logs them.

    ``otel-grpo run`` wraps each module as it is imported and announces the whole list
    once, at the first recorded call (:func:`first_call`), instead of a line per module.
    """
    new = [(role, label) for role, label in wrapped]
    if not new:
        return
    with _Report.lock:
        for role, label in new:
            _Report.wrapped[label] = role
    if announce:
        logger.info("otel-grpo: instrumented %s", ", ".join(f"{label} ({role})" for role, label in new))
    else:
        logger.debug("otel-grpo: instrumented %s", ", ".join(f"{label} ({role})" for role, label in new))


def first_call(role: str, steps_seen: bool) -> None:
    """The first call of any instrumented method: say what is instrumented, warn if no step is."""
    with _Report.lock:
        if _Report.announced:
            return
        _Report.announced = True
    if _Report.wrapped:
        logger.info("otel-grpo: recording %s", _listing())
    if role != TRAIN_STEP_ROLE:
        warn_if_no_train_step(f"{role} was called", steps_seen)


def _listing() -> str:
    return ", ".join(f"{label} ({role})" for label, role in sorted(_Report.wrapped.items())) or "nothing"


def train_step_instrumented() -> bool:
    """True once a training-step method has been wrapped in this process."""
    return TRAIN_STEP_ROLE in _Report.wrapped.values()


def warn_if_no_train_step(when: str, steps_seen: bool = False) -> bool:
    """Warn once if no training step is instrumented and none was opened by hand (``steps_seen``).

    ``when`` says what prompted the check ("compute_reward was called", "the program ends").
    """
    if _Report.warned or steps_seen or train_step_instrumented():
        return False
    with _Report.lock:
        if _Report.warned:
            return False
        _Report.warned = True
    done = _listing()
    logger.warning(
        "otel-grpo: %s, but no training step has been instrumented (instrumented: %s), so no per-step "
        "rows are written. Check instrumentation.targets in your telemetry config (now: %s): module, "
        "class and method must match your trainer.",
        when,
        done,
        _Report.targets_hint or "the defaults",
    )
    return True


def warn_at_exit() -> None:
    """At interpreter exit: warn if the program ran without a single training-step window."""
    from otel_grpo.api import train_windows_opened

    warn_if_no_train_step("the program ends", steps_seen=train_windows_opened() > 0)


def reset() -> None:
    """Forget everything (tests)."""
    with _Report.lock:
        _Report.wrapped = {}
        _Report.warned = False
        _Report.announced = False


__all__ = [
    "first_call",
    "report_instrumented",
    "reset",
    "set_targets_hint",
    "train_step_instrumented",
    "warn_at_exit",
    "warn_if_no_train_step",
]
