"""Which requests are LLM requests, and whose: the innermost open call first, then the judge endpoint rule.

Per request, **the innermost open call decides**
(:func:`otel_grpo.recording.context.innermost_call`, set by the judge and executor
wrappers), not the endpoint:

* inside a **judge evaluation**, *any* HTTP request, whatever its method, host, port or
  path, is a judge request;
* inside a **reward call** (:data:`CALL_REWARD`: a reward function that is a judge only if it
  asks one, e.g. a TRL reward function), a GenAI request or one the judge endpoint rule
  matches is a judge request of that call; any other request is not an LLM request;
* otherwise, inside an **executor run**, a GenAI request (a POST whose path ends in
  ``/chat/completions`` or ``/completions``) is an executor LLM request, never a judge
  request, even when it goes to the judge's own server and port;
* anything else is classified by the configured **judge endpoint** (:class:`JudgeEndpoint`):
  a POST to one of ``judge.ports`` (or ``judge.hosts``) under one of
  ``judge.path_prefixes`` is a judge request (attached to a judge evaluation if one is
  open); any other GenAI POST gets ``grpo.llm.role=executor`` but belongs to no run;
* everything else is not an LLM request.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from opentelemetry.semconv._incubating.attributes.gen_ai_attributes import GenAiProviderNameValues as _Provider

from otel_grpo.recording.context import (
    CALL_EXECUTOR,
    CALL_JUDGE,
    JudgeEvaluationState,
    SampleState,
    current_judge_evaluation,
    innermost_call,
)

if TYPE_CHECKING:
    from otel_grpo.config import JudgeConfig

ROLE_JUDGE = "judge"
"""``grpo.llm.role`` of a judge request."""
ROLE_EXECUTOR = "executor"
"""``grpo.llm.role`` of any other LLM request (the executor's operator LLM calls)."""
CALL_REWARD = "reward"
"""Innermost-call kind of a reward call that may be a judge: its GenAI and judge-endpoint requests are."""

_GENAI_PATH_SUFFIXES = ("/completions", "/completions/")  # also matches /chat/completions

# gen_ai.provider.name by host suffix for executor calls; anything else (a local
# OpenAI-compatible server) gets the judge's configured provider.
_PROVIDER_BY_HOST_SUFFIX = (
    ("openai.azure.com", _Provider.AZURE_AI_OPENAI.value),
    ("openai.com", _Provider.OPENAI.value),
    ("anthropic.com", _Provider.ANTHROPIC.value),
    ("deepseek.com", _Provider.DEEPSEEK.value),
    ("mistral.ai", _Provider.MISTRAL_AI.value),
    ("groq.com", _Provider.GROQ.value),
    ("x.ai", _Provider.X_AI.value),
    ("googleapis.com", _Provider.GCP_GEMINI.value),
)


def is_genai_request(method: str, path: str) -> bool:
    """A GenAI request: a POST whose path ends in ``/chat/completions`` or ``/completions``."""
    return method == "POST" and path.endswith(_GENAI_PATH_SUFFIXES)


class JudgeEndpoint:
    """The configured judge endpoint rule: judge request, other GenAI request, or neither.

    Only used when no judge evaluation or executor run decides (see :func:`classify_request`).
    """

    __slots__ = ("ports", "hosts", "prefixes", "provider", "model")

    def __init__(self, judge: JudgeConfig) -> None:
        self.ports = frozenset(int(p) for p in judge.ports)
        self.hosts = frozenset(str(h).lower().strip("[]") for h in judge.hosts)
        self.prefixes = tuple(p if p.startswith("/") else "/" + p for p in map(str, judge.path_prefixes))
        self.provider = str(judge.provider)
        self.model: str | None = judge.model

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


_endpoint_cache: tuple[JudgeConfig, JudgeEndpoint] | None = None


def judge_endpoint(judge: JudgeConfig) -> JudgeEndpoint:
    """The :class:`JudgeEndpoint` of a judge config section, built once per section object."""
    global _endpoint_cache
    cached = _endpoint_cache
    if cached is not None and cached[0] is judge:
        return cached[1]
    endpoint = JudgeEndpoint(judge)
    _endpoint_cache = (judge, endpoint)
    return endpoint


class RequestRole(NamedTuple):
    """Who makes a request: its role and the open call it belongs to."""

    role: str
    """:data:`ROLE_JUDGE` or :data:`ROLE_EXECUTOR`."""
    judge_state: JudgeEvaluationState | None
    """The judge evaluation its attempt is appended to, if any."""
    executor_run: SampleState | None
    """The executor run of an executor LLM request, else None."""
    genai: bool
    """A GenAI request: its reply is read as an OpenAI chat/completions reply."""


def classify_request(
    endpoint: JudgeEndpoint, method: str, host: str, port: int | None, path: str
) -> RequestRole | None:
    """The role of a request (see the module docstring); None when it is not an LLM request."""
    genai_path = is_genai_request(method, path)
    call = innermost_call()
    if call is not None:
        kind, state = call
        if kind == CALL_JUDGE:  # any request, any method, host, port or path
            return RequestRole(
                ROLE_JUDGE, state, None, genai_path or endpoint.role(method, host, port, path) is not None
            )
        if kind == CALL_EXECUTOR and genai_path:  # never a judge request, even on the judge's port
            return RequestRole(ROLE_EXECUTOR, None, state, True)
        if kind == CALL_REWARD:  # a judge only when it asks one
            asks_judge = genai_path or endpoint.role(method, host, port, path) == ROLE_JUDGE
            return RequestRole(ROLE_JUDGE, state, None, True) if asks_judge else None
    role = endpoint.role(method, host, port, path)
    if role is None:
        return None
    judge_state = current_judge_evaluation() if role == ROLE_JUDGE else None
    return RequestRole(role, judge_state, None, True)
