"""An in-process Prometheus scrape endpoint, for single-machine use without a Collector.

:func:`start_prometheus_reader` starts prometheus_client's WSGI server, where the
``prometheus`` config section (:class:`otel_grpo.config.PrometheusConfig`) says, on a private
``CollectorRegistry`` (so several endpoints can live in one process, e.g. in tests)
and returns the ``PrometheusMetricReader`` to add to the MeterProvider. Metric names
are the same as the Collector's Prometheus exporter produces (``grpo_samples_total``,
``grpo_judge_duration_seconds_bucket``...), and the resource attributes in
:data:`DEFAULT_RESOURCE_LABELS` are copied onto every series as labels
(``grpo_run_id``...), like the Collector's ``resource_to_telemetry_conversion``, so
the Grafana dashboard works against either path.

Importing this module raises :class:`~otel_grpo.extras.MissingExtraError` when the
``prometheus`` extra is not installed.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from otel_grpo.config import PrometheusConfig
from otel_grpo.exporters.preaggregated import PreAggregatedMetrics
from otel_grpo.extras import MissingExtraError

try:  # the ``prometheus`` extra
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from prometheus_client import CollectorRegistry
    from prometheus_client.exposition import start_wsgi_server
except ImportError as _exc:
    raise MissingExtraError("the Prometheus endpoint", "prometheus", str(_exc)) from _exc

_logger = logging.getLogger(__name__)

#: Resource attributes exposed as labels on every series (dots become underscores).
DEFAULT_RESOURCE_LABELS = ("service.name", "service.instance.id", "grpo.run.id")


class _MergingPrometheusReader(PrometheusMetricReader):
    """A ``PrometheusMetricReader`` that adds the pre-aggregated histograms to each scrape."""

    def __init__(self, preaggregated: PreAggregatedMetrics | None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._preaggregated = preaggregated

    def _receive_metrics(self, metrics_data: object, timeout_millis: float = 10_000, **kwargs: object) -> None:
        if self._preaggregated is not None:
            merged = self._preaggregated.merge(metrics_data, self._preaggregated.metrics())  # type: ignore[arg-type]
            metrics_data = merged if merged is not None else metrics_data
        super()._receive_metrics(metrics_data, timeout_millis, **kwargs)  # type: ignore[arg-type]


@dataclass
class PrometheusEndpoint:
    """A running scrape endpoint: add :attr:`reader` to the MeterProvider.

    The MeterProvider owns the reader (its shutdown unregisters it); :meth:`stop`
    stops the HTTP server only and may be called more than once.
    """

    reader: PrometheusMetricReader
    host: str
    port: int
    registry: CollectorRegistry
    _server: WSGIServer = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    _stopped: bool = field(default=False, repr=False)

    @property
    def url(self) -> str:
        """The scrape URL, e.g. ``http://127.0.0.1:9464/metrics``."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def stop(self) -> None:
        """Stop serving (idempotent). Does not shut the reader down."""
        if self._stopped:
            return
        self._stopped = True
        try:
            self._server.shutdown()
            self._server.server_close()
        except Exception:  # noqa: BLE001 - stopping must never raise into the trainer
            _logger.debug("Prometheus endpoint stop failed", exc_info=True)
        self._thread.join(timeout=5)


def start_prometheus_reader(
    cfg: PrometheusConfig,
    *,
    resource_labels: Iterable[str] = DEFAULT_RESOURCE_LABELS,
    preaggregated: PreAggregatedMetrics | None = None,
) -> PrometheusEndpoint:
    """Serve ``/metrics`` on ``cfg.host:cfg.port`` (port 0 = any free port) and return the endpoint.

    The config binds to 127.0.0.1 unless told otherwise: the endpoint has no
    authentication. Raises ``OSError`` if the port cannot be bound.
    """
    registry = CollectorRegistry(auto_describe=False)
    wanted = frozenset(resource_labels)
    reader = _MergingPrometheusReader(
        preaggregated,
        registry=registry,
        resource_attribute_filter=(lambda key: key in wanted) if wanted else None,
    )
    # The registry is private: if binding fails, it and the reader are simply dropped.
    server, thread = start_wsgi_server(cfg.port, addr=cfg.host, registry=registry)
    bound_port = int(server.server_port)
    _logger.debug("Prometheus metrics served at http://%s:%d/metrics", cfg.host, bound_port)
    return PrometheusEndpoint(
        reader=reader, host=cfg.host, port=bound_port, registry=registry, _server=server, _thread=thread
    )


__all__ = ["DEFAULT_RESOURCE_LABELS", "PrometheusEndpoint", "start_prometheus_reader"]
