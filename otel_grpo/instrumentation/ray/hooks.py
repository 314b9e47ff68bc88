"""The patches on Ray's own classes (driver side), installed when ``ray`` is imported.

* ``RemoteFunction._remote`` and ``ActorMethod._remote``: a call made while otel-grpo
  runs is tagged and its records filed (:mod:`.calls`);
* ``ActorClass._remote`` (actor creation): before Ray exports the class, its methods are
  replaced, on Ray's private subclass only, by the tracked versions of :mod:`.worker`;
  a remote function's body is replaced likewise before its first export.

Everything here is reversible (:func:`uninstall`) and guarded: a fault is reported and
the call goes to Ray untouched.
"""

from __future__ import annotations

import inspect
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

import wrapt

from otel_grpo.api import get_telemetry
from otel_grpo.faults import fault_guard, report_fault
from otel_grpo.instrumentation.patching import patched_methods
from otel_grpo.instrumentation.ray.calls import RayCalls
from otel_grpo.instrumentation.ray.worker import (
    TAG_PARAM,
    is_tagged,
    is_worker_process,
    wrap_actor_method,
    wrap_task_function,
)

logger = logging.getLogger(__name__)

_PATCHES = (
    ("ray.remote_function", "RemoteFunction", "_remote"),
    ("ray.actor", "ActorMethod", "_remote"),
    ("ray.actor", "ActorClass", "_remote"),
)


class _Driver:
    lock = threading.Lock()
    calls: RayCalls | None = None
    installed = False
    warned_exported: set[str] = set()


def active_calls() -> RayCalls | None:
    """The tracked calls of the running telemetry session (None when otel-grpo is off)."""
    tel = get_telemetry()
    if tel is None or not tel.config.instrumentation.enabled or is_worker_process():
        return None
    calls = _Driver.calls
    if calls is None or calls.telemetry is not tel:
        with _Driver.lock:
            calls = _Driver.calls
            if calls is None or calls.telemetry is not tel:
                calls = _Driver.calls = RayCalls(tel, patched_methods)
    return calls


def _returns(num_returns: Any, is_generator: bool) -> int | None:
    """How many values a call returns to its caller; None for generators (left untracked)."""
    if num_returns is None:
        return None if is_generator else 1
    if isinstance(num_returns, int) and not isinstance(num_returns, bool) and num_returns >= 0:
        return num_returns
    return None


def _bind(args: Any = None, kwargs: Any = None, *rest: Any, **options: Any) -> tuple[Any, Any, tuple, dict]:
    return args, kwargs, rest, options


def _split(refs: Any, returns: int) -> tuple[Any, Any]:
    """(what the caller gets, the records' reference) from Ray's answer for ``returns + 1`` values."""
    if returns == 0:
        return None, refs
    if returns == 1:
        return refs[0], refs[1]
    return list(refs[:-1]), refs[-1]


def _submit(wrapped: Callable[..., Any], calls: RayCalls, returns: int, call: tuple) -> Any:
    """Submit a tagged call; a fault before submission leaves the call to Ray untouched."""
    call_args, call_kwargs, rest, options = call
    try:
        tag, pending = calls.tag(returns)
        tagged_kwargs = dict(call_kwargs or {})
        tagged_kwargs[TAG_PARAM] = tag
        options = {**options, "num_returns": returns + 1}
    except Exception as exc:  # noqa: BLE001
        report_fault("Ray call tagging", exc)
        return wrapped(call_args, call_kwargs, *rest, **call[3])
    refs = wrapped(call_args, tagged_kwargs, *rest, **options)
    result, records_ref = _split(refs, returns)
    with fault_guard("Ray call filing"):
        calls.file(pending, records_ref)
    return result


# --- remote functions -----------------------------------------------------------------------------
def _prepare_function(function: Any) -> bool:
    """Give a remote function its tracked body (once, before it is exported again)."""
    if is_tagged(function._function):
        return True
    if function._is_cross_language or function._is_generator:
        return False
    with function._inject_lock:
        if not is_tagged(function._function):
            function._function = wrap_task_function(function._function)
            function._function_signature = None  # Ray reads the new signature
            function._last_export_cluster_and_job = None  # and exports the new body
            function._uuid = uuid.uuid4()
    return True


def _remote_function_remote(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    calls = active_calls()
    if calls is None:
        return wrapped(*args, **kwargs)
    try:
        call = _bind(*args, **kwargs)
        returns = _returns(call[3].get("num_returns"), instance._is_generator)
        tracked = returns is not None and _prepare_function(instance)
    except Exception as exc:  # noqa: BLE001
        report_fault("Ray remote function", exc)
        return wrapped(*args, **kwargs)
    if not tracked or returns is None:
        return wrapped(*args, **kwargs)
    return _submit(wrapped, calls, returns, call)


# --- actors ----------------------------------------------------------------------------------------
def _trackable(klass: type, name: str, method: Any) -> bool:
    if name.startswith("__") or is_tagged(method):
        return False
    static = inspect.getattr_static(klass, name, None)
    if isinstance(static, staticmethod | classmethod):
        return False
    return not (inspect.isgeneratorfunction(method) or inspect.isasyncgenfunction(method))


def _prepare_actor_class(actor_class: Any) -> None:
    """Replace the methods of Ray's subclass by tracked ones, before the class is exported."""
    from ray._common.signature import extract_signature

    meta = actor_class.__ray_metadata__
    if getattr(meta, "_otel_grpo_prepared", False) or meta.is_cross_language:
        return
    meta._otel_grpo_prepared = True
    klass, method_meta = meta.modified_class, meta.method_meta
    if meta.last_export_cluster_and_job is not None:
        name = getattr(klass, "__name__", "?")
        if name not in _Driver.warned_exported:
            _Driver.warned_exported.add(name)
            logger.warning(
                "otel-grpo: actor class %s was created before otel-grpo started; its calls are not tracked", name
            )
        return
    for name, method in list(method_meta.methods.items()):
        if not _trackable(klass, name, method):
            continue
        tracked = wrap_actor_method(method)
        setattr(klass, name, tracked)
        method_meta.methods[name] = tracked
        method_meta.signatures[name] = extract_signature(tracked, ignore_first=True)


def _actor_class_remote(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    if active_calls() is not None:
        with fault_guard("Ray actor class"):
            _prepare_actor_class(instance)
    return wrapped(*args, **kwargs)


def _actor_method_remote(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    calls = active_calls()
    if calls is None:
        return wrapped(*args, **kwargs)
    try:
        signature = instance._signature or ()
        call = _bind(*args, **kwargs)
        num_returns = call[3].get("num_returns")
        returns = _returns(instance._num_returns if num_returns is None else num_returns, instance._is_generator)
        tracked = (
            returns is not None
            and any(p.name == TAG_PARAM for p in signature)
            and not (call[3].get("tensor_transport") or instance._tensor_transport)
        )
    except Exception as exc:  # noqa: BLE001
        report_fault("Ray actor method", exc)
        return wrapped(*args, **kwargs)
    if not tracked or returns is None:
        return wrapped(*args, **kwargs)
    return _submit(wrapped, calls, returns, call)


_WRAPPERS = {
    ("ray.remote_function", "RemoteFunction"): _remote_function_remote,
    ("ray.actor", "ActorMethod"): _actor_method_remote,
    ("ray.actor", "ActorClass"): _actor_class_remote,
}


def install(_ray_module: Any = None) -> None:
    """Patch Ray's classes (idempotent); called when ``ray`` is imported."""
    with _Driver.lock:
        if _Driver.installed:
            return
        try:
            for module, klass, method in _PATCHES:
                wrapt.wrap_function_wrapper(module, f"{klass}.{method}", _WRAPPERS[(module, klass)])
            _Driver.installed = True
        except Exception as exc:  # noqa: BLE001 - an unknown Ray: nothing tracked, nothing broken
            report_fault("Ray instrumentation", exc)
            _uninstall_locked()


def uninstall() -> None:
    """Remove the patches and forget the tracked calls."""
    with _Driver.lock:
        _uninstall_locked()
        _Driver.calls = None


def _uninstall_locked() -> None:
    import importlib

    for module_name, klass_name, method in _PATCHES:
        try:
            klass = getattr(importlib.import_module(module_name), klass_name)
        except Exception:  # noqa: BLE001
            continue
        current = klass.__dict__.get(method)
        if isinstance(current, wrapt.FunctionWrapper):
            setattr(klass, method, current.__wrapped__)
    _Driver.installed = False
