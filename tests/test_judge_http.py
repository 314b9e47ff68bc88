"""Judge HTTP instrumentation: real HTTP on 127.0.0.1 against the local judge server.

Every test compares with what an uninstrumented client sees, so the instrumentation is
checked for transparency as well as for the spans, metrics and judge accounting it adds.
Who makes a request decides what it is (the innermost open judge evaluation or executor
run, then the configured endpoint): checked for every client transport against
:func:`tests.oracle.request_role`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import httpx2
import openai
import pytest
import requests
import wrapt
from opentelemetry.instrumentation.utils import unwrap
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import otel_grpo
from otel_grpo import faults
from otel_grpo.instrumentation.llm_http import (
    GEN_AI_INPUT_MESSAGES,
    GEN_AI_OUTPUT_MESSAGES,
    LLMHTTPInstrumentor,
    classify_exception,
    instrument_http,
    is_http_instrumented,
    uninstrument_http,
)
from otel_grpo.instrumentation.llm_http.errors import FAULT_KIND
from otel_grpo.recording.context import (
    CALL_EXECUTOR,
    CALL_JUDGE,
    JudgeEvaluationState,
    SampleState,
    enter_call,
    exit_call,
    judge_evaluation_var,
)
from otel_grpo.tools.demo.judge_server import FaultConfig, JudgeServer
from tests.oracle import request_role

MODEL = "gpt-oss-120b"
SECRET_QUESTION = "How many ducks does Zanzibar-Quokka own?"
PROMPT = [
    {"role": "system", "content": "You are a strict grader."},
    {"role": "user", "content": f"Question: {SECRET_QUESTION}\nPrediction: 18\nGround truth: 18"},
]
BODY = {"model": MODEL, "messages": PROMPT, "temperature": 0.0, "max_tokens": 800}
FAULT = "X-Judge-Fault"


# --- fixtures -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server() -> Iterator[JudgeServer]:
    with JudgeServer(faults=FaultConfig(hang_s=1.0)) as srv:
        yield srv


@pytest.fixture(scope="module")
def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def make_tel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """Set otel-grpo up with in-memory sinks and instrument HTTP; undone afterwards."""
    monkeypatch.delenv("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", raising=False)
    made = []

    def make(ports: list[int], capture: bool = False, instrument: bool = True) -> SimpleNamespace:
        reader, exporter = InMemoryMetricReader(), InMemorySpanExporter()
        tel = otel_grpo.setup(
            {"wandb": {"mode": "disabled"}, "judge": {"ports": ports, "capture_content": capture}},
            metric_readers=[reader],
            span_processors=[SimpleSpanProcessor(exporter)],
        )
        if instrument:
            instrument_http(otel_grpo.get_telemetry)
        handle = SimpleNamespace(tel=tel, reader=reader, exporter=exporter)
        made.append(handle)
        return handle

    yield make
    uninstrument_http()
    for handle in made:
        handle.tel.shutdown()


def chat_spans(handle: SimpleNamespace) -> list[Any]:
    return [s for s in handle.exporter.get_finished_spans() if s.name.startswith("chat")]


def points(handle: SimpleNamespace, name: str) -> list[Any]:
    data = handle.reader.get_metrics_data()
    found = []
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == name:
                    found.extend(metric.data.data_points)
    return found


def judge_requests(handle: SimpleNamespace) -> dict[str | None, int]:
    """grpo.judge.requests by error.type (None = no error)."""
    out: dict[str | None, int] = {}
    for dp in points(handle, "grpo.judge.requests"):
        key = dp.attributes.get("error.type")
        out[key] = out.get(key, 0) + dp.value
    return out


def client(server: JudgeServer, **kwargs: Any) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key="sk-dummy", **kwargs)


def aclient(server: JudgeServer, **kwargs: Any) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.url, api_key="sk-dummy", **kwargs)


def dump(obj: Any) -> Any:
    return obj.model_dump(exclude={"id", "created"})


def sync_calls(server: JudgeServer, max_retries: int | None) -> dict[str, Any]:
    kwargs = {} if max_retries is None else {"max_retries": max_retries}
    with client(server, **kwargs) as c:
        create = c.chat.completions.create
        normal = create(model=MODEL, messages=PROMPT, temperature=0.0, max_tokens=800)
        null = create(
            model=MODEL, messages=PROMPT, temperature=0.0, max_tokens=800, extra_headers={FAULT: "null_content"}
        )
        short = create(model=MODEL, messages=PROMPT, max_tokens=2)  # content null, length
        stream = create(model=MODEL, messages=PROMPT, stream=True, stream_options={"include_usage": True})
        chunks = [dump(chunk) for chunk in stream]
        raw = c.chat.completions.with_raw_response.create(model=MODEL, messages=PROMPT)
        return {
            "normal": dump(normal),
            "null": dump(null),
            "short": dump(short),
            "stream": chunks,
            "raw_status": raw.status_code,
            "raw_headers": sorted(k for k in raw.headers if k != "date"),
            "raw_parsed": dump(raw.parse()),
        }


async def async_calls(server: JudgeServer, max_retries: int | None) -> dict[str, Any]:
    kwargs = {} if max_retries is None else {"max_retries": max_retries}
    async with aclient(server, **kwargs) as c:
        create = c.chat.completions.create
        normal = await create(model=MODEL, messages=PROMPT, temperature=0.0, max_tokens=800)
        null = await create(model=MODEL, messages=PROMPT, extra_headers={FAULT: "null_content"})
        stream = await create(model=MODEL, messages=PROMPT, stream=True, stream_options={"include_usage": True})
        chunks = [dump(chunk) async for chunk in stream]
        return {"normal": dump(normal), "null": dump(null), "stream": chunks}


# --- transparency ---------------------------------------------------------------------------
@pytest.mark.parametrize("max_retries", [0, None])
def test_sync_openai_returns_what_an_uninstrumented_client_returns(server, make_tel, max_retries):
    baseline = sync_calls(server, max_retries)
    handle = make_tel([server.port])
    instrumented = sync_calls(server, max_retries)
    assert instrumented == baseline
    assert baseline["null"]["choices"][0]["message"]["content"] is None
    assert baseline["short"]["choices"][0]["finish_reason"] == "length"
    spans = chat_spans(handle)
    assert len(spans) == 5  # one per HTTP request, the stream's ended when it was exhausted
    assert judge_requests(handle) == {None: 3, "empty_content": 2}


@pytest.mark.parametrize("max_retries", [0, None])
def test_async_openai_returns_what_an_uninstrumented_client_returns(server, make_tel, max_retries):
    baseline = asyncio.run(async_calls(server, max_retries))
    handle = make_tel([server.port])
    instrumented = asyncio.run(async_calls(server, max_retries))
    assert instrumented == baseline
    assert len(chat_spans(handle)) == 3
    assert judge_requests(handle) == {None: 2, "empty_content": 1}
    stream_span = chat_spans(handle)[-1]
    usage = baseline["stream"][-1]["usage"]
    assert stream_span.attributes["gen_ai.usage.input_tokens"] == usage["prompt_tokens"]
    assert stream_span.attributes["gen_ai.usage.output_tokens"] == usage["completion_tokens"]


def _failure(make_call: Any) -> tuple[type, Any]:
    try:
        make_call()
    except Exception as exc:  # noqa: BLE001
        return type(exc), getattr(exc, "status_code", None)
    raise AssertionError("expected an exception")


FAULT_CASES = [
    ("http_500", "http_status"),
    ("http_503", "http_status"),
    ("timeout", "timeout"),
    ("refused", "connection"),
]


def _fault_call(server: JudgeServer, closed_port: int, fault: str, is_async: bool) -> Any:
    url = f"http://127.0.0.1:{closed_port}/v1" if fault == "refused" else server.url
    headers = {} if fault == "refused" else {FAULT: fault}

    if is_async:

        async def run() -> Any:
            async with openai.AsyncOpenAI(base_url=url, api_key="sk-dummy", max_retries=0, timeout=0.3) as c:
                return await c.chat.completions.create(model=MODEL, messages=PROMPT, extra_headers=headers)

        return lambda: asyncio.run(run())

    def call() -> Any:
        with openai.OpenAI(base_url=url, api_key="sk-dummy", max_retries=0, timeout=0.3) as c:
            return c.chat.completions.create(model=MODEL, messages=PROMPT, extra_headers=headers)

    return call


@pytest.mark.parametrize("is_async", [False, True])
def test_failures_raise_the_same_exceptions_and_are_classified(server, closed_port, make_tel, is_async):
    baseline = {fault: _failure(_fault_call(server, closed_port, fault, is_async)) for fault, _ in FAULT_CASES}
    handle = make_tel([server.port, closed_port])
    for fault, error_type in FAULT_CASES:
        assert _failure(_fault_call(server, closed_port, fault, is_async)) == baseline[fault], fault
        span = chat_spans(handle)[-1]
        assert span.attributes["error.type"] == error_type, fault
        assert span.status.status_code is StatusCode.ERROR
    assert baseline["http_500"][0] is openai.InternalServerError
    assert baseline["timeout"][0] is openai.APITimeoutError
    assert baseline["refused"][0] is openai.APIConnectionError
    assert judge_requests(handle) == {"http_status": 2, "timeout": 1, "connection": 1}
    statuses = [s.attributes.get("http.response.status_code") for s in chat_spans(handle)]
    assert statuses == [500, 503, None, None]
    durations = {dp.attributes.get("error.type"): dp.count for dp in points(handle, "gen_ai.client.operation.duration")}
    assert durations == {"http_status": 2, "timeout": 1, "connection": 1}


def test_transport_exception_is_the_same_object(make_tel):
    handle = make_tel([8002])
    boom = httpx.ConnectError("refused")

    def handler(request: httpx.Request) -> httpx.Response:
        raise boom

    with httpx.Client(transport=httpx.MockTransport(handler)) as c, pytest.raises(httpx.ConnectError) as info:
        c.post("http://127.0.0.1:8002/v1/chat/completions", json=BODY)
    assert info.value is boom
    assert judge_requests(handle) == {"connection": 1}


# --- spans and metrics ----------------------------------------------------------------------
def test_default_retries_give_one_span_and_one_judge_request_per_attempt(make_tel):
    with JudgeServer(faults=FaultConfig(schedule=["http_500", "http_500", "ok"])) as srv:
        handle = make_tel([srv.port])
        with client(srv) as c:
            out = c.chat.completions.create(model=MODEL, messages=PROMPT, temperature=0.0, max_tokens=800)
        assert srv.stats["total"] == 3
    assert out.choices[0].message.content
    spans = chat_spans(handle)
    assert [s.attributes.get("error.type") for s in spans] == ["http_status", "http_status", None]
    assert judge_requests(handle) == {"http_status": 2, None: 1}
    assert sum(dp.count for dp in points(handle, "gen_ai.client.operation.duration")) == 3


def test_span_and_metric_attributes_follow_the_genai_conventions(server, make_tel):
    handle = make_tel([server.port])
    with otel_grpo.sample(source="GSM8K", problem_type="math"), client(server, max_retries=0) as c:
        out = c.chat.completions.create(model=MODEL, messages=PROMPT, temperature=0.0, max_tokens=800)
    (span,) = chat_spans(handle)
    assert span.name == f"chat {MODEL}"
    assert span.kind is SpanKind.CLIENT
    expected = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "vllm",
        "gen_ai.request.model": MODEL,
        "gen_ai.request.temperature": 0.0,
        "gen_ai.request.max_tokens": 800,
        "server.address": "127.0.0.1",
        "server.port": server.port,
        "gen_ai.response.model": MODEL,
        "gen_ai.response.id": out.id,
        "gen_ai.response.finish_reasons": ("stop",),
        "gen_ai.usage.input_tokens": out.usage.prompt_tokens,
        "gen_ai.usage.output_tokens": out.usage.completion_tokens,
        "http.response.status_code": 200,
        "grpo.source": "gsm8k",
        "grpo.problem_type": "math",
        "grpo.split": "train",
        "grpo.llm.role": "judge",
    }
    assert {k: span.attributes.get(k) for k in expected} == expected
    assert "error.type" not in span.attributes

    (duration,) = points(handle, "gen_ai.client.operation.duration")
    assert duration.count == 1
    assert dict(duration.attributes) == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "vllm",
        "gen_ai.request.model": MODEL,
        "gen_ai.response.model": MODEL,
        "server.address": "127.0.0.1",
        "server.port": server.port,
        "grpo.llm.role": "judge",
        "grpo.source": "gsm8k",
        "grpo.split": "train",
    }
    tokens = {dp.attributes["gen_ai.token.type"]: dp.sum for dp in points(handle, "gen_ai.client.token.usage")}
    assert tokens == {"input": out.usage.prompt_tokens, "output": out.usage.completion_tokens}
    (requests_dp,) = points(handle, "grpo.judge.requests")
    assert dict(requests_dp.attributes) == {"grpo.split": "train", "grpo.source": "gsm8k"}


def test_other_port_is_an_executor_call_and_other_paths_get_nothing(server, closed_port, make_tel):
    handle = make_tel([closed_port])  # the server is not the judge here
    with client(server, max_retries=0) as c:
        c.chat.completions.create(model=MODEL, messages=PROMPT)
    (span,) = chat_spans(handle)
    assert span.attributes["grpo.llm.role"] == "executor"
    assert points(handle, "grpo.judge.requests") == []
    (duration,) = points(handle, "gen_ai.client.operation.duration")
    assert duration.attributes["grpo.llm.role"] == "executor"

    handle = make_tel([server.port])
    with client(server, max_retries=0) as c:
        models = c.models.list()
    assert [m.id for m in models] == [MODEL]
    requests.get(f"{server.url}/models", timeout=5).raise_for_status()
    httpx.get(f"http://127.0.0.1:{server.port}/health").raise_for_status()
    assert handle.exporter.get_finished_spans() == ()
    assert points(handle, "gen_ai.client.operation.duration") == []
    assert points(handle, "grpo.judge.requests") == []


def test_attempts_are_appended_to_the_running_judge_evaluation(server, make_tel):
    handle = make_tel([server.port])
    state = JudgeEvaluationState(source="math", problem_type="math")
    token = judge_evaluation_var().set(state)
    try:
        with handle.tel.tracer.start_as_current_span("judge evaluation") as parent, client(server, max_retries=0) as c:
            for fault in ("null_content", "http_500", "ok"):
                try:
                    c.chat.completions.create(model=MODEL, messages=PROMPT, extra_headers={FAULT: fault})
                except openai.InternalServerError:
                    pass
    finally:
        judge_evaluation_var().reset(token)
    assert [(a.error_type, a.status_code, a.finish_reason) for a in state.attempts] == [
        ("empty_content", 200, "length"),
        ("http_status", 500, None),
        (None, 200, "stop"),
    ]
    assert state.attempts[0].content is None
    assert "<true_false>True</true_false>" in state.attempts[2].content
    spans = chat_spans(handle)
    assert all(s.parent.span_id == parent.get_span_context().span_id for s in spans)
    assert {s.attributes["grpo.source"] for s in spans} == {"math"}


# --- content capture ------------------------------------------------------------------------
def _all_span_text(handle: SimpleNamespace) -> str:
    parts = []
    for span in handle.exporter.get_finished_spans():
        parts.append(json.dumps({k: str(v) for k, v in span.attributes.items()}))
        for event in span.events:
            parts.append(event.name + json.dumps({k: str(v) for k, v in event.attributes.items()}))
    return "\n".join(parts)


def test_message_content_is_not_captured_by_default(server, make_tel):
    handle = make_tel([server.port])
    with client(server, max_retries=0) as c:
        out = c.chat.completions.create(model=MODEL, messages=PROMPT)
        list(c.chat.completions.create(model=MODEL, messages=PROMPT, stream=True))
    text = _all_span_text(handle)
    assert len(chat_spans(handle)) == 2
    assert SECRET_QUESTION not in text and "strict grader" not in text
    assert out.choices[0].message.content not in text and "true_false" not in text
    assert GEN_AI_INPUT_MESSAGES not in text and GEN_AI_OUTPUT_MESSAGES not in text


def test_message_content_is_captured_when_enabled(server, make_tel):
    handle = make_tel([server.port], capture=True)
    with client(server, max_retries=0) as c:
        out = c.chat.completions.create(model=MODEL, messages=PROMPT)
        chunks = list(c.chat.completions.create(model=MODEL, messages=PROMPT, stream=True))
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    spans = chat_spans(handle)
    assert len(spans) == 2
    for span, reply in zip(spans, (out.choices[0].message.content, streamed), strict=True):
        inputs = json.loads(span.attributes[GEN_AI_INPUT_MESSAGES])
        assert [m["role"] for m in inputs] == ["system", "user"]
        assert SECRET_QUESTION in inputs[1]["parts"][0]["content"]
        (output,) = json.loads(span.attributes[GEN_AI_OUTPUT_MESSAGES])
        assert output["role"] == "assistant" and output["finish_reason"] == "stop"
        assert {"type": "text", "content": reply} in output["parts"]


# --- other clients ----------------------------------------------------------------------------
def test_requests_and_plain_httpx_judge_calls_are_counted(server, make_tel):
    url = f"{server.url}/chat/completions"
    stream_body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    baseline = {
        "requests": requests.post(url, json=BODY, timeout=5).json()["choices"],
        "requests_stream": b"".join(requests.post(url, json=stream_body, stream=True, timeout=5).iter_content(None)),
        "httpx": httpx.post(url, json=BODY).json()["choices"],
    }
    handle = make_tel([server.port])
    got_requests = requests.post(url, json=BODY, timeout=5).json()["choices"]
    with requests.post(url, json=stream_body, stream=True, timeout=5) as resp:
        lines = [line for line in resp.iter_lines() if line]
    got_httpx = httpx.post(url, json=BODY).json()["choices"]
    with httpx.Client() as c, c.stream("POST", url, json=stream_body) as resp:
        httpx_stream = b"".join(resp.iter_bytes())

    async def async_httpx2() -> Any:
        async with httpx2.AsyncClient() as c, c.stream("POST", url, json=stream_body) as resp:
            return b"".join([part async for part in resp.aiter_bytes()])

    httpx2_stream = asyncio.run(async_httpx2())

    assert got_requests == baseline["requests"] and got_httpx == baseline["httpx"]
    assert lines[-1] == b"data: [DONE]" and len(lines) == baseline["requests_stream"].count(b"data:")
    for streamed in (httpx_stream, httpx2_stream):
        assert streamed.count(b"data:") == baseline["requests_stream"].count(b"data:")
    spans = chat_spans(handle)
    assert len(spans) == 5
    assert all(s.attributes["gen_ai.usage.output_tokens"] > 0 for s in spans)
    assert judge_requests(handle) == {None: 5}


# --- lifecycle --------------------------------------------------------------------------------
CLIENT_CLASSES = (httpx.Client, httpx.AsyncClient, httpx2.Client, httpx2.AsyncClient, requests.Session)


def test_uninstrument_removes_the_patches_and_instrument_is_idempotent(server, make_tel):
    uninstrument_http()
    originals = [vars(cls)["send"] for cls in CLIENT_CLASSES]
    handle = make_tel([server.port])
    instrument_http(otel_grpo.get_telemetry)  # twice: still one wrapper
    assert is_http_instrumented()
    for cls in CLIENT_CLASSES:
        assert isinstance(vars(cls)["send"], wrapt.FunctionWrapper)
        assert not isinstance(vars(cls)["send"].__wrapped__, wrapt.FunctionWrapper)
    with client(server, max_retries=0) as c:
        c.chat.completions.create(model=MODEL, messages=PROMPT)
    assert len(chat_spans(handle)) == 1

    uninstrument_http()
    uninstrument_http()
    assert not is_http_instrumented()
    assert [vars(cls)["send"] for cls in CLIENT_CLASSES] == originals
    with client(server, max_retries=0) as c:
        c.chat.completions.create(model=MODEL, messages=PROMPT)
    requests.post(f"{server.url}/chat/completions", json=BODY, timeout=5)
    assert len(chat_spans(handle)) == 1
    assert judge_requests(handle) == {None: 1}


def test_a_wrapper_wrapped_again_by_someone_else_stays_but_goes_inert(server, make_tel):
    handle = make_tel([server.port])
    theirs = []

    def their_wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
        theirs.append(1)
        return wrapped(*args, **kwargs)

    wrapt.wrap_function_wrapper(requests.Session, "send", their_wrapper)
    try:
        uninstrument_http()
        requests.post(f"{server.url}/chat/completions", json=BODY, timeout=5)
        assert theirs == [1] and chat_spans(handle) == []
        instrument_http(otel_grpo.get_telemetry)  # ours again on top: still one span per request
        requests.post(f"{server.url}/chat/completions", json=BODY, timeout=5)
        assert len(chat_spans(handle)) == 1 and judge_requests(handle) == {None: 1}
        uninstrument_http()
        assert vars(requests.Session)["send"]._self_wrapper is their_wrapper
    finally:
        unwrap(requests.Session, "send")  # theirs
        unwrap(requests.Session, "send")  # our inert one
    assert not isinstance(vars(requests.Session)["send"], wrapt.FunctionWrapper)


def test_without_telemetry_requests_pass_through(server, make_tel):
    handle = make_tel([server.port], instrument=False)
    instrument_http(lambda: None)
    with client(server, max_retries=0) as c:
        assert c.chat.completions.create(model=MODEL, messages=PROMPT).choices[0].message.content
    assert handle.exporter.get_finished_spans() == ()


def test_internal_errors_never_reach_the_caller(server, make_tel, monkeypatch, caplog):
    handle = make_tel([server.port])
    monkeypatch.setattr(faults._Faults, "kinds", {})  # this test's first fault is logged again
    caplog.set_level(logging.DEBUG, logger="otel_grpo")

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("recorder is broken")

    monkeypatch.setattr(handle.tel.recorder, "record_judge_request", broken)
    monkeypatch.setattr(handle.tel.recorder.genai_tokens, "record", broken)
    with client(server, max_retries=0) as c:
        out = c.chat.completions.create(model=MODEL, messages=PROMPT)
        chunks = list(c.chat.completions.create(model=MODEL, messages=PROMPT, stream=True))
    assert out.choices[0].message.content and chunks
    assert len(chat_spans(handle)) == 2  # spans still end

    monkeypatch.setattr(handle.tel.tracer, "start_span", broken)
    with client(server, max_retries=0) as c:
        assert c.chat.completions.create(model=MODEL, messages=PROMPT).choices[0].message.content
    instrument_http(lambda: 1 / 0)  # a broken telemetry getter
    with client(server, max_retries=0) as c:
        assert c.chat.completions.create(model=MODEL, messages=PROMPT).choices[0].message.content
    ours = [r for r in caplog.records if r.name == "otel_grpo" and FAULT_KIND in r.getMessage()]
    assert [r.levelno for r in ours].count(logging.WARNING) == 1  # logged once, then at DEBUG
    assert len(ours) > 1


def test_classify_exception_covers_the_client_libraries():
    import urllib3

    assert classify_exception(httpx.ReadTimeout("t")) == "timeout"
    assert classify_exception(httpx2.ConnectTimeout("t")) == "timeout"
    assert classify_exception(requests.exceptions.ConnectTimeout()) == "timeout"
    assert classify_exception(httpx.ConnectError("c")) == "connection"
    assert classify_exception(httpx2.RemoteProtocolError("c")) == "connection"
    assert classify_exception(requests.exceptions.ConnectionError()) == "connection"
    assert classify_exception(urllib3.exceptions.ProtocolError("c")) == "connection"
    assert classify_exception(ConnectionRefusedError()) == "connection"
    assert classify_exception(httpx.LocalProtocolError("bug")) == "_OTHER"
    assert classify_exception(ValueError()) == "_OTHER"


def test_instrumentor_wraps_and_unwraps_like_a_contrib_instrumentor():
    instrumentor = LLMHTTPInstrumentor()
    assert instrumentor is LLMHTTPInstrumentor()  # one instance, as every BaseInstrumentor
    assert list(instrumentor.instrumentation_dependencies()) == []  # each client is optional
    instrumentor.instrument(get_telemetry=lambda: None)
    try:
        assert is_http_instrumented() and instrumentor.is_instrumented_by_opentelemetry
        for cls in (httpx.Client, httpx.AsyncClient, httpx2.Client, requests.Session):
            assert isinstance(vars(cls)["send"], wrapt.FunctionWrapper), cls
        instrument_http(lambda: None)  # already instrumented: only the telemetry getter changes
    finally:
        uninstrument_http()
    assert not is_http_instrumented() and not instrumentor.is_instrumented_by_opentelemetry
    for cls in (httpx.Client, httpx.AsyncClient, httpx2.Client, requests.Session):
        assert not isinstance(vars(cls)["send"], wrapt.FunctionWrapper), cls


def test_modules_imported_later_are_wrapped_by_post_import_hooks():
    code = textwrap.dedent("""
        import sys
        from otel_grpo.instrumentation.llm_http import instrument_http, uninstrument_http
        later = [m for m in ("httpx", "httpx2", "requests") if m not in sys.modules]
        instrument_http(lambda: None)
        import httpx, httpx2, requests, wrapt
        for cls in (httpx.Client, httpx.AsyncClient, httpx2.Client, requests.Session):
            assert isinstance(vars(cls)["send"], wrapt.FunctionWrapper), cls
        uninstrument_http()
        assert not isinstance(vars(httpx.Client)["send"], wrapt.FunctionWrapper)
        print(",".join(later))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    if not result.stdout.strip():
        pytest.skip("every HTTP client was already imported by otel_grpo; no post-import hook ran")


def test_gzip_encoded_streamed_reply_is_observed_not_altered(make_tel):
    import gzip

    chunk = {
        "id": "c1",
        "model": MODEL,
        "choices": [{"index": 0, "delta": {"content": "ok"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 1},
    }
    sse = f"data: {json.dumps(chunk)}\n\ndata: [DONE]\n\n".encode()
    encoded = gzip.compress(sse)

    class Chunks(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            yield encoded[:10]
            yield encoded[10:]

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(
            200, stream=Chunks(), headers={"content-encoding": "gzip", "content-type": "text/event-stream"}
        )

    handle = make_tel([8002])
    with (
        httpx.Client(transport=httpx.MockTransport(handler)) as c,
        c.stream("POST", "http://127.0.0.1:8002/v1/chat/completions", json=BODY) as resp,
    ):
        assert resp.read() == sse
    (span,) = chat_spans(handle)
    assert span.attributes["gen_ai.usage.input_tokens"] == 3
    assert span.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert judge_requests(handle) == {None: 1}


# --- who makes a request decides ---------------------------------------------------------------
@pytest.fixture(scope="module")
def other_server() -> Iterator[JudgeServer]:
    """A second OpenAI-compatible server, on a port that is not in judge.ports."""
    with JudgeServer() as srv:
        yield srv


def _send(kind: str, method: str, url: str, body: dict | None) -> int:
    """One HTTP request with the client ``kind``; returns the status code."""
    kwargs: dict[str, Any] = {"json": body} if body is not None else {}
    if kind == "requests":
        with requests.Session() as session:
            response = session.request(method, url, timeout=5, **kwargs)
            response.content  # noqa: B018 - read the body
            return response.status_code
    module = httpx if kind.startswith("httpx_") else httpx2
    if kind.endswith("async"):

        async def run() -> int:
            async with module.AsyncClient() as c:
                return (await c.request(method, url, **kwargs)).status_code

        return asyncio.run(run())
    with module.Client() as c:
        return c.request(method, url, **kwargs).status_code


@contextlib.contextmanager
def _inside(innermost: str | None, span_name: str, handle: SimpleNamespace) -> Iterator[Any]:
    """Open a judge evaluation / executor run (as the wrappers do), or nothing; yields its state."""
    if innermost is None:
        yield None
        return
    state: Any = JudgeEvaluationState("math", "math") if innermost == "judge" else SampleState("gsm8k", "math")
    with handle.tel.tracer.start_as_current_span(span_name):
        token = enter_call(CALL_JUDGE if innermost == "judge" else CALL_EXECUTOR, state)
        try:
            yield state
        finally:
            exit_call(token)


def _totals(handle: SimpleNamespace, name: str) -> int:
    return sum(dp.value for dp in points(handle, name))


@pytest.mark.parametrize("kind", ["httpx_sync", "httpx_async", "httpx2_sync", "httpx2_async", "requests"])
def test_the_innermost_call_decides_for_every_transport(server, other_server, make_tel, kind):
    handle = make_tel([server.port])
    judge_ports = (server.port,)
    targets = [  # (method, port, path, body)
        ("POST", server.port, "/v1/chat/completions", BODY),  # the judge's endpoint
        ("POST", other_server.port, "/chat/completions", BODY),  # another port, no /v1
        ("GET", server.port, "/v1/models", None),
        ("GET", other_server.port, "/health", None),
    ]
    for innermost in ("judge", "executor", None):
        for method, port, path, body in targets:
            role = request_role(innermost, method, port, path, judge_ports)
            before = (
                _totals(handle, "grpo.judge.requests"),
                _totals(handle, "grpo.executor.llm_requests"),
                len(handle.exporter.get_finished_spans()),
            )
            with _inside(innermost, f"grpo.{innermost}", handle) as state:
                assert _send(kind, method, f"http://127.0.0.1:{port}{path}", body) == 200
            case = (innermost, method, port == server.port, path)
            assert _totals(handle, "grpo.judge.requests") - before[0] == (role == "judge"), case
            assert _totals(handle, "grpo.executor.llm_requests") - before[1] == (role == "executor"), case
            if innermost == "judge":
                assert [a.error_type for a in state.attempts] == [None], case  # a 200 with content or no body
            new_spans = list(handle.exporter.get_finished_spans())[before[2] :]
            clients = [sp for sp in new_spans if sp.kind is SpanKind.CLIENT]
            if role is not None:
                (span,) = clients
                assert span.attributes["grpo.llm.role"] == role, case
                if innermost is not None:  # a child of the judge evaluation's / executor run's span
                    assert span.parent is not None and span.parent.span_id == new_spans[-1].context.span_id
                    assert span.attributes["grpo.source"] == ("math" if role == "judge" else "gsm8k"), case
            elif innermost is None and method == "POST" and port != server.port:
                (span,) = clients  # a GenAI request outside any run: described, never counted
                assert span.attributes["grpo.llm.role"] == "executor"
            else:
                assert clients == [], case


def test_openai_clients_inside_runs_on_the_judge_port_and_elsewhere(server, other_server, make_tel):
    """The OpenAI SDK: async client in an executor run, sync client in a judge evaluation."""
    handle = make_tel([server.port])

    async def executor_calls() -> list[Any]:
        with _inside("executor", "grpo.execute_workflow", handle):
            async with aclient(server, max_retries=0) as c:
                return [await c.chat.completions.create(model=MODEL, messages=PROMPT) for _ in range(3)]

    replies = asyncio.run(executor_calls())
    assert _totals(handle, "grpo.judge.requests") == 0
    requests_dp = points(handle, "grpo.executor.llm_requests")
    assert [(dict(dp.attributes), dp.value) for dp in requests_dp] == [
        ({"grpo.split": "train", "grpo.source": "gsm8k"}, 3)
    ]
    tokens = {
        (dp.attributes["grpo.llm.role"], dp.attributes["gen_ai.token.type"]): dp.sum
        for dp in points(handle, "gen_ai.client.token.usage")
    }
    assert tokens == {
        ("executor", "input"): sum(r.usage.prompt_tokens for r in replies),
        ("executor", "output"): sum(r.usage.completion_tokens for r in replies),
    }

    no_v1 = openai.OpenAI(base_url=f"http://127.0.0.1:{other_server.port}", api_key="sk-dummy", max_retries=0)
    with _inside("judge", "grpo.judge.evaluate", handle) as state, no_v1 as c:
        out = c.chat.completions.create(model=MODEL, messages=PROMPT, extra_headers={FAULT: "null_content"})
        assert out.choices[0].message.content is None
        c.chat.completions.create(model=MODEL, messages=PROMPT)
    assert judge_requests(handle) == {"empty_content": 1, None: 1}
    assert [a.error_type for a in state.attempts] == ["empty_content", None]
    judge_spans = [sp for sp in chat_spans(handle) if sp.attributes["grpo.llm.role"] == "judge"]
    assert [sp.attributes["server.port"] for sp in judge_spans] == [other_server.port] * 2
    parents = {
        sp.name: sp.context.span_id for sp in handle.exporter.get_finished_spans() if sp.name.startswith("grpo.")
    }
    for sp in chat_spans(handle):
        want = "grpo.judge.evaluate" if sp.attributes["grpo.llm.role"] == "judge" else "grpo.execute_workflow"
        assert sp.parent.span_id == parents[want]


def test_nested_calls_the_innermost_one_wins(server, make_tel):
    handle = make_tel([server.port])
    url = f"{server.url}/chat/completions"
    with _inside("executor", "grpo.execute_workflow", handle), _inside("judge", "grpo.judge.evaluate", handle):
        httpx.post(url, json=BODY).raise_for_status()  # a judge evaluation inside an executor run
    assert (_totals(handle, "grpo.judge.requests"), _totals(handle, "grpo.executor.llm_requests")) == (1, 0)
    with _inside("judge", "grpo.judge.evaluate", handle), _inside("executor", "grpo.execute_workflow", handle):
        httpx.post(url, json=BODY).raise_for_status()  # an executor run inside a judge evaluation
    assert (_totals(handle, "grpo.judge.requests"), _totals(handle, "grpo.executor.llm_requests")) == (1, 1)


def test_executor_llm_request_failures_are_counted_with_their_error_type(server, closed_port, make_tel):
    handle = make_tel([server.port])
    for url, fault in ((server.url, "http_500"), (f"http://127.0.0.1:{closed_port}/v1", None)):
        with (
            _inside("executor", "grpo.execute_workflow", handle),
            openai.OpenAI(base_url=url, api_key="sk-dummy", max_retries=0, timeout=2) as c,
            pytest.raises(openai.APIError),
        ):
            c.chat.completions.create(model=MODEL, messages=PROMPT, extra_headers={FAULT: fault} if fault else None)
    counted = {dp.attributes.get("error.type"): dp.value for dp in points(handle, "grpo.executor.llm_requests")}
    assert counted == {"http_status": 1, "connection": 1}
    assert points(handle, "grpo.judge.requests") == []
