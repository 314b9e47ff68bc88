"""The example's reward functions, as TRL calls them: one call per batch, every dataset column a keyword.

* :func:`answer_match`, a rule: 1.0 when the completion contains the answer word, else 0.0.
* :func:`judge_reward`, an LLM judge behind an OpenAI-compatible server (``otel-grpo
  judge-server``): 1.0 for a ``True`` verdict, 0.0 for ``False``, and ``None`` when no
  verdict came back (an HTTP error, a timeout, a reply without a verdict).

otel-grpo needs nothing from them: it reads the values they return, the ``source`` column
TRL passes them, and the HTTP requests made while they run.
"""

from __future__ import annotations

import os
import re

_VERDICT = re.compile(r"<true_false>\s*(true|false)\s*</true_false>", re.I)
_client = None


def _judge_client():
    global _client
    if _client is None:
        import openai

        base_url = os.environ.get("JUDGE_URL", "http://127.0.0.1:8002/v1")
        _client = openai.OpenAI(base_url=base_url, api_key="sk-local", timeout=5.0, max_retries=1)
    return _client


def answer_match(completions: list[str], answer: list[str], **kwargs) -> list[float]:
    """1.0 when the answer word is among the completion's words."""
    return [1.0 if a.lower() in c.lower().split() else 0.0 for c, a in zip(completions, answer, strict=True)]


def judge_reward(prompts: list[str], completions: list[str], answer: list[str], **kwargs) -> list[float | None]:
    """Ask the judge whether each completion answers its question; None when it gave no verdict."""
    client = _judge_client()
    scores: list[float | None] = []
    for prompt, completion, reference in zip(prompts, completions, answer, strict=True):
        question = prompt.removeprefix("Question: ").removesuffix(" Answer:")
        content = f"Question: {question}\nPrediction: {completion.strip()}\nGround truth: {reference}"
        try:
            reply = client.chat.completions.create(
                model="gpt-oss-120b", messages=[{"role": "user", "content": content}], max_tokens=256
            )
            text = reply.choices[0].message.content or ""
        except Exception:  # noqa: BLE001 - a judge that fails gives no verdict
            scores.append(None)
            continue
        verdict = _VERDICT.search(text)
        scores.append(None if verdict is None else float(verdict.group(1).lower() == "true"))
    return scores
