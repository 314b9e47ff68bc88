"""Reading an outgoing request: is it an LLM request, and what does its GenAI client span say.

:func:`start_call` takes what a transport wrapper knows of a request (a
:class:`RequestLine` and, lazily, its body), classifies it
(:mod:`~otel_grpo.instrumentation.llm_http.classify`), reads the JSON body for the
operation, model, temperature and token limit, labels it with the sample it belongs to,
and starts an :class:`~otel_grpo.instrumentation.llm_http.call.LLMCall`. Message content
goes on the span only when ``judge.capture_content`` is true
(``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from otel_grpo import semconv
from otel_grpo.faults import guarded
from otel_grpo.instrumentation.llm_http.call import Attributes, LLMCall
from otel_grpo.instrumentation.llm_http.classify import ROLE_JUDGE, RequestRole, classify_request, judge_endpoint
from otel_grpo.instrumentation.llm_http.errors import FAULT_KIND
from otel_grpo.instrumentation.llm_http.reply import input_messages_json
from otel_grpo.recording.context import current_sample

if TYPE_CHECKING:
    from otel_grpo.api import Telemetry

RequestBody = bytes | str | None
"""A request body as the client holds it; None when it is streamed (never read by us)."""


class RequestLine(NamedTuple):
    """Where a request goes, as its client describes it."""

    method: str
    scheme: str
    host: str
    port: int | None  # None: the scheme's default
    path: str


_DEFAULT_PORTS = {"https": 443, "http": 80}


def _normalized(line: RequestLine) -> RequestLine:
    """``line`` with an upper-case method, a lower-case host, the scheme's default port and a path."""
    method, scheme, host, port, path = line
    if port is None:
        port = _DEFAULT_PORTS.get(scheme.lower())
    return RequestLine((method or "GET").upper(), scheme, (host or "").lower(), port, path or "/")


@guarded(FAULT_KIND)
def start_call(
    tel: Telemetry, describe: Callable[[], RequestLine], body_of: Callable[[], RequestBody]
) -> LLMCall | None:
    """Start an :class:`LLMCall` for an LLM request, or None for anything else (or on an internal error).

    ``describe`` and ``body_of`` are called here, inside the fault guard; the body only
    once the request is known to be an LLM request.
    """
    line = _normalized(describe())
    endpoint = judge_endpoint(tel.config.judge)
    who = classify_request(endpoint, line.method, line.host, line.port, line.path)
    if who is None:
        return None
    request = _json_body(body_of())
    if who.role == ROLE_JUDGE and not who.genai and ("messages" in request or "prompt" in request):
        who = who._replace(genai=True)  # an OpenAI-style body at a path of its own
    operation = _operation(line.path, request)
    model = request.get("model")
    if not isinstance(model, str) or not model:
        model = endpoint.model if who.role == ROLE_JUDGE else None
    source, problem_type = _labels(tel, who)
    metric_attrs: Attributes = {
        semconv.GEN_AI_OPERATION_NAME: operation,
        semconv.GEN_AI_PROVIDER_NAME: endpoint.provider_for(who.role, line.host),
        semconv.SERVER_ADDRESS: line.host,
        semconv.ATTR_LLM_ROLE: who.role,
        semconv.ATTR_SOURCE: source,
        semconv.ATTR_SPLIT: tel.recorder.current_split(),
    }
    if line.port is not None:
        metric_attrs[semconv.SERVER_PORT] = line.port
    if model:
        metric_attrs[semconv.GEN_AI_REQUEST_MODEL] = model
    capture = tel.config.judge.capture_content
    span_attrs = _span_attributes(metric_attrs, problem_type, request, capture)
    name = f"{operation} {model}" if model else operation
    port = f":{line.port}" if line.port is not None else ""
    url = f"{line.scheme}://{line.host}{port}{line.path}"
    return LLMCall.start(tel, who, name, span_attrs, metric_attrs, source, capture, url)


def _span_attributes(metric_attrs: Attributes, problem_type: str, request: dict[str, Any], capture: bool) -> Attributes:
    """The span's attributes: the metric attributes, the problem type, the request's settings (and messages)."""
    span_attrs: Attributes = {**metric_attrs, semconv.ATTR_PROBLEM_TYPE: problem_type}
    temperature = request.get("temperature")
    if isinstance(temperature, (int, float)) and not isinstance(temperature, bool):
        span_attrs[semconv.GEN_AI_REQUEST_TEMPERATURE] = float(temperature)
    max_tokens = request.get("max_completion_tokens", request.get("max_tokens"))
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        span_attrs[semconv.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    if capture:
        messages = input_messages_json(request)
        if messages is not None:
            span_attrs[semconv.GEN_AI_INPUT_MESSAGES] = messages
    return span_attrs


def _json_body(raw: RequestBody) -> dict[str, Any]:
    """The request body as a JSON object; empty when there is none or it is not JSON."""
    if not raw:
        return {}
    try:
        request = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return request if isinstance(request, dict) else {}


def _operation(path: str, request: dict[str, Any]) -> str:
    """``chat`` or ``text_completion`` from the path and the request body (default ``chat``)."""
    stripped = path.rstrip("/")
    if stripped.endswith("/chat/completions") or "messages" in request:
        return semconv.GEN_AI_OPERATION_CHAT
    if stripped.endswith("/completions") or "prompt" in request:
        return semconv.GEN_AI_OPERATION_TEXT_COMPLETION
    return semconv.GEN_AI_OPERATION_CHAT


def _labels(tel: Telemetry, who: RequestRole) -> tuple[str, str]:
    """``(source, problem_type)``: the executor run's sample, else the current sample, else the judge's."""
    if who.executor_run is not None:
        return who.executor_run.source, who.executor_run.problem_type
    if current_sample() is None and who.judge_state is not None:
        return who.judge_state.source, who.judge_state.problem_type
    return tel.recorder.resolve_labels()
