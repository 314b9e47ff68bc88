"""Reading an OpenAI-compatible chat/completions reply (JSON or SSE) for GenAI telemetry.

Pure functions: bytes in, a :class:`_Reply` out (model, id, choices with content and
finish reasons, token usage). Used by :mod:`otel_grpo.instrumentation.llm_http` on the
bytes it observes flowing to the caller; nothing here touches the network.
"""

from __future__ import annotations

import json
import zlib
from typing import Any


class _Reply:
    """What was read from a chat/completions reply (JSON or SSE)."""

    __slots__ = ("id", "model", "choices", "input_tokens", "output_tokens", "parsed")

    def __init__(self) -> None:
        self.id: str | None = None
        self.model: str | None = None
        self.choices: dict[int, list] = {}  # index -> [content parts, reasoning parts, finish_reason]
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None
        self.parsed = False

    def choice(self, index: Any) -> list:
        key = index if isinstance(index, int) else 0
        entry = self.choices.get(key)
        if entry is None:
            entry = self.choices[key] = [[], [], None]
        return entry

    def usage(self, usage: Any) -> None:
        if isinstance(usage, dict):
            tokens_in = usage.get("prompt_tokens", usage.get("input_tokens"))
            tokens_out = usage.get("completion_tokens", usage.get("output_tokens"))
            if isinstance(tokens_in, int):
                self.input_tokens = tokens_in
            if isinstance(tokens_out, int):
                self.output_tokens = tokens_out

    def header(self, body: dict) -> None:
        if self.id is None and isinstance(body.get("id"), str):
            self.id = body["id"]
        if self.model is None and isinstance(body.get("model"), str):
            self.model = body["model"]
        if body.get("usage") is not None:
            self.usage(body.get("usage"))

    def content(self, index: int = 0) -> str | None:
        entry = self.choices.get(index)
        if entry is None or not entry[0]:
            return None
        return "".join(entry[0])

    def finish_reason(self, index: int = 0) -> str | None:
        entry = self.choices.get(index)
        return entry[2] if entry is not None else None

    def finish_reasons(self) -> list[str]:
        return [str(self.choices[i][2]) for i in sorted(self.choices) if self.choices[i][2] is not None]


def _parse_json_reply(data: Any) -> _Reply | None:
    if not isinstance(data, dict):
        return None
    reply = _Reply()
    reply.header(data)
    choices = data.get("choices")
    if isinstance(choices, list):
        for position, choice in enumerate(choices):
            if not isinstance(choice, dict):
                continue
            entry = reply.choice(choice.get("index", position))
            message = choice.get("message")
            if isinstance(message, dict):
                text = message.get("content")
                reasoning = message.get("reasoning_content") or message.get("reasoning")
            else:  # text completion
                text, reasoning = choice.get("text"), None
            if isinstance(text, str) and text:
                entry[0].append(text)
            if isinstance(reasoning, str) and reasoning:
                entry[1].append(reasoning)
            if choice.get("finish_reason") is not None:
                entry[2] = choice.get("finish_reason")
    reply.parsed = isinstance(choices, list)
    return reply


def _parse_sse_reply(text: str) -> _Reply | None:
    reply = _Reply()
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
        reply.header(chunk)
        for position, choice in enumerate(chunk.get("choices") or ()):
            if not isinstance(choice, dict):
                continue
            entry = reply.choice(choice.get("index", position))
            delta = choice.get("delta")
            if isinstance(delta, dict):
                text_part = delta.get("content")
                reasoning = delta.get("reasoning_content") or delta.get("reasoning")
            else:
                text_part, reasoning = choice.get("text"), None
            if isinstance(text_part, str) and text_part:
                entry[0].append(text_part)
            if isinstance(reasoning, str) and reasoning:
                entry[1].append(reasoning)
            if choice.get("finish_reason") is not None:
                entry[2] = choice.get("finish_reason")
    reply.parsed = seen
    return reply if seen else None


_DECODABLE = frozenset({"", "identity", "gzip", "x-gzip", "deflate"})


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


def _parse_reply(body: bytes | None, content_type: str, encoding: str) -> _Reply | None:
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


def _messages_json(messages: Any) -> str | None:
    """``gen_ai.input.messages`` from an OpenAI ``messages`` list."""
    if not isinstance(messages, list):
        return None
    out = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        parts: list[dict[str, Any]] = []
        if isinstance(content, str):
            parts.append({"type": "text", "content": content})
        elif isinstance(content, list):
            for part in content:
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    parts.append({"type": "text", "content": part["text"]})
        out.append({"role": str(message.get("role") or "user"), "parts": parts})
    return json.dumps(out, ensure_ascii=False)


def _output_json(reply: _Reply) -> str:
    """``gen_ai.output.messages`` from a reply."""
    out = []
    for index in sorted(reply.choices):
        text_parts, reasoning_parts, finish = reply.choices[index]
        parts: list[dict[str, Any]] = []
        if reasoning_parts:
            parts.append({"type": "reasoning", "content": "".join(reasoning_parts)})
        if text_parts:
            parts.append({"type": "text", "content": "".join(text_parts)})
        out.append({"role": "assistant", "parts": parts, "finish_reason": finish or "error"})
    return json.dumps(out, ensure_ascii=False)
