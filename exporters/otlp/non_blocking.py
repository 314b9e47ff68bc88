"""Exporter wrappers whose ``export`` only queues: the network is met on the worker thread.

:class:`NonBlockingMetricExporter` keeps the newest metrics snapshot only (the stream
is CUMULATIVE, so a newer snapshot supersedes an older one without losing a count);
:class:`NonBlockingSpanExporter` keeps at most :data:`MAX_PENDING_SPAN_BATCHES`
batches. ``force_flush`` waits at most :data:`FORCE_FLUSH_MAX_WAIT_S`, and only while
the exporter is healthy. A forked child never exports.
"""

from __future__ import annotations

import logging
import os
import traceback
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
    _Gauge,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from otel_grpo import redact
from otel_grpo.exporters.otlp.health import ExportState, bump
from otel_grpo.exporters.otlp.log_filters import export_logging
from otel_grpo.exporters.otlp.worker import ExportWorker, call_in_forked_child

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

_logger = logging.getLogger(__package__)

#: CUMULATIVE for every instrument kind, stated explicitly so that neither
#: ``OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE`` nor an SDK default can turn
#: the OTLP stream into DELTA (the Collector's Prometheus exporter needs cumulative).
#: ``_Gauge`` is the SDK's synchronous gauge: it has no public name in the SDK.
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

_ExportResult = MetricExportResult | SpanExportResult


class _NonBlockingMixin:
    """Shared wiring of the metric and span wrappers."""

    _state: ExportState
    _worker: ExportWorker[Any]
    _flush_wait_s: float
    _shutdown_wait_s: float
    _pid: int

    def _in_forked_child(self) -> bool:
        return os.getpid() != self._pid

    def _after_fork_in_child(self) -> None:
        self._worker.reset_after_fork()

    def _run_export(self, call: Callable[[], _ExportResult], items: int) -> None:
        reason = ""
        ok = False
        with export_logging(self._state.secrets) as log:
            try:
                result = call()
                ok = result in (MetricExportResult.SUCCESS, SpanExportResult.SUCCESS)
                if not ok:
                    reason = log.message or f"exporter returned {result}"
            except Exception as exc:  # noqa: BLE001 - an exporter fault must never escape
                reason = f"{type(exc).__qualname__}: {exc}"
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
        self._state = ExportState("metrics", endpoint, secrets)
        self._pid = os.getpid()
        self._worker: ExportWorker[MetricsData] = ExportWorker(
            "otel-grpo-otlp-metrics",
            self._send,
            max_pending=1,
            on_drop=lambda _data: bump("metrics_snapshots_superseded"),
        )
        call_in_forked_child(self._after_fork_in_child)

    @property
    def inner(self) -> MetricExporter:
        """The wrapped SDK exporter."""
        return self._inner

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        """Queue ``metrics_data`` for the worker (replacing an unsent snapshot); always SUCCESS."""
        if not self._in_forked_child():
            self._worker.submit(metrics_data)
        return MetricExportResult.SUCCESS

    def _send(self, metrics_data: MetricsData) -> None:
        self._run_export(lambda: self._inner.export(metrics_data, timeout_millis=self._timeout_s * 1e3), 0)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Wait briefly for delivery while the exporter is healthy; never on a failing one."""
        return self._flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Give the worker a bounded time to send what is queued, then close the SDK exporter."""
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
        self._state = ExportState("traces", endpoint, secrets)
        self._pid = os.getpid()
        self._worker: ExportWorker[list[ReadableSpan]] = ExportWorker(
            "otel-grpo-otlp-traces",
            self._send,
            max_pending=max_pending_batches,
            on_drop=lambda spans: bump("spans_dropped", len(spans)),
        )
        call_in_forked_child(self._after_fork_in_child)

    @property
    def inner(self) -> SpanExporter:
        """The wrapped SDK exporter."""
        return self._inner

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Queue the batch for the worker (dropping the oldest beyond the bound); always SUCCESS."""
        if not self._in_forked_child():
            self._worker.submit(list(spans))
        return SpanExportResult.SUCCESS

    def _send(self, spans: list[ReadableSpan]) -> None:
        self._run_export(lambda: self._inner.export(spans), len(spans))

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        """Wait briefly for delivery while the exporter is healthy; never on a failing one."""
        return self._flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        """Give the worker a bounded time to send what is queued, then close the SDK exporter."""
        if self._in_forked_child():
            return  # the parent's connections are not ours to close
        self._close(timeout_millis)
        _shutdown_quietly(self._inner)


class OtlpBatchSpanProcessor(BatchSpanProcessor):
    """A BatchSpanProcessor whose ``force_flush`` also waits (briefly) for delivery."""

    def __init__(
        self,
        exporter: NonBlockingSpanExporter,
        *,
        max_queue_size: int,
        schedule_delay_millis: float,
        max_export_batch_size: int,
        export_timeout_millis: float,
    ) -> None:
        super().__init__(
            exporter,
            max_queue_size=max_queue_size,
            schedule_delay_millis=schedule_delay_millis,
            max_export_batch_size=max_export_batch_size,
            export_timeout_millis=export_timeout_millis,
        )
        self._nb_exporter = exporter

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        """Flush the processor's queue, then wait (bounded) for the worker to deliver it."""
        flushed = super().force_flush(timeout_millis)
        return self._nb_exporter.force_flush(30_000 if timeout_millis is None else timeout_millis) and flushed


def _shutdown_quietly(exporter: MetricExporter | SpanExporter) -> None:
    try:
        exporter.shutdown()
    except Exception:  # noqa: BLE001 - shutting down must not raise into the trainer
        if _logger.isEnabledFor(logging.DEBUG):  # no exc_info: the text may hold the endpoint's secrets
            _logger.debug("OTLP exporter shutdown raised %s", redact.redact_text(traceback.format_exc()))
