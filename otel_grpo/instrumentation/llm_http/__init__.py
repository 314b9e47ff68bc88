"""GenAI client spans and metrics for LLM HTTP requests; judge requests counted one by one.

Every HTTP request an LLM client sends passes through one of a few transport-level
``send`` methods: ``httpx.Client.send`` / ``httpx.AsyncClient.send``, the same two in
``httpx2`` (what ``openai`` 3.x is built on), and ``requests.Session.send``. Wrapping
those (``wrapt`` + :func:`opentelemetry.instrumentation.utils.unwrap`, installed with
post-import hooks for modules imported later) sees **every HTTP attempt**, including the
retries the OpenAI client makes by itself (``max_retries=2``). That is what SPEC.md
calls a *judge request*; an instrumentation of ``Completions.create`` (such as
``opentelemetry-instrumentation-openai-v2``) sees one call per logical operation and
cannot count them.

Per request, **the innermost open call decides** (:func:`otel_grpo.recording.context.innermost_call`,
set by the judge and executor wrappers), not the endpoint:

* inside a **judge evaluation** (the wrapped judge function), *any* HTTP request, whatever
  its method, host, port or path, is a **judge request**: a GenAI client span (a child of
  ``grpo.judge.evaluate``), ``gen_ai.client.*`` metrics with ``grpo.llm.role=judge``, one
  :meth:`~otel_grpo.recording.recorder.Recorder.record_judge_request` and one
  :class:`~otel_grpo.recording.context.JudgeAttempt` appended to the evaluation. A judge on vLLM's
  default port 8000, on any host, or at a base URL without ``/v1`` is counted all the same;
* otherwise, inside an **executor run** (the wrapped ``execute_workflow``), a GenAI request
  (a POST whose path ends in ``/chat/completions`` or ``/completions``) is an **executor LLM
  request**: the same span (a child of ``grpo.execute_workflow``) and metrics with
  ``grpo.llm.role=executor``, one
  :meth:`~otel_grpo.recording.recorder.Recorder.record_executor_llm_request` (WandB
  ``executor/llm_requests``), and never a judge request, even when it goes to the judge's
  own server and port (AFlow's operator LLM on the gpt-oss-120b at port 8002);
* anything else (no open call, e.g. a judge reached inline from ``compute_reward`` with no
  wrapped judge function, or a non-GenAI request inside an executor run) is classified by
  the configured **judge endpoint**: a POST whose port is in ``judge.ports`` (or whose host
  is in ``judge.hosts``) and whose path starts with one of ``judge.path_prefixes`` is a
  judge request (attached to a judge evaluation if one is open); any other POST whose path
  ends in ``/chat/completions`` or ``/completions`` gets the span and metrics with
  ``grpo.llm.role=executor`` but is not counted (it is made outside any executor run);
* everything else passes through untouched (and so does everything when otel-grpo is not
  set up: one ``get_telemetry()`` call).

Judge request outcomes (``error.type``): ``timeout``, ``connection``, ``http_status``
(status >= 400), ``empty_content`` (a 200 whose ``choices[0].message.content`` is null
or empty, what gpt-oss does when it runs out of ``max_tokens``), ``_OTHER``; none when
content came back. Executor calls, and judge requests that are not GenAI requests (no
``/completions`` path, no ``messages``/``prompt`` body, not at the judge endpoint, e.g. a
health check inside a judge evaluation), only report transport and HTTP status errors.

Transparency: the wrapped ``send`` is called with the caller's arguments, its response
is returned as is and its exception re-raised as the same object. A body that is
already read (``stream=False``) is parsed from the response's content; a body that is
not read yet is never read by us: the response's byte stream is wrapped so the bytes
are observed as the caller reads them, and the span ends when that stream is
exhausted or closed. Message content goes on spans only when ``judge.capture_content``
is true (``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``), as the opt-in
``gen_ai.input.messages`` / ``gen_ai.output.messages`` attributes of the current GenAI
conventions (JSON strings). Any internal error is logged once and swallowed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import wrapt
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled, unwrap
from opentelemetry.trace import SpanKind, Status, StatusCode

from otel_grpo import semconv
from otel_grpo.instrumentation.llm_http.reply import _DECODABLE, _messages_json, _output_json, _parse_reply, _Reply
from otel_grpo.recording.context import (
    CALL_EXECUTOR,
    CALL_JUDGE,
    JudgeAttempt,
    current_judge_evaluation,
    current_sample,
    innermost_call,
)

__all__ = [
    "GEN_AI_INPUT_MESSAGES",
    "GEN_AI_OUTPUT_MESSAGES",
    "ROLE_EXECUTOR",
    "ROLE_JUDGE",
    "classify_exception",
    "instrument_http",
    "is_http_instrumented",
    "uninstrument_http",
]

logger = logging.getLogger(__name__)

# Opt-in content attributes of the GenAI conventions (semconv >= 1.37; JSON strings on spans).
GEN_AI_INPUT_MESSAGES = "gen_ai.input.messages"
GEN_AI_OUTPUT_MESSAGES = "gen_ai.output.messages"

ROLE_JUDGE = "judge"
ROLE_EXECUTOR = "executor"
_OP_CHAT = "chat"
_OP_TEXT_COMPLETION = "text_completion"

_MAX_OBSERVED_BODY = 8 * 1024 * 1024  # bytes of a streamed reply kept for parsing

# Provider names by host suffix for executor calls; anything else (a local OpenAI-compatible
# server) gets ``judge.provider``.
_PROVIDER_BY_HOST_SUFFIX = (
    ("openai.azure.com", "azure.ai.openai"),
    ("openai.com", "openai"),
    ("anthropic.com", "anthropic"),
    ("deepseek.com", "deepseek"),
    ("mistral.ai", "mistral_ai"),
    ("groq.com", "groq"),
    ("x.ai", "x_ai"),
    ("googleapis.com", "gcp.gemini"),
)

GetTelemetry = Callable[[], Any]


# --- state --------------------------------------------------------------------------------
class _State:
    lock = threading.RLock()
    get_telemetry: GetTelemetry | None = None
    active = False
    patched: list[tuple[type, str, Callable]] = []  # (class, module name, wrapper), in order
    hooks: set[str] = set()  # module names with a registered post-import hook
    endpoint: tuple[Any, _Endpoint] | None = None  # (judge config object, classifier)
    warned = False


_in_llm_call: ContextVar[bool] = ContextVar("otel_grpo_in_llm_call", default=False)


def _internal_error(where: str, exc: BaseException) -> None:
    """Log an instrumentation fault once (then at DEBUG); never raises."""
    try:
        if not _State.warned:
            _State.warned = True
            logger.warning(
                "otel-grpo: internal error in the LLM HTTP instrumentation (%s: %s: %s); requests "
                "are unaffected, further errors are logged at DEBUG", where, type(exc).__qualname__,
                exc, exc_info=exc)
        else:
            logger.debug("otel-grpo: LLM HTTP instrumentation error in %s", where, exc_info=exc)
    except Exception:  # noqa: BLE001 - logging must not break a request either
        pass


# --- public API -------------------------------------------------------------------------
def instrument_http(get_telemetry: GetTelemetry) -> None:
    """Wrap the ``send`` methods of httpx, httpx2 and requests; idempotent.

    ``get_telemetry`` is called once per request; when it returns None the request
    passes through untouched. Modules not imported yet are wrapped when they are
    (``wrapt`` post-import hooks). Calling again only replaces ``get_telemetry``.
    """
    with _State.lock:
        _State.get_telemetry = get_telemetry
        if _State.active:
            return
        _State.active = True
        for name in _TARGETS:
            module = sys.modules.get(name)
            if module is not None:
                _patch_module(name, module)
            if name not in _State.hooks:
                _State.hooks.add(name)
                # Fires at once when already imported (a no-op then: classes are patched once).
                wrapt.register_post_import_hook(_on_import, name)


def uninstrument_http() -> None:
    """Remove every wrapper :func:`instrument_http` installed; idempotent.

    A wrapper that another library has since wrapped again is left in place (removing
    it would drop theirs) but becomes inert. Responses already handed out keep their
    observed streams, which finish their spans normally when closed.
    """
    with _State.lock:
        _State.active = False
        for cls, _module, wrapper in reversed(_State.patched):
            try:
                current = vars(cls).get("send")
                if isinstance(current, wrapt.FunctionWrapper) and current._self_wrapper is wrapper:
                    unwrap(cls, "send")
                else:
                    logger.debug("otel-grpo: %s.send was re-wrapped by someone else; leaving our "
                                 "(now inert) wrapper in place", cls.__qualname__)
            except Exception as exc:  # noqa: BLE001
                _internal_error("unwrap", exc)
        _State.patched = []


def is_http_instrumented() -> bool:
    """True between :func:`instrument_http` and :func:`uninstrument_http`."""
    return _State.active


def classify_exception(exc: BaseException) -> str:
    """``timeout``, ``connection`` or ``_OTHER`` for an exception raised by an HTTP client.

    Works for httpx, httpx2, requests/urllib3 and the built-in socket errors by class
    names in the exception's MRO, so no client library has to be imported.
    """
    names = set()
    for klass in type(exc).__mro__:
        names.add(klass.__name__)
        if klass.__name__ == "ProtocolError" and klass.__module__.startswith("urllib3"):
            names.add("urllib3.ProtocolError")
    if names & _TIMEOUT_NAMES:
        return semconv.ERROR_TIMEOUT
    if names & _CONNECTION_NAMES:
        return semconv.ERROR_CONNECTION
    return semconv.ERROR_OTHER


_TIMEOUT_NAMES = frozenset({
    "TimeoutException",  # httpx / httpx2 (ConnectTimeout, ReadTimeout, WriteTimeout, PoolTimeout)
    "Timeout",  # requests (ConnectTimeout, ReadTimeout)
    "TimeoutError",  # built-in, socket.timeout, asyncio.TimeoutError
    "ReadTimeoutError", "ConnectTimeoutError",  # urllib3
    "APITimeoutError",  # openai
})
_CONNECTION_NAMES = frozenset({
    "NetworkError", "ConnectError", "RemoteProtocolError", "ProxyError",  # httpx / httpx2
    "ConnectionError",  # requests, built-in (refused, reset, aborted)
    "ChunkedEncodingError",  # requests
    "NewConnectionError", "MaxRetryError", "urllib3.ProtocolError",  # urllib3
    "APIConnectionError",  # openai
})


# --- patching -----------------------------------------------------------------------------
def _on_import(module: Any) -> None:
    try:
        with _State.lock:
            if _State.active:
                _patch_module(module.__name__, module)
    except Exception as exc:  # noqa: BLE001
        _internal_error("post-import hook", exc)


def _patch_module(name: str, module: Any) -> None:
    """Wrap ``send`` on the module's client classes (each class once, even when aliased)."""
    for cls_name, make_wrapper in _TARGETS.get(name, ()):
        cls = getattr(module, cls_name, None)
        if cls is None or "send" not in vars(cls) or any(cls is done for done, _, _ in _State.patched):
            continue
        try:
            wrapper = make_wrapper(module)
            wrapt.wrap_function_wrapper(cls, "send", wrapper)
            _State.patched.append((cls, name, wrapper))
        except Exception as exc:  # noqa: BLE001
            _internal_error(f"wrap {name}.{cls_name}.send", exc)


def _telemetry() -> Any:
    """The current telemetry when this request should be looked at, else None."""
    get = _State.get_telemetry
    if get is None or not _State.active or _in_llm_call.get():
        return None
    try:
        tel = get()
        if tel is None or not is_instrumentation_enabled():
            return None
        return tel
    except Exception as exc:  # noqa: BLE001
        _internal_error("get_telemetry", exc)
        return None


# --- classification -------------------------------------------------------------------------
_GENAI_PATH_SUFFIXES = ("/completions", "/completions/")  # also matches /chat/completions


def _is_genai_request(method: str, path: str) -> bool:
    """A GenAI request: a POST whose path ends in ``/chat/completions`` or ``/completions``."""
    return method == "POST" and path.endswith(_GENAI_PATH_SUFFIXES)


class _Endpoint:
    """The configured judge endpoint rule: judge request, other GenAI request, or neither.

    Only used when no judge evaluation or executor run decides (see :func:`_classify`).
    """

    __slots__ = ("ports", "hosts", "prefixes", "provider", "model")

    def __init__(self, judge: Any) -> None:
        self.ports = frozenset(int(p) for p in (getattr(judge, "ports", None) or ()))
        self.hosts = frozenset(str(h).lower().strip("[]") for h in (getattr(judge, "hosts", None) or ()))
        prefixes = getattr(judge, "path_prefixes", None) or ()
        self.prefixes = tuple(p if p.startswith("/") else "/" + p for p in map(str, prefixes))
        self.provider = str(getattr(judge, "provider", None) or "vllm")
        self.model = getattr(judge, "model", None)

    def role(self, method: str, host: str, port: int | None, path: str) -> str | None:
        """``judge``, ``executor`` (any other GenAI POST) or None, by method, host, port and path."""
        if method != "POST":
            return None
        if (port in self.ports or host in self.hosts) and path.startswith(self.prefixes):
            return ROLE_JUDGE
        if path.endswith(_GENAI_PATH_SUFFIXES):
            return ROLE_EXECUTOR
        return None

    def provider_for(self, role: str, host: str) -> str:
        """``gen_ai.provider.name``: the judge's configured provider, else guessed from the host."""
        if role == ROLE_JUDGE:
            return self.provider
        for suffix, name in _PROVIDER_BY_HOST_SUFFIX:
            if host == suffix or host.endswith("." + suffix):
                return name
        return self.provider


class _Who(NamedTuple):
    """Who makes a request: its role and the open call it belongs to."""

    role: str  # ROLE_JUDGE | ROLE_EXECUTOR
    judge_state: Any  # the JudgeEvaluationState its attempts go to, if any
    executor_run: Any  # the ExecutorRunState of an executor LLM request, else None
    genai: bool  # a GenAI request (its reply is read as an OpenAI chat/completions reply)


def _classify(endpoint: _Endpoint, method: str, host: str, port: int | None, path: str) -> _Who | None:
    """The innermost open call decides; without one (or for a non-GenAI request inside an
    executor run) the configured judge endpoint rule does. None: not an LLM request."""
    genai_path = _is_genai_request(method, path)
    call = innermost_call()
    if call is not None:
        kind, state = call
        if kind == CALL_JUDGE:  # any request, any method, host, port or path
            return _Who(ROLE_JUDGE, state, None, genai_path or endpoint.role(method, host, port, path) is not None)
        if kind == CALL_EXECUTOR and genai_path:  # never a judge request, even on the judge's port
            return _Who(ROLE_EXECUTOR, None, state, True)
    role = endpoint.role(method, host, port, path)
    if role is None:
        return None
    judge_state = current_judge_evaluation() if role == ROLE_JUDGE else None
    return _Who(role, judge_state, None, True)


def _endpoint(tel: Any) -> _Endpoint:
    judge = tel.config.judge
    cached = _State.endpoint
    if cached is not None and cached[0] is judge:
        return cached[1]
    endpoint = _Endpoint(judge)
    _State.endpoint = (judge, endpoint)
    return endpoint


def _default_port(scheme: str) -> int | None:
    return {"https": 443, "http": 80}.get(scheme.lower())


# --- one LLM request ------------------------------------------------------------------------
class _Call:
    """One LLM HTTP request: its span, its metrics and, for the judge, its accounting."""

    __slots__ = ("tel", "role", "span", "started", "metric_attrs", "judge_state", "source",
                 "capture", "buffer", "size", "overflow", "done", "lock", "content_type",
                 "encoding", "status", "executor_run", "genai")

    def __init__(self, tel: Any, who: _Who, span: Any, metric_attrs: dict[str, Any],
                 source: str, capture: bool) -> None:
        self.tel = tel
        self.role = who.role
        self.span = span
        self.metric_attrs = metric_attrs
        self.judge_state = who.judge_state
        self.executor_run = who.executor_run
        self.genai = who.genai
        self.source = source
        self.capture = capture
        self.buffer: list[bytes] = []
        self.size = 0
        self.overflow = False
        self.done = False
        self.lock = threading.Lock()
        self.content_type = ""
        self.encoding = ""
        self.status: int | None = None
        self.started = time.perf_counter()

    # -- observing a streamed body --------------------------------------------------------
    def feed(self, chunk: Any) -> None:
        try:
            if self.overflow or not chunk:
                return
            data = bytes(chunk) if not isinstance(chunk, bytes) else chunk
            self.size += len(data)
            if self.size > _MAX_OBSERVED_BODY:
                self.overflow = True
                self.buffer = []
            else:
                self.buffer.append(data)
        except Exception as exc:  # noqa: BLE001
            _internal_error("feed", exc)

    def finish_stream(self) -> None:
        """The observed stream was exhausted or closed: parse what flowed and finish."""
        if self.done:
            return
        try:
            body = None if self.overflow else b"".join(self.buffer)
            self.buffer = []
            reply = None if body is None else _parse_reply(body, self.content_type, self.encoding)
            undecodable = reply is None and self.encoding.strip().lower() not in _DECODABLE
            self.finish(self.status, reply, unknown_body=self.overflow or undecodable)
        except Exception as exc:  # noqa: BLE001
            _internal_error("finish stream", exc)

    # -- ending ----------------------------------------------------------------------------
    def fail(self, exc: BaseException) -> None:
        """The request (or reading its body) raised ``exc``."""
        try:
            self.finish(self.status, None, exc=exc)
        except Exception as inner:  # noqa: BLE001
            _internal_error("fail", inner)

    def finish(self, status: int | None, reply: _Reply | None, *, exc: BaseException | None = None,
               unknown_body: bool = False) -> None:
        with self.lock:
            if self.done:
                return
            self.done = True
        duration = time.perf_counter() - self.started
        error_type = self._error_type(status, reply, exc, unknown_body)
        content = reply.content() if reply is not None else None
        finish_reason = reply.finish_reason() if reply is not None else None
        tokens_in = reply.input_tokens if reply is not None else None
        tokens_out = reply.output_tokens if reply is not None else None

        if self.role == ROLE_JUDGE and self.judge_state is not None:
            try:
                self.judge_state.attempts.append(
                    JudgeAttempt(error_type=error_type, status_code=status, content=content,
                                 finish_reason=finish_reason))
            except Exception as inner:  # noqa: BLE001
                _internal_error("judge attempt", inner)
        try:
            self._end_span(status, reply, exc, error_type)
        except Exception as inner:  # noqa: BLE001
            _internal_error("span", inner)
        try:
            self._record_metrics(duration, reply, error_type, tokens_in, tokens_out)
        except Exception as inner:  # noqa: BLE001
            _internal_error("metrics", inner)
        if self.role == ROLE_JUDGE:
            try:
                self.tel.recorder.record_judge_request(
                    error_type=error_type, input_tokens=tokens_in, output_tokens=tokens_out,
                    source=self.source)
            except Exception as inner:  # noqa: BLE001
                _internal_error("judge request", inner)
        elif self.executor_run is not None:
            try:
                self.tel.recorder.record_executor_llm_request(error_type=error_type, source=self.source)
            except Exception as inner:  # noqa: BLE001
                _internal_error("executor LLM request", inner)

    def _error_type(self, status: int | None, reply: _Reply | None, exc: BaseException | None,
                    unknown_body: bool) -> str | None:
        if exc is not None:
            return classify_exception(exc)
        if status is not None and status >= 400:
            return semconv.ERROR_HTTP_STATUS
        if self.role != ROLE_JUDGE or not self.genai or unknown_body:
            return None
        if reply is None or not reply.parsed:
            return semconv.ERROR_OTHER
        return None if reply.content() else semconv.ERROR_EMPTY_CONTENT

    def _end_span(self, status: int | None, reply: _Reply | None, exc: BaseException | None,
                  error_type: str | None) -> None:
        span = self.span
        if status is not None:
            span.set_attribute(semconv.HTTP_RESPONSE_STATUS_CODE, status)
        if reply is not None:
            if reply.model:
                span.set_attribute(semconv.GEN_AI_RESPONSE_MODEL, reply.model)
            if reply.id:
                span.set_attribute(semconv.GEN_AI_RESPONSE_ID, reply.id)
            reasons = reply.finish_reasons()
            if reasons:
                span.set_attribute(semconv.GEN_AI_RESPONSE_FINISH_REASONS, reasons)
            if reply.input_tokens is not None:
                span.set_attribute(semconv.GEN_AI_USAGE_INPUT_TOKENS, reply.input_tokens)
            if reply.output_tokens is not None:
                span.set_attribute(semconv.GEN_AI_USAGE_OUTPUT_TOKENS, reply.output_tokens)
            if self.capture and reply.choices:
                span.set_attribute(GEN_AI_OUTPUT_MESSAGES, _output_json(reply))
        if error_type:
            span.set_attribute(semconv.ATTR_ERROR_TYPE, error_type)
            if exc is not None:
                span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, type(exc).__qualname__ if exc is not None
                                   else error_type))
        span.end()

    def _record_metrics(self, duration: float, reply: _Reply | None, error_type: str | None,
                        tokens_in: int | None, tokens_out: int | None) -> None:
        attrs = self.metric_attrs
        if reply is not None and reply.model:
            attrs = {**attrs, semconv.GEN_AI_RESPONSE_MODEL: reply.model}
        if error_type:
            attrs = {**attrs, semconv.ATTR_ERROR_TYPE: error_type}
        recorder = self.tel.recorder
        recorder.genai_duration.record(duration, attrs)
        if tokens_in is not None:
            recorder.genai_tokens.record(tokens_in, {**attrs, semconv.GEN_AI_TOKEN_TYPE: "input"})
        if tokens_out is not None:
            recorder.genai_tokens.record(tokens_out, {**attrs, semconv.GEN_AI_TOKEN_TYPE: "output"})


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def _operation(path: str, request: dict[str, Any]) -> str:
    """``chat`` or ``text_completion`` from the path and the request body (default ``chat``)."""
    stripped = path.rstrip("/")
    if stripped.endswith("/chat/completions") or "messages" in request:
        return _OP_CHAT
    if stripped.endswith("/completions") or "prompt" in request:
        return _OP_TEXT_COMPLETION
    return _OP_CHAT


def _begin(tel: Any, method: str, scheme: str, host: str, port: int | None, path: str,
           body_of: Callable[[], Any]) -> _Call | None:
    """Start a :class:`_Call` for an LLM request, or None for anything else."""
    endpoint = _endpoint(tel)
    host = (host or "").lower()
    if port is None:
        port = _default_port(scheme)
    path = path or "/"
    who = _classify(endpoint, (method or "GET").upper(), host, port, path)
    if who is None:
        return None
    role = who.role
    request: Any = None
    raw = body_of()
    if raw:
        try:
            request = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            request = None
    if not isinstance(request, dict):
        request = {}
    operation = _operation(path, request)
    if role == ROLE_JUDGE and not who.genai and ("messages" in request or "prompt" in request):
        who = who._replace(genai=True)  # an OpenAI-style body at a path of its own
    model = request.get("model")
    if not isinstance(model, str) or not model:
        model = endpoint.model if role == ROLE_JUDGE else None
    provider = endpoint.provider_for(role, host)

    judge_state, run = who.judge_state, who.executor_run
    recorder = tel.recorder
    if run is not None:  # the executor run's sample
        source, ptype = run.source, run.problem_type
    elif current_sample() is None and judge_state is not None:
        source, ptype = judge_state.source, judge_state.problem_type
    else:
        source, ptype = recorder.resolve_labels()
    split = recorder.current_split()

    metric_attrs: dict[str, Any] = {
        semconv.GEN_AI_OPERATION_NAME: operation,
        semconv.GEN_AI_PROVIDER_NAME: provider,
        semconv.SERVER_ADDRESS: host,
        semconv.ATTR_LLM_ROLE: role,
        semconv.ATTR_SOURCE: source,
        semconv.ATTR_SPLIT: split,
    }
    if port is not None:
        metric_attrs[semconv.SERVER_PORT] = port
    if model:
        metric_attrs[semconv.GEN_AI_REQUEST_MODEL] = model
    span_attrs = dict(metric_attrs)
    span_attrs[semconv.ATTR_PROBLEM_TYPE] = ptype
    temperature = _number(request.get("temperature"))
    if temperature is not None:
        span_attrs[semconv.GEN_AI_REQUEST_TEMPERATURE] = temperature
    max_tokens = request.get("max_completion_tokens", request.get("max_tokens"))
    if isinstance(max_tokens, int) and not isinstance(max_tokens, bool):
        span_attrs[semconv.GEN_AI_REQUEST_MAX_TOKENS] = max_tokens
    capture = bool(getattr(tel.config.judge, "capture_content", False))
    if capture:
        messages = _messages_json(request.get("messages"))
        if messages is None and isinstance(request.get("prompt"), str):
            messages = json.dumps([{"role": "user", "parts": [
                {"type": "text", "content": request["prompt"]}]}], ensure_ascii=False)
        if messages is not None:
            span_attrs[GEN_AI_INPUT_MESSAGES] = messages
    name = f"{operation} {model}" if model else operation
    if getattr(tel, "tracing", True):
        span = tel.tracer.start_span(name, kind=SpanKind.CLIENT, attributes=span_attrs)
    else:  # no tracer provider: skip span creation altogether
        span = trace.INVALID_SPAN
    return _Call(tel, who, span, metric_attrs, source, capture)


def _safe_begin(tel: Any, describe: Callable[[], tuple], body_of: Callable[[], Any]) -> _Call | None:
    try:
        method, scheme, host, port, path = describe()
        return _begin(tel, method, scheme, host, port, path, body_of)
    except Exception as exc:  # noqa: BLE001
        _internal_error("request", exc)
        return None


# --- httpx / httpx2 -------------------------------------------------------------------------
_stream_classes: dict[tuple[type, bool], type] = {}


def _observed_stream_class(base: type, is_async: bool) -> type:
    """A subclass of the library's byte-stream base that reports bytes to a :class:`_Call`."""
    key = (base, is_async)
    cls = _stream_classes.get(key)
    if cls is None:
        mixin = _AsyncObservedStream if is_async else _SyncObservedStream
        cls = type(f"OtelGrpo{mixin.__name__.lstrip('_')}", (mixin, base), {})
        _stream_classes[key] = cls
    return cls


class _ObservedStreamBase:
    """Delegates unknown attributes (e.g. ``elapsed``) to the wrapped stream."""

    def __init__(self, inner: Any, call: _Call) -> None:
        self._otel_inner = inner
        self._otel_call = call

    def __getattr__(self, name: str) -> Any:
        inner = self.__dict__.get("_otel_inner")
        if inner is None:
            raise AttributeError(name)
        return getattr(inner, name)


class _SyncObservedStream(_ObservedStreamBase):
    def __iter__(self) -> Any:
        call = self._otel_call
        try:
            for chunk in self._otel_inner:
                call.feed(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            call.fail(exc)
            raise
        call.finish_stream()

    def close(self) -> None:
        try:
            self._otel_inner.close()
        except BaseException as exc:
            self._otel_call.fail(exc)
            raise
        self._otel_call.finish_stream()


class _AsyncObservedStream(_ObservedStreamBase):
    async def __aiter__(self) -> Any:
        call = self._otel_call
        try:
            async for chunk in self._otel_inner:
                call.feed(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            call.fail(exc)
            raise
        call.finish_stream()

    async def aclose(self) -> None:
        try:
            await self._otel_inner.aclose()
        except BaseException as exc:
            self._otel_call.fail(exc)
            raise
        self._otel_call.finish_stream()


def _httpx_request(args: tuple, kwargs: dict) -> Any:
    return args[0] if args else kwargs.get("request")


def _httpx_describe(request: Any) -> Callable[[], tuple]:
    def describe() -> tuple:
        url = request.url
        return request.method, url.scheme, url.host, url.port, url.path
    return describe


def _httpx_body(request: Any) -> Callable[[], Any]:
    def body() -> Any:
        try:
            return request.content
        except Exception:  # noqa: BLE001 - a streaming request body: not ours to read
            return None
    return body


def _httpx_observe(call: _Call, response: Any, module: Any, is_async: bool) -> None:
    """Finish now if the body was read by ``send``; else watch the caller read it."""
    try:
        call.status = int(response.status_code)
        headers = response.headers
        call.content_type = headers.get("content-type", "") or ""
        try:
            body = response.content  # raises ResponseNotRead while the body is unread
        except Exception:  # noqa: BLE001
            body = None
        if body is not None:
            call.finish(call.status, _parse_reply(body, call.content_type, ""))
            return
        call.encoding = headers.get("content-encoding", "") or ""
        base = getattr(module, "AsyncByteStream" if is_async else "SyncByteStream", None)
        stream = response.stream
        if response.is_closed or base is None or not isinstance(stream, base):
            call.finish(call.status, None, unknown_body=True)
            return
        response.stream = _observed_stream_class(base, is_async)(stream, call)
    except Exception as exc:  # noqa: BLE001
        _internal_error("response", exc)
        call.finish(call.status, None, unknown_body=True)


@contextlib.contextmanager
def _in_flight(call: _Call) -> Iterator[None]:
    """While a request is sent: its span is current, nested sends are not re-counted, failures recorded."""
    guard = _in_llm_call.set(True)
    ctx = otel_context.attach(trace.set_span_in_context(call.span))
    try:
        yield
    except BaseException as exc:
        call.fail(exc)
        raise
    finally:
        otel_context.detach(ctx)
        _in_llm_call.reset(guard)


def _make_httpx_sync(module: Any) -> Callable:
    def send_wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
        tel = _telemetry()
        if tel is None:
            return wrapped(*args, **kwargs)
        request = _httpx_request(args, kwargs)
        call = _safe_begin(tel, _httpx_describe(request), _httpx_body(request))
        if call is None:
            return wrapped(*args, **kwargs)
        with _in_flight(call):
            response = wrapped(*args, **kwargs)
        _httpx_observe(call, response, module, is_async=False)
        return response
    return send_wrapper


def _make_httpx_async(module: Any) -> Callable:
    async def send_wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
        tel = _telemetry()
        if tel is None:
            return await wrapped(*args, **kwargs)
        request = _httpx_request(args, kwargs)
        call = _safe_begin(tel, _httpx_describe(request), _httpx_body(request))
        if call is None:
            return await wrapped(*args, **kwargs)
        with _in_flight(call):
            response = await wrapped(*args, **kwargs)
        _httpx_observe(call, response, module, is_async=True)
        return response
    return send_wrapper


# --- requests ------------------------------------------------------------------------------
class _ObservedRaw(wrapt.ObjectProxy):
    """A urllib3 response proxy reporting the bytes ``requests`` reads to a :class:`_Call`."""

    def __init__(self, raw: Any, call: _Call) -> None:
        super().__init__(raw)
        self._self_call = call

    def stream(self, *args: Any, **kwargs: Any) -> Any:
        call = self._self_call
        try:
            for chunk in self.__wrapped__.stream(*args, **kwargs):
                call.feed(chunk)
                yield chunk
        except GeneratorExit:
            raise
        except BaseException as exc:
            call.fail(exc)
            raise
        call.finish_stream()

    def read(self, *args: Any, **kwargs: Any) -> Any:
        call = self._self_call
        try:
            data = self.__wrapped__.read(*args, **kwargs)
        except BaseException as exc:
            call.fail(exc)
            raise
        call.feed(data)
        amt = args[0] if args else kwargs.get("amt")
        if not data or amt is None:
            call.finish_stream()
        return data

    def close(self) -> Any:
        try:
            return self.__wrapped__.close()
        finally:
            self._self_call.finish_stream()


def _requests_describe(request: Any) -> Callable[[], tuple]:
    def describe() -> tuple:
        parts = urlsplit(request.url)
        return request.method or "GET", parts.scheme, parts.hostname or "", parts.port, parts.path
    return describe


def _requests_body(request: Any) -> Callable[[], Any]:
    def body() -> Any:
        data = request.body
        return data if isinstance(data, (bytes, str)) else None
    return body


def _requests_observe(call: _Call, response: Any) -> None:
    try:
        call.status = int(response.status_code)
        headers = response.headers
        call.content_type = headers.get("content-type", "") or ""
        body = getattr(response, "_content", False)
        if body is not False:  # read by send (stream=False): bytes, or None without a body
            call.finish(call.status, _parse_reply(body, call.content_type, ""))
            return
        raw = response.raw
        if raw is None:
            call.finish(call.status, None, unknown_body=True)
            return
        call.encoding = headers.get("content-encoding", "") or ""
        response.raw = _ObservedRaw(raw, call)
    except Exception as exc:  # noqa: BLE001
        _internal_error("response", exc)
        call.finish(call.status, None, unknown_body=True)


def _make_requests(module: Any) -> Callable:
    def send_wrapper(wrapped: Callable, instance: Any, args: tuple, kwargs: dict) -> Any:
        tel = _telemetry()
        if tel is None:
            return wrapped(*args, **kwargs)
        request = args[0] if args else kwargs.get("request")
        call = _safe_begin(tel, _requests_describe(request), _requests_body(request))
        if call is None:
            return wrapped(*args, **kwargs)
        with _in_flight(call):
            response = wrapped(*args, **kwargs)
        _requests_observe(call, response)
        return response
    return send_wrapper


_TARGETS: dict[str, tuple[tuple[str, Callable[[Any], Callable]], ...]] = {
    "httpx": (("Client", _make_httpx_sync), ("AsyncClient", _make_httpx_async)),
    "httpx2": (("Client", _make_httpx_sync), ("AsyncClient", _make_httpx_async)),
    "requests": (("Session", _make_requests),),
}
