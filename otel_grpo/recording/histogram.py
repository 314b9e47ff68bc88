"""Explicit-bucket histograms kept as plain per-series bucket counts: no SDK call per value.

One value costs a ``bisect`` and a few additions under a lock (well under a microsecond),
where an SDK ``Histogram.record`` with attributes costs several. The readers otel-grpo builds
(OTLP, the Prometheus endpoint) turn :meth:`BucketHistogram.snapshot` into real OpenTelemetry
``HistogramDataPoint`` s at collection time (:mod:`otel_grpo.exporters.preaggregated`), with
the same name, unit, attributes and bucket boundaries as the SDK instrument would have:
dashboards cannot tell the difference. The WandB rows read :meth:`BucketHistogram.merged`.

When a reader otel-grpo did not build is attached (``opentelemetry-instrument``, readers
passed to ``setup``), each histogram also records into a *mirror* SDK instrument, so that
reader sees it too.
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from opentelemetry.metrics import Histogram

Spec = tuple[str, str, str]  # (instrument name, unit, description), as in otel_grpo.semconv


class HistogramPoint(NamedTuple):
    """One series of a :class:`BucketHistogram` at snapshot time (cumulative since its start)."""

    attributes: Mapping[str, str]
    bucket_counts: tuple[int, ...]  # len(bounds) + 1: the last bucket is (bounds[-1], +Inf)
    total: float
    count: int  # type: ignore[assignment]  # the data point's field name, shadowing tuple.count
    min: float
    max: float


class _Series:
    __slots__ = ("counts", "sum", "count", "min", "max")

    def __init__(self, buckets: int) -> None:
        self.counts = [0] * buckets
        self.sum = 0.0
        self.count = 0
        self.min = math.inf
        self.max = -math.inf


class BucketHistogram:
    """A cumulative explicit-bucket histogram per series, as OpenTelemetry defines one.

    Bucket ``i`` counts values in ``(bounds[i-1], bounds[i]]`` (upper bound inclusive), the
    last one values above ``bounds[-1]``. ``attribute_names`` name the values of each
    series key, in order. With ``mirror`` (an SDK ``Histogram``: a reader otel-grpo did not
    build is attached, which cannot merge these counts) each value is also recorded there.
    """

    def __init__(
        self,
        spec: Spec,
        bounds: Sequence[float],
        attribute_names: Sequence[str],
        mirror: Histogram | None = None,
    ) -> None:
        self.name, self.unit, self.description = spec
        self.bounds: tuple[float, ...] = tuple(float(b) for b in bounds)
        self.attribute_names = tuple(attribute_names)
        self.start_time_ns = time.time_ns()
        self.mirror = mirror
        self._series: dict[tuple[str, ...], _Series] = {}
        self._lock = threading.Lock()

    def record(self, value: float, key: tuple[Any, ...]) -> None:
        """Count ``value`` (a finite number; the caller checked it) in the series ``key``."""
        index = bisect_left(self.bounds, value)
        with self._lock:
            series = self._series.get(key)
            if series is None:
                series = self._series[key] = _Series(len(self.bounds) + 1)
            series.counts[index] += 1
            series.sum += value
            series.count += 1
            if value < series.min:
                series.min = value
            if value > series.max:
                series.max = value
        if self.mirror is not None:
            self.mirror.record(value, dict(zip(self.attribute_names, key, strict=True)))

    def snapshot(self) -> list[HistogramPoint]:
        """Every series so far, cumulative since :attr:`start_time_ns`."""
        names = self.attribute_names
        with self._lock:
            return [
                HistogramPoint(dict(zip(names, k, strict=True)), tuple(s.counts), s.sum, s.count, s.min, s.max)
                for k, s in self._series.items()
            ]

    def merged(self, keep: Any = None) -> tuple[tuple[float, ...], tuple[int, ...]] | None:
        """Every series' bucket counts summed (those whose key ``keep`` accepts); None before any value."""
        with self._lock:
            rows = [s.counts for k, s in self._series.items() if keep is None or keep(k)]
        if not rows:
            return None
        return self.bounds, tuple(map(sum, zip(*rows, strict=True)))


def merged_buckets(histogram: BucketHistogram) -> tuple[tuple[float, ...], tuple[int, ...]] | None:
    """``histogram``'s bucket counts over every series (the run-long distribution); None when empty."""
    return histogram.merged()


class AttributeHistogram(BucketHistogram):
    """A :class:`BucketHistogram` recorded like an SDK ``Histogram``: ``record(amount, attributes)``.

    For instruments whose attribute sets vary (the GenAI client metrics): a series is keyed by
    its attributes as given; series whose attributes differ only in order merge at snapshot.
    """

    def __init__(self, spec: Spec, bounds: Sequence[float], mirror: Histogram | None = None) -> None:
        super().__init__(spec, bounds, ())
        self.attribute_mirror = mirror

    def record(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:  # type: ignore[override]
        """Count ``amount`` in the series of ``attributes`` (an SDK ``Histogram.record`` drop-in)."""
        super().record(amount, tuple(attributes.items()) if attributes else ())
        if self.attribute_mirror is not None:
            self.attribute_mirror.record(amount, dict(attributes or {}))

    def snapshot(self) -> list[HistogramPoint]:
        """Every series so far, cumulative since :attr:`start_time_ns`."""
        with self._lock:
            items = [(k, s) for k, s in self._series.items()]
            merged: dict[tuple, list] = {}
            for key, series in items:
                entry = merged.get(canonical := tuple(sorted(key)))
                if entry is None:
                    merged[canonical] = [list(series.counts), series.sum, series.count, series.min, series.max]
                else:
                    entry[0] = [a + b for a, b in zip(entry[0], series.counts, strict=True)]
                    entry[1] += series.sum
                    entry[2] += series.count
                    entry[3] = min(entry[3], series.min)
                    entry[4] = max(entry[4], series.max)
        return [HistogramPoint(dict(key), tuple(c), total, n, lo, hi) for key, (c, total, n, lo, hi) in merged.items()]
