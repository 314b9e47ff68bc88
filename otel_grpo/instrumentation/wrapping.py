"""The machinery every role wrapper shares: one typed call per wrapped call, its arguments, its span.

:func:`make_role_wrapper` builds a ``wrapt`` wrapper ``(wrapped, instance, args, kwargs)`` that
works on sync and async callables: as the wrapped call starts, a *starter* reads its
arguments and returns a typed call object (:class:`RoleCall`: :mod:`~otel_grpo.instrumentation.calls`,
:mod:`~otel_grpo.instrumentation.judge_call`); when it returns, the call's :meth:`~RoleCall.stop`
gets the result; when it raises, :meth:`~RoleCall.fail` gets the exception. The rules: a wrapper
never changes a return value, never swallows or replaces an exception, and costs a single
``get_telemetry()`` lookup when otel-grpo is not set up. Anything that goes wrong in our own
bookkeeping is reported through :mod:`otel_grpo.faults`, never raised.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Literal, Protocol

from opentelemetry import trace

from otel_grpo import semconv
from otel_grpo.api import Telemetry, get_telemetry
from otel_grpo.faults import fault_guard, report_fault
from otel_grpo.instrumentation.report import first_call
from otel_grpo.redact import current_span

Wrapper = Callable[[Callable[..., Any], Any, tuple, dict], Any]
"""A ``wrapt`` wrapper: ``(wrapped, instance, args, kwargs) -> result``."""


class RoleCall(Protocol):
    """One call of a trainer role, from its start to exactly one of :meth:`stop` or :meth:`fail`."""

    def stop(self, result: Any) -> None:
        """The call returned ``result``."""

    def fail(self, exc: BaseException) -> None:
        """The call raised ``exc`` (it propagates to the caller unchanged)."""


Starter = Callable[[Telemetry, "Arguments", Any], "RoleCall | None"]
"""``start(tel, arguments, instance) -> call`` as a wrapped call starts (None: nothing to record)."""

_active_roles: ContextVar[frozenset] = ContextVar("otel_grpo_active_roles", default=frozenset())


def internal_error(where: str, exc: BaseException) -> None:
    """Report a fault of our own in the instrumentation of ``where`` (logged once, counted)."""
    report_fault(f"{where} instrumentation", exc)


class Signature:
    """Where each parameter of a function is: positions, defaults, and whether it is async. Built once."""

    __slots__ = ("positions", "defaults", "named", "is_async")

    def __init__(self, function: Callable[..., Any]) -> None:
        try:
            sig = inspect.signature(function)
            params = list(sig.parameters.values())
        except (TypeError, ValueError):
            params = []
        names = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        if names and names[0] in ("self", "cls") and not inspect.ismethod(function):
            names = names[1:]
        self.positions = {name: index for index, name in enumerate(names)}
        self.defaults = {p.name: p.default for p in params if p.default is not p.empty}
        self.named = bool(names)
        raw = getattr(function, "__func__", function)
        self.is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(raw)


_signatures: dict[Any, Signature] = {}


def signature_of(function: Callable[..., Any]) -> Signature:
    """The :class:`Signature` of ``function`` (cached per underlying function)."""
    key = getattr(function, "__func__", function)
    try:
        return _signatures[key]
    except (KeyError, TypeError):
        pass
    found = Signature(function)
    try:
        _signatures[key] = found
    except TypeError:  # an unhashable callable: read again next time
        pass
    return found


class Arguments:
    """The arguments of one wrapped call, read by parameter name."""

    __slots__ = ("args", "kwargs", "_signature")

    def __init__(self, signature: Signature, args: tuple, kwargs: dict) -> None:
        self.args = args
        self.kwargs = kwargs
        self._signature = signature

    def get(self, name: str, position: int | None = None) -> Any:
        """Argument ``name``: by keyword, by its position in the signature, else ``position`` (no
        signature), else its default; None when absent."""
        kwargs = self.kwargs
        if name in kwargs:
            return kwargs[name]
        signature = self._signature
        index = signature.positions.get(name)
        if index is None and not signature.named:
            index = position
        if index is not None and index < len(self.args):
            return self.args[index]
        return signature.defaults.get(name)


def bind_argument(
    wrapped: Callable[..., Any], args: tuple, kwargs: dict, name: str, position: int | None = None
) -> Any:
    """Value of argument ``name`` of a call: by keyword, by signature position, else ``position``."""
    return Arguments(signature_of(wrapped), args, kwargs).get(name, position)


def make_role_wrapper(role: str, start: Starter) -> Wrapper:
    """Build a sync/async wrapper that records each call of ``role`` through the call ``start`` returns.

    A role already active in this context (a nested or doubly wrapped call) passes through.
    """
    first = True

    def enter(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> tuple[Any, Any]:
        nonlocal first
        tel = get_telemetry()
        if tel is None:
            return None, None
        if first:  # say once what is instrumented; warn if no training step is
            first = False
            _first_call(tel, role)
        roles = _active_roles.get()
        if role in roles:
            return None, None
        token = _active_roles.set(roles | {role})
        try:
            return start(tel, Arguments(signature_of(wrapped), args, kwargs), instance), token
        except Exception as exc:  # noqa: BLE001
            internal_error(role, exc)
            _active_roles.reset(token)
            return None, None

    def leave(call: RoleCall, token: Any, result: Any, exc: BaseException | None) -> None:
        try:
            _active_roles.reset(token)
        except ValueError:  # reset in another context than it was set in
            pass
        try:
            if exc is None:
                call.stop(result)
            else:
                call.fail(exc)
        except Exception as err:  # noqa: BLE001
            internal_error(role, err)

    def sync_wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        if signature_of(wrapped).is_async:
            return async_wrapper(wrapped, instance, args, kwargs)
        call, token = enter(wrapped, instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            leave(call, token, None, exc)
            raise
        leave(call, token, result, None)
        return result

    async def async_wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        call, token = enter(wrapped, instance, args, kwargs)
        if call is None:
            return await wrapped(*args, **kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            leave(call, token, None, exc)
            raise
        leave(call, token, result, None)
        return result

    sync_wrapper.otel_grpo_role = role  # type: ignore[attr-defined]
    return sync_wrapper


def _first_call(tel: Telemetry, role: str) -> None:
    with fault_guard(f"{role} instrumentation"):
        recorder = tel.recorder
        first_call(role, steps_seen=recorder.last_step is not None or recorder.current_window() is not None)


# --- spans ---------------------------------------------------------------------------------------
class _NoSpan:
    """Stands in for a span when tracing is off: costs nothing."""

    span = trace.INVALID_SPAN

    def __enter__(self) -> Any:
        return trace.INVALID_SPAN

    def __exit__(self, *exc: Any) -> Literal[False]:
        return False


NO_SPAN = _NoSpan()


def open_span(tel: Telemetry, name: str, attributes: Callable[[], dict[str, Any]]) -> Any:
    """Span ``name`` made current (``__enter__`` done); end it with ``__exit__``. Free when tracing is off.

    An exception passed to its ``__exit__`` is recorded through the redactor
    (:func:`otel_grpo.redact.current_span`), never by the SDK's ``record_exception``.
    """
    if not tel.tracing:
        return NO_SPAN
    span = current_span(tel.tracer, name, attributes())
    span.__enter__()
    return span


def close_span(span: Any, exc: BaseException | None = None) -> None:
    """End a span :func:`open_span` opened, recording ``exc`` (redacted) when the call raised."""
    if exc is None:
        span.__exit__(None, None, None)
    else:
        span.__exit__(type(exc), exc, exc.__traceback__)


def span_attributes(tel: Telemetry, source: str, problem_type: str) -> dict[str, Any]:
    """The attributes every otel-grpo span carries: source, problem type, split, step."""
    recorder = tel.recorder
    window = recorder.current_window()
    return {
        semconv.ATTR_SOURCE: source,
        semconv.ATTR_PROBLEM_TYPE: problem_type,
        semconv.ATTR_SPLIT: recorder.current_split(),
        semconv.ATTR_STEP: window.step if window is not None else (recorder.last_step or 0),
    }


__all__ = [
    "NO_SPAN",
    "Arguments",
    "RoleCall",
    "Signature",
    "Starter",
    "Wrapper",
    "bind_argument",
    "close_span",
    "internal_error",
    "make_role_wrapper",
    "open_span",
    "signature_of",
    "span_attributes",
]
