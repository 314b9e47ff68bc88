"""Keeping the SDK exporters' own log lines quiet, and secret-free, on our worker thread.

While :func:`export_logging` is active on a thread (our export worker running one
export), the SDK exporters' records are dropped (the first warning is kept: it names
the root cause, and goes into our once-per-outage line) and the HTTP client's records
are redacted. Records of other threads (the trainer's own HTTP calls) are untouched.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from otel_grpo import redact

# Logger names (prefixes) of the SDK exporters whose per-export error lines are
# replaced by our once-per-outage line while our worker thread runs an export.
_SDK_EXPORTER_LOGGER_PREFIXES = ("opentelemetry.exporter.otlp", "opentelemetry.exporter.http")
# Logger names (prefixes) of the HTTP client under the SDK exporters: their records on
# our worker thread are redacted (they print the request URL, query string included).
_HTTP_CLIENT_LOGGER_PREFIXES = ("urllib3", "requests")


class ExportThreadLog(threading.local):
    """What the filters know about the current thread's export (per thread)."""

    active: bool = False
    #: The first warning an SDK exporter logged during this export, if any.
    message: str | None = None
    secrets: tuple[str, ...] = ()


_export_thread = ExportThreadLog()


@contextmanager
def export_logging(secrets: Sequence[str]) -> Iterator[ExportThreadLog]:
    """Suppress SDK exporter records and redact ``secrets`` in HTTP client records on this thread."""
    _export_thread.active = True
    _export_thread.message = None
    _export_thread.secrets = tuple(secrets)
    try:
        yield _export_thread
    finally:
        _export_thread.active = False


class _SuppressOnExportThread(logging.Filter):
    """Drop records logged while our worker runs an export; keep the first warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        if _export_thread.active:
            # Keep the first warning of the export: it names the root cause
            # (e.g. "Connection refused"); later ones only say that retries ran out.
            if record.levelno >= logging.WARNING and not _export_thread.message:
                try:
                    _export_thread.message = record.getMessage()
                except Exception:  # noqa: BLE001 - a broken log record must not escape
                    _export_thread.message = str(record.msg)
            return False
        return True


class _RedactOnExportThread(logging.Filter):
    """Redact records the HTTP client logs while our worker runs an export.

    urllib3 logs each request line (``"POST /v1/metrics?api-key=... HTTP/1.1" 200``)
    at DEBUG: the endpoint's query values and the header values are masked in place.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if _export_thread.active:
            secrets = _export_thread.secrets
            try:
                record.msg = redact.redact_text(record.getMessage(), secrets)
                record.args = None
                if record.exc_info:
                    record.exc_text = redact.redact_text(logging.Formatter().formatException(record.exc_info), secrets)
                    record.exc_info = None
            except Exception:  # noqa: BLE001 - a record we cannot redact is not let through
                return False
        return True


_SUPPRESS_FILTER = _SuppressOnExportThread()
_REDACT_FILTER = _RedactOnExportThread()


def install_log_filters() -> None:
    """Attach the filters to every already-created SDK exporter / HTTP client logger (idempotent)."""
    for name in list(logging.Logger.manager.loggerDict):
        if name.startswith(_SDK_EXPORTER_LOGGER_PREFIXES):
            log_filter: logging.Filter = _SUPPRESS_FILTER
        elif name.startswith(_HTTP_CLIENT_LOGGER_PREFIXES):
            log_filter = _REDACT_FILTER
        else:
            continue
        logger = logging.getLogger(name)
        if log_filter not in logger.filters:
            logger.addFilter(log_filter)
