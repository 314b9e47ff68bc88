"""The roles found on one trainer object, for ``instrument_trainer(trainer)``.

The trainer's methods (and those of its executor and reward computer, found through the
configured attribute names) are wrapped on their classes by
:func:`otel_grpo.instrumentation.install.install`, exactly as ``otel-grpo run`` does, so the
objects stay picklable and copyable.
"""

from __future__ import annotations

import logging
from typing import Any

from otel_grpo.config import InstrumentationConfig, parse_target
from otel_grpo.instrumentation.roles import ROLE_WRAPPERS

logger = logging.getLogger(__name__)

_EXECUTOR_ROLES = frozenset({"execute"})
_REWARD_ROLES = frozenset({"compute_reward", "judge"})


def defining_class(obj: Any, name: str) -> type | None:
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


def trainer_targets(trainer: Any, options: InstrumentationConfig) -> list[tuple[Any, str, str]]:
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


__all__ = ["defining_class", "trainer_targets"]
