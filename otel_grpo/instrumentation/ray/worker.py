"""The worker side of a tracked remote call: context in, records out with the result.

The driver passes each call it tracks a small tag (keyword argument :data:`TAG_PARAM`):
call id, split, step, trace context, the number of values the call returns, and the
session (where to read the driver's configuration, once per worker process). The
function or actor method runs in its own context in which the driver's window, split
and trace are current, so the role wrappers inside record as in one process, into a
:class:`~.records.CallRecords`. The records travel back as one extra return value (or,
when the call raises, on the exception itself); the caller never sees them.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from otel_grpo.faults import report_fault
from otel_grpo.instrumentation.ray.delivery import inline_completed
from otel_grpo.instrumentation.ray.events import RECORDS_ATTRIBUTE, CallPayload, to_wire
from otel_grpo.instrumentation.ray.records import (
    CallRecords,
    CapturingRecorder,
    LostRecords,
    begin_call,
    empty_payload,
    end_call,
)
from otel_grpo.recording.context import (
    current_sample,
    current_split_var,
    current_window_var,
    reset_sample,
    set_sample,
)
from otel_grpo.recording.stats import Window

logger = logging.getLogger(__name__)

TAG_PARAM = "_otel_grpo_call"
"""The keyword argument that carries a tracked call's tag to the worker."""

"""Attribute of an exception raised by a tracked call that carries the call's records."""

SESSION_TIMEOUT_S = 2.0
"""How long a worker waits for the driver's configuration before it runs a call untracked."""


class CallTag(NamedTuple):
    """What a tracked remote call carries from the driver."""

    call_id: int
    split: str
    step: int
    carrier: dict[str, str] | None  # W3C trace context of the caller
    returns: int  # values the call returns to the caller (its num_returns)
    session: Any  # (session id, WorkerSession or an ObjectRef to one)

    def to_wire(self) -> list[Any]:
        """The tag as a list of plain values (Ray ships it with msgpack alone, no pickle);
        ``CallTag(*wire)`` reads it back."""
        return [self.call_id, self.split, self.step, self.carrier, self.returns, list(self.session)]


@dataclass
class WorkerSession:
    """The driver's otel-grpo settings a worker process adopts (no secrets: OTLP headers stay behind)."""

    session_id: str
    config: dict[str, Any]
    run_id: str
    driver_pid: int
    methods: list[tuple[str, str, str]] = field(default_factory=list)  # (module, Class.method, role)


class _WorkerState:
    lock = threading.Lock()
    session_id: str | None = None
    failed: set[str] = set()


def is_worker_process() -> bool:
    """True in a Ray worker that adopted a driver's session (its own remote calls are not tracked)."""
    return _WorkerState.session_id is not None


def _adopt(session: WorkerSession) -> None:
    """Set otel-grpo up in this worker like the driver, recording with the capturing recorder."""
    from otel_grpo.api import setup
    from otel_grpo.instrumentation.install import install
    from otel_grpo.instrumentation.pairing import set_key_hash, stable_key_hash

    os.environ["OTEL_GRPO_RUN_ID"] = session.run_id  # the driver's run, also in a reused worker
    config = {key: value for key, value in session.config.items() if key != "otlp"}
    otlp = dict(session.config.get("otlp") or {})
    otlp.pop("headers", None)  # redacted on the driver; a worker takes its own from OTEL_EXPORTER_OTLP_HEADERS
    if otlp.get("endpoint") and "***" in str(otlp["endpoint"]):
        otlp["endpoint"] = None
    otlp["metrics"] = False  # the driver publishes every figure; workers export spans only
    config["otlp"] = otlp
    config["wandb"] = {**(config.get("wandb") or {}), "mode": "disabled"}
    config["prometheus"] = {**(config.get("prometheus") or {}), "enabled": False}
    tel = setup(config, recorder_class=CapturingRecorder)
    set_key_hash(stable_key_hash)
    install(tel, targets=True, methods=session.methods)


_KV_NAMESPACE = b"otel_grpo"


def publish_session(spec: WorkerSession) -> Any:
    """Make ``spec`` readable by every worker; returns what a tag carries to find it.

    The session goes to Ray's key-value store under its id, so a tag carries a short
    string (a nested object reference would cost every call Ray's borrowing protocol).
    Without that store, the session itself travels in the tag.
    """
    import pickle

    try:
        from ray.experimental.internal_kv import _internal_kv_put

        _internal_kv_put(spec.session_id.encode(), pickle.dumps(spec), namespace=_KV_NAMESPACE)
        return None
    except Exception as exc:  # noqa: BLE001 - an older or stripped Ray: the spec rides along
        logger.debug("otel-grpo: Ray internal KV unavailable (%s)", exc)
        return spec


def _read_session(session_id: str) -> WorkerSession:
    """The session published under ``session_id`` (one read of Ray's key-value store)."""
    import pickle

    from ray.experimental.internal_kv import _internal_kv_get

    data = _internal_kv_get(session_id.encode(), namespace=_KV_NAMESPACE)
    if data is None:
        raise LookupError(f"no otel-grpo session {session_id}")
    spec = pickle.loads(data)
    if not isinstance(spec, WorkerSession):
        raise TypeError(f"not an otel-grpo session: {type(spec).__name__}")
    return spec


def ensure_session(session: Any) -> bool:
    """Adopt the driver's session in this process (once); False when it is unavailable."""
    session_id, spec = session
    if _WorkerState.session_id == session_id:
        return True
    with _WorkerState.lock:
        if _WorkerState.session_id == session_id:
            return True
        if session_id in _WorkerState.failed:
            return False
        try:
            if not isinstance(spec, WorkerSession):
                spec = _read_session(session_id)
            if spec.driver_pid == os.getpid():  # local mode: the driver records itself
                return False
            _adopt(spec)
            _WorkerState.session_id = session_id
            return True
        except Exception as exc:  # noqa: BLE001 - an unreachable session: the call runs untracked
            _WorkerState.failed.add(session_id)
            report_fault("Ray worker setup", exc)
            return False


# --- running one call ---------------------------------------------------------------------------
class _Open(NamedTuple):
    records: CallRecords
    tokens: tuple
    otel_token: Any


def _open(tag: CallTag) -> _Open | None:
    if not ensure_session(tag.session):
        return None
    window = Window(split=tag.split, step=tag.step)
    tokens = (current_window_var().set(window), current_split_var().set(tag.split), set_sample(None))
    otel_token = None
    if tag.carrier:
        from opentelemetry import context as otel_context
        from opentelemetry import propagate

        otel_token = otel_context.attach(propagate.extract(tag.carrier))
    records = CallRecords(tag.call_id, tag)
    return _Open(records, (*tokens, begin_call(records)), otel_token)


def _close(opened: _Open | None, tag: CallTag) -> CallPayload:
    if opened is None:
        lost, untracked = LostRecords.take()
        return empty_payload(tag.call_id, lost + 1, untracked)
    records, tokens, otel_token = opened
    payload = _with_nested(records.payload(current_sample(), *LostRecords.take()))
    end_call(records, tokens[3])
    reset_sample(tokens[2])
    for var, token in zip((current_window_var(), current_split_var()), tokens[:2], strict=True):
        try:
            var.reset(token)
        except ValueError:
            var.set(None)
    if otel_token is not None:
        from opentelemetry import context as otel_context

        try:
            otel_context.detach(otel_token)
        except Exception:  # noqa: BLE001
            pass
    return payload


def _with_nested(payload: CallPayload) -> CallPayload:
    """``payload`` with the records of its completed nested calls inline (not in an event loop:
    a blocking read there would stall it, so an async actor's nested calls travel as references)."""
    if not payload.nested:
        return payload
    try:
        asyncio.get_running_loop()
        return payload
    except RuntimeError:
        pass
    try:
        return payload._replace(nested=inline_completed(payload.nested))
    except Exception as exc:  # noqa: BLE001 - the references still reach the driver
        report_fault("Ray nested records", exc)
        return payload


def _guarded_open(tag: Any) -> _Open | None:
    try:
        return _open(tag)
    except Exception as exc:  # noqa: BLE001
        report_fault("Ray call start", exc)
        return None


def _guarded_close(opened: _Open | None, tag: CallTag) -> CallPayload:
    try:
        return _close(opened, tag)
    except Exception as exc:  # noqa: BLE001
        report_fault("Ray call end", exc)
        return empty_payload(tag.call_id, 1)


def _with_records(result: Any, records: CallPayload, returns: int) -> Any:
    """The call's return values with the records appended as one more (in their wire form)."""
    payload = to_wire(records)
    if returns == 1:
        return result, payload
    if returns == 0:
        return payload
    if isinstance(result, tuple | list) and len(result) == returns:
        return (*result, payload)
    return result  # the wrong number of values: Ray reports it as it would have


def _attach(exc: BaseException, payload: CallPayload) -> None:
    try:
        setattr(exc, RECORDS_ATTRIBUTE, payload)
    except Exception:  # noqa: BLE001 - an exception without a __dict__: its records are lost
        pass


Resolve = Callable[[], Callable[..., Any]]


def run_sync(function: Callable[..., Any], args: tuple, kwargs: dict, tag: Any, resolve: Resolve | None = None) -> Any:
    """Run a tracked synchronous call in a context of its own.

    ``resolve`` (actor methods) looks the method up again once the worker is set up, so
    that a method otel-grpo wraps in this process is the one that runs.
    """
    return contextvars.copy_context().run(_run_sync, function, args, kwargs, CallTag(*tag), resolve)


def _resolved(function: Callable[..., Any], resolve: Resolve | None) -> Callable[..., Any]:
    if resolve is None:
        return function
    try:
        return resolve()
    except Exception as exc:  # noqa: BLE001
        report_fault("Ray method lookup", exc)
        return function


def _run_sync(
    function: Callable[..., Any], args: tuple, kwargs: dict, tag: CallTag, resolve: Resolve | None = None
) -> Any:
    opened = _guarded_open(tag)
    function = _resolved(function, resolve)
    try:
        result = function(*args, **kwargs)
    except BaseException as exc:
        _attach(exc, _guarded_close(opened, tag))
        raise
    return _with_records(result, _guarded_close(opened, tag), tag.returns)


async def run_async(
    function: Callable[..., Any], args: tuple, kwargs: dict, tag: Any, resolve: Resolve | None = None
) -> Any:
    """Run a tracked asynchronous actor method (its task has a context of its own)."""
    call_tag = CallTag(*tag)
    session_id, spec = call_tag.session
    if _WorkerState.session_id != session_id and not isinstance(spec, WorkerSession):
        try:  # read the session without blocking the actor's event loop
            spec = await asyncio.wait_for(asyncio.to_thread(_read_session, session_id), SESSION_TIMEOUT_S + 1)
            call_tag = call_tag._replace(session=(session_id, spec))
        except Exception as exc:  # noqa: BLE001 - ensure_session tries again, bounded, and counts a failure
            logger.debug("otel-grpo: session read failed (%s)", type(exc).__qualname__)
    opened = _guarded_open(call_tag)
    function = _resolved(function, resolve)
    try:
        result = await function(*args, **kwargs)
    except BaseException as exc:
        _attach(exc, _guarded_close(opened, call_tag))
        raise
    return _with_records(result, _guarded_close(opened, call_tag), call_tag.returns)


# --- the wrapped functions and methods ----------------------------------------------------------
def tagged_signature(signature: inspect.Signature) -> inspect.Signature:
    """``signature`` with the keyword-only :data:`TAG_PARAM` added (before any ``**kwargs``)."""
    params = list(signature.parameters.values())
    tag = inspect.Parameter(TAG_PARAM, inspect.Parameter.KEYWORD_ONLY, default=None)
    index = len(params)
    if params and params[-1].kind is inspect.Parameter.VAR_KEYWORD:
        index -= 1
    return signature.replace(parameters=[*params[:index], tag, *params[index:]])


def _copy_marks(target: Any, original: Callable[..., Any]) -> None:
    functools.update_wrapper(target, original)
    del target.__wrapped__  # Ray unwraps methods to read their signature: ours must be seen
    target.__signature__ = tagged_signature(inspect.signature(original))
    target.__otel_grpo_original__ = original


def wrap_task_function(function: Callable[..., Any]) -> Callable[..., Any]:
    """The function a remote function runs in the worker: tracked when the driver tagged the call."""

    def task(*args: Any, _otel_grpo_call: Any = None, **kwargs: Any) -> Any:
        if _otel_grpo_call is None:
            return function(*args, **kwargs)
        return run_sync(function, args, kwargs, _otel_grpo_call)

    _copy_marks(task, function)
    return task


def _method_resolver(instance: Any, name: str, method: Callable[..., Any]) -> Resolve:
    """Finds ``name`` on the instance's classes (past our own wrapper) at call time.

    For an actor made straight from the user's class (``ray.remote(AFlowExecutor)``) the
    method Ray captured is the plain one; the class this worker imported is wrapped.
    """

    def resolve() -> Callable[..., Any]:
        for klass in type(instance).__mro__:
            attr = klass.__dict__.get(name)
            if attr is None or is_tagged(attr):
                continue
            getter = getattr(attr, "__get__", None)
            return getter(instance, type(instance)) if getter is not None else attr
        return functools.partial(method, instance)

    return resolve


def wrap_actor_method(method: Callable[..., Any]) -> Callable[..., Any]:
    """An actor method that is tracked when the driver tagged the call (sync or async)."""
    name = method.__name__
    if inspect.iscoroutinefunction(method):

        async def async_method(self: Any, *args: Any, _otel_grpo_call: Any = None, **kwargs: Any) -> Any:
            if _otel_grpo_call is None:  # a plain call (or self.method(...) inside the actor)
                return await _method_resolver(self, name, method)()(*args, **kwargs)
            bound = functools.partial(method, self)
            return await run_async(bound, args, kwargs, _otel_grpo_call, _method_resolver(self, name, method))

        _copy_marks(async_method, method)
        return async_method

    def sync_method(self: Any, *args: Any, _otel_grpo_call: Any = None, **kwargs: Any) -> Any:
        if _otel_grpo_call is None:  # a plain call (or self.method(...) inside the actor)
            return _method_resolver(self, name, method)()(*args, **kwargs)
        bound = functools.partial(method, self)
        return run_sync(bound, args, kwargs, _otel_grpo_call, _method_resolver(self, name, method))

    _copy_marks(sync_method, method)
    return sync_method


def is_tagged(function: Any) -> bool:
    """True for a function or method wrapped here."""
    return getattr(function, "__otel_grpo_original__", None) is not None
