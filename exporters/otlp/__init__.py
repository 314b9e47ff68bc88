"""OTLP export that can never stall training.

:func:`build_otlp_metric_reader` and :func:`build_otlp_span_processor` build the SDK's
own exporters (``http/protobuf`` or ``grpc``) from the ``otlp`` config section
(:class:`otel_grpo.config.OtlpConfig`) and wrap them so that a Collector that is down,
slow or hanging costs the trainer nothing:

* ``export()`` only hands the batch to a private worker thread and returns at once,
  so neither the reader's periodic collection nor a ``force_flush()`` called from the
  training thread ever waits on the network (``force_flush`` waits at most
  :data:`FORCE_FLUSH_MAX_WAIT_S`, and only while the exporter is healthy);
* memory is bounded: metrics keep only the newest snapshot (they are CUMULATIVE, so a
  newer snapshot supersedes an older one without losing any count), spans keep at
  most :data:`MAX_PENDING_SPAN_BATCHES` batches and drop the oldest beyond that;
* failures are counted (:func:`otlp_health`) and logged once per outage, not once per
  export; the SDK exporters' own per-export error lines are suppressed on the worker
  thread. Header values are never logged; the endpoint's credentials and query values
  are masked (by :mod:`otel_grpo.redact`) in our log lines and in the HTTP client's
  records on the worker thread.

Header values written as ``"${NAME}"`` are expanded from the environment when the
exporter is built (:func:`otel_grpo.config.resolve_headers`); a header whose variable
is unset is not sent, with one warning naming the header and the variable.

A forked child process (the reward computer's code-test workers) never exports: it
would re-send the parent's cumulative totals under the parent's
``service.instance.id`` and double count them.

The modules, in the order data goes through them: :mod:`.builders` (config -> reader /
processor), :mod:`.endpoints` (where each signal goes), :mod:`.non_blocking` (the
wrappers), :mod:`.worker` (the bounded queue and its thread), :mod:`.log_filters`
(quiet, redacted SDK logs on that thread), :mod:`.health` (counters, log once).
"""

from otel_grpo.config import OtlpConfig
from otel_grpo.exporters.otlp.builders import (
    SPAN_BATCH_SIZE,
    SPAN_QUEUE_SIZE,
    build_otlp_metric_reader,
    build_otlp_span_processor,
)
from otel_grpo.exporters.otlp.endpoints import (
    DEFAULT_GRPC_ENDPOINT,
    DEFAULT_HTTP_ENDPOINT,
    PROTOCOL_GRPC,
    PROTOCOL_HTTP,
    redact_url,
    signal_endpoint,
)
from otel_grpo.exporters.otlp.health import RELOG_INTERVAL_S, otlp_health
from otel_grpo.exporters.otlp.non_blocking import (
    CUMULATIVE_TEMPORALITY,
    FORCE_FLUSH_MAX_WAIT_S,
    MAX_PENDING_SPAN_BATCHES,
    NonBlockingMetricExporter,
    NonBlockingSpanExporter,
)

#: The config section the builders take (the name earlier callers imported from here).
OtlpSettings = OtlpConfig

__all__ = [
    "CUMULATIVE_TEMPORALITY",
    "DEFAULT_GRPC_ENDPOINT",
    "DEFAULT_HTTP_ENDPOINT",
    "FORCE_FLUSH_MAX_WAIT_S",
    "MAX_PENDING_SPAN_BATCHES",
    "PROTOCOL_GRPC",
    "PROTOCOL_HTTP",
    "RELOG_INTERVAL_S",
    "SPAN_BATCH_SIZE",
    "SPAN_QUEUE_SIZE",
    "NonBlockingMetricExporter",
    "NonBlockingSpanExporter",
    "OtlpSettings",
    "build_otlp_metric_reader",
    "build_otlp_span_processor",
    "otlp_health",
    "redact_url",
    "signal_endpoint",
]
