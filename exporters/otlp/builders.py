"""Building the OTLP metric reader and span processor from the ``otlp`` config section.

Each builder makes the SDK's own exporter (``http/protobuf`` or ``grpc``) for the
signal, wraps it so it never blocks (:mod:`.non_blocking`), and returns the reader or
processor to add to the providers, or None when the section turns the signal off.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from opentelemetry.sdk.metrics.export import MetricExporter, PeriodicExportingMetricReader
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter

from otel_grpo import redact
from otel_grpo.config import OtlpConfig, resolve_headers
from otel_grpo.exporters.otlp.endpoints import PROTOCOL_GRPC, grpc_insecure, signal_endpoint
from otel_grpo.exporters.otlp.log_filters import install_log_filters
from otel_grpo.exporters.otlp.non_blocking import (
    CUMULATIVE_TEMPORALITY,
    FORCE_FLUSH_MAX_WAIT_S,
    NonBlockingMetricExporter,
    NonBlockingSpanExporter,
    OtlpBatchSpanProcessor,
)
from otel_grpo.exporters.preaggregated import MergingMetricExporter, PreAggregatedMetrics
from otel_grpo.extras import MissingExtraError

_logger = logging.getLogger(__package__)

#: Span processor limits (the SDK's defaults, stated so the bound is visible here).
SPAN_QUEUE_SIZE = 2048
SPAN_BATCH_SIZE = 512
#: Longest the span processor waits before sending a batch, whatever the metric interval.
MAX_SPAN_SCHEDULE_DELAY_S = 5.0


@dataclass(frozen=True)
class _Destination:
    """Where and how one signal is sent."""

    protocol: str
    endpoint: str
    headers: dict[str, str]
    timeout_s: float


def _destination(cfg: OtlpConfig, signal: str) -> _Destination:
    """The signal's endpoint, with the headers' ``${NAME}`` references expanded from the environment."""
    headers = resolve_headers(cfg)
    if cfg.protocol == PROTOCOL_GRPC:  # gRPC metadata keys must be lower case
        headers = {name.lower(): value for name, value in headers.items()}
    return _Destination(cfg.protocol, signal_endpoint(cfg.endpoint, cfg.protocol, signal), headers, cfg.timeout_s)


def _missing_exporter(to: _Destination, exc: ImportError) -> MissingExtraError:
    """The one-line error for an SDK exporter package that is not installed (the ``otlp`` extra)."""
    return MissingExtraError(f"the OTLP exporter ({to.protocol})", "otlp", str(exc) or type(exc).__name__)


def _sdk_metric_exporter(to: _Destination) -> MetricExporter:
    try:
        return _new_sdk_metric_exporter(to)
    except ImportError as exc:
        raise _missing_exporter(to, exc) from exc


def _sdk_span_exporter(to: _Destination) -> SpanExporter:
    try:
        return _new_sdk_span_exporter(to)
    except ImportError as exc:
        raise _missing_exporter(to, exc) from exc


def _new_sdk_metric_exporter(to: _Destination) -> MetricExporter:
    if to.protocol == PROTOCOL_GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
            OTLPMetricExporter as GrpcMetricExporter,
        )

        return GrpcMetricExporter(
            endpoint=to.endpoint,
            insecure=grpc_insecure(to.endpoint),
            headers=to.headers or None,
            timeout=to.timeout_s,
            preferred_temporality=dict(CUMULATIVE_TEMPORALITY),
        )
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
        OTLPMetricExporter as HttpMetricExporter,
    )

    return HttpMetricExporter(
        endpoint=to.endpoint,
        headers=to.headers or None,
        timeout=to.timeout_s,
        preferred_temporality=dict(CUMULATIVE_TEMPORALITY),
    )


def _new_sdk_span_exporter(to: _Destination) -> SpanExporter:
    if to.protocol == PROTOCOL_GRPC:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcSpanExporter,
        )

        return GrpcSpanExporter(
            endpoint=to.endpoint,
            insecure=grpc_insecure(to.endpoint),
            headers=to.headers or None,
            timeout=to.timeout_s,
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpSpanExporter,
    )

    return HttpSpanExporter(endpoint=to.endpoint, headers=to.headers or None, timeout=to.timeout_s)


def build_otlp_metric_reader(
    cfg: OtlpConfig | None,
    *,
    flush_wait_s: float = FORCE_FLUSH_MAX_WAIT_S,
    preaggregated: PreAggregatedMetrics | None = None,
) -> PeriodicExportingMetricReader | None:
    """Return a CUMULATIVE PeriodicExportingMetricReader exporting over OTLP, or None.

    None when ``cfg`` is missing, disabled, or has ``metrics`` off. Raises
    :class:`~otel_grpo.extras.MissingExtraError` when the protocol's SDK exporter package
    (the ``otlp`` extra) is not installed. Collection and
    export run on the reader's and our worker's threads; see
    :mod:`otel_grpo.exporters.otlp` for what happens when the Collector is unreachable.
    """
    if cfg is None or not (cfg.enabled and cfg.metrics):
        return None
    to = _destination(cfg, "metrics")
    inner = _sdk_metric_exporter(to)
    install_log_filters()
    exporter: MetricExporter = NonBlockingMetricExporter(
        inner,
        endpoint=to.endpoint,
        timeout_s=to.timeout_s,
        flush_wait_s=flush_wait_s,
        secrets=list(to.headers.values()),
    )
    if preaggregated is not None:  # merged when collected, before the snapshot leaves the reader
        exporter = MergingMetricExporter(exporter, preaggregated)
    _logger.debug(
        "OTLP metrics -> %s (%s, every %.1fs)", redact.redact_url(to.endpoint), to.protocol, cfg.export_interval_s
    )
    return PeriodicExportingMetricReader(
        exporter,
        export_interval_millis=cfg.export_interval_s * 1e3,
        export_timeout_millis=(to.timeout_s + 1.0) * 1e3,
    )


def build_otlp_span_processor(
    cfg: OtlpConfig | None, *, flush_wait_s: float = FORCE_FLUSH_MAX_WAIT_S
) -> BatchSpanProcessor | None:
    """Return a bounded BatchSpanProcessor exporting spans over OTLP, or None.

    None when ``cfg`` is missing, disabled, or has ``traces`` off. Raises
    :class:`~otel_grpo.extras.MissingExtraError` like :func:`build_otlp_metric_reader`. At most
    :data:`SPAN_QUEUE_SIZE` spans wait in the processor and
    :data:`~otel_grpo.exporters.otlp.non_blocking.MAX_PENDING_SPAN_BATCHES` batches of
    :data:`SPAN_BATCH_SIZE` in the worker.
    """
    if cfg is None or not (cfg.enabled and cfg.traces):
        return None
    to = _destination(cfg, "traces")
    inner = _sdk_span_exporter(to)
    install_log_filters()
    exporter = NonBlockingSpanExporter(
        inner,
        endpoint=to.endpoint,
        timeout_s=to.timeout_s,
        flush_wait_s=flush_wait_s,
        secrets=list(to.headers.values()),
    )
    _logger.debug("OTLP traces -> %s (%s)", redact.redact_url(to.endpoint), to.protocol)
    return OtlpBatchSpanProcessor(
        exporter,
        max_queue_size=SPAN_QUEUE_SIZE,
        schedule_delay_millis=min(cfg.export_interval_s, MAX_SPAN_SCHEDULE_DELAY_S) * 1e3,
        max_export_batch_size=SPAN_BATCH_SIZE,
        export_timeout_millis=to.timeout_s * 1e3,
    )
