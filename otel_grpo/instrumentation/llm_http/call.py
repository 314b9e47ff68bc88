"""One LLM HTTP request's lifecycle: start, then stop or fail, kept apart from the transport.

:class:`LLMCall` is the typed invocation object (the idea of ``TelemetryHandler`` /
``InferenceInvocation`` in ``opentelemetry-util-genai``): :meth:`LLMCall.start` opens the
GenAI client span (``chat {model}``) as the request is sent; exactly one of
:meth:`LLMCall.stop` (a reply came back, read or not) or :meth:`LLMCall.fail` (the
request or the reading of its body raised) ends it, from whichever thread gets there
first. Ending records, in this order: the :class:`~otel_grpo.recording.context.JudgeAttempt`
of the open judge evaluation, the span's response attributes and status, the
``gen_ai.client.*`` metrics, and the judge request or executor LLM request in the
recorder. It never sees bytes, responses or client libraries: the transport wrappers
and the stream observer turn those into a status and a parsed :class:`Reply`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from otel_grpo import semconv
from otel_grpo.faults import fault_guard, guarded
from otel_grpo.instrumentation.llm_http.classify import ROLE_JUDGE, RequestRole
from otel_grpo.instrumentation.llm_http.errors import FAULT_KIND, request_error_type
from otel_grpo.instrumentation.llm_http.reply import Reply, output_messages_json
from otel_grpo.recording.context import JudgeAttempt
from otel_grpo.redact import record_span_error, redact_attributes

if TYPE_CHECKING:
    from otel_grpo.api import Telemetry

Attributes = dict[str, AttributeValue]


class EndedRequest(NamedTuple):
    """What one ended LLM request recorded, for :data:`request_listeners`."""

    role: str
    error_type: str | None
    input_tokens: int | None
    output_tokens: int | None
    duration_s: float
    source: str
    metric_attrs: Attributes


request_listeners: list[Callable[[EndedRequest], None]] = []
"""Called with every LLM request as it ends, after it is recorded (e.g. to ship the judge requests
of a non-main training process to the main one, which alone writes rows)."""


class LLMCall:
    """One LLM HTTP request: its span, its metrics and its judge or executor accounting."""

    __slots__ = ("_tel", "who", "span", "_metric_attrs", "_source", "_capture", "_started", "_lock", "_ended", "url")

    def __init__(
        self,
        tel: Telemetry,
        who: RequestRole,
        span: Span,
        metric_attrs: Attributes,
        source: str,
        capture: bool,
        url: str | None = None,
    ) -> None:
        self._tel = tel
        self.url = url
        self.who = who
        self.span = span
        self._metric_attrs = metric_attrs
        self._source = source
        self._capture = capture
        self._lock = threading.Lock()
        self._ended = False
        self._started = time.perf_counter()

    @classmethod
    def start(
        cls,
        tel: Telemetry,
        who: RequestRole,
        name: str,
        span_attrs: Attributes,
        metric_attrs: Attributes,
        source: str,
        capture: bool,
        url: str | None = None,
    ) -> LLMCall:
        """Open the client span ``name`` (none without a tracer provider) and start the clock.

        ``metric_attrs`` go on every metric point; ``span_attrs`` (a superset) on the span;
        ``capture``: put the reply's messages on the span (content capture is opted in);
        ``url``: where the request went (kept on the judge attempt, redacted wherever shown).
        """
        if tel.tracing:  # attributes through the redactor; exceptions are recorded by ``fail``, redacted
            span = tel.tracer.start_span(
                name,
                kind=SpanKind.CLIENT,
                attributes=redact_attributes(span_attrs),
                record_exception=False,
                set_status_on_exception=False,
            )
        else:  # no tracer provider: skip span creation altogether
            span = trace.INVALID_SPAN
        return cls(tel, who, span, metric_attrs, source, capture, url)

    @property
    def ended(self) -> bool:
        """True once :meth:`stop` or :meth:`fail` has run."""
        return self._ended

    @guarded(FAULT_KIND)
    def stop(self, status: int | None, reply: Reply | None, *, unknown_body: bool = False) -> None:
        """A reply came back with ``status``; ``reply`` is what was read of it (None: nothing readable).

        ``unknown_body``: the body could not be observed (too large, undecodable, already
        consumed), so a judge reply without content is not counted as an error.
        """
        self._end(status, reply, None, unknown_body)

    @guarded(FAULT_KIND)
    def fail(self, exc: BaseException, status: int | None = None) -> None:
        """Sending the request, or reading its body after a reply with ``status``, raised ``exc``."""
        self._end(status, None, exc, False)

    def _end(self, status: int | None, reply: Reply | None, exc: BaseException | None, unknown_body: bool) -> None:
        with self._lock:
            if self._ended:
                return
            self._ended = True
        duration = time.perf_counter() - self._started
        who = self.who
        error_type = request_error_type(
            status, reply, exc, unknown_body=unknown_body, expects_content=who.role == ROLE_JUDGE and who.genai
        )
        tokens_in = reply.input_tokens if reply is not None else None
        tokens_out = reply.output_tokens if reply is not None else None
        if who.role == ROLE_JUDGE and who.judge_state is not None:
            with fault_guard(FAULT_KIND):
                who.judge_state.attempts.append(
                    JudgeAttempt(
                        error_type=error_type,
                        status_code=status,
                        content=reply.content() if reply is not None else None,
                        finish_reason=reply.finish_reason() if reply is not None else None,
                        url=self.url,
                    )
                )
        with fault_guard(FAULT_KIND):
            self._end_span(status, reply, exc, error_type)
        with fault_guard(FAULT_KIND):
            self._record_metrics(duration, reply, error_type, tokens_in, tokens_out)
        with fault_guard(FAULT_KIND):
            if who.role == ROLE_JUDGE:
                self._tel.recorder.record_judge_request(
                    error_type=error_type, input_tokens=tokens_in, output_tokens=tokens_out, source=self._source
                )
            elif who.executor_run is not None:
                self._tel.recorder.record_executor_llm_request(error_type=error_type, source=self._source)
        self._notify(error_type, tokens_in, tokens_out, duration)

    def _notify(self, error_type: str | None, tokens_in: int | None, tokens_out: int | None, duration: float) -> None:
        """Hand this ended request to every :data:`request_listeners` entry (none: nothing to do)."""
        if not request_listeners:
            return
        ended = EndedRequest(
            self.who.role, error_type, tokens_in, tokens_out, duration, self._source, self._metric_attrs
        )
        for listener in list(request_listeners):
            with fault_guard(FAULT_KIND):  # a listener never breaks the request
                listener(ended)

    def _end_span(
        self, status: int | None, reply: Reply | None, exc: BaseException | None, error_type: str | None
    ) -> None:
        span = self.span
        attrs: Attributes = {}
        if status is not None:
            attrs[semconv.HTTP_RESPONSE_STATUS_CODE] = status
        if reply is not None:
            if reply.model:
                attrs[semconv.GEN_AI_RESPONSE_MODEL] = reply.model
            if reply.id:
                attrs[semconv.GEN_AI_RESPONSE_ID] = reply.id
            reasons = reply.finish_reasons()
            if reasons:
                attrs[semconv.GEN_AI_RESPONSE_FINISH_REASONS] = reasons
            if reply.input_tokens is not None:
                attrs[semconv.GEN_AI_USAGE_INPUT_TOKENS] = reply.input_tokens
            if reply.output_tokens is not None:
                attrs[semconv.GEN_AI_USAGE_OUTPUT_TOKENS] = reply.output_tokens
            if self._capture and reply.choices:
                attrs[semconv.GEN_AI_OUTPUT_MESSAGES] = output_messages_json(reply)
        if error_type:
            attrs[semconv.ATTR_ERROR_TYPE] = error_type
        if attrs:
            span.set_attributes(redact_attributes(attrs))
        if exc is not None:  # the exception's text may hold the URL (query, password): redacted
            record_span_error(span, exc)
        elif error_type:
            span.set_status(Status(StatusCode.ERROR, error_type))
        span.end()

    def _record_metrics(
        self,
        duration: float,
        reply: Reply | None,
        error_type: str | None,
        tokens_in: int | None,
        tokens_out: int | None,
    ) -> None:
        attrs = self._metric_attrs
        if reply is not None and reply.model:
            attrs = {**attrs, semconv.GEN_AI_RESPONSE_MODEL: reply.model}
        if error_type:
            attrs = {**attrs, semconv.ATTR_ERROR_TYPE: error_type}
        recorder = self._tel.recorder
        recorder.genai_duration.record(duration, attrs)
        for tokens, token_type in (
            (tokens_in, semconv.GEN_AI_TOKEN_TYPE_INPUT),
            (tokens_out, semconv.GEN_AI_TOKEN_TYPE_OUTPUT),
        ):
            if tokens is not None:
                recorder.genai_tokens.record(tokens, {**attrs, semconv.GEN_AI_TOKEN_TYPE: token_type})


@guarded(FAULT_KIND)
def replay_request(tel: Telemetry, request: EndedRequest) -> None:
    """Record, in this process, a judge request another process made (split: this process's current one).

    The same figures as if it had been made here: the judge request (count, priced tokens)
    and its ``gen_ai.client.*`` duration and token usage.
    """
    if request.role != ROLE_JUDGE:
        return
    recorder = tel.recorder
    recorder.record_judge_request(
        error_type=request.error_type,
        input_tokens=request.input_tokens,
        output_tokens=request.output_tokens,
        source=request.source,
    )
    attrs = {**request.metric_attrs, semconv.ATTR_SPLIT: recorder.current_split()}
    if request.error_type:
        attrs[semconv.ATTR_ERROR_TYPE] = request.error_type
    recorder.genai_duration.record(request.duration_s, attrs)
    for tokens, token_type in (
        (request.input_tokens, semconv.GEN_AI_TOKEN_TYPE_INPUT),
        (request.output_tokens, semconv.GEN_AI_TOKEN_TYPE_OUTPUT),
    ):
        if tokens is not None:
            recorder.genai_tokens.record(tokens, {**attrs, semconv.GEN_AI_TOKEN_TYPE: token_type})
