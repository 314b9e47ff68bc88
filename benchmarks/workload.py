"""Feeding otel-grpo the full key set through the manual API (used by sections 2, 3 and 4)."""

from __future__ import annotations

from typing import Any

from benchmarks.common import SOURCES

_OUTCOMES = (("success", True), ("success", False), ("success", True), ("parse_failure", None), ("api_failure", None))


def record_train_samples(batch: list[tuple], judge_every: int = 4, durations: bool = True) -> None:
    """Record ``batch`` inside the current step: executor run, every ``judge_every``-th judged.

    Each sample: one executor run (cost, duration), optionally one judge evaluation and
    one judge request, and the reward with its correctness, grouped by question (GRPO).
    """
    import otel_grpo

    sample, record_exec, record_sample = otel_grpo.sample, otel_grpo.record_executor_run, otel_grpo.record_sample
    judge_eval, judge_req = otel_grpo.record_judge_evaluation, otel_grpo.record_judge_request
    for i, (source, ptype, reward, correctness, cost, qid) in enumerate(batch):
        with sample(source, ptype, group=qid):
            record_exec(cost=cost, duration_s=0.2 + (i % 7) * 0.1 if durations else None)
            if judge_every and i % judge_every == 0:
                outcome, verdict = _OUTCOMES[(i // judge_every) % len(_OUTCOMES)]
                judge_eval(
                    outcome,
                    verdict,
                    duration_s=0.4 + (i % 5) * 0.2,
                    error_type="http_status" if outcome == "api_failure" else None,
                )
                judge_req(
                    input_tokens=420, output_tokens=96, error_type="http_status" if outcome == "api_failure" else None
                )
            record_sample(reward, correctness)


def record_tokens(tel: Any, n_requests: int) -> None:
    """GenAI token usage as the HTTP instrumentation records it (judge/input_tokens, ...)."""
    histogram = getattr(getattr(tel, "recorder", None), "genai_tokens", None)
    if histogram is None:
        return
    from otel_grpo import semconv

    role = getattr(semconv, "ATTR_LLM_ROLE", "grpo.llm.role")
    token_type = getattr(semconv, "GEN_AI_TOKEN_TYPE", "gen_ai.token.type")
    for _ in range(n_requests):
        histogram.record(420, {token_type: "input", role: "judge"})
        histogram.record(96, {token_type: "output", role: "judge"})


def full_step(step: int, batch: list[tuple], val_batch: list[tuple] | None) -> None:
    """One training step with trainer scalars, then (optionally) a validation pass."""
    import otel_grpo

    tel = otel_grpo.get_telemetry()
    with otel_grpo.step(step):
        record_train_samples(batch)
        record_tokens(tel, max(1, len(batch) // 4))
        otel_grpo.record_scalars(loss=1.0 / step, kl_div=0.01 * (step % 7), temperature=0.9)
    if val_batch:
        with otel_grpo.validation(step):
            record_train_samples(val_batch, judge_every=0)


def sources_covered(batch: list[tuple]) -> bool:
    """True when every one of the seven sources appears in ``batch``."""
    return {s[0] for s in batch} >= set(SOURCES)
