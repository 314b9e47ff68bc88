"""No secret in a judge URL reaches an exported span: attributes, events (message and stack trace) or status.

A trainer of the user's shape whose judge is down, called at a URL that carries a secret
(an ``api-key`` query value, a ``user:password``), exports its spans over OTLP/HTTP to a
real receiver on 127.0.0.1. The transport error's text holds the request path and query
(``requests``), and the trainer's judge re-raises with the whole URL in its message: the
HTTP span, the judge span and the reward span all see an exception carrying the secret.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import otel_grpo
from otel_grpo.faults import report_fault, set_fault_sink
from otel_grpo.redact import REDACTED, current_span, record_span_error
from tests.test_otlp_export import Receiver, wait_until

pytestmark = pytest.mark.slow  # starts real servers

SECRET = "SECRET123"
PASSWORD = "PASSW0RD-xyz"
EVALUATIONS = 6


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JudgeUnreachable(RuntimeError):
    """What a user's judge raises when its server does not answer (the URL in the message)."""


class RewardComputer:
    def __init__(self, judge_url: str, client: str) -> None:
        self.judge_url = judge_url
        self.client = client
        self.eval_stats = {"llm_judge_success": 0, "llm_judge_api_failures": 0}

    def compute_reward(self, problem, prediction, ground_truth, problem_type="math", source=None):
        return 1.0 if self._llm_judge_compare(problem, prediction, ground_truth, problem_type, source=source) else 0.0

    def _llm_judge_compare(self, problem, prediction, ground_truth, problem_type, source=None):
        body = {"model": "judge", "messages": [{"role": "user", "content": f"{prediction} vs {ground_truth}"}]}
        try:
            if self.client == "requests":
                import requests

                requests.post(self.judge_url, json=body, timeout=5)
            else:
                import httpx

                with httpx.Client(timeout=5) as client:
                    client.post(self.judge_url, json=body)
        except Exception as exc:
            self.eval_stats["llm_judge_api_failures"] += 1
            raise JudgeUnreachable(f"judge at {self.judge_url} failed: {exc}") from exc
        return True


class AFlowExecutor:
    async def execute_workflow(self, workflow_code, problem, problem_type="math", **kwargs):
        return "42", 0.01, {"success": True}


class GRPOTrainer:
    def __init__(self, judge_url: str, client: str) -> None:
        self.executor = AFlowExecutor()
        self.reward_computer = RewardComputer(judge_url, client)

    async def train_step(self, step):
        for i in range(EVALUATIONS // 2):
            answer, _, _ = await self.executor.execute_workflow("w", f"q{step}{i}", "math", source="gsm8k")
            try:
                self.reward_computer.compute_reward(f"q{step}{i}", answer, "42", "math", source="gsm8k")
            except JudgeUnreachable:
                pass  # the trainer carries on without that reward
        return {"loss": 0.5}


def received_spans(receiver: Receiver) -> list:
    return [
        span
        for request in receiver.traces
        for resource_spans in request.resource_spans
        for scope_spans in resource_spans.scope_spans
        for span in scope_spans.spans
    ]


def event_attributes(event) -> dict[str, str]:
    return {kv.key: kv.value.string_value for kv in event.attributes}


@pytest.mark.parametrize(
    ("client", "url"),
    [
        ("requests", "http://127.0.0.1:{port}/v1/chat/completions?api-key=" + SECRET),
        ("httpx", "http://judge-user:" + PASSWORD + "@127.0.0.1:{port}/v1/chat/completions?token=" + SECRET),
    ],
)
def test_a_secret_in_the_judge_url_reaches_no_exported_span(client, url, caplog):
    caplog.set_level(logging.DEBUG)
    port = closed_port()
    judge_url = url.format(port=port)
    receiver = Receiver()
    trainer = GRPOTrainer(judge_url, client)
    try:
        tel = otel_grpo.setup(
            None,
            wandb={"mode": "disabled"},
            judge={"ports": [port], "warn_after_failures": 2},
            otlp={"enabled": True, "endpoint": f"http://127.0.0.1:{receiver.port}", "metrics": False},
        )
        otel_grpo.instrument_trainer(trainer)
        for step in (1, 2):
            asyncio.run(trainer.train_step(step))
        tel.shutdown()
        assert wait_until(lambda: received_spans(receiver))
    finally:
        otel_grpo.uninstrument_trainer(trainer)
        receiver.close()

    # The secret is nowhere in what was exported: attributes, events, status, resource.
    wire = b"".join(request.SerializeToString() for request in receiver.traces)
    assert (wire.count(SECRET.encode()), wire.count(PASSWORD.encode())) == (0, 0)
    # Nor in what otel-grpo logged (the judge health warning names the endpoint).
    ours = "\n".join(r.getMessage() + (r.exc_text or "") for r in caplog.records if r.name.startswith("otel_grpo"))
    assert "the LLM judge failed" in ours
    assert SECRET not in ours and PASSWORD not in ours

    spans = received_spans(receiver)
    names = [span.name for span in spans]
    assert names.count("grpo.judge.evaluate") == EVALUATIONS
    assert names.count("grpo.train_step") == 2
    # Every layer the exception crossed recorded it: the HTTP attempt, the judge, the reward.
    failed = {span.name: span for span in spans if any(event.name == "exception" for event in span.events)}
    assert {"grpo.judge.evaluate", "grpo.compute_reward"} <= set(failed)
    assert any(name.startswith("chat") for name in failed), names
    judge = failed["grpo.judge.evaluate"]
    (event,) = [e for e in judge.events if e.name == "exception"]
    attrs = event_attributes(event)
    assert attrs["exception.type"].endswith("JudgeUnreachable")
    assert f"127.0.0.1:{port}/v1/chat/completions" in attrs["exception.message"]  # still says where
    assert REDACTED in attrs["exception.message"]
    assert "JudgeUnreachable" in attrs["exception.stacktrace"] and REDACTED in attrs["exception.stacktrace"]
    assert judge.status.code == judge.status.STATUS_CODE_ERROR


def test_the_span_helpers_redact_what_the_sdk_would_record_verbatim():
    exporter = InMemorySpanExporter()
    from opentelemetry.sdk.trace import TracerProvider

    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = provider.get_tracer("test")
    url = f"https://bob:{PASSWORD}@api.example.com/v1?api-key={SECRET}"
    with pytest.raises(ValueError):
        with current_span(tracer, "grpo.test", {"url.full": url, "grpo.source": "gsm8k"}):
            raise ValueError(f"cannot reach {url}")
    span = tracer.start_span("manual")
    record_span_error(span, ConnectionError(f"Max retries exceeded with url: /v1?api-key={SECRET}"))
    span.end()
    provider.shutdown()
    first, second = exporter.get_finished_spans()
    assert first.attributes["grpo.source"] == "gsm8k"
    assert first.attributes["url.full"] == "https://bob:REDACTED@api.example.com/v1?api-key=REDACTED"
    for finished in (first, second):
        (event,) = finished.events
        assert event.name == "exception"
        assert set(event.attributes) == {"exception.type", "exception.message", "exception.stacktrace"}
        assert finished.status.status_code is StatusCode.ERROR
        text = repr(finished.to_json())
        assert SECRET not in text and PASSWORD not in text
    assert first.events[0].attributes["exception.type"] == "ValueError"
    assert first.status.description == "ValueError"
    assert second.events[0].attributes["exception.message"] == "Max retries exceeded with url: /v1?api-key=REDACTED"


def test_a_repeated_fault_logs_its_stack_trace_redacted(caplog):
    caplog.set_level(logging.DEBUG, logger="otel_grpo")
    set_fault_sink(lambda: None)  # a new session: each kind logs its first fault again
    try:
        for _ in range(2):  # the first is a warning (message redacted), the next a debug line with the stack
            try:
                raise OSError(f"export to http://u:{PASSWORD}@collector:4318/v1?token={SECRET} failed")
            except OSError as exc:
                report_fault("a test exporter", exc)
    finally:
        set_fault_sink(None)
    messages = [r.getMessage() + (r.exc_text or "") for r in caplog.records if r.name == "otel_grpo"]
    assert len(messages) == 2 and "Traceback" in messages[1]
    formatted = caplog.text
    assert SECRET not in formatted and PASSWORD not in formatted
