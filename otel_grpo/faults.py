"""The one fault guard: otel-grpo never raises into the trainer.

A fault inside otel-grpo (a bug of ours, an exporter that fails, input we cannot read)
is logged once per kind, counted, and swallowed. :func:`report_fault` does the logging
and counting; :func:`guarded` wraps a function so that any exception it raises is
reported and a default returned instead, like ``dont_throw`` in OpenLLMetry.

The count is process-wide (:func:`fault_count`); each fault is also added to the
running telemetry's ``exporter/export_errors``, beside the exporter's own write errors.
"""

from __future__ import annotations

import functools
import logging
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from otel_grpo.redact import redact_text

logger = logging.getLogger("otel_grpo")

F = TypeVar("F", bound=Callable[..., Any])


class _Faults:
    lock = threading.Lock()
    kinds: dict[str, int] = {}
    total = 0
    sink: Callable[[], None] | None = None


def report_fault(kind: str, exc: BaseException, count: Callable[[], None] | None = None) -> None:
    """Count one fault of ``kind``; the first of each kind is logged as a warning. Never raises.

    ``count`` adds the fault to a health counter of the caller's own; by default it goes
    to the sink the running telemetry registered (:func:`set_fault_sink`).
    """
    try:
        with _Faults.lock:
            first = kind not in _Faults.kinds
            _Faults.kinds[kind] = _Faults.kinds.get(kind, 0) + 1
            _Faults.total += 1
        if count is not None:
            count()
        else:
            _count_in_health()
        if first:
            logger.warning(
                "otel-grpo: internal error in %s (%s: %s); the trainer is unaffected, further "
                "errors of this kind are counted in exporter/export_errors",
                kind,
                type(exc).__qualname__,
                redact_text(str(exc))[:300],
            )
        elif logger.isEnabledFor(logging.DEBUG):  # the stack trace, through the redactor like the message
            logger.debug("otel-grpo: internal error in %s\n%s", kind, redact_text(_stack(exc)))
    except Exception:  # noqa: BLE001 - reporting a fault must not be a fault
        pass


def _stack(exc: BaseException) -> str:
    try:
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip()
    except Exception:  # noqa: BLE001
        return type(exc).__qualname__


def _count_in_health() -> None:
    sink = _Faults.sink
    if sink is not None:
        try:
            sink()
        except Exception:  # noqa: BLE001
            pass


def set_fault_sink(sink: Callable[[], None] | None) -> None:
    """Also call ``sink`` for every fault (the running telemetry counts it in its health keys).

    A new sink starts a new telemetry session: each kind of fault is logged once again.
    """
    with _Faults.lock:
        _Faults.sink = sink
        if sink is not None:
            _Faults.kinds = {}


def fault_count() -> int:
    """Faults reported in this process so far, of every kind."""
    return _Faults.total


@contextmanager
def fault_guard(kind: str, count: Callable[[], None] | None = None) -> Iterator[None]:
    """A block whose exception is reported (:func:`report_fault`) and swallowed: ``with fault_guard("x"): ...``.

    The block-sized form of :func:`guarded`, for the boundaries where otel-grpo calls out
    (a user's hook, wandb, an exporter) and must carry on whatever happens there.
    """
    try:
        yield
    except Exception as exc:  # noqa: BLE001 - the point of the guard
        report_fault(kind, exc, count=count)


def guarded(kind: str, default: Any = None) -> Callable[[F], F]:
    """Decorate a function so that an exception inside it is reported and ``default`` returned."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - the point of the guard
                report_fault(kind, exc)
                return default

        return wrapper  # type: ignore[return-value]

    return decorate


__all__ = ["fault_count", "fault_guard", "guarded", "report_fault", "set_fault_sink"]
