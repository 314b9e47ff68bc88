"""The reward computer: rule-based rewards first, the LLM judge when the rules cannot decide.

:class:`RewardComputer` (``reward_computer`` in the user's project) grades on the
user's scale (0 / 0.2 / 0.4 / 0.7 / 1.0): numbers are matched, code runs against its
tests in a subprocess, QA answers are token-F1 or option-letter checked, and the judge
is asked over the OpenAI client (the demo's judge server).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections import Counter
from typing import Any

import openai

from otel_grpo.tools.demo import scoring

# A child of the trainer's logger: the demo's progress display takes over that logger (and
# so this one) while it trains, as it would take over the user's single trainer module.
logger = logging.getLogger("otel_grpo.tools.demo.trainer.reward")

JUDGE_MODEL = "gpt-oss-120b"
#: A reward at or above this is a correct answer.
CORRECT_THRESHOLD = 0.9

JUDGE_SYSTEM_PROMPT = (
    "You are a careful grader. Decide whether the model's prediction is equivalent to the "
    "ground truth for the given problem. Think briefly, then finish with "
    "<true_false>True</true_false> or <true_false>False</true_false>."
)
_JUDGE_FOOTER = (
    "Is the prediction correct? Answer with <true_false>True</true_false> or <true_false>False</true_false>."
)
JUDGE_TEMPLATES: dict[str, str] = {
    "math": "Problem: {problem}\n\nPrediction: {prediction}\n\nGround truth: {ground_truth}\n\n" + _JUDGE_FOOTER,
    "code": (
        "Problem:\n```python\n{problem}\n```\n\nPredicted solution:\n```python\n{prediction}\n```\n\n"
        "Reference solution:\n```python\n{ground_truth}\n```\n\n" + _JUDGE_FOOTER
    ),
    "hotpotqa": "Question: {problem}\n\nPrediction: {prediction}\n\nGround truth: {ground_truth}\n\n" + _JUDGE_FOOTER,
    "choice": ("Question: {problem}\n\nPrediction: {prediction}\n\nGround truth: {ground_truth}\n\n" + _JUDGE_FOOTER),
    "default": "Question: {problem}\n\nPrediction: {prediction}\n\nGround truth: {ground_truth}\n\n" + _JUDGE_FOOTER,
}
_TEMPLATE_FOR = {
    "gsm8k": "math",
    "math": "math",
    "humaneval": "code",
    "mbpp": "code",
    "code_llm_judge": "code",
    "hotpotqa": "hotpotqa",
    "commonsenseqa": "choice",
    "mmlu": "choice",
}

_VERDICT_TAG_RE = re.compile(r"<true_false>\s*(true|false)\s*</true_false>", re.IGNORECASE)
_VERDICT_LOOSE_RES = (
    re.compile(r"<true_false>\s*(true|false)", re.IGNORECASE),
    re.compile(r"\b(?:verdict|answer|final answer)\s*[:=]\s*\**\s*(true|false)\b", re.IGNORECASE),
    re.compile(r"\b(true|false)\b\W*$", re.IGNORECASE),
)

F1_JUDGE_BAND = (0.3, 0.8)  # hotpotqa: inside this band the rule is inconclusive


class RewardComputer:
    """Graded rewards 0 / 0.2 / 0.4 / 0.7 / 1.0: rules first, the LLM judge when they
    cannot decide. ``eval_stats`` has the user's counters (with their quirks: rule-based
    scoring bumps ``correct_predictions`` too, and a retried empty judge reply counts two
    API failures). :attr:`judge_outcomes` is a plain ledger of one outcome per judge
    evaluation (per dataset), which the demo's tests compare with the telemetry."""

    def __init__(
        self,
        judge_url: str = "http://localhost:8002/v1",
        use_llm_judge: bool = True,
        judge_timeout_s: float = 30.0,
        code_test_timeout_s: float = 5.0,
    ) -> None:
        self.use_llm_judge = use_llm_judge
        self.judge_url = judge_url
        self.client = openai.OpenAI(base_url=judge_url, api_key="sk-dummy", timeout=judge_timeout_s)
        self.code_test_timeout_s = code_test_timeout_s
        self.eval_stats: dict[str, int] = {
            "total_evaluations": 0,
            "llm_judge_success": 0,
            "llm_judge_parse_failures": 0,
            "llm_judge_api_failures": 0,
            "correct_predictions": 0,
            "incorrect_predictions": 0,
        }
        self.judge_outcomes: Counter[tuple[str, str]] = Counter()
        self.code_runs = 0
        self._code_cache: dict[str, tuple[bool, str]] = {}
        self._dataset: str | None = None

    # --- the reward ------------------------------------------------------------------
    def compute_reward(
        self,
        problem: str,
        prediction: Any,
        ground_truth: Any,
        problem_type: str = "math",
        metadata: dict[str, Any] | None = None,
        test: str | None = None,
        entry_point: str | None = None,
        source: str | None = None,
    ) -> float:
        """Score ``prediction`` against ``ground_truth``; a float on the graded scale."""
        self.eval_stats["total_evaluations"] += 1
        self._dataset = source or "unknown"
        prediction = "" if prediction is None else str(prediction)
        ground_truth = "" if ground_truth is None else str(ground_truth)
        if problem_type == "code" or source in ("humaneval", "mbpp"):
            reward = self._code_reward(problem, prediction, ground_truth, test, entry_point)
        elif problem_type == "math" or source in ("gsm8k", "math"):
            reward = self._math_reward(problem, prediction, ground_truth, problem_type, source)
        elif source == "hotpotqa":
            reward = self._span_reward(problem, prediction, ground_truth, problem_type, source)
        else:
            reward = self._choice_reward(problem, prediction, ground_truth, problem_type, source)
        if reward >= CORRECT_THRESHOLD:
            self.eval_stats["correct_predictions"] += 1  # the user's quirk: rules count too
        return reward

    def _judge(self, problem: str, prediction: str, ground_truth: str, problem_type: str, source: str | None) -> bool:
        if not self.use_llm_judge:
            return False
        return self._llm_judge_compare(problem, prediction, ground_truth, problem_type, source=source)

    @staticmethod
    def _marked_number(text: str) -> str | None:
        """The final answer behind ``####`` or in the last ``\\boxed{}``; None without a marker."""
        boxed = re.findall(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}", text)
        if boxed:
            return boxed[-1]
        hashes = re.findall(r"####\s*([^\n]+)", text)
        return hashes[-1] if hashes else None

    def _math_reward(
        self, problem: str, prediction: str, ground_truth: str, problem_type: str, source: str | None
    ) -> float:
        pred, gold = self._marked_number(prediction), self._marked_number(ground_truth)
        match = scoring.numeric_match(pred, gold) if pred is not None and gold is not None else None
        if match is None:  # numeric extraction failed: ask the judge
            match = self._judge(problem, prediction, ground_truth, problem_type, source)
        return 1.0 if match else 0.0

    def _code_reward(
        self, problem: str, prediction: str, ground_truth: str, test: str | None, entry_point: str | None
    ) -> float:
        if not test:  # no tests for this item: the judge compares with the reference
            ok = self._judge(problem, prediction, ground_truth, "code", "code_llm_judge")
            return 1.0 if ok else 0.0
        passed, reason = self._run_tests(prediction, test, entry_point)
        if passed:
            return 1.0
        return 0.2 if reason == "failed" else 0.0  # runs but fails an assertion: partial credit

    def _run_tests(self, code: str, test: str, entry_point: str | None) -> tuple[bool, str]:
        """scoring.run_code_tests (a fresh ``python -I`` subprocess), cached by (code, test)."""
        key = hashlib.sha256(f"{code}\x00{test}\x00{entry_point}".encode()).hexdigest()
        cached = self._code_cache.get(key)
        if cached is None:
            self.code_runs += 1
            cached = scoring.run_code_tests(code, test, entry_point, timeout_s=self.code_test_timeout_s)
            self._code_cache[key] = cached
        return cached

    def _span_reward(
        self, problem: str, prediction: str, ground_truth: str, problem_type: str, source: str | None
    ) -> float:
        f1 = scoring.token_f1(prediction, ground_truth)
        lo, hi = F1_JUDGE_BAND
        if lo <= f1 < hi and self._judge(problem, prediction, ground_truth, problem_type, source):
            return 1.0
        return scoring.grade(f1)

    def _choice_reward(
        self, problem: str, prediction: str, ground_truth: str, problem_type: str, source: str | None
    ) -> float:
        match = scoring.option_match(prediction, ground_truth)
        if match is None:  # no option letter found
            match = self._judge(problem, prediction, _choice_truth(problem, ground_truth), problem_type, source)
        return 1.0 if match else 0.0

    # --- the judge -------------------------------------------------------------------
    def _llm_judge_compare(
        self, problem: str, prediction: str, ground_truth: str, problem_type: str, source: str | None = None
    ) -> bool:
        """One judge evaluation over the OpenAI client: up to 2 attempts. Returns the
        verdict, or False when no verdict could be had."""
        template = JUDGE_TEMPLATES[_TEMPLATE_FOR.get(str(source), "default")]
        user = template.format(problem=problem, prediction=prediction, ground_truth=ground_truth)
        messages = [{"role": "system", "content": JUDGE_SYSTEM_PROMPT}, {"role": "user", "content": user}]
        outcome = "api_failure"
        try:
            for _attempt in range(2):
                try:
                    response = self.client.chat.completions.create(
                        model=JUDGE_MODEL, messages=messages, temperature=0.0, max_tokens=800
                    )
                    content = response.choices[0].message.content
                except Exception as exc:  # noqa: BLE001 - any client error is an API failure
                    logger.debug("judge call failed: %s", exc)
                    self.eval_stats["llm_judge_api_failures"] += 1
                    outcome = "api_failure"
                    continue
                if content is None:  # a reasoning model that ran out of tokens
                    self.eval_stats["llm_judge_api_failures"] += 1
                    outcome = "api_failure"
                    continue
                verdict = _parse_verdict(content)
                if verdict is None:
                    self.eval_stats["llm_judge_parse_failures"] += 1
                    outcome = "parse_failure"
                    return False
                self.eval_stats["llm_judge_success"] += 1
                self.eval_stats["correct_predictions" if verdict else "incorrect_predictions"] += 1
                outcome = "success_true" if verdict else "success_false"
                return verdict
            return False
        finally:
            self.judge_outcomes[(self._dataset or str(source or "unknown"), outcome)] += 1


def _parse_verdict(content: str) -> bool | None:
    tagged = _VERDICT_TAG_RE.findall(content)
    if tagged:
        return tagged[-1].lower() == "true"
    for regex in _VERDICT_LOOSE_RES:
        found = regex.findall(content)
        if found:
            return found[-1].lower() == "true"
    return None


def _choice_truth(problem: str, ground_truth: str) -> str:
    """The reference for a multiple-choice judge prompt: the option text, then its letter."""
    letter = scoring.option_letter(ground_truth)
    if letter:
        found = re.search(rf"^\s*{letter}[.)]\s*(.+)$", problem, re.MULTILINE)
        if found:
            return f"{found.group(1).strip()}\n(option {letter})"
    return ground_truth
