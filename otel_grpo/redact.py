"""The one place secrets are taken out of text before it is logged, put on a span or written.

A URL can carry a secret in two places: its userinfo (``http://user:PASSWORD@host``)
and its query string (``?api-key=...``). :func:`redact_url` removes both (the password
and every query value), keeping what a user needs to recognise the endpoint: scheme,
host, port and path. :func:`redact_text` does the same to every URL inside a longer
text (an exception message, a command line), to scheme-less ``user:password@host``
targets (gRPC), to the query of a bare request path (``/v1/metrics?token=...``, as
HTTP client errors print it) and to any extra known secret values.
:func:`url_secrets` lists the secret parts of a URL, for callers that must also hide
them where they appear out of URL context.

Spans go through here too: :func:`record_span_error` is the only way otel-grpo records an
exception on a span (type, message and stack trace redacted, status set), and
:func:`current_span` opens every span otel-grpo makes current, with the SDK's own
exception recording turned off so that no unredacted text reaches an exporter.
:func:`redact_attributes` masks span attribute values that could carry a URL secret.
"""

from __future__ import annotations

import re
import traceback
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

REDACTED = "REDACTED"

_URL_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://[^\s'\"<>]+")
# "user:password@" without a scheme, e.g. a gRPC target "u:p@collector:4317".
_BARE_USERINFO_RE = re.compile(r"(?P<user>[^\s/@:'\"<>()\[\]]+):(?P<password>[^\s/@'\"<>]+)@(?=[\w\[])")
# The query of a request path as HTTP clients print it: "url: /v1/metrics?api-key=...".
_PATH_QUERY_RE = re.compile(r"(?P<path>/[^\s?#'\"<>]*)\?(?P<query>[^\s#'\"<>]+)")
_MIN_SECRET_LEN = 4


def _redact_query(query: str) -> str:
    pairs = parse_qsl(query, keep_blank_values=True)
    return urlencode([(key, REDACTED) for key, _ in pairs], safe=REDACTED) if pairs else REDACTED


def redact_url(url: str, *, endpoint_only: bool = False) -> str:
    """``url`` without its password and query values; unparsable input is returned as ``REDACTED``.

    Args:
        url: the URL to show.
        endpoint_only: drop userinfo, query and fragment altogether instead of masking
            them, leaving ``scheme://host[:port]/path``.
    """
    if not isinstance(url, str):
        return REDACTED
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user = userinfo.split(":", 1)[0]
            if endpoint_only:
                netloc = hostport
            elif ":" in userinfo and user:
                netloc = f"{user}:{REDACTED}@{hostport}"
            else:
                netloc = f"{REDACTED}@{hostport}"
        if endpoint_only:
            return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
        query = _redact_query(parts.query) if parts.query else ""
        fragment = REDACTED if parts.fragment else ""
        return urlunsplit((parts.scheme, netloc, parts.path, query, fragment))
    except ValueError:
        return REDACTED


def url_secrets(url: str | None) -> list[str]:
    """The secret parts of ``url``: its password (or its whole userinfo when that has no
    password, as in ``http://TOKEN@host``), every query value and the fragment."""
    if not isinstance(url, str) or not url:
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return [url]
    found: list[str] = []
    if "@" in parts.netloc:
        userinfo = parts.netloc.rpartition("@")[0]
        user, colon, password = userinfo.partition(":")
        found.append(password if colon and user else userinfo)
    found += [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
    if parts.fragment:
        found.append(parts.fragment)
    return [secret for secret in found if secret]


def redact_text(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every URL in it redacted and every value in ``secrets`` replaced.

    Values shorter than 4 characters are not replaced (they would mangle ordinary
    words); a URL's own secrets are masked wherever the URL appears.
    """
    result = _URL_RE.sub(lambda match: redact_url(match.group(0)), str(text))
    result = _BARE_USERINFO_RE.sub(lambda match: f"{match.group('user')}:{REDACTED}@", result)
    result = _PATH_QUERY_RE.sub(lambda match: f"{match.group('path')}?{_redact_query(match.group('query'))}", result)
    for secret in sorted({str(s) for s in secrets if s}, key=len, reverse=True):
        if len(secret) >= _MIN_SECRET_LEN:
            result = result.replace(secret, REDACTED)
    return result


def url_has_secret(url: str) -> bool:
    """True when ``url`` carries userinfo or a query string (something to redact)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return True
    return "@" in parts.netloc or bool(parts.query)


# --- spans ------------------------------------------------------------------------------------
# Cheap test for an attribute value that could hold a URL secret: a URL, userinfo or a query.
_MAY_HOLD_SECRET_RE = re.compile(r"://|@|\?")
_EXCEPTION_EVENT = "exception"


def redact_attributes(attributes: Mapping[str, Any] | None) -> dict[str, Any]:
    """``attributes`` with every string value that could carry a URL secret redacted (:func:`redact_text`).

    Values without ``://``, ``@`` or ``?`` (labels, model names, numbers) are kept as they are.
    """
    if not attributes:
        return {}
    result = dict(attributes)
    for key, value in result.items():
        if isinstance(value, str):
            if _MAY_HOLD_SECRET_RE.search(value):
                result[key] = redact_text(value)
        elif isinstance(value, list | tuple) and any(
            isinstance(v, str) and _MAY_HOLD_SECRET_RE.search(v) for v in value
        ):
            result[key] = [redact_text(v) if isinstance(v, str) else v for v in value]
    return result


def exception_type_name(exc: BaseException) -> str:
    """``module.QualifiedName`` of ``exc``'s class (no module for builtins), as OpenTelemetry writes it."""
    klass = type(exc)
    module = getattr(klass, "__module__", None)
    return klass.__qualname__ if not module or module == "builtins" else f"{module}.{klass.__qualname__}"


def record_span_error(
    span: Span, exc: BaseException, *, description: str | None = None, secrets: Iterable[str] = ()
) -> None:
    """Record ``exc`` on ``span`` as an ``exception`` event and set the span's status to ERROR.

    The one replacement for ``Span.record_exception``: ``exception.type``,
    ``exception.message`` and ``exception.stacktrace`` all go through :func:`redact_text`
    (with ``secrets``), so a URL with a password or a query value in the exception's text
    never reaches an exporter. The status description is ``description`` (redacted), by
    default the exception's class name. Never raises.
    """
    try:
        if not span.is_recording():
            return
        secrets = tuple(secrets)
        try:
            stack = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        except Exception:  # noqa: BLE001 - an exception whose formatting fails: no stack trace
            stack = ""
        try:
            message = str(exc)
        except Exception:  # noqa: BLE001 - a __str__ that raises
            message = ""
        span.add_event(
            _EXCEPTION_EVENT,
            {
                "exception.type": redact_text(exception_type_name(exc), secrets),
                "exception.message": redact_text(message, secrets),
                "exception.stacktrace": redact_text(stack, secrets),
            },
        )
        text = type(exc).__qualname__ if description is None else description
        span.set_status(Status(StatusCode.ERROR, redact_text(text, secrets)))
    except Exception:  # noqa: BLE001 - recording an error must never become one
        pass


class CurrentSpan:
    """A span made current for a block; an exception leaving the block is recorded redacted.

    Used like ``Tracer.start_as_current_span``, but the exception goes through
    :func:`record_span_error` instead of the SDK's unredacted ``record_exception``.
    """

    __slots__ = ("span", "_token")

    def __init__(self, span: Span) -> None:
        self.span = span
        self._token: object | None = None

    def __enter__(self) -> Span:
        try:
            self._token = otel_context.attach(trace.set_span_in_context(self.span))
        except Exception:  # noqa: BLE001 - a span that cannot be made current still ends
            self._token = None
        return self.span

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        try:
            if exc is not None:
                record_span_error(self.span, exc)
        finally:
            if self._token is not None:
                otel_context.detach(self._token)  # type: ignore[arg-type]
                self._token = None
            self.span.end()
        return False


def current_span(
    tracer: Tracer, name: str, attributes: Mapping[str, Any] | None = None, kind: SpanKind = SpanKind.INTERNAL
) -> CurrentSpan:
    """Start span ``name`` (attributes through :func:`redact_attributes`) to be made current with ``with``.

    The SDK's automatic ``record_exception`` and status-on-exception are off: an
    exception is recorded by :class:`CurrentSpan` through the redactor.
    """
    span = tracer.start_span(
        name,
        kind=kind,
        attributes=redact_attributes(attributes),
        record_exception=False,
        set_status_on_exception=False,
    )
    return CurrentSpan(span)


__all__ = [
    "REDACTED",
    "CurrentSpan",
    "current_span",
    "exception_type_name",
    "record_span_error",
    "redact_attributes",
    "redact_text",
    "redact_url",
    "url_has_secret",
    "url_secrets",
]
