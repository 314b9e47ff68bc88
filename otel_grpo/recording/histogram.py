"""Explicit-bucket histograms kept as plain per-series bucket counts: no SDK call per value.

One value costs a ``bisect`` and a few additions under a lock (well under a microsecond),
where an SDK ``Histogram.record`` with attributes costs several. The readers that export
the histogram (the step reader, OTLP, the Prometheus endpoint) turn :meth:`BucketHistogram.snapshot`
into real OpenTelemetry ``HistogramDataPoint`` s at collection time
(:mod:`otel_grpo.exporters.preaggregated`), with the same name, unit, attributes and
bucket boundaries as the SDK instrument would have: dashboards cannot tell the difference.

:class:`SdkHistogram` has the same ``record`` signature over an SDK instrument, for
providers whose readers otel-grpo does not control (``opentelemetry-instrument``, extra
readers passed to ``setup``).
"""

from __future__ import annotations

import math
import threading
import time
from bisect import bisect_left
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple, Protocol

from opentelemetry.metrics import Histogram, Observation

Spec = tuple[str, str, str]  # (instrument name, unit, description), as in otel_grpo.semconv


class HistogramPoint(NamedTuple):
    """One series of a :class:`BucketHistogram` at snapshot time (cumulative since its start)."""

    attributes: Mapping[str, str]
    bucket_counts: tuple[int, ...]  # len(bounds) + 1: the last bucket is (bounds[-1], +Inf)
    total: float
    count: int  # type: ignore[assignment]  # the data point's field name, shadowing tuple.count
    min: float
    max: float


class LatencyHistogram(Protocol):
    """What the recorder records into: one value with the values of the instrument's attributes."""

    def record(self, value: float, key: tuple[str, ...]) -> None:
        """Record ``value`` in the series whose attribute values are ``key``."""


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
    series key, in order.
    """

    def __init__(self, spec: Spec, bounds: Sequence[float], attribute_names: Sequence[str]) -> None:
        self.name, self.unit, self.description = spec
        self.bounds: tuple[float, ...] = tuple(float(b) for b in bounds)
        self.attribute_names = tuple(attribute_names)
        self.start_time_ns = time.time_ns()
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

    def snapshot(self) -> list[HistogramPoint]:
        """Every series so far, cumulative since :attr:`start_time_ns`."""
        names = self.attribute_names
        with self._lock:
            return [
                HistogramPoint(dict(zip(names, k, strict=True)), tuple(s.counts), s.sum, s.count, s.min, s.max)
                for k, s in self._series.items()
            ]


class AttributeHistogram(BucketHistogram):
    """A :class:`BucketHistogram` recorded like an SDK ``Histogram``: ``record(amount, attributes)``.

    For instruments whose attribute sets vary (the GenAI client metrics): a series is keyed by
    its attributes as given; series whose attributes differ only in order merge at snapshot.
    """

    def __init__(self, spec: Spec, bounds: Sequence[float]) -> None:
        super().__init__(spec, bounds, ())

    def record(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:  # type: ignore[override]
        """Count ``amount`` in the series of ``attributes`` (an SDK ``Histogram.record`` drop-in)."""
        super().record(amount, tuple(attributes.items()) if attributes else ())

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


class CounterStore:
    """A monotonic counter kept as plain per-series sums: ``add(amount, attributes)`` like an SDK ``Counter``.

    Published by an observable counter whose callback is :meth:`observe`, so every reader
    sees it as the SDK instrument, at a dictionary update per call instead of an SDK ``add``.
    """

    def __init__(self) -> None:
        self._values: dict[tuple, float] = {}
        self._lock = threading.Lock()

    def add(self, amount: float, attributes: Mapping[str, Any] | None = None) -> None:
        """Add ``amount`` to the series of ``attributes``."""
        key = tuple(attributes.items()) if attributes else ()
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def observe(self, _options: Any = None) -> Iterator[Observation]:
        """Every series' total (series whose attributes differ only in order merged)."""
        with self._lock:
            items = list(self._values.items())
        merged: dict[tuple, float] = {}
        for key, value in items:
            canonical = tuple(sorted(key))
            merged[canonical] = merged.get(canonical, 0) + value
        for key, value in merged.items():
            yield Observation(value, dict(key))


class SdkHistogram:
    """:class:`LatencyHistogram` over an SDK ``Histogram`` (one SDK ``record`` per value)."""

    def __init__(self, histogram: Histogram, attribute_names: Sequence[str]) -> None:
        self._histogram = histogram
        self._names = tuple(attribute_names)

    def record(self, value: float, key: tuple[str, ...]) -> None:
        """Record ``value`` with the attributes ``key`` names."""
        self._histogram.record(value, dict(zip(self._names, key, strict=True)))
