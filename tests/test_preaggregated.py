"""The executor-latency histogram kept as bucket counts: the same data the SDK instrument gives, in every reader."""

from __future__ import annotations

import random
import urllib.request

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    HistogramDataPoint,
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)
from opentelemetry.sdk.resources import Resource

import otel_grpo
from otel_grpo import semconv as sc
from otel_grpo.exporters.preaggregated import MergingMetricExporter, PreAggregatedMetrics
from otel_grpo.recording.histogram import BucketHistogram

ATTRS = (sc.ATTR_SPLIT, sc.ATTR_SOURCE, sc.ATTR_SUCCESS)
# Values on and around every bound (bounds are upper-inclusive), below the first and above the last.
VALUES = [0.0, 0.005, *sc.DURATION_BUCKETS_S, *(b + 1e-9 for b in sc.DURATION_BUCKETS_S), 100.0, 1e6]


def sdk_points(values: list[tuple[float, tuple[str, ...]]]) -> dict[tuple, HistogramDataPoint]:
    """What the SDK's own histogram instrument reports for ``values`` (the oracle)."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    histogram = provider.get_meter("t").create_histogram(
        sc.EXECUTOR_DURATION[0], unit="s", explicit_bucket_boundaries_advisory=list(sc.DURATION_BUCKETS_S)
    )
    for value, key in values:
        histogram.record(value, dict(zip(ATTRS, key, strict=True)))
    data = reader.get_metrics_data()
    provider.shutdown()
    (metric,) = data.resource_metrics[0].scope_metrics[0].metrics
    return {tuple(sorted(p.attributes.items())): p for p in metric.data.data_points}


def test_bucket_counts_sum_min_max_equal_the_sdk_instrument() -> None:
    rng = random.Random(3)
    keys = [("train", "gsm8k", "true"), ("train", "math", "false"), ("val", "gsm8k", "true")]
    values = [(v, rng.choice(keys)) for v in VALUES * 3]
    values += [(rng.expovariate(2.0), rng.choice(keys)) for _ in range(500)]
    ours = BucketHistogram(sc.EXECUTOR_DURATION, sc.DURATION_BUCKETS_S, ATTRS)
    for value, key in values:
        ours.record(value, key)
    expected = sdk_points(values)
    got = {tuple(sorted(p.attributes.items())): p for p in ours.snapshot()}
    assert set(got) == set(expected)
    for key, want in expected.items():
        point = got[key]
        assert list(point.bucket_counts) == list(want.bucket_counts), key
        assert (point.count, point.min, point.max) == (want.count, want.min, want.max)
        assert point.total == pytest.approx(want.sum, rel=1e-12)


def test_cumulative_data_points() -> None:
    resource = Resource.create({"service.name": "t"})
    merged = PreAggregatedMetrics(resource, sc.METER_NAME)
    histogram = BucketHistogram(sc.EXECUTOR_DURATION, sc.DURATION_BUCKETS_S, ATTRS)
    merged.add(histogram)
    assert merged.metrics() == []  # nothing recorded: no metric
    histogram.record(0.03, ("train", "gsm8k", "true"))  # bucket (0.0221, 0.032]
    histogram.record(0.03, ("train", "gsm8k", "true"))
    (first,) = merged.metrics()
    assert first.name == "grpo.executor.duration" and first.unit == "s"
    assert first.data.aggregation_temporality == AggregationTemporality.CUMULATIVE
    (point,) = first.data.data_points
    assert (point.count, point.bucket_counts[5], point.sum) == (2, 2, pytest.approx(0.06))
    histogram.record(5.0, ("train", "gsm8k", "true"))  # bucket (4.01, 5.82]
    histogram.record(0.5, ("val", "math", "false"))
    totals = {p.attributes[sc.ATTR_SOURCE]: p for p in merged.metrics()[0].data.data_points}
    assert (
        totals["gsm8k"].count == 3 and totals["gsm8k"].bucket_counts[5] == 2 and totals["gsm8k"].bucket_counts[19] == 1
    )
    assert totals["gsm8k"].start_time_unix_nano == histogram.start_time_ns
    assert totals["math"].count == 1


class _Capture(MetricExporter):
    def __init__(self) -> None:
        super().__init__()
        self.exported: list[MetricsData] = []

    def export(self, metrics_data, timeout_millis=10_000, **kwargs):
        self.exported.append(metrics_data)
        return MetricExportResult.SUCCESS

    def force_flush(self, timeout_millis=10_000):
        return True

    def shutdown(self, timeout_millis=30_000, **kwargs):
        pass


def test_a_cumulative_exporter_gets_the_histogram_next_to_the_sdk_metrics_under_the_meter_scope() -> None:
    resource = Resource.create({"service.name": "t"})
    merged = PreAggregatedMetrics(resource, sc.METER_NAME)
    histogram = BucketHistogram(sc.EXECUTOR_DURATION, sc.DURATION_BUCKETS_S, ATTRS)
    merged.add(histogram)
    capture = _Capture()
    reader = InMemoryMetricReader()
    provider = MeterProvider(resource=resource, metric_readers=[reader])
    provider.get_meter(sc.METER_NAME).create_counter("grpo.x").add(1)
    histogram.record(0.3, ("train", "mmlu", "true"))
    MergingMetricExporter(capture, merged).export(reader.get_metrics_data())
    provider.shutdown()
    (rm,) = capture.exported[0].resource_metrics
    assert rm.resource == resource
    (scope,) = rm.scope_metrics
    assert scope.scope.name == sc.METER_NAME
    assert [m.name for m in scope.metrics] == ["grpo.x", "grpo.executor.duration"]
    # With nothing collected by the SDK, the histogram still goes out, under the provider's resource.
    capture.exported.clear()
    MergingMetricExporter(capture, merged).export(MetricsData(resource_metrics=[]))
    assert capture.exported[0].resource_metrics[0].resource == resource


def _runs(tel, durations: list[float]) -> None:
    with otel_grpo.step(1):
        for i, seconds in enumerate(durations):
            with otel_grpo.sample("gsm8k", "math"):
                otel_grpo.record_executor_run(cost=0.01, duration_s=seconds, success=i % 4 != 3)
                otel_grpo.record_sample(1.0)


def test_rows_and_the_prometheus_endpoint_read_the_preaggregated_histogram() -> None:
    durations = [0.03, 0.05, 0.3, 0.3, 1.0, 7.0, 0.01, 0.02]
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"}, prometheus={"enabled": True, "port": 0})
    try:
        assert tel.providers.preaggregated is not None
        _runs(tel, durations)
        row = tel.rows[-1]
        # 8 values; p50 rank 4 falls in (0.0465, 0.0674] (3 before it, 1 in it): its upper bound.
        assert row["executor/latency_p50_s"] == pytest.approx(0.0674)
        # p95 rank 7.6 in (5.82, 8.44], holding the 8th value: 5.82 + 2.62 * 0.6.
        assert row["executor/latency_p95_s"] == pytest.approx(5.82 + 2.62 * 0.6)
        text = urllib.request.urlopen(tel.prometheus_url, timeout=5).read().decode()
    finally:
        tel.shutdown()
    lines = [line for line in text.splitlines() if line.startswith("grpo_executor_duration_seconds_count")]
    counts = {("true" if 'success="true"' in line else "false"): float(line.split()[-1]) for line in lines}
    assert counts == {"true": 6.0, "false": 2.0}
    assert "grpo_executor_duration_seconds_bucket{" in text and 'le="0.032"' in text


def test_with_a_reader_otel_grpo_did_not_build_the_sdk_instrument_is_kept() -> None:
    reader = InMemoryMetricReader()
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"}, metric_readers=[reader])
    try:
        assert tel.providers.mirror_histograms  # a reader of yours: the histograms also go to SDK instruments
        _runs(tel, [0.03, 0.3])
        assert tel.rows[-1]["executor/latency_p50_s"] == pytest.approx(0.032)
        data = reader.get_metrics_data()
    finally:
        tel.shutdown()
    names = {m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "grpo.executor.duration" in names


def test_the_attribute_histogram_equals_the_sdk_instrument_whatever_the_attribute_order() -> None:
    from otel_grpo.recording.histogram import AttributeHistogram

    rng = random.Random(5)
    events = []
    for _ in range(300):
        attrs = {"grpo.split": rng.choice(["train", "val"]), "grpo.source": rng.choice(["gsm8k", "mmlu"])}
        if rng.random() < 0.3:
            attrs["error.type"] = "timeout"
        if rng.random() < 0.5:  # the same attributes given in another order: the same series
            attrs = dict(reversed(list(attrs.items())))
        events.append((rng.expovariate(1.0) * 100, attrs))
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter("t")
    sdk_hist = meter.create_histogram("h", explicit_bucket_boundaries_advisory=list(sc.TOKEN_BUCKETS))
    ours_hist = AttributeHistogram(("h", "{token}", "d"), sc.TOKEN_BUCKETS)
    for value, attrs in events:
        sdk_hist.record(value, attrs)
        ours_hist.record(value, attrs)
    data = reader.get_metrics_data()
    provider.shutdown()
    metrics = {m.name: m for m in data.resource_metrics[0].scope_metrics[0].metrics}

    def key(attrs) -> tuple:
        return tuple(sorted(attrs.items()))

    want_hist = {key(p.attributes): p for p in metrics["h"].data.data_points}
    got_hist = {key(p.attributes): p for p in ours_hist.snapshot()}
    assert set(got_hist) == set(want_hist)
    for k, want in want_hist.items():
        assert list(got_hist[k].bucket_counts) == list(want.bucket_counts)
        assert got_hist[k].count == want.count and got_hist[k].total == pytest.approx(want.sum)


def test_rows_come_from_each_window_and_a_cumulative_reader_sees_every_series() -> None:
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"}, prometheus={"enabled": True, "port": 0})
    try:
        _runs(tel, [0.1, 0.2])  # step 1: gsm8k
        with otel_grpo.step(2):
            with otel_grpo.sample("math", "math"):
                otel_grpo.record_executor_run(cost=0.5, duration_s=0.1)
                otel_grpo.record_sample(0.0)
        text = urllib.request.urlopen(tel.prometheus_url, timeout=5).read().decode()
        rows = tel.rows
    finally:
        tel.shutdown()
    assert rows[1]["dataset/math/count"] == 1 and "dataset/gsm8k/count" not in rows[1]
    assert rows[1]["cost/total_cost"] == pytest.approx(0.52)
    # Prometheus (CUMULATIVE) gets every series at every scrape, the histograms merged in.
    samples = [line for line in text.splitlines() if line.startswith("grpo_samples_total{")]
    assert any('grpo_source="gsm8k"' in line for line in samples)
    assert any('grpo_source="math"' in line for line in samples)
    assert any(line.startswith("grpo_executor_duration_seconds_count{") for line in text.splitlines())
