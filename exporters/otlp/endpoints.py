"""Where each OTLP signal is sent: the SDK's endpoint rules, and the redacted form for logs."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from otel_grpo import redact

PROTOCOL_HTTP = "http/protobuf"
PROTOCOL_GRPC = "grpc"
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"

_SIGNAL_PATHS = ("/v1/metrics", "/v1/traces", "/v1/logs")
_SIGNAL_ENV = {
    "metrics": "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    "traces": "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
}


def signal_endpoint(endpoint: str | None, protocol: str, signal: str) -> str:
    """Return the URL the ``signal`` ("metrics" or "traces") exporter sends to.

    Like the SDK: for ``http/protobuf`` ``endpoint`` is a base URL and ``/v1/<signal>``
    is appended (a base that already ends in a signal path is re-targeted, so
    ``http://c:4318/v1/metrics`` also works for traces); for ``grpc`` the URL is used as
    is. With no ``endpoint``, ``OTEL_EXPORTER_OTLP_<SIGNAL>_ENDPOINT`` (used as is) or
    ``OTEL_EXPORTER_OTLP_ENDPOINT`` (a base) or the protocol's localhost default applies.
    A URL without a scheme gets ``http://``.
    """
    if signal not in _SIGNAL_ENV:
        raise ValueError(f"unknown OTLP signal {signal!r}")
    grpc = protocol == PROTOCOL_GRPC
    if not endpoint:
        specific = os.environ.get(_SIGNAL_ENV[signal], "").strip()
        if specific:
            return _with_scheme(specific)
        endpoint = os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip() or (
            DEFAULT_GRPC_ENDPOINT if grpc else DEFAULT_HTTP_ENDPOINT
        )
    endpoint = _with_scheme(endpoint.strip())
    if grpc:
        return endpoint
    parts = urlsplit(endpoint)
    path = parts.path.rstrip("/")
    for known in _SIGNAL_PATHS:
        if path.endswith(known):
            path = path[: -len(known)]
            break
    return urlunsplit((parts.scheme, parts.netloc, f"{path}/v1/{signal}", parts.query, ""))


def _with_scheme(url: str) -> str:
    return url if "://" in url else f"http://{url}"


def grpc_insecure(endpoint: str) -> bool:
    """True unless the gRPC endpoint asks for TLS (``https://``)."""
    return urlsplit(endpoint).scheme.lower() != "https"


def redact_url(url: str) -> str:
    """``url`` reduced to ``scheme://host[:port]/path``: no userinfo, query or fragment.

    Kept under this name for existing callers; it is
    :func:`otel_grpo.redact.redact_url` with ``endpoint_only=True``. Log lines here use
    the shared masked form (``?api-key=REDACTED``) instead.
    """
    return redact.redact_url(url, endpoint_only=True)
