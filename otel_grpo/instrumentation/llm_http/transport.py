"""The transport wrappers: ``send`` of httpx / httpx2 ``Client`` and ``AsyncClient``, and of ``requests.Session``.

Every HTTP request an LLM client sends passes through one of these ``send`` methods,
retries included (the OpenAI client's own ``max_retries``), so each wrapper sees every
HTTP attempt. A wrapper (``wrapt``'s ``(wrapped, instance, args, kwargs)``):

1. asks ``lookup`` for the running telemetry (None: call through untouched);
2. describes the request to :func:`~otel_grpo.instrumentation.llm_http.request.start_call`
   (None: not an LLM request, call through untouched);
3. sends it with the call's span current and nested sends not counted again
   (:func:`_in_flight`); an exception ends the call and is re-raised as the same object;
4. hands the response over: a body ``send`` already read is parsed at once, an unread
   one is observed as the caller reads it
   (:mod:`~otel_grpo.instrumentation.llm_http.observer`).

The caller's arguments reach ``send`` unchanged and its response is returned as is.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from opentelemetry import context as otel_context
from opentelemetry import trace

from otel_grpo.faults import report_fault
from otel_grpo.instrumentation.llm_http.call import LLMCall
from otel_grpo.instrumentation.llm_http.errors import FAULT_KIND
from otel_grpo.instrumentation.llm_http.observer import BodyObserver, ObservedRaw, observed_httpx_stream
from otel_grpo.instrumentation.llm_http.reply import parse_reply
from otel_grpo.instrumentation.llm_http.request import RequestBody, RequestLine, start_call

if TYPE_CHECKING:
    from otel_grpo.api import Telemetry

TelemetryLookup = Callable[[], "Telemetry | None"]
"""Returns the telemetry a request should be recorded with, or None to let it pass untouched."""
SendWrapper = Callable[[Callable[..., Any], Any, tuple, dict], Any]
"""A ``wrapt`` wrapper of ``send``."""
WrapperFactory = Callable[[ModuleType, TelemetryLookup], SendWrapper]
"""Builds the ``send`` wrapper of one client class from its module and the telemetry lookup."""

_sending: ContextVar[bool] = ContextVar("otel_grpo_in_llm_call", default=False)


@contextlib.contextmanager
def _in_flight(call: LLMCall) -> Iterator[None]:
    """While a request is sent: its span is current, nested sends are not re-counted, failures recorded."""
    guard = _sending.set(True)
    ctx = otel_context.attach(trace.set_span_in_context(call.span))
    try:
        yield
    except BaseException as exc:
        call.fail(exc)
        raise
    finally:
        otel_context.detach(ctx)
        _sending.reset(guard)


def _telemetry(lookup: TelemetryLookup) -> Telemetry | None:
    """The telemetry to record this request with; None inside another LLM request's ``send``."""
    return None if _sending.get() else lookup()


# --- httpx / httpx2 ---------------------------------------------------------------------------
def _httpx_request(args: tuple, kwargs: dict) -> Any:
    return args[0] if args else kwargs.get("request")


def _httpx_describe(request: Any) -> Callable[[], RequestLine]:
    def describe() -> RequestLine:
        url = request.url
        return RequestLine(request.method, url.scheme, url.host, url.port, url.path)

    return describe


def _httpx_body(request: Any) -> Callable[[], RequestBody]:
    def body() -> RequestBody:
        try:
            return request.content
        except Exception:  # noqa: BLE001 - a streaming request body: not ours to read
            return None

    return body


def _httpx_observe(call: LLMCall, response: Any, module: ModuleType, is_async: bool) -> None:
    """Stop the call now if ``send`` read the body; else watch the caller read it."""
    status: int | None = None
    try:
        status = int(response.status_code)
        headers = response.headers
        content_type = headers.get("content-type", "") or ""
        try:
            body = response.content  # raises ResponseNotRead while the body is unread
        except Exception:  # noqa: BLE001
            body = None
        if body is not None:
            call.stop(status, parse_reply(body, content_type, ""))
            return
        base = getattr(module, "AsyncByteStream" if is_async else "SyncByteStream", None)
        stream = response.stream
        if response.is_closed or base is None or not isinstance(stream, base):
            call.stop(status, None, unknown_body=True)
            return
        observer = BodyObserver(call, status, content_type, headers.get("content-encoding", "") or "")
        response.stream = observed_httpx_stream(base, is_async, stream, observer)
    except Exception as exc:  # noqa: BLE001
        report_fault(FAULT_KIND, exc)
        call.stop(status, None, unknown_body=True)


def httpx_sync_send(module: ModuleType, lookup: TelemetryLookup) -> SendWrapper:
    """The wrapper of ``Client.send`` in ``module`` (httpx or httpx2)."""

    def send_wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        tel = _telemetry(lookup)
        if tel is None:
            return wrapped(*args, **kwargs)
        request = _httpx_request(args, kwargs)
        call = start_call(tel, _httpx_describe(request), _httpx_body(request))
        if call is None:
            return wrapped(*args, **kwargs)
        with _in_flight(call):
            response = wrapped(*args, **kwargs)
        _httpx_observe(call, response, module, is_async=False)
        return response

    return send_wrapper


def httpx_async_send(module: ModuleType, lookup: TelemetryLookup) -> SendWrapper:
    """The wrapper of ``AsyncClient.send`` in ``module`` (httpx or httpx2)."""

    async def send_wrapper(wrapped: Callable[..., Awaitable[Any]], instance: Any, args: tuple, kwargs: dict) -> Any:
        tel = _telemetry(lookup)
        if tel is None:
            return await wrapped(*args, **kwargs)
        request = _httpx_request(args, kwargs)
        call = start_call(tel, _httpx_describe(request), _httpx_body(request))
        if call is None:
            return await wrapped(*args, **kwargs)
        with _in_flight(call):
            response = await wrapped(*args, **kwargs)
        _httpx_observe(call, response, module, is_async=True)
        return response

    return send_wrapper


# --- requests ---------------------------------------------------------------------------------
def _requests_describe(request: Any) -> Callable[[], RequestLine]:
    def describe() -> RequestLine:
        parts = urlsplit(request.url)
        return RequestLine(request.method or "GET", parts.scheme, parts.hostname or "", parts.port, parts.path)

    return describe


def _requests_body(request: Any) -> Callable[[], RequestBody]:
    def body() -> RequestBody:
        data = request.body
        return data if isinstance(data, (bytes, str)) else None

    return body


def _requests_observe(call: LLMCall, response: Any) -> None:
    """Stop the call now if ``send`` read the body (``stream=False``); else watch ``response.raw``."""
    status: int | None = None
    try:
        status = int(response.status_code)
        headers = response.headers
        content_type = headers.get("content-type", "") or ""
        body = getattr(response, "_content", False)  # requests' own marker: False until the body is read
        if body is not False:  # read by send (stream=False): bytes, or None without a body
            call.stop(status, parse_reply(body if isinstance(body, bytes) else None, content_type, ""))
            return
        raw = response.raw
        if raw is None:
            call.stop(status, None, unknown_body=True)
            return
        observer = BodyObserver(call, status, content_type, headers.get("content-encoding", "") or "")
        response.raw = ObservedRaw(raw, observer)
    except Exception as exc:  # noqa: BLE001
        report_fault(FAULT_KIND, exc)
        call.stop(status, None, unknown_body=True)


def requests_send(module: ModuleType, lookup: TelemetryLookup) -> SendWrapper:
    """The wrapper of ``requests.Session.send``."""

    def send_wrapper(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
        tel = _telemetry(lookup)
        if tel is None:
            return wrapped(*args, **kwargs)
        request = args[0] if args else kwargs.get("request")
        call = start_call(tel, _requests_describe(request), _requests_body(request))
        if call is None:
            return wrapped(*args, **kwargs)
        with _in_flight(call):
            response = wrapped(*args, **kwargs)
        _requests_observe(call, response)
        return response

    return send_wrapper


SEND_WRAPPERS: dict[str, tuple[tuple[str, WrapperFactory], ...]] = {
    "httpx": (("Client", httpx_sync_send), ("AsyncClient", httpx_async_send)),
    "httpx2": (("Client", httpx_sync_send), ("AsyncClient", httpx_async_send)),
    "requests": (("Session", requests_send),),
}
"""Module name -> (client class name, wrapper factory) for every ``send`` that is wrapped."""
