"""Prompt parsing, deterministic verdicts and vLLM-shaped replies for the demo judge.

See :mod:`otel_grpo.tools.demo.judge_server` for the prompt convention. Everything here is
pure and deterministic: the same request always gives the same reply body (apart from
the ``id`` and ``created`` fields).
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass
from typing import Any

from otel_grpo.tools.demo.scoring import (
    normalize_answer,
    numeric_match,
    option_match,
    token_f1,
)

__all__ = [
    "UNPARSABLE_CONTENT",
    "Judgement",
    "approx_tokens",
    "chat_completion",
    "error_body",
    "extract_candidates",
    "extract_fields",
    "judge",
    "judge_messages",
    "message_text",
    "stream_chunks",
]

#: Content of an "unparsable" reply: no ``<true_false>`` tag, no clear verdict.
UNPARSABLE_CONTENT = "I think these might be equivalent but I am not sure."

#: Token F1 at or above which a free-text prediction counts as equivalent.
F1_THRESHOLD = 0.8

_PRED_LABELS = (
    r"prediction|predicted[ _](?:answer|solution)|model(?:'s)?[ _]answer"
    r"|student[ _]answer|candidate[ _]answer"
)
_GOLD_LABELS = (
    r"ground[ _-]?truth|reference(?:[ _](?:answer|solution))?|gold[ _]answer"
    r"|expected[ _]answer"
    r"|correct[ _]answer"
)
_OTHER_LABELS = (
    r"question|problem|context|instructions?|task|source|problem[ _]type|dataset"
    r"|evaluation|verdict|output[ _]format|format|answer[ _]format|reasoning"
)
# A label line: optional markdown (#, *, -, >), the label, optional markdown, a colon.
_LABEL_LINE_RE = re.compile(
    rf"^[ \t>#*_-]*({_PRED_LABELS}|{_GOLD_LABELS}|{_OTHER_LABELS})[ \t*_]*:[ \t*_]*",
    re.IGNORECASE | re.MULTILINE,
)
_PRED_TAG_RE = re.compile(
    r"<\s*(?:prediction|predicted_answer|model_answer)\s*>(.*?)<\s*/\s*"
    r"(?:prediction|predicted_answer|model_answer)\s*>",
    re.IGNORECASE | re.DOTALL,
)
_GOLD_TAG_RE = re.compile(
    r"<\s*(?:ground[_-]?truth|reference|reference_answer)\s*>(.*?)<\s*/\s*"
    r"(?:ground[_-]?truth|reference|reference_answer)\s*>",
    re.IGNORECASE | re.DOTALL,
)
_PRED_RE = re.compile(rf"^(?:{_PRED_LABELS})$", re.IGNORECASE)
_GOLD_RE = re.compile(rf"^(?:{_GOLD_LABELS})$", re.IGNORECASE)


def message_text(content: Any) -> str:
    """Flatten an OpenAI message ``content`` (a string or a list of parts) to text."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for part in content:
            if isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return str(content)


def _strip_block(value: str) -> str:
    """Trim whitespace, markdown fences and surrounding quotes from a field value."""
    value = value.strip()
    fence = re.fullmatch(r"```[\w+-]*\n(.*?)\n?```", value, re.DOTALL)
    if fence:
        value = fence.group(1).strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'`":
        value = value[1:-1].strip()
    return value


_CONTINUATION_RE = re.compile(r"^(?:\s|```|####|def |class |import |from |@)")


def _block(raw: str) -> str:
    """Cut a labelled block at its end: an instruction line mentioning ``<true_false>``,
    or a blank line not followed by a continuation (indented or code-like line, a
    fence, ``####``). Blank lines inside a ``` fence never end the block."""
    lines = raw.split("\n")
    kept: list[str] = []
    in_fence = False
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not in_fence and "<true_false>" in line.lower():
            break
        if not stripped and not in_fence and any(k.strip() for k in kept):
            following = next((n for n in lines[i + 1 :] if n.strip()), None)
            if following is None or not _CONTINUATION_RE.match(following):
                break
        if stripped.startswith("```"):
            in_fence = not in_fence
        kept.append(line)
    return "\n".join(kept)


def extract_candidates(text: str) -> tuple[list[str], list[str]]:
    """Find every reading of the prediction and of the ground truth in a judge prompt.

    Tags (``<prediction>..</prediction>``, ``<ground_truth>..</ground_truth>``) win over
    labelled blocks (``Prediction: ...``, ``Ground truth: ...``). A block runs from its
    label to the next known label line, an instruction line mentioning
    ``<true_false>``, or a paragraph break (see :func:`_block`). When a field occurs
    several times, the last occurrence counts (few-shot examples come first). For a
    multi-line block whose label line carries a value, that single line is a second,
    shorter reading (an instruction may follow the value without a blank line).

    Returns:
        ``(predictions, ground_truths)``, best reading first; empty when not found.
    """
    pred_tags = _PRED_TAG_RE.findall(text)
    gold_tags = _GOLD_TAG_RE.findall(text)
    preds = [_strip_block(pred_tags[-1])] if pred_tags else []
    golds = [_strip_block(gold_tags[-1])] if gold_tags else []
    if preds and golds:
        return preds, golds

    labels = list(_LABEL_LINE_RE.finditer(text))
    for i, match in enumerate(labels):
        end = labels[i + 1].start() if i + 1 < len(labels) else len(text)
        block = _block(text[match.end() : end])
        readings = [_strip_block(block)]
        inline = block.split("\n", 1)[0]
        if inline.strip() and "\n" in block.strip():
            readings.append(_strip_block(inline))
        label = " ".join(match.group(1).split())
        if not pred_tags and _PRED_RE.match(label):
            preds = readings
        if not gold_tags and _GOLD_RE.match(label):
            golds = readings
    return preds, golds


def extract_fields(text: str) -> tuple[str | None, str | None]:
    """Find the prediction and the ground truth in a judge prompt.

    The best reading of each field from :func:`extract_candidates`.

    Returns:
        ``(prediction, ground_truth)``, each ``None`` when not found.
    """
    preds, golds = extract_candidates(text)
    return (preds[0] if preds else None), (golds[0] if golds else None)


@dataclass(frozen=True)
class Judgement:
    """A deterministic equivalence verdict with the reasoning that led to it."""

    verdict: bool
    reason: str
    prediction: str | None
    ground_truth: str | None


def _short(value: str | None, limit: int = 60) -> str:
    """One-line, truncated rendering of a field for the reasoning text."""
    if value is None:
        return "(missing)"
    flat = " ".join(value.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def judge(prediction: str | None, ground_truth: str | None) -> Judgement:
    """Decide whether a prediction is equivalent to the ground truth.

    True when the SQuAD-normalised strings are equal, or the extracted numbers agree,
    or the token F1 is at least :data:`F1_THRESHOLD`, or the choice letters agree.
    A missing or empty field gives False.
    """
    if prediction is None or ground_truth is None:
        return Judgement(False, "the prompt lacks a prediction or a ground truth", prediction, ground_truth)
    if not prediction.strip() or not ground_truth.strip():
        return Judgement(False, "the prediction or the ground truth is empty", prediction, ground_truth)
    if normalize_answer(prediction) == normalize_answer(ground_truth):
        return Judgement(True, "the normalised answers are identical", prediction, ground_truth)
    numbers = numeric_match(prediction, ground_truth)
    if numbers:
        return Judgement(True, "the final numbers agree", prediction, ground_truth)
    f1 = token_f1(prediction, ground_truth)
    if f1 >= F1_THRESHOLD:
        return Judgement(True, f"the token F1 is {f1:.2f}", prediction, ground_truth)
    letters = option_match(prediction, ground_truth)
    if letters:
        return Judgement(True, "the chosen options agree", prediction, ground_truth)
    if numbers is False:
        reason = "the final numbers differ"
    elif letters is False:
        reason = "the chosen options differ"
    else:
        reason = f"the answers differ (token F1 {f1:.2f})"
    return Judgement(False, reason, prediction, ground_truth)


def _judge_text(text: str) -> Judgement | None:
    """Judge the fields found in text; None when either field is missing."""
    preds, golds = extract_candidates(text)
    if not preds or not golds:
        return None
    first = judge(preds[0], golds[0])
    if first.verdict:
        return first
    for pred in preds:
        for gold in golds:
            other = judge(pred, gold)
            if other.verdict:
                return other
    return first


def judge_messages(messages: list[dict[str, Any]]) -> Judgement:
    """Judge a chat request: parse the last user message, else all messages together.

    Every reading of the two fields (see :func:`extract_candidates`) is tried; the
    verdict is True when any pair is equivalent.
    """
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if users:
        found = _judge_text(message_text(users[-1].get("content")))
        if found is not None:
            return found
    every = "\n".join(message_text(m.get("content")) for m in messages if isinstance(m, dict))
    found = _judge_text(every)
    if found is not None:
        return found
    return judge(*extract_fields(every))


def reasoning_text(judgement: Judgement) -> str:
    """The short, deterministic ``reasoning_content`` for a judgement."""
    word = "equivalent" if judgement.verdict else "not equivalent"
    return (
        "We need to decide whether the prediction matches the ground truth. "
        f'Prediction: "{_short(judgement.prediction)}". '
        f'Ground truth: "{_short(judgement.ground_truth)}". '
        f"Comparing them, {judgement.reason}, so they are {word}."
    )


def verdict_content(judgement: Judgement) -> str:
    """The visible ``content`` carrying the ``<true_false>`` verdict."""
    return (
        f"The prediction is {'correct' if judgement.verdict else 'incorrect'}: "
        f"{judgement.reason}.\n<true_false>{judgement.verdict}</true_false>"
    )


def approx_tokens(text: str) -> int:
    """Deterministic token estimate: ``len(text) // 4 + 1``."""
    return len(text) // 4 + 1


def prompt_text(messages: list[dict[str, Any]]) -> str:
    """All message contents joined, as counted for ``usage.prompt_tokens``."""
    return "\n".join(message_text(m.get("content")) for m in messages if isinstance(m, dict))


def new_completion_id() -> str:
    """A vLLM-style completion id: ``chatcmpl-<32 hex>``."""
    return f"chatcmpl-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Reply:
    """The assistant's reply before it is wrapped into a response body."""

    content: str | None
    reasoning: str
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int

    def usage(self) -> dict[str, int]:
        """OpenAI ``usage`` object."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def build_reply(
    messages: list[dict[str, Any]],
    outcome: str,
    max_tokens: int | None = None,
) -> tuple[Reply, Judgement]:
    """Build the reply for a served outcome (``ok``/``slow``/``timeout``, ``unparsable``,
    ``null_content``).

    A normal reply whose completion would exceed ``max_tokens`` is cut like gpt-oss
    does: ``content`` becomes ``None`` with ``finish_reason="length"``.
    """
    judgement = judge_messages(messages)
    prompt_tokens = approx_tokens(prompt_text(messages))
    reasoning = reasoning_text(judgement)
    if outcome == "null_content":
        content: str | None = None
    elif outcome == "unparsable":
        content = UNPARSABLE_CONTENT
    else:
        content = verdict_content(judgement)
    completion_tokens = approx_tokens(reasoning + (content or ""))
    finish_reason = "stop" if content is not None else "length"
    if max_tokens is not None and max_tokens > 0 and completion_tokens > max_tokens:
        content, finish_reason = None, "length"
        reasoning = reasoning[: max_tokens * 4]
        completion_tokens = max_tokens
    elif content is None and max_tokens:
        completion_tokens = max_tokens
    reply = Reply(content, reasoning, finish_reason, prompt_tokens, completion_tokens)
    return reply, judgement


def _message(reply: Reply) -> dict[str, Any]:
    """The ``choices[0].message`` object of a non-streamed reply."""
    return {
        "role": "assistant",
        "content": reply.content,
        "reasoning_content": reply.reasoning,
        "refusal": None,
        "tool_calls": [],
    }


def chat_completion(
    reply: Reply, model: str, completion_id: str | None = None, created: int | None = None
) -> dict[str, Any]:
    """A vLLM ``chat.completion`` response body."""
    return {
        "id": completion_id or new_completion_id(),
        "object": "chat.completion",
        "created": int(time.time()) if created is None else created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": _message(reply),
                "logprobs": None,
                "finish_reason": reply.finish_reason,
                "stop_reason": None,
            }
        ],
        "usage": reply.usage(),
        "prompt_logprobs": None,
    }


def _pieces(text: str, size: int = 24) -> list[str]:
    """Split text into streaming deltas of at most ``size`` characters."""
    return [text[i : i + size] for i in range(0, len(text), size)]


def stream_chunks(
    reply: Reply,
    model: str,
    include_usage: bool = False,
    completion_id: str | None = None,
    created: int | None = None,
) -> list[dict[str, Any]]:
    """The ``chat.completion.chunk`` objects of a streamed reply, in order.

    The first chunk carries the role, then ``reasoning_content`` deltas, then
    ``content`` deltas; the final chunk has an empty delta, the ``finish_reason`` and,
    when ``include_usage``, the ``usage``.
    """
    cid = completion_id or new_completion_id()
    ts = int(time.time()) if created is None else created

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": ts,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if include_usage:
            body["usage"] = None
        return body

    chunks = [chunk({"role": "assistant", "content": ""})]
    chunks += [chunk({"reasoning_content": p}) for p in _pieces(reply.reasoning)]
    if reply.content is not None:
        chunks += [chunk({"content": p}) for p in _pieces(reply.content)]
    final = chunk({}, reply.finish_reason)
    if include_usage:
        final["usage"] = reply.usage()
    chunks.append(final)
    return chunks


def error_body(message: str, err_type: str, code: int) -> dict[str, Any]:
    """An OpenAI/vLLM-style error body."""
    return {"error": {"message": message, "type": err_type, "param": None, "code": code}}
