"""The rows docs/trl.md asks for, computed from what the reward functions saw.

Not a test module: plain code, sharing nothing with otel_grpo. Input: the JSON lines the
reward functions of ``tests/test_trl_train.py`` wrote in every process (what TRL gave them
and what they returned). It restates the section and hands the windows to the generic
:mod:`tests.oracle` (reward-only samples: ``exec`` "none"), then drops what the section
omits for TRL (the executor figures, and cost/step_cost while the judge is unpriced).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.oracle import THRESHOLD, Oracle, norm_source

OMITTED_FOR_TRL = ("avg_cost", "exec_success_rate", "val/success_rate", "cost/step_cost")
"""Key endings the section omits for TRL (no executor; the judge is unpriced in the tests)."""
NO_EXECUTOR = (*OMITTED_FOR_TRL, "cost_per_correct", "cost/total_cost", "cost/executor_calls", "executor/llm_requests")
"""Key endings a TRL run with an unpriced judge never carries (nothing was executed, nothing carried a cost)."""


def read_calls(out: Path) -> list[list[dict[str, Any]]]:
    """Per process (rank order), its reward-function calls in order."""
    logs = sorted(out.glob("calls-*.jsonl"), key=lambda p: int(p.stem.split("-")[1]))
    return [[json.loads(line) for line in p.read_text().splitlines() if line] for p in logs]


def scoring_calls(calls_by_rank: list[list[dict[str, Any]]], funcs: tuple[str, ...] = ("rule", "judge")) -> list:
    """The k-th scoring call of every process together: [(rank's call per func, ...) per rank] per k."""
    per_rank = []
    for calls in calls_by_rank:
        by_func = {f: [c for c in calls if c["func"] == f] for f in funcs}
        per_rank.append(list(zip(*(by_func[f] for f in funcs), strict=True)))
    return list(zip(*per_rank, strict=True))


def _completions(merged, weights, correctness_func: str | None):
    """(source, ptype, reward|None, correctness, evaluations, requests, tokens) per completion, gathered order."""
    out = []
    requests, tokens = 0, [0, 0]
    for rank_calls in merged:
        rule, judge = rank_calls
        call_failed = any(judge["failed"])
        requests += judge["requests"]
        tokens = [tokens[0] + judge["tokens"][0], tokens[1] + judge["tokens"][1]]
        for i, (src, pt) in enumerate(zip(rule["sources"], rule["ptypes"], strict=True)):
            values = {"rule": rule["values"][i], "judge": judge["values"][i]}
            present = [(weights[f], v) for f, v in values.items() if v is not None]
            reward = sum(w * v for w, v in present) if present else None
            chosen = values.get(correctness_func) if correctness_func else None
            correctness = chosen if chosen is not None else reward
            j = values["judge"]
            if j is not None:
                evaluation = {"outcome": "success", "verdict": j >= THRESHOLD, "requests": 0}
            else:
                evaluation = {"outcome": "api_failure" if call_failed else "parse_failure", "verdict": None}
                evaluation["requests"] = 0
            out.append((src, pt, reward, correctness, evaluation))
    return out, requests, tokens


def windows(calls_by_rank, steps: int, weights: dict[str, float], correctness: str | None = None, gens: int = 4):
    """The windows (tests.oracle's format) of the run, in row order, with the cumulative extras per row."""
    by_step: dict[int, list] = {}
    evals: dict[int, list] = {}
    for k, merged in enumerate(scoring_calls(calls_by_rank)):
        first = merged[0][0]
        target = (
            by_step.setdefault(first["global_step"] + 1, [])
            if first["training"]
            else evals.setdefault(first["global_step"], [])
        )
        target.append((k, merged))
    result = []
    for step in range(1, steps + 1):
        result.append(_window("train", step, by_step.get(step, []), weights, correctness, gens))
        if step in evals:
            result.append(_window("val", step, evals[step], weights, correctness, gens))
    return result


def _window(split, step, calls, weights, correctness, gens):
    window = {"split": split, "step": step, "samples": [], "judges": [], "judge_requests": 0, "scalars": {}}
    unscorable, tokens = 0, [0, 0]
    for k, merged in calls:
        completions, requests, call_tokens = _completions(merged, weights, correctness)
        window["judge_requests"] += requests
        tokens = [tokens[0] + call_tokens[0], tokens[1] + call_tokens[1]]
        for index, (src, pt, reward, corr, evaluation) in enumerate(completions):
            if reward is None:
                unscorable += 1
                window["judges"].append({**evaluation, "source": src})
                continue
            window["samples"].append(
                {
                    "source": src,
                    "ptype": pt,
                    "reward": reward,
                    "correctness": corr,
                    "exec": "none",
                    "group": (k, index // gens),
                    "judges": [evaluation],
                }
            )
    window["unscorable"], window["tokens"] = unscorable, tokens
    return window


def expected_rows(win: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows: tests.oracle's, minus what the TRL section omits, plus exporter/unscorable and judge tokens."""
    oracle = Oracle()
    rows, unscorable, tokens = [], 0, [0, 0]
    for window in win:
        unscorable += window["unscorable"]
        tokens = [tokens[0] + window["tokens"][0], tokens[1] + window["tokens"][1]]
        row = oracle.window_row(window)
        if row is None:
            continue
        row = {k: v for k, v in row.items() if not k.endswith(OMITTED_FOR_TRL) and not _costless(k)}
        row["exporter/unscorable"] = unscorable
        if "judge/total_calls" in row:
            row["judge/input_tokens"], row["judge/output_tokens"] = tokens
        rows.append(row)
    return rows


def _costless(key: str) -> bool:
    """dataset/{s}/cost_per_correct and val/{s}/cost_per_correct: omitted when nothing carried a cost."""
    return key.endswith("/cost_per_correct") and key.count("/") == 2


def norm(source: Any) -> str:
    """A source as a key names it."""
    return norm_source(source)
