"""``LLMHTTPInstrumentor``: the ``BaseInstrumentor`` that wraps the HTTP clients' ``send``.

Like opentelemetry-python-contrib's instrumentors: ``_instrument`` wraps with
``wrapt.wrap_function_wrapper`` (``(wrapped, instance, args, kwargs)`` wrappers from
:mod:`~otel_grpo.instrumentation.llm_http.transport`), ``_uninstrument`` removes them
with :func:`opentelemetry.instrumentation.utils.unwrap`, and the libraries are declared
in :mod:`~otel_grpo.instrumentation.llm_http.package`. A client module imported later is
wrapped when it is imported (``wrapt`` post-import hooks). The ``gen_ai.client.*``
instruments are created once per telemetry by its recorder; a request looks the running
telemetry up through ``get_telemetry`` (one call per request, None: pass through).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable, Collection
from types import ModuleType
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]  # untyped upstream
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap

from otel_grpo.api import Telemetry
from otel_grpo.api import get_telemetry as running_telemetry
from otel_grpo.faults import fault_guard, report_fault
from otel_grpo.instrumentation.llm_http.errors import FAULT_KIND
from otel_grpo.instrumentation.llm_http.package import _instruments
from otel_grpo.instrumentation.llm_http.transport import SEND_WRAPPERS, SendWrapper

logger = logging.getLogger(__name__)

GetTelemetry = Callable[[], Telemetry | None]
"""Returns the running telemetry, or None when otel-grpo is not set up."""


class _Wrapped:
    """What the (singleton) instrumentor has wrapped, and where requests look the telemetry up."""

    lock = threading.RLock()
    get_telemetry: GetTelemetry | None = None
    active = False
    patched: list[tuple[type, SendWrapper]] = []  # (client class, our wrapper of its send), in order
    hooks: set[str] = set()  # module names with a registered post-import hook (they stay registered)


def _lookup() -> Telemetry | None:
    """The telemetry a request is recorded with: None when inactive, not set up, or suppressed."""
    get = _Wrapped.get_telemetry
    if get is None or not _Wrapped.active:
        return None
    try:
        tel = get()
        if tel is None or not is_instrumentation_enabled():
            return None
        return tel
    except Exception as exc:  # noqa: BLE001 - a broken getter must not break the request
        report_fault(FAULT_KIND, exc)
        return None


class LLMHTTPInstrumentor(BaseInstrumentor):
    """GenAI client spans and metrics for every LLM HTTP attempt made through httpx, httpx2 or requests.

    ``instrument(get_telemetry=...)`` wraps; ``get_telemetry`` defaults to
    :func:`otel_grpo.api.get_telemetry`. ``uninstrument()`` unwraps. A wrapper that
    another library has wrapped again since is left in place but becomes inert.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        """None required: each of httpx, httpx2 and requests is wrapped if and when it is imported."""
        return _instruments

    def set_telemetry_getter(self, get_telemetry: GetTelemetry) -> None:
        """Look the running telemetry up with ``get_telemetry`` from now on."""
        _Wrapped.get_telemetry = get_telemetry

    def _instrument(self, **kwargs: Any) -> None:
        with _Wrapped.lock:
            _Wrapped.get_telemetry = kwargs.get("get_telemetry") or running_telemetry
            _Wrapped.active = True
            for name in SEND_WRAPPERS:
                module = sys.modules.get(name)
                if module is not None:
                    _wrap_module(module)
                if name not in _Wrapped.hooks:
                    _Wrapped.hooks.add(name)
                    # Fires at once when already imported (a no-op then: classes are wrapped once).
                    wrapt.register_post_import_hook(_on_import, name)

    def _uninstrument(self, **kwargs: Any) -> None:
        with _Wrapped.lock:
            _Wrapped.active = False
            for cls, wrapper in reversed(_Wrapped.patched):
                with fault_guard(FAULT_KIND):
                    current = vars(cls).get("send")
                    if isinstance(current, wrapt.FunctionWrapper) and current._self_wrapper is wrapper:
                        unwrap(cls, "send")
                    else:
                        logger.debug(
                            "otel-grpo: %s.send was re-wrapped by someone else; leaving our "
                            "(now inert) wrapper in place",
                            cls.__qualname__,
                        )
            _Wrapped.patched = []


def instrument_http(get_telemetry: GetTelemetry) -> None:
    """Wrap the ``send`` methods of httpx, httpx2 and requests; idempotent.

    ``get_telemetry`` is called once per request; when it returns None the request
    passes through untouched. Modules not imported yet are wrapped when they are
    (``wrapt`` post-import hooks). Calling again only replaces ``get_telemetry``.
    """
    with _Wrapped.lock:
        instrumentor = LLMHTTPInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.set_telemetry_getter(get_telemetry)
        else:
            instrumentor.instrument(get_telemetry=get_telemetry)


def uninstrument_http() -> None:
    """Remove every wrapper :func:`instrument_http` installed; idempotent.

    A wrapper that another library has since wrapped again is left in place (removing
    it would drop theirs) but becomes inert. Responses already handed out keep their
    observed streams, which end their calls normally when closed.
    """
    with _Wrapped.lock:
        instrumentor = LLMHTTPInstrumentor()
        if instrumentor.is_instrumented_by_opentelemetry:
            instrumentor.uninstrument()


def is_http_instrumented() -> bool:
    """True between :func:`instrument_http` and :func:`uninstrument_http`."""
    return _Wrapped.active


def _on_import(module: ModuleType) -> None:
    with fault_guard(FAULT_KIND):
        with _Wrapped.lock:
            if _Wrapped.active:
                _wrap_module(module)


def _wrap_module(module: ModuleType) -> None:
    """Wrap ``send`` on the module's client classes (each class once, even when aliased)."""
    for cls_name, make_wrapper in SEND_WRAPPERS.get(module.__name__, ()):
        cls = getattr(module, cls_name, None)
        if cls is None or "send" not in vars(cls) or any(cls is done for done, _ in _Wrapped.patched):
            continue
        with fault_guard(FAULT_KIND):
            wrapper = make_wrapper(module, _lookup)
            wrapt.wrap_function_wrapper(cls, "send", wrapper)
            _Wrapped.patched.append((cls, wrapper))
