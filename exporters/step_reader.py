"""A pull metric reader with DELTA temporality, collected at each window end."""

from __future__ import annotations

import threading
from typing import Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, MetricReader, MetricsData

_DELTA = {kind: AggregationTemporality.DELTA for kind in (
    Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter, ObservableGauge)}


class StepMetricReader(MetricReader):
    """Collects on demand (not on a timer) with DELTA temporality.

    Every collection returns what happened since the previous one, which is what a
    training-step window needs. Registered under the ``opentelemetry_metrics_exporter``
    entry point as ``grpo_wandb`` so ``opentelemetry-instrument`` can create it; the
    most recently created instance is found with :meth:`latest`.
    """

    _latest: StepMetricReader | None = None

    def __init__(self, **_ignored: Any) -> None:
        super().__init__(preferred_temporality=dict(_DELTA))
        self._received: MetricsData | None = None
        self._lock = threading.Lock()
        StepMetricReader._latest = self

    @classmethod
    def latest(cls) -> StepMetricReader | None:
        """The most recently created reader (the one ``opentelemetry-instrument`` made)."""
        return cls._latest

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000,
                         **kwargs: Any) -> None:
        self._received = metrics_data

    def collect_delta(self) -> MetricsData | None:
        """Collect now and return the data since the previous collection."""
        with self._lock:
            self._received = None
            self.collect()
            return self._received

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Nothing to flush: data is pulled by the exporter."""
