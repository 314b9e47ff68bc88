"""The step reader: a metric reader collected when a training step or validation pass ends.

Like the SDK's ``PeriodicExportingMetricReader`` it collects and pushes ``MetricsData``
to a ``MetricExporter``; the trigger is the end of a window instead of a timer, and the
temporality is DELTA, so each push holds exactly what happened since the previous
window end. The window travels with the data (``export(data, window=...)``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    InMemoryMetricReader,
    MetricExporter,
    MetricExportResult,
    MetricsData,
)

from otel_grpo.exporters.preaggregated import DeltaTracker, PreAggregatedMetrics
from otel_grpo.exporters.rollup import WindowEnd
from otel_grpo.exporters.totals import Point, flatten


class PointList(list[Point]):
    """A collection already flattened to :class:`~otel_grpo.exporters.totals.Point` s (no SDK objects)."""


_DELTA: dict[type, AggregationTemporality] = {
    kind: AggregationTemporality.DELTA
    for kind in (Counter, UpDownCounter, Histogram, ObservableCounter, ObservableUpDownCounter, ObservableGauge)
}
_NOTHING = MetricsData(resource_metrics=[])


class StepMetricReader(InMemoryMetricReader):
    """Collects on a window end (not on a timer) with DELTA temporality and pushes to its exporter.

    Registered under the ``opentelemetry_metrics_exporter`` entry point as ``grpo_wandb``
    so ``opentelemetry-instrument`` can create it (before otel-grpo's exporter exists:
    :meth:`set_exporter` attaches that later); the most recently created instance is
    found with :meth:`latest`.
    """

    _latest: StepMetricReader | None = None

    def __init__(self, exporter: MetricExporter | None = None, **_ignored: Any) -> None:
        super().__init__(preferred_temporality=dict(_DELTA))
        self._exporter = exporter
        self._window_lock = threading.Lock()
        self._preaggregated: PreAggregatedMetrics | None = None
        self._delta = DeltaTracker()
        #: Entered around each collection: lets the recorder observe only what changed
        #: since the previous window end (a DELTA reader needs nothing else).
        self.collection_scope: Callable[[], AbstractContextManager[Any]] = nullcontext
        #: When set (every reader of the provider is otel-grpo's), each collection takes the
        #: recorder's changes since the previous one straight from it, with no SDK collection.
        self.direct_points: Callable[[], list[tuple[str, dict, float]]] | None = None
        StepMetricReader._latest = self

    @classmethod
    def latest(cls) -> StepMetricReader | None:
        """The most recently created reader (the one ``opentelemetry-instrument`` made)."""
        return cls._latest

    def set_exporter(self, exporter: MetricExporter) -> None:
        """Push every later window end's data to ``exporter``."""
        self._exporter = exporter

    def merge_preaggregated(self, preaggregated: PreAggregatedMetrics) -> None:
        """Add ``preaggregated``'s histograms (as deltas) to every later collection."""
        self._preaggregated = preaggregated

    def collect_delta(self) -> MetricsData | PointList | None:
        """Collect now and return what was recorded since the previous collection."""
        if self.direct_points is not None and self._preaggregated is not None:
            points = PointList(Point(*p) for p in self.direct_points())
            points.extend(flatten(self._preaggregated.merge(None, self._preaggregated.metrics(self._delta))))
            return points
        with self.collection_scope():
            data = self.get_metrics_data()
        if self._preaggregated is None:
            return data
        return self._preaggregated.merge(data, self._preaggregated.metrics(self._delta))

    def end_window(self, window: WindowEnd) -> MetricExportResult:
        """Collect what the ended ``window`` recorded and push it, with ``window``, to the exporter.

        Window ends are serialised, so every push holds one window's data. A collection
        error is raised to the caller (the window's data is then lost); what the exporter
        does with the data is its own affair.
        """
        with self._window_lock:
            data = self.collect_delta()
            exporter = self._exporter
            if exporter is None:
                return MetricExportResult.SUCCESS
            # A PointList goes to the WandB exporter, which folds points as they are.
            return exporter.export(data if data is not None else _NOTHING, window=window)  # type: ignore[arg-type]

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Nothing to flush. The exporter is shut down by its owner, which decides whether to finish the run."""
