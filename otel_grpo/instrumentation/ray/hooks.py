"""The patches on Ray's own classes, installed when ``ray`` is imported (driver and workers).

* ``RemoteFunction._remote`` and ``ActorMethod._remote``: a call made while otel-grpo
  runs is tagged and its records filed: on the driver by :mod:`.calls`, in a worker
  serving a tracked call by :mod:`.nested`. A call that cannot be tracked (a generator,
  a tensor transport, an actor created before otel-grpo started, a call made in a worker
  outside any tracked call) is counted in ``exporter/ray_records_lost`` with one warning
  that names it;
* ``ActorClass._remote`` (actor creation): before Ray exports the class, its methods are
  replaced, on Ray's private subclass only, by the tracked versions of :mod:`.worker`;
  a remote function's body is replaced likewise before its first export;
* ``ray.shutdown`` and interpreter exit: the calls still running are given at most
  ``OTEL_GRPO_RAY_WAIT_S``, then counted lost (:meth:`.calls.RayCalls.close`).

Everything here is reversible (:func:`uninstall`) and guarded: a fault is reported and
the call goes to Ray untouched.
"""

from __future__ import annotations

import atexit
import inspect
import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any, Protocol

import wrapt

from otel_grpo.api import get_telemetry
from otel_grpo.faults import report_fault
from otel_grpo.instrumentation.patching import patched_methods
from otel_grpo.instrumentation.ray.calls import RayCalls, exit_wait_s
from otel_grpo.instrumentation.ray.nested import worker_tracker
from otel_grpo.instrumentation.ray.worker import (
    TAG_PARAM,
    CallTag,
    is_tagged,
    is_worker_process,
    wrap_actor_method,
    wrap_task_function,
)

logger = logging.getLogger(__name__)

_PATCHES = (
    ("ray.remote_function", "RemoteFunction._remote"),
    ("ray.actor", "ActorMethod._remote"),
    ("ray.actor", "ActorClass._remote"),
    ("ray", "shutdown"),
)

SKIP = ""
"""Untracked on purpose and not counted (Ray's own actor methods, cross-language calls)."""


class Tracker(Protocol):
    """Where a remote call made here is filed: the driver's :class:`RayCalls` or a worker's nested calls."""

    def blocked(self) -> str | None:
        """Why no call made here can be tracked now (None: it can)."""

    def tag(self, returns: int) -> tuple[CallTag, Any]:
        """The call's tag and a handle for :meth:`file`."""

    def file(self, handle: Any, ref: Any) -> None:
        """File the submitted call's records reference."""

    def untracked(self, what: str) -> None:
        """Count a call that cannot be tracked (``what`` names it and says why)."""


class _Driver:
    lock = threading.Lock()
    calls: RayCalls | None = None
    installed = False
    exit_hooked = False  # the exit hook was registered after Ray's own (Ray was initialized)


def active_calls() -> RayCalls | None:
    """The tracked calls of the running telemetry session (None when otel-grpo is off)."""
    tel = get_telemetry()
    if tel is None or not tel.config.instrumentation.enabled or is_worker_process():
        return None
    calls = _Driver.calls
    if calls is not None and calls.telemetry is tel:
        return calls
    with _Driver.lock:
        previous = calls = _Driver.calls
        if calls is None or calls.telemetry is not tel:
            calls = _Driver.calls = RayCalls(tel, patched_methods)
            tel.shutdown_hooks.append(_at_shutdown)  # an explicit shutdown waits like the exit does
            _Driver.exit_hooked = False
        else:
            previous = None
    if previous is not None:
        previous.close(None)  # its telemetry was shut down: what it still holds cannot be recorded
    return calls


def _hook_exit() -> None:
    """Register the exit hook once Ray is initialized (a first ``f.remote()`` may initialize it):
    ``atexit`` runs hooks last-in first-out, so ours runs while Ray still works."""
    if _Driver.exit_hooked or is_worker_process():
        return
    _Driver.exit_hooked = True
    atexit.unregister(_at_exit)
    atexit.register(_at_exit)


def _tracker() -> Tracker | None:
    calls = active_calls()
    return calls if calls is not None else worker_tracker()


def _close_calls(wait_s: float) -> None:
    """Give the calls still running at most ``wait_s``, replay what completes, count the rest lost."""
    with _Driver.lock:
        calls, _Driver.calls = _Driver.calls, None
    if calls is None:
        return
    try:
        import ray

        alive = get_telemetry() is calls.telemetry and ray.is_initialized()
        calls.close(wait_s if alive else None)
    except Exception as exc:  # noqa: BLE001
        report_fault("Ray calls at exit", exc)


def _at_shutdown() -> None:
    """The telemetry is shutting down (``tel.shutdown()`` or exit): the calls still running get their wait."""
    _close_calls(exit_wait_s())


def _at_exit() -> None:
    _close_calls(exit_wait_s())


def _ray_shutdown(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    if not is_worker_process():
        _close_calls(exit_wait_s())
    return wrapped(*args, **kwargs)


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


def _submit(wrapped: Callable[..., Any], tracker: Tracker, returns: int, call: tuple) -> Any:
    """Submit a tagged call; a fault before submission leaves the call to Ray untouched."""
    call_args, call_kwargs, rest, options = call
    try:
        tag, handle = tracker.tag(returns)
        tagged_kwargs = dict(call_kwargs or {})
        tagged_kwargs[TAG_PARAM] = tag.to_wire()
        options = {**options, "num_returns": returns + 1}
    except Exception as exc:  # noqa: BLE001
        report_fault("Ray call tagging", exc)
        return wrapped(call_args, call_kwargs, *rest, **call[3])
    refs = wrapped(call_args, tagged_kwargs, *rest, **options)
    result, records_ref = _split(refs, returns)
    try:
        tracker.file(handle, records_ref)
        _hook_exit()
    except Exception as exc:  # noqa: BLE001
        report_fault("Ray call filing", exc)
    return result


Plan = tuple[int | None, str, str | None]
"""(values the call returns, what is called, why it cannot be tracked: None if it can, :data:`SKIP`)."""


def _dispatch(wrapped: Callable[..., Any], args: tuple, kwargs: dict, plan: Callable[[dict], Plan]) -> Any:
    """Track the call if ``plan(options)`` allows it, else count it (unless skipped) and say why."""
    tracker = _tracker()
    if tracker is None:
        return wrapped(*args, **kwargs)
    try:
        call = _bind(*args, **kwargs)
        returns, name, why = plan(call[3])
        if why is None:
            why = tracker.blocked()
        if why:
            tracker.untracked(f"{name} ({why})")
    except Exception as exc:  # noqa: BLE001
        report_fault("Ray call", exc)
        return wrapped(*args, **kwargs)
    if why is not None or returns is None:
        return wrapped(*args, **kwargs)
    return _submit(wrapped, tracker, returns, call)


# --- remote functions -----------------------------------------------------------------------------
def _prepare_function(function: Any) -> None:
    """Give a remote function its tracked body (once, before it is exported again)."""
    if is_tagged(function._function):
        return
    with function._inject_lock:
        if not is_tagged(function._function):
            function._function = wrap_task_function(function._function)
            function._function_signature = None  # Ray reads the new signature
            function._last_export_cluster_and_job = None  # and exports the new body
            function._uuid = uuid.uuid4()


def _function_plan(function: Any, options: dict) -> Plan:
    name = f"task {getattr(function, '_function_name', '?')}"
    if function._is_cross_language:
        return None, name, SKIP
    returns = _returns(options.get("num_returns"), function._is_generator)
    if returns is None:
        return None, name, "a generator task"
    _prepare_function(function)
    return returns, name, None


def _remote_function_remote(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    return _dispatch(wrapped, args, kwargs, lambda options: _function_plan(instance, options))


# --- actors ----------------------------------------------------------------------------------------
def _trackable(klass: type, name: str, method: Any) -> bool:
    if name.startswith("__") or is_tagged(method):
        return False
    static = inspect.getattr_static(klass, name, None)
    if isinstance(static, staticmethod | classmethod):
        return False
    return not (inspect.isgeneratorfunction(method) or inspect.isasyncgenfunction(method))


BEFORE_START = "its actors were created before otel-grpo started"


def _before_start(class_name: str) -> str:
    return f"actor class {class_name} ({BEFORE_START})"


def _prepare_actor_class(actor_class: Any) -> str | None:
    """Replace the methods of Ray's subclass by tracked ones, before the class is exported.

    Returns why its methods cannot be tracked (the class was exported before otel-grpo started).
    """
    from ray._common.signature import extract_signature

    meta = actor_class.__ray_metadata__
    if getattr(meta, "_otel_grpo_prepared", False) or meta.is_cross_language:
        return None
    meta._otel_grpo_prepared = True
    klass, method_meta = meta.modified_class, meta.method_meta
    if meta.last_export_cluster_and_job is not None:
        descriptor = getattr(meta, "actor_creation_function_descriptor", None)
        return _before_start(str(getattr(descriptor, "class_name", None) or getattr(klass, "__name__", "?")))
    for name, method in list(method_meta.methods.items()):
        if not _trackable(klass, name, method):
            continue
        tracked = wrap_actor_method(method)
        setattr(klass, name, tracked)
        method_meta.methods[name] = tracked
        method_meta.signatures[name] = extract_signature(tracked, ignore_first=True)
    return None


def _actor_class_remote(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    calls = active_calls()
    if calls is not None or is_worker_process():
        try:
            why = _prepare_actor_class(instance)
            if why and calls is not None:
                calls.warn_untracked(why)
        except Exception as exc:  # noqa: BLE001
            report_fault("Ray actor class", exc)
    return wrapped(*args, **kwargs)


def _takes_tag(signature: Any) -> bool:
    return any(p.name == TAG_PARAM for p in signature or ())


_actor_plans: dict[tuple[Any, str], Plan] = {}  # (actor id, method name) -> its plan without call options
_MAX_PLANS = 4096


def _actor_plan(method: Any, options: dict) -> Plan:
    """The plan of an actor method call: found once per actor and method (each call makes a new
    ``ActorMethod``), unless the call's options change the number of returns or the transport."""
    if options.get("num_returns") is not None or options.get("tensor_transport"):
        return _plan_actor_method(method, options)
    actor_id = getattr(method._actor, "_ray_actor_id", None)
    key = (actor_id, method._method_name)
    plan = _actor_plans.get(key)
    if plan is None:
        plan = _plan_actor_method(method, options)
        if actor_id is not None:
            if len(_actor_plans) >= _MAX_PLANS:
                _actor_plans.clear()
            _actor_plans[key] = plan
    return plan


def _plan_actor_method(method: Any, options: dict) -> Plan:
    handle = method._actor
    descriptor = getattr(handle, "_ray_actor_creation_function_descriptor", None)
    class_name = getattr(descriptor, "class_name", None) or "?"
    name = f"actor method {class_name}.{method._method_name}"
    if method._method_name.startswith("__"):
        return None, name, SKIP  # Ray's own (__ray_ready__, __ray_terminate__, ...)
    num_returns = options.get("num_returns")
    returns = _returns(method._num_returns if num_returns is None else num_returns, method._is_generator)
    if returns is None:
        return None, name, "a generator"
    if options.get("tensor_transport") or method._tensor_transport:
        return None, name, "a tensor transport"
    if _takes_tag(method._signature):
        return returns, name, None
    if any(_takes_tag(sig) for sig in getattr(handle, "_ray_method_signatures", {}).values()):
        return None, name, SKIP  # a static or class method of a tracked class
    return None, f"actor class {class_name}", BEFORE_START


def _actor_method_remote(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    return _dispatch(wrapped, args, kwargs, lambda options: _actor_plan(instance, options))


_WRAPPERS = {
    "RemoteFunction._remote": _remote_function_remote,
    "ActorMethod._remote": _actor_method_remote,
    "ActorClass._remote": _actor_class_remote,
    "shutdown": _ray_shutdown,
}


def install(_ray_module: Any = None) -> None:
    """Patch Ray's classes (idempotent); called when ``ray`` is imported."""
    with _Driver.lock:
        if _Driver.installed:
            return
        try:
            for module, name in _PATCHES:
                wrapt.wrap_function_wrapper(module, name, _WRAPPERS[name])
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

    for module_name, name in _PATCHES:
        try:
            owner: Any = importlib.import_module(module_name)
            *path, attribute = name.split(".")
            for part in path:
                owner = getattr(owner, part)
        except Exception:  # noqa: BLE001
            continue
        current = vars(owner).get(attribute)
        if isinstance(current, wrapt.FunctionWrapper):
            setattr(owner, attribute, current.__wrapped__)
    _Driver.installed = False
