"""OTLP export (otel_grpo.exporters.otlp): never blocks training, bounded, counted, cumulative.

Everything runs against servers on 127.0.0.1: a closed port, a TCP server that accepts
and never answers, and a small OTLP/HTTP receiver decoding the protobuf requests.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from opentelemetry.metrics import Observation
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.metrics.v1.metrics_pb2 import AggregationTemporality as PbTemporality
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import AggregationTemporality
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider

from otel_grpo import semconv as sc
from otel_grpo.config import OtlpConfig
from otel_grpo.exporters import otlp
from otel_grpo.exporters.otlp.health import ExportState

pytestmark = pytest.mark.slow  # starts real processes, servers or WandB runs

SECRET = "s3cr3t-header-value"
ATTRS = {sc.ATTR_SPLIT: "train", sc.ATTR_SOURCE: "gsm8k", sc.ATTR_PROBLEM_TYPE: "math"}


def settings(endpoint: str | None, **overrides) -> OtlpConfig:
    """The ``otlp`` config section the builders take, validated like a config file's."""
    values = dict(
        enabled=True,
        endpoint=endpoint,
        protocol="http/protobuf",
        headers={"x-api-key": SECRET},
        metrics=True,
        traces=True,
        export_interval_s=3600.0,  # no periodic export: the tests flush explicitly
        timeout_s=1.0,
    )
    values.update(overrides)
    return OtlpConfig(**values)


def delta(before: dict[str, int], key: str) -> int:
    return otlp.otlp_health()[key] - before[key]


def wait_until(predicate, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_provider(reader, samples: dict) -> MeterProvider:
    provider = MeterProvider(
        metric_readers=[reader],
        resource=Resource.create({"service.name": "otel-grpo-test", sc.ATTR_RUN_ID: "run-1"}),
    )
    meter = provider.get_meter(sc.METER_NAME)
    meter.create_observable_counter(sc.SAMPLES[0], [lambda _o: [Observation(samples["n"], ATTRS)]], unit=sc.SAMPLES[1])
    meter.create_observable_up_down_counter(
        sc.REWARD_SUM[0], [lambda _o: [Observation(samples["reward"], ATTRS)]], unit=sc.REWARD_SUM[1]
    )
    return provider


def sdk_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("opentelemetry.exporter") and r.levelno >= logging.WARNING]


def our_warnings(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == otlp.__name__ and r.levelno >= logging.WARNING]


# --- pure functions ------------------------------------------------------------------------


def test_signal_endpoint_like_the_sdk(monkeypatch):
    for signal in ("", "METRICS_", "TRACES_"):
        name = f"OTEL_EXPORTER_OTLP_{signal}ENDPOINT"
        monkeypatch.delenv(name, raising=False)
    http = otlp.PROTOCOL_HTTP
    assert otlp.signal_endpoint("http://c:4318", http, "metrics") == "http://c:4318/v1/metrics"
    assert otlp.signal_endpoint("http://c:4318/", http, "traces") == "http://c:4318/v1/traces"
    assert otlp.signal_endpoint("https://c/otlp", http, "metrics") == "https://c/otlp/v1/metrics"
    assert otlp.signal_endpoint("http://c:4318/v1/metrics", http, "traces") == "http://c:4318/v1/traces"
    assert otlp.signal_endpoint("c:4318", http, "metrics") == "http://c:4318/v1/metrics"
    assert otlp.signal_endpoint(None, http, "metrics") == "http://localhost:4318/v1/metrics"
    assert otlp.signal_endpoint(None, "grpc", "traces") == "http://localhost:4317"
    assert otlp.signal_endpoint("http://c:4317", "grpc", "metrics") == "http://c:4317"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318")
    assert otlp.signal_endpoint(None, http, "traces") == "http://base:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://m:9/custom")
    assert otlp.signal_endpoint(None, http, "metrics") == "http://m:9/custom"
    # An explicit endpoint (the config, env already applied by config.py) wins.
    assert otlp.signal_endpoint("http://c:4318", http, "metrics") == "http://c:4318/v1/metrics"
    with pytest.raises(ValueError):
        otlp.signal_endpoint(None, http, "logs")


def test_redaction_never_leaks_credentials():
    assert otlp.redact_url("https://user:pw@c:4318/v1/metrics?token=x") == "https://c:4318/v1/metrics"
    state = ExportState("metrics", "http://c", secrets=[SECRET])
    assert SECRET not in state.scrub(f"error talking to http://u:p@c with key {SECRET}")
    assert "u:p" not in state.scrub("error talking to http://u:p@c")
    assert "u:p" not in state.scrub("failed to export to u:p@c:4317")  # gRPC targets


def test_disabled_or_missing_config_builds_nothing():
    assert otlp.build_otlp_metric_reader(None) is None
    assert otlp.build_otlp_span_processor(None) is None
    assert otlp.build_otlp_metric_reader(settings("http://127.0.0.1:1", enabled=False)) is None
    assert otlp.build_otlp_metric_reader(settings("http://127.0.0.1:1", metrics=False)) is None
    assert otlp.build_otlp_span_processor(settings("http://127.0.0.1:1", traces=False)) is None
    with pytest.raises(ValueError):  # an unsupported protocol never reaches a builder
        settings("http://127.0.0.1:1", protocol="http/json")


def test_reader_is_cumulative_for_every_instrument_kind(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE", "DELTA")
    reader = otlp.build_otlp_metric_reader(settings(f"http://127.0.0.1:{closed_port()}"))
    try:
        # Seven instrument kinds, all cumulative, whatever the environment prefers.
        assert len(otlp.CUMULATIVE_TEMPORALITY) == 7
        assert reader._preferred_temporality == otlp.CUMULATIVE_TEMPORALITY
        assert set(reader._instrument_class_temporality.values()) == {AggregationTemporality.CUMULATIVE}
    finally:
        reader.shutdown(timeout_millis=1000)


# --- a collector that is down or hangs ---------------------------------------------------------


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_closed_port_never_blocks_and_logs_once(protocol, caplog):
    caplog.set_level(logging.INFO)
    before = otlp.otlp_health()
    reader = otlp.build_otlp_metric_reader(settings(f"http://127.0.0.1:{closed_port()}", protocol=protocol))
    samples = {"n": 0, "reward": 0.0}
    provider = make_provider(reader, samples)
    try:
        for step in range(5):
            samples["n"] += 3
            samples["reward"] += 1.5
            started = time.monotonic()
            provider.force_flush(timeout_millis=10_000)  # what the training thread may call
            assert time.monotonic() - started < 1.5, "force_flush waited on an unreachable collector"
            # Give the worker time to fail at least once, so later flushes hit a failing exporter.
            if step == 0:
                assert wait_until(lambda: delta(before, "metrics_export_errors") >= 1)
        assert wait_until(lambda: delta(before, "metrics_export_errors") >= 2)
        assert delta(before, "metrics_export_successes") == 0
        assert otlp.otlp_health()["consecutive_errors"] >= 2
    finally:
        started = time.monotonic()
        provider.shutdown()
        assert time.monotonic() - started < 5
    assert len(our_warnings(caplog)) == 1, [r.getMessage() for r in our_warnings(caplog)]
    message = our_warnings(caplog)[0].getMessage()
    assert "failed" in message
    # The SDK exporter's own reason is carried into our single line.
    assert "Failed to export" in message or "Transient error" in message, message
    assert sdk_warnings(caplog) == [], "the SDK exporter's per-export errors must be suppressed"
    assert SECRET not in caplog.text


class HangingServer:
    """Accepts TCP connections on 127.0.0.1 and never answers."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        self.sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.connections.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for conn in self.connections:
            conn.close()
        self.sock.close()


@pytest.fixture
def hanging_server():
    server = HangingServer()
    yield server
    server.close()


def test_hanging_collector_never_blocks_and_memory_stays_bounded(hanging_server, caplog):
    caplog.set_level(logging.INFO)
    before = otlp.otlp_health()
    cfg = settings(f"http://127.0.0.1:{hanging_server.port}", timeout_s=2.0)
    reader = otlp.build_otlp_metric_reader(cfg)
    processor = otlp.build_otlp_span_processor(cfg)
    samples = {"n": 0, "reward": 0.0}
    provider = make_provider(reader, samples)
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(processor)
    tracer = tracer_provider.get_tracer("test")
    try:
        started = time.monotonic()
        for _ in range(20):  # 20 "training steps", each flushing its telemetry
            samples["n"] += 1
            for _ in range(300):
                with tracer.start_as_current_span("sample"):
                    pass
            provider.force_flush(timeout_millis=10_000)
            tracer_provider.force_flush(timeout_millis=10_000)
        elapsed = time.monotonic() - started
        # Only the first flush of each signal may wait (FORCE_FLUSH_MAX_WAIT_S) behind the
        # export in flight; then the hung export is known and flushes return at once.
        assert elapsed < 2 * otlp.FORCE_FLUSH_MAX_WAIT_S + 2.5, elapsed
        assert hanging_server.connections, "the exporter never reached the server"
        # The worker holds at most one pending metrics snapshot: older ones were superseded.
        assert delta(before, "metrics_snapshots_superseded") >= 10
        # Spans beyond the bounded queue were dropped and counted.
        assert delta(before, "spans_dropped") > 0
        # The hung request times out (timeout_s) and is counted as one failure.
        assert wait_until(lambda: delta(before, "metrics_export_errors") >= 1, timeout_s=10)
    finally:
        started = time.monotonic()
        tracer_provider.shutdown()
        provider.shutdown()
        assert time.monotonic() - started < 2 * (cfg.timeout_s + 1) + 3
    assert len([r for r in our_warnings(caplog) if "metrics" in r.getMessage()]) == 1
    assert sdk_warnings(caplog) == []
    assert SECRET not in caplog.text


# --- a real OTLP/HTTP receiver ----------------------------------------------------------------


class Receiver:
    """A minimal OTLP/HTTP receiver on 127.0.0.1 that decodes the protobuf requests."""

    def __init__(self) -> None:
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.traces: list[ExportTraceServiceRequest] = []
        self.paths: list[str] = []
        self.headers: list[dict[str, str]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver.paths.append(self.path)
                receiver.headers.append({k.lower(): v for k, v in self.headers.items()})
                if self.path == "/v1/metrics":
                    request = ExportMetricsServiceRequest()
                    request.ParseFromString(body)
                    receiver.metrics.append(request)
                    reply = ExportMetricsServiceResponse().SerializeToString()
                elif self.path == "/v1/traces":
                    request = ExportTraceServiceRequest()
                    request.ParseFromString(body)
                    receiver.traces.append(request)
                    reply = ExportTraceServiceResponse().SerializeToString()
                else:
                    self.send_response(404)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def metric_points(self, name: str) -> list[tuple[object, object]]:
        """(metric, data point) pairs named ``name``, oldest request first."""
        found = []
        for request in self.metrics:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for metric in sm.metrics:
                        if metric.name == name:
                            data = getattr(metric, metric.WhichOneof("data"))
                            found.extend((metric, point) for point in data.data_points)
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    server = Receiver()
    yield server
    server.close()


def attributes(point) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in point.attributes}


def test_real_receiver_gets_cumulative_metrics_and_spans(receiver, caplog):
    caplog.set_level(logging.DEBUG)
    before = otlp.otlp_health()
    cfg = settings(f"http://127.0.0.1:{receiver.port}")
    reader = otlp.build_otlp_metric_reader(cfg)
    processor = otlp.build_otlp_span_processor(cfg)
    samples = {"n": 4, "reward": 2.5}
    provider = make_provider(reader, samples)
    meter = provider.get_meter(sc.METER_NAME)
    evaluations = meter.create_counter(sc.JUDGE_EVALUATIONS[0], unit=sc.JUDGE_EVALUATIONS[1])
    duration = meter.create_histogram(
        sc.JUDGE_DURATION[0],
        unit=sc.JUDGE_DURATION[1],
        explicit_bucket_boundaries_advisory=list(sc.DURATION_BUCKETS_S),
    )
    judge_attrs = {sc.ATTR_SPLIT: "train", sc.ATTR_SOURCE: "gsm8k", sc.ATTR_JUDGE_OUTCOME: "success"}
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(processor)
    try:
        evaluations.add(2, judge_attrs)
        duration.record(0.3, judge_attrs)
        with tracer_provider.get_tracer("test").start_as_current_span("grpo.train_step"):
            pass
        assert provider.force_flush()
        assert wait_until(lambda: receiver.metric_points(sc.SAMPLES[0]))
        samples["n"] += 3
        samples["reward"] -= 1.0  # rewards can be negative: an up-down counter
        evaluations.add(1, judge_attrs)
        assert provider.force_flush()
        assert wait_until(lambda: len(receiver.metric_points(sc.SAMPLES[0])) >= 2)
        tracer_provider.force_flush()
        assert wait_until(lambda: receiver.traces)
    finally:
        tracer_provider.shutdown()
        provider.shutdown()

    assert set(receiver.paths) == {"/v1/metrics", "/v1/traces"}
    assert all(h.get("x-api-key") == SECRET for h in receiver.headers)

    sample_points = receiver.metric_points(sc.SAMPLES[0])
    metric, first = sample_points[0]
    _, last = sample_points[-1]
    assert metric.unit == sc.SAMPLES[1]
    assert metric.sum.is_monotonic
    assert metric.sum.aggregation_temporality == PbTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    assert attributes(first) == ATTRS
    assert (first.as_int, last.as_int) == (4, 7)  # cumulative: the second export carries the total
    assert first.start_time_unix_nano == last.start_time_unix_nano

    reward_metric, reward_last = receiver.metric_points(sc.REWARD_SUM[0])[-1]
    assert not reward_metric.sum.is_monotonic
    assert reward_metric.sum.aggregation_temporality == PbTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    assert reward_last.as_double == pytest.approx(1.5)

    eval_metric, eval_last = receiver.metric_points(sc.JUDGE_EVALUATIONS[0])[-1]
    assert eval_metric.sum.aggregation_temporality == PbTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    assert eval_last.as_int == 3
    assert attributes(eval_last) == judge_attrs

    hist_metric, hist_point = receiver.metric_points(sc.JUDGE_DURATION[0])[-1]
    assert hist_metric.unit == "s"
    assert hist_metric.histogram.aggregation_temporality == PbTemporality.AGGREGATION_TEMPORALITY_CUMULATIVE
    assert list(hist_point.explicit_bounds) == list(sc.DURATION_BUCKETS_S)
    assert hist_point.count == 1

    resource = {kv.key: kv.value.string_value for kv in receiver.metrics[0].resource_metrics[0].resource.attributes}
    assert resource[sc.ATTR_RUN_ID] == "run-1"
    spans = [s.name for r in receiver.traces for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert spans == ["grpo.train_step"]

    # Counters are process-wide (an exporter another test left running may fail meanwhile),
    # so this receiver's failures are read from the log: every failure logs a line.
    receiver_failures = [
        r.getMessage()
        for r in caplog.records
        if r.name == otlp.__name__ and "failed" in r.getMessage() and f":{receiver.port}/" in r.getMessage()
    ]
    assert receiver_failures == []
    assert delta(before, "metrics_export_successes") >= 2
    assert delta(before, "traces_export_successes") >= 1
    assert delta(before, "spans_exported") == 1
    assert SECRET not in caplog.text


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_forked_child_does_not_export_or_hang(receiver):
    reader = otlp.build_otlp_metric_reader(settings(f"http://127.0.0.1:{receiver.port}"))
    samples = {"n": 1, "reward": 0.0}
    provider = make_provider(reader, samples)
    try:
        assert provider.force_flush()
        assert wait_until(lambda: receiver.metrics)
        sent_by_parent = len(receiver.metrics)
        pid = os.fork()
        if pid == 0:  # child: record, flush, shut down; must not send or hang
            code = 1
            try:
                samples["n"] += 100
                provider.force_flush(timeout_millis=2000)
                provider.shutdown(timeout_millis=2000)
                code = 0
            finally:
                os._exit(code)
        deadline = time.monotonic() + 10
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            if time.monotonic() > deadline:
                os.kill(pid, 9)
                pytest.fail("forked child hung")
            time.sleep(0.05)
        assert os.waitstatus_to_exitcode(status) == 0
        time.sleep(0.3)
        assert len(receiver.metrics) == sent_by_parent, "the forked child exported metrics"
        assert all(point.as_int == 1 for _, point in receiver.metric_points(sc.SAMPLES[0]))
    finally:
        provider.shutdown()
