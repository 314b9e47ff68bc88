"""The one reply parser: an OpenAI-compatible chat/completions reply (JSON or SSE) read for telemetry.

Pure functions: bytes in, a :class:`Reply` out (model, id, choices with content and
finish reasons, token usage); and the opt-in ``gen_ai.input.messages`` /
``gen_ai.output.messages`` JSON of a request body and of a reply. Nothing here touches
the network: :mod:`~otel_grpo.instrumentation.llm_http.observer` hands over the bytes
that flowed to the caller.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

DECODABLE_ENCODINGS = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})
"""``Content-Encoding`` values whose observed bytes :func:`parse_reply` can read."""


class Choice:
    """One choice of a reply: its text and reasoning, in the pieces they arrived in, and why it ended."""

    __slots__ = ("text", "reasoning", "finish_reason")

    def __init__(self) -> None:
        self.text: list[str] = []
        self.reasoning: list[str] = []
        self.finish_reason: str | None = None

    def add(self, text: Any, reasoning: Any, finish_reason: Any) -> None:
        """Append a (possibly partial) message or delta to this choice."""
        if isinstance(text, str) and text:
            self.text.append(text)
        if isinstance(reasoning, str) and reasoning:
            self.reasoning.append(reasoning)
        if finish_reason is not None:
            self.finish_reason = finish_reason


class Reply:
    """What was read from a chat/completions reply (JSON or SSE)."""

    __slots__ = ("id", "model", "choices", "input_tokens", "output_tokens", "parsed")

    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.choices: dict[int, Choice] = {}
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.parsed = False  # a ``choices`` list (JSON) or at least one data chunk (SSE) was read

    def choice(self, index: Any) -> Choice:
        """The choice at ``index`` (0 when the index is missing or not an int), created on first use."""
        key = index if isinstance(index, int) else 0
        entry = self.choices.get(key)
        if entry is None:
            entry = self.choices[key] = Choice()
        return entry

    def read_header(self, body: dict[str, Any]) -> None:
        """Take ``id``, ``model`` and ``usage`` from a reply body or stream chunk (first id/model wins)."""
        if self.id is None and isinstance(body.get("id"), str):
            self.id = body["id"]
        if self.model is None and isinstance(body.get("model"), str):
            self.model = body["model"]
        usage = body.get("usage")
        if isinstance(usage, dict):
            tokens_in = usage.get("prompt_tokens", usage.get("input_tokens"))
            tokens_out = usage.get("completion_tokens", usage.get("output_tokens"))
            if isinstance(tokens_in, int):
                self.input_tokens = tokens_in
            if isinstance(tokens_out, int):
                self.output_tokens = tokens_out

    def content(self, index: int = 0) -> str | None:
        """The text of choice ``index``, or None when it has none."""
        entry = self.choices.get(index)
        if entry is None or not entry.text:
            return None
        return "".join(entry.text)

    def finish_reason(self, index: int = 0) -> str | None:
        """Why choice ``index`` ended (``stop``, ``length``...), if the reply said."""
        entry = self.choices.get(index)
        return entry.finish_reason if entry is not None else None

    def finish_reasons(self) -> list[str]:
        """``gen_ai.response.finish_reasons``: the finish reason of every choice that has one, by index."""
        return [
            str(self.choices[i].finish_reason)
            for i in sorted(self.choices)
            if self.choices[i].finish_reason is not None
        ]


def _read_choices(reply: Reply, choices: Any, message_key: str) -> None:
    """Add ``choices`` (a list of full messages or of stream deltas, under ``message_key``) to ``reply``."""
    if not isinstance(choices, list):
        return
    for position, choice in enumerate(choices):
        if not isinstance(choice, dict):
            continue
        message = choice.get(message_key)
        if isinstance(message, dict):
            text = message.get("content")
            reasoning = message.get("reasoning_content") or message.get("reasoning")
        else:  # text completion
            text, reasoning = choice.get("text"), None
        reply.choice(choice.get("index", position)).add(text, reasoning, choice.get("finish_reason"))


def _parse_json_reply(data: Any) -> Reply | None:
    if not isinstance(data, dict):
        return None
    reply = Reply()
    reply.read_header(data)
    choices = data.get("choices")
    _read_choices(reply, choices, "message")
    reply.parsed = isinstance(choices, list)
    return reply


def _parse_sse_reply(text: str) -> Reply | None:
    reply = Reply()
    seen = False
    for line in text.splitlines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if not payload or payload == "[DONE]":
            continue
        try:
            chunk = json.loads(payload)
        except ValueError:
            continue
        if not isinstance(chunk, dict):
            continue
        seen = True
        reply.read_header(chunk)
        _read_choices(reply, chunk.get("choices"), "delta")
    reply.parsed = seen
    return reply if seen else None


def _decode_body(body: bytes, encoding: str) -> bytes:
    """Undo a gzip/deflate content encoding when the observed bytes are still encoded."""
    encoding = encoding.strip().lower()
    if encoding in ("gzip", "x-gzip", "deflate"):
        try:
            return zlib.decompressobj(zlib.MAX_WBITS | 32).decompress(body)
        except zlib.error:
            try:
                return zlib.decompress(body, -zlib.MAX_WBITS)
            except zlib.error:
                return body  # already decoded
    return body


def parse_reply(body: bytes | None, content_type: str, encoding: str) -> Reply | None:
    """Read a chat/completions reply body (SSE when the content type or the text says so, else JSON).

    ``encoding`` is the ``Content-Encoding`` of bytes observed before the client decoded
    them ("" for a body the client already decoded). None: no body, or not a reply.
    """
    if not body:
        return None
    if encoding:
        body = _decode_body(body, encoding)
    text = body.decode("utf-8", "replace")
    if "event-stream" in content_type or text.lstrip().startswith("data:"):
        return _parse_sse_reply(text)
    try:
        return _parse_json_reply(json.loads(text))
    except ValueError:
        return None


def _text_parts(content: Any) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "content": content}]
    if isinstance(content, list):
        return [
            {"type": "text", "content": part["text"]}
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        ]
    return []


def input_messages_json(request: dict[str, Any]) -> str | None:
    """``gen_ai.input.messages`` from an OpenAI request body (its ``messages``, else its ``prompt``)."""
    messages = request.get("messages")
    if isinstance(messages, list):
        out = [
            {"role": str(message.get("role") or "user"), "parts": _text_parts(message.get("content"))}
            for message in messages
            if isinstance(message, dict)
        ]
        return json.dumps(out, ensure_ascii=False)
    prompt = request.get("prompt")
    if isinstance(prompt, str):
        return json.dumps([{"role": "user", "parts": _text_parts(prompt)}], ensure_ascii=False)
    return None


def output_messages_json(reply: Reply) -> str:
    """``gen_ai.output.messages`` from a reply: one assistant message per choice, by index."""
    out = []
    for index in sorted(reply.choices):
        choice = reply.choices[index]
        parts: list[dict[str, Any]] = []
        if choice.reasoning:
            parts.append({"type": "reasoning", "content": "".join(choice.reasoning)})
        if choice.text:
            parts.append({"type": "text", "content": "".join(choice.text)})
        out.append({"role": "assistant", "parts": parts, "finish_reason": choice.finish_reason or "error"})
    return json.dumps(out, ensure_ascii=False)
