"""``instrument_trainer(trainer)``: wrap the roles on one trainer object, no code edits.

The trainer's methods (and those of its executor and reward computer, found through
the configured attribute names) are wrapped on their classes, exactly as
``otel-grpo run`` does, so the objects stay picklable and copyable;
:func:`uninstrument_trainer` restores everything.
"""

from __future__ import annotations

import logging
from typing import Any

from otel_grpo.api import get_telemetry, setup
from otel_grpo.config import InstrumentationConfig, parse_target
from otel_grpo.instrumentation.patching import patch_method, unpatch_method
from otel_grpo.instrumentation.report import report_instrumented, set_targets_hint
from otel_grpo.instrumentation.wrappers import ROLE_WRAPPERS

logger = logging.getLogger(__name__)

_EXECUTOR_ROLES = frozenset({"execute"})
_REWARD_ROLES = frozenset({"compute_reward", "judge"})
_patched: list[tuple[type, str]] = []  # (class, method name) wrapped by instrument_trainer
_roles: dict[tuple[type, str], str] = {}  # (class, method name) -> role


def instrumented_methods() -> list[tuple[str, str, str]]:
    """``(module, Class.method, role)`` of every method :func:`instrument_trainer` wrapped.

    Ray worker processes wrap the same methods (see :mod:`otel_grpo.instrumentation.ray`).
    """
    return [
        (klass.__module__, f"{klass.__qualname__}.{method}", _roles.get((klass, method), ""))
        for klass, method in _patched
    ]


def _defining_class(obj: Any, name: str) -> type | None:
    """The class of ``obj`` whose attribute ``name`` is a plain function or method we can wrap."""
    if name in getattr(obj, "__dict__", {}):
        return None  # an instance attribute (a function stored on the object): not a method
    for klass in type(obj).__mro__:
        if name in klass.__dict__:
            return type(obj) if klass is not object else None
    return None


def _owner_attribute(role: str, options: InstrumentationConfig) -> str | None:
    """The trainer attribute holding the object that plays ``role`` (None: the trainer itself)."""
    if role in _EXECUTOR_ROLES:
        return options.executor_attribute
    if role in _REWARD_ROLES:
        return options.reward_attribute
    return None


def _targets(trainer: Any, options: InstrumentationConfig) -> list[tuple[Any, str, str]]:
    """(object, method name, role) for every configured role found on ``trainer``."""
    found = []
    for role, target in options.targets.enabled_targets().items():
        if role not in ROLE_WRAPPERS:
            continue
        method = parse_target(target)[1].rsplit(".", 1)[-1]
        owner_attr = _owner_attribute(role, options)
        owner = trainer if owner_attr is None else getattr(trainer, owner_attr, None)
        if owner is None and hasattr(trainer, method):
            owner = trainer  # a trainer that scores/executes itself
        if owner is None or not hasattr(owner, method):
            owner = _find_owner(trainer, method) or owner
        if owner is not None and hasattr(owner, method):
            found.append((owner, method, role))
    return found


def _find_owner(trainer: Any, method: str) -> Any:
    """An attribute of ``trainer`` that has ``method`` (e.g. ``self.aflow_executor``), if exactly one."""
    try:
        candidates = [value for value in vars(trainer).values() if not callable(value) and hasattr(type(value), method)]
    except TypeError:  # no __dict__
        return None
    unique = {id(c): c for c in candidates}
    return next(iter(unique.values())) if len(unique) == 1 else None


def instrument_trainer(trainer: Any, **setup_overrides: Any) -> Any:
    """Wrap the step, validation, executor, reward and judge methods of ``trainer``.

    The methods are wrapped on the objects' classes, so the objects themselves carry
    nothing of otel-grpo: they pickle, copy and cross process boundaries exactly as
    before. Sets otel-grpo up with defaults first if :func:`otel_grpo.setup` was not
    called (``setup_overrides`` go to it). Idempotent: instrumenting twice wraps once.
    Returns ``trainer``. A TRL ``GRPOTrainer`` is recognised and instrumented as such.
    """
    from otel_grpo.instrumentation.trl import instrument_trl_trainer, is_trl_trainer

    if is_trl_trainer(trainer):
        return instrument_trl_trainer(trainer, **setup_overrides)
    tel = get_telemetry() or setup(**setup_overrides)
    options = tel.config.instrumentation
    if not options.enabled:
        return trainer
    wrapped: list[tuple[str, str]] = []
    missing: list[str] = []
    set_targets_hint(options.targets.enabled_targets())
    for owner, method, role in _targets(trainer, options):
        klass = _defining_class(owner, method)
        if klass is None:
            missing.append(f"{type(owner).__name__}.{method}")
            continue
        if patch_method(klass, method, ROLE_WRAPPERS[role](options), role):
            _patched.append((klass, method))
            _roles[(klass, method)] = role
            wrapped.append((role, f"{klass.__name__}.{method}"))
    if missing:
        logger.warning("otel-grpo: %s are not methods of their class and are not recorded", ", ".join(missing))
    try:
        from otel_grpo.instrumentation.llm_http import instrument_http

        instrument_http(get_telemetry)
    except ImportError:
        pass
    report_instrumented(wrapped)
    from otel_grpo.instrumentation.ray import watch_ray

    watch_ray(instrumented_methods)  # workers of the trainer's Ray calls, if it makes any
    return trainer


def uninstrument_trainer(trainer: Any) -> Any:
    """Remove every wrapper :func:`instrument_trainer` put in place."""
    while _patched:
        klass, method = _patched.pop()
        unpatch_method(klass, method)
    return trainer
