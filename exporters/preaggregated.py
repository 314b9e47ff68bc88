"""Histograms pre-aggregated outside the SDK, merged into what a metric reader collected.

The OpenTelemetry specification has a *MetricProducer* for third-party pre-aggregated
data; the Python SDK (1.45) has none. :class:`PreAggregatedMetrics` stands in for it:
it holds sources (``otel_grpo.recording.histogram.BucketHistogram``: per-series bucket
counts) and turns them into real ``HistogramDataPoint`` s, which :meth:`~PreAggregatedMetrics.merge`
adds to a reader's ``MetricsData`` under the meter's scope. Each reader otel-grpo
builds calls it where it collects: the OTLP reader's exporter and the Prometheus reader
(CUMULATIVE).
Nothing else changes: name, unit, attributes and bucket boundaries are those the SDK
instrument would have, so OTLP, Prometheus and every dashboard query see the same series.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any, Protocol

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    ResourceMetrics,
    ScopeMetrics,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope


class HistogramSource(Protocol):
    """A pre-aggregated histogram (``otel_grpo.recording.histogram.BucketHistogram``)."""

    name: str
    unit: str
    description: str
    bounds: tuple[float, ...]
    start_time_ns: int

    def snapshot(self) -> Sequence[Any]:
        """(attributes, bucket_counts, sum, count, min, max) per series, cumulative."""


class PreAggregatedMetrics:
    """The pre-aggregated histograms of one MeterProvider (``resource``, meter ``scope_name``)."""

    def __init__(self, resource: Resource, scope_name: str) -> None:
        self.resource = resource
        self.scope = InstrumentationScope(scope_name)
        self._sources: list[HistogramSource] = []
        self._lock = threading.Lock()

    def add(self, source: HistogramSource) -> None:
        """Merge ``source`` into every later collection."""
        with self._lock:
            self._sources.append(source)

    def metrics(self) -> list[Metric]:
        """One cumulative ``Metric`` per source with data."""
        with self._lock:
            sources = list(self._sources)
        now = time.time_ns()
        out: list[Metric] = []
        for source in sources:
            points = [self._point(source, series, now) for series in source.snapshot()]
            if points:
                histogram = Histogram(points, AggregationTemporality.CUMULATIVE)
                out.append(Metric(source.name, source.description, source.unit, histogram))
        return out

    @staticmethod
    def _point(source: HistogramSource, series: Any, now: int) -> HistogramDataPoint:
        attributes, counts, total, count, low, high = series
        return HistogramDataPoint(
            attributes=attributes,
            start_time_unix_nano=source.start_time_ns,
            time_unix_nano=now,
            count=count,
            sum=total,
            bucket_counts=list(counts),
            explicit_bounds=list(source.bounds),
            min=low,
            max=high,
        )

    def merge(self, data: MetricsData | None, metrics: Sequence[Metric]) -> MetricsData | None:
        """``data`` with ``metrics`` added to this provider's resource and meter scope."""
        if not metrics:
            return data
        resource_metrics = list(data.resource_metrics) if data is not None else []
        for i, rm in enumerate(resource_metrics):
            if rm.resource == self.resource or len(resource_metrics) == 1:
                resource_metrics[i] = self._with(rm, metrics)
                break
        else:
            resource_metrics.append(
                ResourceMetrics(self.resource, [ScopeMetrics(self.scope, list(metrics), "")], self.resource.schema_url)
            )
        return MetricsData(resource_metrics=resource_metrics)

    def _with(self, rm: ResourceMetrics, metrics: Sequence[Metric]) -> ResourceMetrics:
        scopes = list(rm.scope_metrics)
        for i, sm in enumerate(scopes):
            if sm.scope.name == self.scope.name:
                scopes[i] = ScopeMetrics(sm.scope, [*sm.metrics, *metrics], sm.schema_url)
                break
        else:
            scopes.append(ScopeMetrics(self.scope, list(metrics), ""))
        return ResourceMetrics(rm.resource, scopes, rm.schema_url)


class MergingMetricExporter(MetricExporter):
    """Adds the cumulative pre-aggregated histograms to every export of a CUMULATIVE reader's exporter."""

    def __init__(self, inner: MetricExporter, preaggregated: PreAggregatedMetrics) -> None:
        super().__init__(
            preferred_temporality=getattr(inner, "_preferred_temporality", None),
            preferred_aggregation=getattr(inner, "_preferred_aggregation", None),
        )
        self._inner = inner
        self._preaggregated = preaggregated

    def export(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> MetricExportResult:
        """Export ``metrics_data`` plus the pre-aggregated histograms."""
        merged = self._preaggregated.merge(metrics_data, self._preaggregated.metrics())
        return self._inner.export(merged or metrics_data, timeout_millis=timeout_millis, **kwargs)

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        """Flush the wrapped exporter."""
        return self._inner.force_flush(timeout_millis=timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Shut the wrapped exporter down."""
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)

    def __getattr__(self, name: str) -> Any:  # health, state... of the wrapped exporter
        return getattr(self._inner, name)
