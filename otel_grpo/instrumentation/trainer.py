"""``instrument_trainer(trainer)``: wrap the roles on one trainer object, no code edits.

The trainer's own methods are wrapped on the instance (and on its executor and
reward computer, found through the configured attribute names), so other objects of
the same classes are untouched and :func:`uninstrument_trainer` restores everything.
"""

from __future__ import annotations

import functools
import inspect
import logging
from typing import Any

from otel_grpo.api import get_telemetry, setup
from otel_grpo.config import parse_target
from otel_grpo.instrumentation.wrappers import ROLE_WRAPPERS

logger = logging.getLogger(__name__)

_MARK = "__otel_grpo_wrapped__"
_OWNER_ROLES = {"train_step": None, "evaluate": None, "execute": "executor_attribute",
                "compute_reward": "reward_attribute", "judge": "reward_attribute"}


def _wrap_bound(obj: Any, name: str, wrapper: Any) -> bool:
    bound = getattr(obj, name, None)
    if bound is None or not callable(bound) or getattr(bound, _MARK, None) is not None:
        return False
    if inspect.iscoroutinefunction(bound):
        @functools.wraps(bound)
        async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
            return await wrapper(bound, obj, args, kwargs)
        replacement: Any = wrapped_async
    else:
        @functools.wraps(bound)
        def wrapped_sync(*args: Any, **kwargs: Any) -> Any:
            return wrapper(bound, obj, args, kwargs)
        replacement = wrapped_sync
    setattr(replacement, _MARK, bound)
    try:
        setattr(obj, name, replacement)
    except (AttributeError, TypeError):  # __slots__ or a frozen object
        logger.warning("otel-grpo: cannot wrap %s.%s on this object", type(obj).__name__, name)
        return False
    return True


def _targets(trainer: Any, options: Any) -> list[tuple[Any, str, str]]:
    """(object, method name, role) for every configured role found on ``trainer``."""
    found = []
    for role, target in options.targets.enabled_targets().items():
        if role not in ROLE_WRAPPERS:
            continue
        method = parse_target(target)[1].rsplit(".", 1)[-1]
        owner_attr = _OWNER_ROLES.get(role)
        owner = trainer if owner_attr is None else getattr(trainer, getattr(options, owner_attr), None)
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
        candidates = [value for value in vars(trainer).values()
                      if not callable(value) and hasattr(type(value), method)]
    except TypeError:  # no __dict__
        return None
    unique = {id(c): c for c in candidates}
    return next(iter(unique.values())) if len(unique) == 1 else None


def instrument_trainer(trainer: Any, **setup_overrides: Any) -> Any:
    """Wrap the step, validation, executor, reward and judge methods of ``trainer``.

    Sets otel-grpo up with defaults first if :func:`otel_grpo.setup` was not called
    (``setup_overrides`` go to it). Idempotent: instrumenting twice wraps once.
    Returns ``trainer``.
    """
    tel = get_telemetry() or setup(**setup_overrides)
    options = tel.config.instrumentation
    if not options.enabled:
        return trainer
    wrapped = []
    for owner, method, role in _targets(trainer, options):
        if _wrap_bound(owner, method, ROLE_WRAPPERS[role](options)):
            wrapped.append(f"{type(owner).__name__}.{method}")
    try:
        from otel_grpo.instrumentation.judge_http import instrument_http

        instrument_http(get_telemetry)
    except ImportError:
        pass
    logger.info("otel-grpo: instrumented %s", ", ".join(wrapped) or "nothing new")
    return trainer


def uninstrument_trainer(trainer: Any) -> Any:
    """Remove every wrapper :func:`instrument_trainer` put on ``trainer`` and its parts."""
    try:
        parts = [value for value in vars(trainer).values() if hasattr(value, "__dict__")]
    except TypeError:
        parts = []
    for owner in (trainer, *parts):
        try:
            items = list(vars(owner).items())
        except TypeError:
            continue
        for name, value in items:
            if getattr(value, _MARK, None) is not None:
                delattr(owner, name)
    return trainer
