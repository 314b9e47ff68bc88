"""What went wrong: the ``error.type`` of an LLM request, and the fault kind of our own errors.

``error.type`` of a judge request: ``timeout``, ``connection`` (the exception's class
decides, see :func:`classify_exception`), ``http_status`` (status >= 400),
``empty_content`` (a 200 whose first choice has no text, what gpt-oss does when it runs
out of ``max_tokens``), ``_OTHER``; None when content came back. Executor calls, and
judge requests that are not GenAI requests, only report transport and HTTP status errors.

A fault inside the instrumentation itself is reported under :data:`FAULT_KIND` through
:mod:`otel_grpo.faults` (logged once, counted, never raised into the request).
"""

from __future__ import annotations

from otel_grpo import semconv
from otel_grpo.instrumentation.llm_http.reply import Reply

FAULT_KIND = "the LLM HTTP instrumentation"
"""The :func:`otel_grpo.faults.report_fault` kind of every internal error of this package."""

_TIMEOUT_NAMES = frozenset(
    {
        "TimeoutException",  # httpx / httpx2 (ConnectTimeout, ReadTimeout, WriteTimeout, PoolTimeout)
        "Timeout",  # requests (ConnectTimeout, ReadTimeout)
        "TimeoutError",  # built-in, socket.timeout, asyncio.TimeoutError
        "ReadTimeoutError",
        "ConnectTimeoutError",  # urllib3
        "APITimeoutError",  # openai
    }
)
_CONNECTION_NAMES = frozenset(
    {
        "NetworkError",
        "ConnectError",
        "RemoteProtocolError",
        "ProxyError",  # httpx / httpx2
        "ConnectionError",  # requests, built-in (refused, reset, aborted)
        "ChunkedEncodingError",  # requests
        "NewConnectionError",
        "MaxRetryError",
        "urllib3.ProtocolError",  # urllib3
        "APIConnectionError",  # openai
    }
)


def classify_exception(exc: BaseException) -> str:
    """``timeout``, ``connection`` or ``_OTHER`` for an exception raised by an HTTP client.

    Works for httpx, httpx2, requests/urllib3 and the built-in socket errors by class
    names in the exception's MRO, so no client library has to be imported.
    """
    names = set()
    for klass in type(exc).__mro__:
        names.add(klass.__name__)
        if klass.__name__ == "ProtocolError" and klass.__module__.startswith("urllib3"):
            names.add("urllib3.ProtocolError")
    if names & _TIMEOUT_NAMES:
        return semconv.ERROR_TIMEOUT
    if names & _CONNECTION_NAMES:
        return semconv.ERROR_CONNECTION
    return semconv.ERROR_OTHER


def request_error_type(
    status: int | None, reply: Reply | None, exc: BaseException | None, *, expects_content: bool, unknown_body: bool
) -> str | None:
    """``error.type`` of one request, or None when it succeeded.

    ``expects_content``: a judge GenAI request, whose reply must carry text; ``unknown_body``:
    the reply was not read (too large, undecodable, or not observable), so it is not judged.
    """
    if exc is not None:
        return classify_exception(exc)
    if status is not None and status >= 400:
        return semconv.ERROR_HTTP_STATUS
    if not expects_content or unknown_body:
        return None
    if reply is None or not reply.parsed:
        return semconv.ERROR_OTHER
    return None if reply.content() else semconv.ERROR_EMPTY_CONTENT
