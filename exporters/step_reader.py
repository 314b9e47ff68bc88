"""``grpo_wandb``: the name ``OTEL_METRICS_EXPORTER`` gives otel-grpo's WandB rows under ``opentelemetry-instrument``.

``OTEL_METRICS_EXPORTER=grpo_wandb opentelemetry-instrument python train.py`` makes the
OpenTelemetry distro look this name up under the ``opentelemetry_metrics_exporter`` entry
point and attach what it finds as a metric reader. WandB rows do not come from a metric
reader: they are written from each closed window (:mod:`otel_grpo.exporters.wandb_exporter`),
whatever readers are attached. So this reader collects nothing and exports nothing; it is
there so that the name resolves and says where the rows come from. The readers the distro
builds for the other names (``otlp``, ``prometheus``, ...) publish otel-grpo's cumulative
totals like any other instrument.
"""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics.export import MetricReader, MetricsData


class StepMetricReader(MetricReader):
    """The ``grpo_wandb`` metric "exporter": a reader that never collects (rows come from closed windows)."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        super().__init__()

    def _receive_metrics(self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any) -> None:
        """Nothing to do: WandB rows are written from each closed window."""

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        """Nothing to flush."""


__all__ = ["StepMetricReader"]
