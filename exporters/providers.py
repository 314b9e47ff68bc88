"""Builds the MeterProvider and TracerProvider: OTLP, the Prometheus endpoint, the readers you pass.

WandB rows need no metric reader (they are written from each closed window), so a provider
may well have none: then the instruments cost nothing.
"""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

from otel_grpo import semconv
from otel_grpo.config import PrometheusConfig, TelemetryConfig
from otel_grpo.exporters.preaggregated import PreAggregatedMetrics
from otel_grpo.extras import MissingExtraError
from otel_grpo.redact import redact_text

if TYPE_CHECKING:
    from otel_grpo.exporters.prometheus import PrometheusEndpoint

logger = logging.getLogger(__name__)


@dataclass
class Providers:
    """The SDK providers otel-grpo records into, and what feeds off them."""

    meter_provider: MeterProvider
    tracer_provider: TracerProvider | None
    resource: Resource
    run_id: str
    prometheus: PrometheusEndpoint | None = None
    closers: list[Callable[[], None]] = field(default_factory=list)
    #: Where the recorder adds the histograms it keeps as bucket counts (merged by the readers
    #: built here); with a reader otel-grpo did not build, the recorder also mirrors them into
    #: SDK histograms (``mirror_histograms``).
    preaggregated: PreAggregatedMetrics | None = None
    mirror_histograms: bool = False

    def shutdown(self) -> None:
        """Flush and stop every reader, processor and endpoint (bounded by the SDK timeouts)."""
        for close in (self._shutdown_traces, self._shutdown_metrics, *self.closers):
            try:
                close()
            except Exception as exc:  # noqa: BLE001 - shutdown must not raise into the trainer
                logger.warning(
                    "otel-grpo: error during shutdown: %s: %s", type(exc).__qualname__, redact_text(str(exc))[:300]
                )

    def _shutdown_traces(self) -> None:
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()

    def _shutdown_metrics(self) -> None:
        self.meter_provider.shutdown(timeout_millis=10_000)


def make_resource(service_name: str, run_id: str) -> Resource:
    """Resource with service.name, a per-process service.instance.id, run id and host."""
    return Resource.create(
        {
            "service.name": service_name,  # OTEL_SERVICE_NAME is layered in by the config
            "service.instance.id": uuid.uuid4().hex,
            semconv.ATTR_RUN_ID: run_id,
            "host.name": socket.gethostname(),
            "process.pid": os.getpid(),
        }
    )


def _resource_of(meter_provider: MeterProvider) -> Resource:
    """The resource ``meter_provider`` was built with.

    The SDK's MeterProvider has no public accessor for it (TracerProvider has
    ``.resource``; a tracer provider may be absent), so this one function reads the
    SDK's private ``_sdk_config``.
    """
    return meter_provider._sdk_config.resource


def _warn_missing_extra(exc: MissingExtraError, without: str) -> None:
    """One warning line: what to install, and that telemetry carries on without ``without``."""
    logger.warning("%s; WandB rows carry on without %s", redact_text(str(exc)), without)


def _otlp_sinks(
    cfg: TelemetryConfig, preaggregated: PreAggregatedMetrics
) -> tuple[list[MetricReader], list[SpanProcessor]]:
    """The OTLP metric reader and span processor the config asks for; none (one warning) without the extra."""
    readers: list[MetricReader] = []
    processors: list[SpanProcessor] = []
    from otel_grpo.exporters import otlp

    try:
        otlp_reader = otlp.build_otlp_metric_reader(cfg.otlp, preaggregated=preaggregated)
        if otlp_reader is not None:
            readers.append(otlp_reader)
        otlp_processor = otlp.build_otlp_span_processor(cfg.otlp)
        if otlp_processor is not None:
            processors.append(otlp_processor)
    except MissingExtraError as exc:
        _warn_missing_extra(exc, "OTLP export")
    return readers, processors


def _start_prometheus(cfg: PrometheusConfig, preaggregated: PreAggregatedMetrics) -> PrometheusEndpoint | None:
    """The scrape endpoint, or None (with one warning) when its port cannot be bound or the extra is missing."""
    try:
        from otel_grpo.exporters.prometheus import start_prometheus_reader
    except MissingExtraError as exc:
        _warn_missing_extra(exc, "the Prometheus endpoint")
        return None

    try:
        return start_prometheus_reader(cfg, preaggregated=preaggregated)
    except OSError as exc:  # the port is taken (another run, another exporter): carry on without it
        logger.warning(
            "otel-grpo: cannot serve Prometheus metrics on %s:%s (%s); WandB rows and OTLP carry on "
            "without the scrape endpoint. Choose another port with prometheus.port in the telemetry "
            "config or OTEL_EXPORTER_PROMETHEUS_PORT (0 picks a free one), or turn the endpoint off "
            "with prometheus.enabled: false",
            cfg.host,
            cfg.port,
            exc.strerror or exc,
        )
        return None


def build_providers(
    cfg: TelemetryConfig,
    *,
    metric_readers: Sequence[MetricReader] = (),
    span_processors: Sequence[SpanProcessor] = (),
    meter_provider: MeterProvider | None = None,
    tracer_provider: TracerProvider | None = None,
) -> Providers:
    """Build providers from a :class:`~otel_grpo.config.TelemetryConfig`.

    ``metric_readers`` and ``span_processors`` are extra sinks (tests use in-memory
    ones). OTLP and the Prometheus endpoint are added when the config enables them
    and their extra is installed (otherwise one warning says what to install).
    With ``meter_provider`` (the one ``opentelemetry-instrument`` built) nothing is
    built: those providers are used as they are, and the histograms are mirrored into
    SDK instruments so its readers see them.
    """
    if meter_provider is not None:
        resource = _resource_of(meter_provider)
        run_id = str(resource.attributes.get(semconv.ATTR_RUN_ID) or uuid.uuid4().hex[:12])
        return Providers(
            meter_provider=meter_provider,
            tracer_provider=tracer_provider,
            resource=resource,
            run_id=run_id,
            mirror_histograms=True,
        )
    run_id = os.environ.get("OTEL_GRPO_RUN_ID") or uuid.uuid4().hex[:12]
    resource = make_resource(cfg.service_name, run_id)
    readers: list[MetricReader] = list(metric_readers)
    preaggregated = PreAggregatedMetrics(resource, semconv.METER_NAME)
    processors: list[SpanProcessor] = list(span_processors)
    closers: list[Callable[[], None]] = []
    if cfg.otlp.enabled:
        otlp_readers, otlp_processors = _otlp_sinks(cfg, preaggregated)
        readers.extend(otlp_readers)
        processors.extend(otlp_processors)
    prometheus = _start_prometheus(cfg.prometheus, preaggregated) if cfg.prometheus.enabled else None
    if prometheus is not None:
        readers.append(prometheus.reader)
        closers.append(prometheus.stop)
        logger.debug("otel-grpo: Prometheus metrics at %s", prometheus.url)  # the start-up line says it
    meter_provider = MeterProvider(resource=resource, metric_readers=readers)
    new_tracer_provider = None
    if processors:
        new_tracer_provider = TracerProvider(resource=resource)
        for processor in processors:
            new_tracer_provider.add_span_processor(processor)
    return Providers(
        meter_provider=meter_provider,
        tracer_provider=new_tracer_provider,
        resource=resource,
        run_id=run_id,
        prometheus=prometheus,
        closers=closers,
        preaggregated=preaggregated,
        mirror_histograms=bool(metric_readers),
    )
