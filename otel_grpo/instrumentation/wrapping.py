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


Params = tuple[tuple[str, "int | None"], ...]
"""The arguments a role reads, in order: ``(name, position when the function has no named parameters)``."""
Starter = Callable[[Telemetry, tuple, Any], "RoleCall | None"]
"""``start(tel, values, instance) -> call`` as a wrapped call starts (the ``Params`` values, in order; None:
nothing to record)."""

_active_roles: ContextVar[frozenset] = ContextVar("otel_grpo_active_roles", default=frozenset())


def internal_error(where: str, exc: BaseException) -> None:
    """Report a fault of our own in the instrumentation of ``where`` (logged once, counted)."""
    report_fault(f"{where} instrumentation", exc)


Reader = Callable[[tuple, dict], tuple]
"""Reads the ``Params`` values of one call from its ``(args, kwargs)``."""


def _reader(function: Callable[..., Any], params: Params) -> Reader:
    """How to read ``params`` from a call of ``function``: each parameter's position and default, found once.

    A value is taken by keyword, else at its position in the signature, else (a function without named
    parameters) at the given position, else its default; None when absent.
    """
    try:
        sig = inspect.signature(function)
        parameters = list(sig.parameters.values())
    except (TypeError, ValueError):
        parameters = []
    names = [p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if names and names[0] in ("self", "cls") and not inspect.ismethod(function):
        names = names[1:]
    defaults = {p.name: p.default for p in parameters if p.default is not p.empty}
    # One expression per parameter, compiled once per function (as dataclasses does for __init__):
    # a call then reads its values with no loop and no function call per parameter.
    expressions = []
    namespace: dict[str, Any] = {}
    for number, (name, fallback) in enumerate(params):
        index = names.index(name) if name in names else (fallback if not names else None)
        namespace[f"_d{number}"] = defaults.get(name)
        positional = f"args[{index}] if len(args) > {index} else _d{number}" if index is not None else f"_d{number}"
        expressions.append(f"(kwargs[{name!r}] if {name!r} in kwargs else {positional})")
    source = f"def read(args, kwargs):\n    return ({', '.join(expressions)}{',' if expressions else ''})\n"
    exec(compile(source, f"<otel-grpo argument reader of {getattr(function, '__qualname__', '?')}>", "exec"), namespace)
    return namespace["read"]


class _Plan:
    """What a wrapper needs to know of one wrapped function, computed at its first call."""

    __slots__ = ("is_async", "read")

    def __init__(self, function: Callable[..., Any], params: Params) -> None:
        raw = getattr(function, "__func__", function)
        self.is_async = inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(raw)
        self.read = _reader(function, params)


def bind_argument(
    wrapped: Callable[..., Any], args: tuple, kwargs: dict, name: str, position: int | None = None
) -> Any:
    """Value of argument ``name`` of a call: by keyword, by signature position, else ``position``."""
    return _reader(wrapped, ((name, position),))(args, kwargs)[0]


def make_role_wrapper(role: str, params: Params, start: Starter) -> Wrapper:
    """Build a sync/async wrapper that records each call of ``role`` through the call ``start`` returns.

    ``params`` are the arguments ``start`` gets (their positions in each wrapped function are found
    once, at its first call). A role already active in this context (a nested or doubly wrapped call)
    passes through.
    """
    first = True
    plans: dict[Any, _Plan] = {}
    with_role: dict[frozenset, frozenset] = {}  # active roles -> the same with this role (made once each)

    def plan_of(wrapped: Callable[..., Any]) -> _Plan:
        key = getattr(wrapped, "__func__", wrapped)
        try:
            return plans[key]
        except KeyError:
            plan = plans[key] = _Plan(wrapped, params)
            return plan
        except TypeError:  # an unhashable callable: planned every time
            return _Plan(wrapped, params)

    def enter(plan: _Plan, instance: Any, args: tuple, kwargs: dict) -> tuple[Any, Any]:
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
        inner = with_role.get(roles)
        if inner is None:
            inner = with_role[roles] = roles | {role}
        token = _active_roles.set(inner)
        try:
            return start(tel, plan.read(args, kwargs), instance), token
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
        plan = plan_of(wrapped)
        if plan.is_async:
            return async_wrapper(plan, wrapped, instance, args, kwargs)
        call, token = enter(plan, instance, args, kwargs)
        if call is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            leave(call, token, None, exc)
            raise
        leave(call, token, result, None)
        return result

    async def async_wrapper(plan: _Plan, wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        call, token = enter(plan, instance, args, kwargs)
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
    "Params",
    "RoleCall",
    "Starter",
    "Wrapper",
    "bind_argument",
    "close_span",
    "internal_error",
    "make_role_wrapper",
    "open_span",
    "span_attributes",
]
