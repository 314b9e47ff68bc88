"""OTLP export that can never stall training.

:func:`build_otlp_metric_reader` and :func:`build_otlp_span_processor` build the SDK's
own exporters (``http/protobuf`` or ``grpc``) and wrap them so that a Collector that
is down, slow or hanging costs the trainer nothing:

* ``export()`` only hands the batch to a private worker thread and returns at once,
  so neither the reader's periodic collection nor a ``force_flush()`` called from the
  training thread ever waits on the network (``force_flush`` waits at most
  :data:`FORCE_FLUSH_MAX_WAIT_S`, and only while the exporter is healthy);
* memory is bounded: metrics keep only the newest snapshot (they are CUMULATIVE, so a
  newer snapshot supersedes an older one without losing any count), spans keep at
  most :data:`MAX_PENDING_SPAN_BATCHES` batches and drop the oldest beyond that;
* failures are counted (:func:`otlp_health`) and logged once per outage, not once per
  export; the SDK exporters' own per-export error lines are suppressed on the worker
  thread. Header values are never logged; the endpoint's credentials and query values
  are masked (by :mod:`otel_grpo.redact`) in our log lines and in the HTTP client's
  records on the worker thread.

Header values written as ``"${NAME}"`` are expanded from the environment when the
exporter is built (:func:`otel_grpo.config.resolve_headers`); a header whose variable
is unset is not sent, with one warning naming the header and the variable.

A forked child process (the reward computer's code-test workers) never exports: it
would re-send the parent's cumulative totals under the parent's
``service.instance.id`` and double count them.
"""

from __future__ import annotations

import collections
import logging
import math
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
    _Gauge,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    PeriodicExportingMetricReader,
)
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_grpo import redact as _redact
from otel_grpo.config import resolve_headers

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

_logger = logging.getLogger(__name__)

PROTOCOL_HTTP = "http/protobuf"
PROTOCOL_GRPC = "grpc"
DEFAULT_HTTP_ENDPOINT = "http://localhost:4318"
DEFAULT_GRPC_ENDPOINT = "http://localhost:4317"

#: CUMULATIVE for every instrument kind, stated explicitly so that neither
#: ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` nor an SDK default can turn
#: the OTLP stream into DELTA (the Collector's Prometheus exporter needs cumulative).
CUMULATIVE_TEMPORALITY: dict[type, AggregationTemporality] = {
    Counter: AggregationTemporality.CUMULATIVE,
    UpDownCounter: AggregationTemporality.CUMULATIVE,
    Histogram: AggregationTemporality.CUMULATIVE,
    _Gauge: AggregationTemporality.CUMULATIVE,
    ObservableCounter: AggregationTemporality.CUMULATIVE,
    ObservableUpDownCounter: AggregationTemporality.CUMULATIVE,
    ObservableGauge: AggregationTemporality.CUMULATIVE,
}

#: Longest a ``force_flush`` waits for delivery (only while the last export succeeded).
FORCE_FLUSH_MAX_WAIT_S = 0.5
#: Span batches held for the worker thread beyond the one being sent.
MAX_PENDING_SPAN_BATCHES = 4
#: Span processor limits (the SDK's defaults, stated so the bound is visible here).
SPAN_QUEUE_SIZE = 2048
SPAN_BATCH_SIZE = 512
#: A new outage is logged at WARNING at most this often; others go to DEBUG.
RELOG_INTERVAL_S = 600.0

# Logger names (prefixes) of the SDK exporters whose per-export error lines are
# replaced by our once-per-outage line while our worker thread runs an export.
_SDK_EXPORTER_LOGGER_PREFIXES = ("opentelemetry.exporter.otlp", "opentelemetry.exporter.http")
# Logger names (prefixes) of the HTTP client under the SDK exporters: their records on
# our worker thread are redacted (they print the request URL, query string included).
_HTTP_CLIENT_LOGGER_PREFIXES = ("urllib3", "requests")


class OtlpSettings(Protocol):
    """The attributes read from the OTLP config section (``otel_grpo.config.OtlpConfig``)."""

    enabled: bool
    endpoint: str | None
    protocol: str
    headers: Mapping[str, str]
    metrics: bool
    traces: bool
    export_interval_s: float
    timeout_s: float


# --- health counters ------------------------------------------------------------------

_HEALTH_KEYS = (
    "export_successes",
    "export_errors",
    "metrics_export_successes",
    "metrics_export_errors",
    "metrics_snapshots_superseded",
    "traces_export_successes",
    "traces_export_errors",
    "spans_exported",
    "spans_dropped",
    "consecutive_errors",
)
_health_lock = threading.Lock()
_health: dict[str, int] = dict.fromkeys(_HEALTH_KEYS, 0)
_consecutive: dict[str, int] = {"metrics": 0, "traces": 0}


def _reinit_health_lock() -> None:
    # A lock held by another thread at fork time would stay locked in the child.
    global _health_lock
    _health_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_health_lock)


def _bump(key: str, amount: int = 1) -> None:
    with _health_lock:
        _health[key] += amount


def otlp_health() -> dict[str, int]:
    """Return this process's OTLP export counters (a copy; all keys always present).

    ``export_successes``/``export_errors`` count export calls of both signals;
    ``metrics_snapshots_superseded`` counts metric snapshots replaced by a newer one
    before they could be sent (no count is lost: the stream is cumulative) or still
    unsent when shutdown's wait ran out;
    ``spans_dropped`` counts spans lost to a full queue or a failed export;
    ``consecutive_errors`` is the current run of failed exports (0 when healthy).
    """
    with _health_lock:
        snapshot = dict(_health)
        snapshot["consecutive_errors"] = sum(_consecutive.values())
    return snapshot


# --- endpoint handling -----------------------------------------------------------------

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


def redact_url(url: str) -> str:
    """``url`` reduced to ``scheme://host[:port]/path``: no userinfo, query or fragment.

    Kept under this name for existing callers; it is
    :func:`otel_grpo.redact.redact_url` with ``endpoint_only=True``. Log lines here use
    the shared masked form (``?api-key=REDACTED``) instead.
    """
    return _redact.redact_url(url, endpoint_only=True)


# --- suppressing the SDK exporters' own per-export log lines ---------------------------

_export_thread_state = threading.local()


class _SuppressOnExportThread(logging.Filter):
    """Drop records logged while our worker runs an export; keep the first warning."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(_export_thread_state, "active", False):
            # Keep the first warning of the export: it names the root cause
            # (e.g. "Connection refused"); later ones only say that retries ran out.
            if record.levelno >= logging.WARNING and not getattr(_export_thread_state, "message", None):
                try:
                    _export_thread_state.message = record.getMessage()
                except Exception:  # noqa: BLE001 - a broken log record must not escape
                    _export_thread_state.message = str(record.msg)
            return False
        return True


class _RedactOnExportThread(logging.Filter):
    """Redact records the HTTP client logs while our worker runs an export.

    urllib3 logs each request line (``"POST /v1/metrics?api-key=... HTTP/1.1" 200``)
    at DEBUG: the endpoint's query values and the header values are masked in place.
    Records of other threads (the trainer's own HTTP calls) are left untouched.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(_export_thread_state, "active", False):
            secrets = getattr(_export_thread_state, "secrets", ())
            try:
                record.msg = _redact.redact_text(record.getMessage(), secrets)
                record.args = None
                if record.exc_info:
                    record.exc_text = _redact.redact_text(
                        logging.Formatter().formatException(record.exc_info), secrets)
                    record.exc_info = None
            except Exception:  # noqa: BLE001 - a record we cannot redact is not let through
                return False
        return True


_SUPPRESS_FILTER = _SuppressOnExportThread()
_REDACT_FILTER = _RedactOnExportThread()


def _install_log_filter() -> None:
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


# --- export state: counting, log once ---------------------------------------------------


class _ExportState:
    """Counts one exporter's outcomes and logs an outage once, a recovery once."""

    def __init__(self, signal: str, endpoint: str, secrets: Sequence[str] = ()) -> None:
        self.signal = signal
        self.endpoint = _redact.redact_url(endpoint)
        # Header values and the endpoint's own secrets (password, query values): never
        # allowed into a log line, even inside an error message.
        self.secrets: tuple[str, ...] = tuple({*secrets, *_redact.url_secrets(endpoint)})
        self.failing = False
        self._failures_in_outage = 0
        self._last_warning = -math.inf

    @property
    def healthy(self) -> bool:
        return not self.failing

    def success(self, items: int = 0) -> None:
        _bump("export_successes")
        _bump(f"{self.signal}_export_successes")
        if self.signal == "traces" and items:
            _bump("spans_exported", items)
        with _health_lock:
            _consecutive[self.signal] = 0
        if self.failing:
            self.failing = False
            _logger.info(
                "OTLP %s export to %s recovered after %d failed export(s).",
                self.signal,
                self.endpoint,
                self._failures_in_outage,
            )
            self._failures_in_outage = 0

    def scrub(self, text: str) -> str:
        """Remove header values, URL credentials and query values from ``text``."""
        return _redact.redact_text(text, self.secrets)

    def failure(self, reason: str, items: int = 0) -> None:
        reason = self.scrub(reason)
        _bump("export_errors")
        _bump(f"{self.signal}_export_errors")
        if self.signal == "traces" and items:
            _bump("spans_dropped", items)
        with _health_lock:
            _consecutive[self.signal] += 1
        self._failures_in_outage += 1
        if self.failing:
            _logger.debug("OTLP %s export to %s failed again: %s", self.signal, self.endpoint, reason)
            return
        self.failing = True
        now = time.monotonic()
        level = logging.WARNING if now - self._last_warning >= RELOG_INTERVAL_S else logging.DEBUG
        if level == logging.WARNING:
            self._last_warning = now
        _logger.log(
            level,
            "OTLP %s export to %s failed (%s). Telemetry keeps being recorded; further failures "
            "are counted in otel_grpo.exporters.otlp.otlp_health() and not logged until the export recovers.",
            self.signal,
            self.endpoint,
            reason,
        )


# --- the worker thread -------------------------------------------------------------------


class _ExportWorker:
    """A daemon thread that sends queued items; the queue is bounded (oldest dropped)."""

    def __init__(
        self,
        name: str,
        send: Callable[[Any], None],
        max_pending: int,
        on_drop: Callable[[Any], None],
    ) -> None:
        self._name = name
        self._send = send
        self._max_pending = max_pending
        self._on_drop = on_drop
        self._cond = threading.Condition()
        self._pending: collections.deque[Any] = collections.deque()
        self._busy = False
        self._busy_since = 0.0
        self._closed = False
        self._thread: threading.Thread | None = None

    def submit(self, item: Any) -> None:
        dropped = []
        with self._cond:
            if self._closed:
                dropped.append(item)
            else:
                while len(self._pending) >= self._max_pending:
                    dropped.append(self._pending.popleft())
                self._pending.append(item)
                self._ensure_thread()
                self._cond.notify_all()
        for old in dropped:
            self._on_drop(old)

    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._closed:
                    self._cond.wait()
                if not self._pending:
                    return
                item = self._pending.popleft()
                self._busy = True
                self._busy_since = time.monotonic()
            try:
                self._send(item)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def stuck_for(self) -> float:
        """Seconds the export in flight has been running (0 when idle)."""
        with self._cond:
            return time.monotonic() - self._busy_since if self._busy else 0.0

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until nothing is pending or being sent; False if ``timeout_s`` ran out."""
        deadline = time.monotonic() + max(timeout_s, 0.0)
        with self._cond:
            while self._pending or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    def close(self, timeout_s: float) -> bool:
        """Stop accepting items, give the worker ``timeout_s`` to finish, drop the rest."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        done = self.wait_idle(timeout_s)
        with self._cond:
            leftovers = list(self._pending)
            self._pending.clear()
        for item in leftovers:
            self._on_drop(item)
        return done

    def reset_after_fork(self) -> None:
        """In a forked child: fresh lock, no thread, nothing pending, closed."""
        self._cond = threading.Condition()
        self._pending = collections.deque()
        self._busy = False
        self._busy_since = 0.0
        self._closed = True
        self._thread = None


def _register_fork_handler(obj: Any) -> None:
    if not hasattr(os, "register_at_fork"):
        return
    ref = weakref.WeakMethod(obj._after_fork_in_child)

    def _after_in_child() -> None:
        method = ref()
        if method is not None:
            method()

    os.register_at_fork(after_in_child=_after_in_child)


class _NonBlockingMixin:
    """Shared wiring of the metric and span wrappers."""

    _state: _ExportState
    _worker: _ExportWorker
    _flush_wait_s: float
    _shutdown_wait_s: float
    _pid: int

    def _in_forked_child(self) -> bool:
        return os.getpid() != self._pid

    def _after_fork_in_child(self) -> None:
        self._worker.reset_after_fork()

    def _run_export(self, call: Callable[[], Any], items: int) -> None:
        _export_thread_state.active = True
        _export_thread_state.message = None
        _export_thread_state.secrets = self._state.secrets
        reason = ""
        ok = False
        try:
            result = call()
            ok = result in (MetricExportResult.SUCCESS, SpanExportResult.SUCCESS)
            if not ok:
                reason = _export_thread_state.message or f"exporter returned {result}"
        except Exception as exc:  # noqa: BLE001 - an exporter fault must never escape
            reason = f"{type(exc).__qualname__}: {exc}"
        finally:
            _export_thread_state.active = False
        if ok:
            self._state.success(items)
        else:
            self._state.failure(reason, items)

    def _flush(self, timeout_millis: float | None) -> bool:
        if self._in_forked_child():
            return True
        limit = FORCE_FLUSH_MAX_WAIT_S if timeout_millis is None else timeout_millis / 1e3
        # Wait only for an exporter that works: not after a failure, and not behind an
        # export that has already been in flight longer than a flush may wait.
        healthy = self._state.healthy and self._worker.stuck_for() < self._flush_wait_s
        wait = min(limit, self._flush_wait_s) if healthy else 0.0
        return self._worker.wait_idle(wait)

    def _close(self, timeout_millis: float | None) -> None:
        if self._in_forked_child():
            return
        limit = self._shutdown_wait_s if timeout_millis is None else timeout_millis / 1e3
        wait = min(limit, self._shutdown_wait_s) if self._state.healthy else min(limit, 1.0)
        self._worker.close(max(wait, 0.0))


class NonBlockingMetricExporter(_NonBlockingMixin, MetricExporter):
    """Wraps a metric exporter: ``export`` queues the newest snapshot and returns at once."""

    def __init__(
        self,
        inner: MetricExporter,
        *,
        endpoint: str,
        timeout_s: float,
        flush_wait_s: float = FORCE_FLUSH_MAX_WAIT_S,
        secrets: Sequence[str] = (),
    ) -> None:
        MetricExporter.__init__(self, preferred_temporality=dict(CUMULATIVE_TEMPORALITY))
        self._inner = inner
        self._timeout_s = timeout_s
        self._flush_wait_s = flush_wait_s
        self._shutdown_wait_s = timeout_s + 1.0
        self._state = _ExportState("metrics", endpoint, secrets)
        self._pid = os.getpid()
        self._worker = _ExportWorker(
            "otel-grpo-otlp-metrics",
            self._send,
            max_pending=1,
            on_drop=lambda _data: _bump("metrics_snapshots_superseded"),
        )
        _register_fork_handler(self)

    @property
    def inner(self) -> MetricExporter:
        """The wrapped SDK exporter."""
        return self._inner

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        if not self._in_forked_child():
            self._worker.submit(metrics_data)
        return MetricExportResult.SUCCESS

    def _send(self, metrics_data: MetricsData) -> None:
        self._run_export(
            lambda: self._inner.export(metrics_data, timeout_millis=self._timeout_s * 1e3), 0
        )

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        if self._in_forked_child():
            return  # the parent's connections are not ours to close
        # PeriodicExportingMetricReader passes the remaining time as ``timeout=`` (ms).
        self._close(kwargs.get("timeout", timeout_millis))
        _shutdown_quietly(self._inner)


class NonBlockingSpanExporter(_NonBlockingMixin, SpanExporter):
    """Wraps a span exporter: ``export`` queues the batch and returns at once."""

    def __init__(
        self,
        inner: SpanExporter,
        *,
        endpoint: str,
        timeout_s: float,
        flush_wait_s: float = FORCE_FLUSH_MAX_WAIT_S,
        max_pending_batches: int = MAX_PENDING_SPAN_BATCHES,
        secrets: Sequence[str] = (),
    ) -> None:
        self._inner = inner
        self._timeout_s = timeout_s
        self._flush_wait_s = flush_wait_s
        self._shutdown_wait_s = timeout_s + 1.0
        self._state = _ExportState("traces", endpoint, secrets)
        self._pid = os.getpid()
        self._worker = _ExportWorker(
            "otel-grpo-otlp-traces",
            self._send,
            max_pending=max_pending_batches,
            on_drop=lambda spans: _bump("spans_dropped", len(spans)),
        )
        _register_fork_handler(self)

    @property
    def inner(self) -> SpanExporter:
        """The wrapped SDK exporter."""
        return self._inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self._in_forked_child():
            self._worker.submit(list(spans))
        return SpanExportResult.SUCCESS

    def _send(self, spans: list[ReadableSpan]) -> None:
        self._run_export(lambda: self._inner.export(spans), len(spans))

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return self._flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        if self._in_forked_child():
            return  # the parent's connections are not ours to close
        self._close(timeout_millis)
        _shutdown_quietly(self._inner)


class _OtlpBatchSpanProcessor(BatchSpanProcessor):
    """A BatchSpanProcessor whose ``force_flush`` also waits (briefly) for delivery."""

    def __init__(self, exporter: NonBlockingSpanExporter, **kwargs: Any) -> None:
        super().__init__(exporter, **kwargs)
        self._nb_exporter = exporter

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        flushed = super().force_flush(timeout_millis)
        return self._nb_exporter.force_flush(
            30_000 if timeout_millis is None else timeout_millis
        ) and flushed


def _shutdown_quietly(exporter: Any) -> None:
    try:
        exporter.shutdown()
    except Exception:  # noqa: BLE001 - shutting down must not raise into the trainer
        _logger.debug("OTLP exporter shutdown raised", exc_info=True)


# --- builders --------------------------------------------------------------------------


def _wanted(cfg: OtlpSettings | None, signal: str) -> bool:
    return bool(cfg is not None and getattr(cfg, "enabled", False) and getattr(cfg, signal, True))


def _protocol(cfg: OtlpSettings) -> str:
    protocol = (getattr(cfg, "protocol", None) or PROTOCOL_HTTP).strip().lower()
    if protocol not in (PROTOCOL_HTTP, PROTOCOL_GRPC):
        raise ValueError(f"unsupported OTLP protocol {protocol!r}: use {PROTOCOL_HTTP!r} or {PROTOCOL_GRPC!r}")
    return protocol


def _headers(cfg: OtlpSettings, protocol: str) -> dict[str, str]:
    """The headers to send: ``${NAME}`` references expanded from the environment."""
    headers = resolve_headers(dict(getattr(cfg, "headers", None) or {}))
    # gRPC metadata keys must be lower case; HTTP header names are case-insensitive.
    return {str(k).lower(): str(v) for k, v in headers.items()} if protocol == PROTOCOL_GRPC else {
        str(k): str(v) for k, v in headers.items()
    }


def _timeout_s(cfg: OtlpSettings) -> float:
    timeout = float(getattr(cfg, "timeout_s", 10.0) or 10.0)
    return timeout if timeout > 0 else 10.0


def _grpc_insecure(endpoint: str) -> bool:
    return urlsplit(endpoint).scheme.lower() != "https"


def _make_metric_exporter(protocol: str, endpoint: str, headers: dict[str, str], timeout: float) -> MetricExporter:
    if protocol == PROTOCOL_GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (  # noqa: PLC0415
            OTLPMetricExporter as GrpcMetricExporter,
        )

        return GrpcMetricExporter(
            endpoint=endpoint,
            insecure=_grpc_insecure(endpoint),
            headers=headers or None,
            timeout=timeout,
            preferred_temporality=dict(CUMULATIVE_TEMPORALITY),
        )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (  # noqa: PLC0415
        OTLPMetricExporter as HttpMetricExporter,
    )

    return HttpMetricExporter(
        endpoint=endpoint,
        headers=headers or None,
        timeout=timeout,
        preferred_temporality=dict(CUMULATIVE_TEMPORALITY),
    )


def _make_span_exporter(protocol: str, endpoint: str, headers: dict[str, str], timeout: float) -> SpanExporter:
    if protocol == PROTOCOL_GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # noqa: PLC0415
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter(
            endpoint=endpoint, insecure=_grpc_insecure(endpoint), headers=headers or None, timeout=timeout
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # noqa: PLC0415
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter(endpoint=endpoint, headers=headers or None, timeout=timeout)


def _non_blocking_exporter(cfg: Any, signal: str, make_inner: Callable[..., Any], wrapper: type,
                           flush_wait_s: float) -> tuple[Any, str, str, float]:
    """The SDK exporter for ``signal`` wrapped so it never blocks: (exporter, endpoint, protocol, timeout)."""
    protocol = _protocol(cfg)
    endpoint = signal_endpoint(getattr(cfg, "endpoint", None), protocol, signal)
    timeout = _timeout_s(cfg)
    headers = _headers(cfg, protocol)
    inner = make_inner(protocol, endpoint, headers, timeout)
    _install_log_filter()
    exporter = wrapper(inner, endpoint=endpoint, timeout_s=timeout, flush_wait_s=flush_wait_s,
                       secrets=list(headers.values()))
    return exporter, endpoint, protocol, timeout


def build_otlp_metric_reader(
    cfg: OtlpSettings | None, *, flush_wait_s: float = FORCE_FLUSH_MAX_WAIT_S
) -> PeriodicExportingMetricReader | None:
    """Return a CUMULATIVE PeriodicExportingMetricReader exporting over OTLP, or None.

    None when ``cfg`` is missing, disabled, or has ``metrics`` off. Collection and
    export run on the reader's and our worker's threads; see the module docstring for
    what happens when the Collector is unreachable.
    """
    if not _wanted(cfg, "metrics"):
        return None
    assert cfg is not None
    exporter, endpoint, protocol, timeout = _non_blocking_exporter(
        cfg, "metrics", _make_metric_exporter, NonBlockingMetricExporter, flush_wait_s)
    interval_s = float(getattr(cfg, "export_interval_s", 10.0) or 10.0)
    _logger.debug("OTLP metrics -> %s (%s, every %.1fs)", _redact.redact_url(endpoint), protocol, interval_s)
    return PeriodicExportingMetricReader(
        exporter,
        export_interval_millis=interval_s * 1e3,
        export_timeout_millis=(timeout + 1.0) * 1e3,
    )


def build_otlp_span_processor(
    cfg: OtlpSettings | None, *, flush_wait_s: float = FORCE_FLUSH_MAX_WAIT_S
) -> BatchSpanProcessor | None:
    """Return a bounded BatchSpanProcessor exporting spans over OTLP, or None.

    None when ``cfg`` is missing, disabled, or has ``traces`` off. At most
    :data:`SPAN_QUEUE_SIZE` spans wait in the processor and
    :data:`MAX_PENDING_SPAN_BATCHES` batches of :data:`SPAN_BATCH_SIZE` in the worker.
    """
    if not _wanted(cfg, "traces"):
        return None
    assert cfg is not None
    exporter, endpoint, protocol, timeout = _non_blocking_exporter(
        cfg, "traces", _make_span_exporter, NonBlockingSpanExporter, flush_wait_s)
    interval_s = float(getattr(cfg, "export_interval_s", 5.0) or 5.0)
    _logger.debug("OTLP traces -> %s (%s)", _redact.redact_url(endpoint), protocol)
    return _OtlpBatchSpanProcessor(
        exporter,
        max_queue_size=SPAN_QUEUE_SIZE,
        schedule_delay_millis=min(interval_s, 5.0) * 1e3,
        max_export_batch_size=SPAN_BATCH_SIZE,
        export_timeout_millis=timeout * 1e3,
    )


__all__ = [
    "CUMULATIVE_TEMPORALITY",
    "NonBlockingMetricExporter",
    "NonBlockingSpanExporter",
    "OtlpSettings",
    "build_otlp_metric_reader",
    "build_otlp_span_processor",
    "otlp_health",
    "redact_url",
    "signal_endpoint",
]
