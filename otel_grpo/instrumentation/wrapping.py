"""The machinery every role wrapper shares: entering and leaving a call, reading its arguments, spans.

:func:`make_role_wrapper` builds a ``wrapt``-style wrapper ``(wrapped, instance, args,
kwargs)`` from two hooks and makes it work on sync and async callables. The rules: a
wrapper never changes a return value, never swallows or replaces an exception, and costs
a single ``get_telemetry()`` lookup when otel-grpo is not set up. Anything that goes
wrong in our own bookkeeping is reported through :mod:`otel_grpo.faults`, never raised.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, Literal

from opentelemetry import trace

from otel_grpo import semconv
from otel_grpo.api import Telemetry, get_telemetry
from otel_grpo.faults import report_fault
from otel_grpo.instrumentation.report import first_call
from otel_grpo.redact import current_span

Wrapper = Callable[[Callable[..., Any], Any, tuple, dict], Any]
"""A ``wrapt`` wrapper: ``(wrapped, instance, args, kwargs) -> result``."""
Before = Callable[[Telemetry, Callable[..., Any], Any, tuple, dict], Any]
"""``before(tel, wrapped, instance, args, kwargs) -> state`` runs as the call starts."""
After = Callable[[Telemetry, Any, Any, "BaseException | None", Callable[..., Any], Any, tuple, dict], None]
"""``after(tel, state, result, exc, wrapped, instance, args, kwargs)`` runs as it ends."""

_active_roles: ContextVar[frozenset] = ContextVar("otel_grpo_active_roles", default=frozenset())


def internal_error(where: str, exc: BaseException) -> None:
    report_fault(f"{where} instrumentation", exc)


_signature_cache: dict[Any, tuple[list[str], dict[str, Any]]] = {}
_async_cache: dict[Any, bool] = {}


def _params(wrapped: Callable[..., Any]) -> tuple[list[str], dict[str, Any]]:
    """Positional parameter names (without self) and defaults of ``wrapped``, cached."""
    key = getattr(wrapped, "__func__", wrapped)
    try:
        return _signature_cache[key]
    except (KeyError, TypeError):
        pass
    try:
        sig = inspect.signature(wrapped)
        names = [n for n, p in sig.parameters.items() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        defaults = {n: p.default for n, p in sig.parameters.items() if p.default is not p.empty}
    except (TypeError, ValueError):
        names, defaults = [], {}
    if names and names[0] in ("self", "cls") and not inspect.ismethod(wrapped):
        names = names[1:]
    try:
        _signature_cache[key] = (names, defaults)
    except TypeError:
        pass
    return names, defaults


def bind_argument(
    wrapped: Callable[..., Any], args: tuple, kwargs: dict, name: str, position: int | None = None
) -> Any:
    """Value of argument ``name`` of a call: by keyword, by signature position, else ``position``."""
    if name in kwargs:
        return kwargs[name]
    names, defaults = _params(wrapped)
    if name in names:
        idx = names.index(name)
        return args[idx] if idx < len(args) else defaults.get(name)
    if name in defaults:
        return defaults[name]
    if not names and position is not None and position < len(args):
        return args[position]
    return None


def _is_async(wrapped: Callable[..., Any]) -> bool:
    key = getattr(wrapped, "__func__", wrapped)
    try:
        return _async_cache[key]
    except (KeyError, TypeError):
        pass
    result = inspect.iscoroutinefunction(wrapped) or inspect.iscoroutinefunction(key)
    try:
        _async_cache[key] = result
    except TypeError:
        pass
    return result


def make_role_wrapper(role: str, before: Before, after: After) -> Wrapper:
    """Build a sync/async wrapper from ``before`` (returns state) and ``after`` hooks.

    ``before(tel, wrapped, instance, args, kwargs) -> state``;
    ``after(tel, state, result, exc, wrapped, instance, args, kwargs)``.
    A role already active in this context (a nested or doubly wrapped call) passes through.
    """

    first = True

    def enter(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict):
        nonlocal first
        tel = get_telemetry()
        if tel is None:
            return None, None, None
        if first:  # say once what is instrumented; warn if no training step is
            first = False
            try:
                recorder = tel.recorder
                first_call(role, steps_seen=recorder.last_step is not None or recorder.current_window() is not None)
            except Exception as exc:  # noqa: BLE001
                internal_error(role, exc)
        roles = _active_roles.get()
        if role in roles:
            return None, None, None
        token = _active_roles.set(roles | {role})
        try:
            return tel, before(tel, wrapped, instance, args, kwargs), token
        except Exception as exc:  # noqa: BLE001
            internal_error(role, exc)
            _active_roles.reset(token)
            return None, None, None

    def leave(
        tel: Telemetry,
        state: Any,
        token: Any,
        result: Any,
        exc: BaseException | None,
        wrapped: Callable[..., Any],
        instance: Any,
        args: tuple,
        kwargs: dict,
    ) -> None:
        try:
            _active_roles.reset(token)
        except ValueError:
            pass
        try:
            after(tel, state, result, exc, wrapped, instance, args, kwargs)
        except Exception as err:  # noqa: BLE001
            internal_error(role, err)

    def sync_wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        if _is_async(wrapped):
            return async_wrapper(wrapped, instance, args, kwargs)
        tel, state, token = enter(wrapped, instance, args, kwargs)
        if tel is None:
            return wrapped(*args, **kwargs)
        try:
            result = wrapped(*args, **kwargs)
        except BaseException as exc:
            leave(tel, state, token, None, exc, wrapped, instance, args, kwargs)
            raise
        leave(tel, state, token, result, None, wrapped, instance, args, kwargs)
        return result

    async def async_wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        tel, state, token = enter(wrapped, instance, args, kwargs)
        if tel is None:
            return await wrapped(*args, **kwargs)
        try:
            result = await wrapped(*args, **kwargs)
        except BaseException as exc:
            leave(tel, state, token, None, exc, wrapped, instance, args, kwargs)
            raise
        leave(tel, state, token, result, None, wrapped, instance, args, kwargs)
        return result

    sync_wrapper.otel_grpo_role = role  # type: ignore[attr-defined]
    return sync_wrapper


class _NoSpan:
    """Stands in for a span context manager when tracing is off: costs nothing."""

    def __enter__(self) -> Any:
        return trace.INVALID_SPAN

    def __exit__(self, *exc: Any) -> Literal[False]:
        return False


_NO_SPAN = _NoSpan()


def span_for(tel: Telemetry, name: str, attrs: Callable[[Telemetry, Any], dict[str, Any]], subject: Any) -> Any:
    """A current-span context manager, or a free stand-in when no tracer provider is set up.

    An exception passed to its ``__exit__`` is recorded through the redactor
    (:func:`otel_grpo.redact.current_span`), never by the SDK's ``record_exception``.
    """
    if not tel.tracing:
        return _NO_SPAN
    return current_span(tel.tracer, name, attrs(tel, subject))


def judge_span_attrs(tel: Telemetry, evaluation: Any) -> dict[str, Any]:
    return {
        semconv.ATTR_SOURCE: evaluation.source,
        semconv.ATTR_PROBLEM_TYPE: evaluation.problem_type,
        semconv.ATTR_SPLIT: tel.recorder.current_split(),
        semconv.ATTR_STEP: tel.recorder.last_step or 0,
    }


def sample_span_attrs(tel: Telemetry, state: Any) -> dict[str, Any]:
    return {
        semconv.ATTR_SOURCE: state.source,
        semconv.ATTR_PROBLEM_TYPE: state.problem_type,
        semconv.ATTR_SPLIT: tel.recorder.current_split(),
        semconv.ATTR_STEP: tel.recorder.last_step or 0,
    }
