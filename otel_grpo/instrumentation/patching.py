"""Putting role wrappers on classes so that instrumented objects still pickle and copy.

otel-grpo wraps trainer methods on the *class* (``wrapt.FunctionWrapper`` in the class
``__dict__``), never on the instance, so an instance's ``__dict__`` holds nothing of
ours: ``pickle``, ``copy.copy`` and ``copy.deepcopy`` of a trainer, executor or reward
computer behave exactly as without otel-grpo, and a copy's methods run on the copy.

wrapt's proxies refuse to pickle or copy themselves. The subclasses here reduce the
way the plain objects they stand for do:

* a wrapped function pickles as a reference to its qualified name (like any function),
  so the receiving process gets whatever that name is bound to *there*: wrapped if
  otel-grpo instruments that process, the original function otherwise;
* a bound wrapped method pickles as ``getattr(instance, name)``, like a bound method,
  which is what ``ProcessPoolExecutor.submit(rc.compute_reward, ...)`` and Ray need.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from typing import Any

import wrapt

logger = logging.getLogger(__name__)

Wrapper = Callable[[Callable[..., Any], Any, tuple, dict], Any]


class _BoundRoleWrapper(wrapt.BoundFunctionWrapper):
    """A bound method wrapped for a role: pickles and copies like a bound method."""

    def _attribute_name(self) -> str:
        parent = self._self_parent
        name = getattr(parent, "_self_otel_attribute", None) if parent is not None else None
        return name or self.__wrapped__.__name__

    def __reduce_ex__(self, protocol: Any) -> tuple:
        instance = self._self_instance
        if instance is None:  # looked up on the class: ``RewardComputer.compute_reward``
            return self._self_parent.__reduce_ex__(protocol)
        return getattr, (instance, self._attribute_name())

    def __reduce__(self) -> tuple:
        return self.__reduce_ex__(2)

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: dict) -> Any:
        instance = self._self_instance
        if instance is None:
            return self
        return getattr(copy.deepcopy(instance, memo), self._attribute_name())


class RoleFunctionWrapper(wrapt.FunctionWrapper):
    """A method wrapped for one otel-grpo role (``train_step``, ``execute``...)."""

    __bound_function_wrapper__ = _BoundRoleWrapper

    def __init__(self, wrapped: Any, wrapper: Wrapper, role: str = "", attribute: str = "", owner: Any = None) -> None:
        super().__init__(wrapped, wrapper)
        self._self_otel_role = role
        self._self_otel_attribute = attribute or getattr(wrapped, "__name__", "")
        self._self_otel_owner = owner

    @property
    def otel_grpo_role(self) -> str:
        """The role this wrapper records (a marker that the method is ours)."""
        return self._self_otel_role

    def __reduce_ex__(self, protocol: Any) -> Any:
        owner = self._self_otel_owner
        if owner is None:
            return self.__wrapped__.__qualname__
        return getattr, (owner, self._self_otel_attribute)

    def __reduce__(self) -> Any:
        return self.__reduce_ex__(2)

    def __copy__(self) -> Any:
        return self

    def __deepcopy__(self, memo: dict) -> Any:
        return self


def is_ours(value: Any) -> bool:
    """True when ``value`` is a role wrapper otel-grpo put in place."""
    return isinstance(value, RoleFunctionWrapper)


_patches: dict[tuple[type, str], tuple[str, str]] = {}  # (class, method) -> (role, origin)
_listed: list[tuple[str, str, str]] | None = None  # patched_methods() until the patches change


def patch_method(owner: type, name: str, wrapper: Wrapper, role: str, origin: str = "") -> bool:
    """Wrap ``owner.name`` (a class attribute) for ``role``; False if already ours or not patchable.

    ``origin`` says who asked (``targets``, ``trainer``, ``worker``), for :func:`unpatch_all`.
    """
    current = owner.__dict__.get(name)
    if is_ours(current):
        return False
    inherited = name not in owner.__dict__
    try:
        installed = wrapt.wrap_object(owner, name, RoleFunctionWrapper, (wrapper, role, name, owner), {})
    except (AttributeError, TypeError) as exc:  # a built-in or extension type
        logger.warning("otel-grpo: cannot wrap %s.%s (%s); it is not recorded", owner.__qualname__, name, exc)
        return False
    installed._self_otel_inherited = inherited
    _patches[(owner, name)] = (role, origin)
    _changed()
    return True


def _changed() -> None:
    global _listed
    _listed = None


def unpatch_method(owner: type, name: str) -> bool:
    """Restore ``owner.name`` if otel-grpo's wrapper is the one in the class ``__dict__``."""
    _patches.pop((owner, name), None)
    _changed()
    current = owner.__dict__.get(name)
    if not isinstance(current, RoleFunctionWrapper):
        return False
    if getattr(current, "_self_otel_inherited", False):
        delattr(owner, name)  # the method lives on a base class again, as before
    else:
        setattr(owner, name, current.__wrapped__)
    return True


def unpatch_all(origin: str) -> int:
    """Restore every method patched for ``origin``; how many."""
    mine = [key for key, (_role, where) in list(_patches.items()) if where == origin]
    for owner, name in reversed(mine):
        unpatch_method(owner, name)
    return len(mine)


def patched_methods() -> list[tuple[str, str, str]]:
    """``(module, Class.method, role)`` of every method otel-grpo has wrapped in this process.

    Ray worker processes wrap the same methods (see :mod:`otel_grpo.instrumentation.ray`).
    """
    global _listed
    listed = _listed
    if listed is None:  # listed again only after a change (it is asked at every Ray call)
        listed = [
            (owner.__module__, f"{owner.__qualname__}.{name}", role)
            for (owner, name), (role, _) in list(_patches.items())
        ]
        _listed = listed
    return list(listed)


__all__ = ["RoleFunctionWrapper", "is_ours", "patch_method", "patched_methods", "unpatch_all", "unpatch_method"]
