"""GenAI client spans and metrics for LLM HTTP requests; judge requests counted one by one.

Every HTTP request an LLM client sends passes through one of a few transport-level
``send`` methods: ``httpx.Client.send`` / ``httpx.AsyncClient.send``, the same two in
``httpx2`` (what ``openai`` 3.x is built on), and ``requests.Session.send``. Wrapping
those sees **every HTTP attempt**, including the retries the OpenAI client makes by
itself (``max_retries=2``). That is what docs/terms.md calls a *judge request*; an
instrumentation of ``Completions.create`` (such as ``opentelemetry-instrumentation-openai-v2``)
sees one call per logical operation and cannot count them.

The path of one request through the modules of this package:

``instrumentor``
    :class:`LLMHTTPInstrumentor`, the ``BaseInstrumentor``: wraps and unwraps ``send``
    (``wrapt`` + ``unwrap``, post-import hooks for modules imported later); the libraries
    are declared in ``package``.
``transport``
    The ``send`` wrappers, one per client library: describe the request, send it with
    its span current, hand the response over.
``request``
    Is it an LLM request (``classify``: the innermost open call decides, then the judge
    endpoint rule), and what its span and metric attributes are; starts the call.
``call``
    :class:`~otel_grpo.instrumentation.llm_http.call.LLMCall`, the typed lifecycle:
    start, then stop or fail exactly once; span, ``gen_ai.client.*`` metrics, the judge
    attempt and the judge / executor LLM request in the recorder.
``observer``
    The one stream observer: an unread body is observed as the caller reads it (never
    read by us) and the call stops when the stream ends.
``reply``
    The one reply parser: JSON or SSE chat/completions replies, and the opt-in message
    JSON of the GenAI conventions.
``errors``
    ``error.type`` of a request (``timeout``, ``connection``, ``http_status``,
    ``empty_content``, ``_OTHER``) and the fault kind of our own errors.

Inside a **judge evaluation** any HTTP request is a judge request (a child span of
``grpo.judge.evaluate``, ``grpo.llm.role=judge``, one
:meth:`~otel_grpo.recording.recorder.Recorder.record_judge_request` and one
:class:`~otel_grpo.recording.context.JudgeAttempt`); inside an **executor run** a GenAI
request is an executor LLM request (``grpo.llm.role=executor``, one
:meth:`~otel_grpo.recording.recorder.Recorder.record_executor_llm_request`), never a
judge request; anything else is classified by the configured judge endpoint, and
everything else passes through untouched (as does everything when otel-grpo is not set
up: one ``get_telemetry()`` call).

Transparency: ``send`` is called with the caller's arguments, its response is returned
as is and its exception re-raised as the same object. Message content goes on spans
only when ``judge.capture_content`` is true
(``OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT``), as the opt-in
``gen_ai.input.messages`` / ``gen_ai.output.messages`` attributes (JSON strings). Any
internal error is reported through :mod:`otel_grpo.faults` (logged once, counted) and
never reaches the request.
"""

from __future__ import annotations

from otel_grpo.instrumentation.llm_http.classify import ROLE_EXECUTOR, ROLE_JUDGE
from otel_grpo.instrumentation.llm_http.errors import classify_exception
from otel_grpo.instrumentation.llm_http.instrumentor import (
    LLMHTTPInstrumentor,
    instrument_http,
    is_http_instrumented,
    uninstrument_http,
)
from otel_grpo.semconv import GEN_AI_INPUT_MESSAGES, GEN_AI_OUTPUT_MESSAGES

__all__ = [
    "GEN_AI_INPUT_MESSAGES",
    "GEN_AI_OUTPUT_MESSAGES",
    "ROLE_EXECUTOR",
    "ROLE_JUDGE",
    "LLMHTTPInstrumentor",
    "classify_exception",
    "instrument_http",
    "is_http_instrumented",
    "uninstrument_http",
]
