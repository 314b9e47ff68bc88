"""The simulated executor: "runs" a workflow and answers with a simulated LLM.

:class:`AFlowExecutor` (``aflow_executor`` in the user's project) answers from the
ground truth: correct with probability = the workflow's skill, else a plausible wrong
answer, sometimes in a form the rule-based checks cannot read (which sends the reward
computer to the judge). Latency is real but short; costs are token-based USD, a few
reported as strings.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import time
from collections.abc import Sequence
from typing import Any

from otel_grpo.tools.demo import scoring
from otel_grpo.tools.demo.policy import stable_hash, workflow_header
from otel_grpo.tools.demo.trainer_config import TrainerConfig

logger = logging.getLogger(__name__)


def parse_cost(value: Any) -> float:
    """A reported cost as a float: numbers and numeric strings; anything else (None,
    NaN, ``"n/a"``, negative) is 0, as docs/keys.md counts it."""
    if isinstance(value, bool):
        return 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) and number >= 0 else 0.0


_EXEC_ERRORS = (
    lambda: RuntimeError("workflow raised: 'NoneType' object is not subscriptable"),
    lambda: KeyError("response"),
    lambda: TimeoutError("operator call timed out after 60s"),
    lambda: ValueError("could not parse the operator output as JSON"),
)


class AFlowExecutor:
    """Executes generated workflows; returns ``(answer, cost, metadata)``.

    Latency is real but short (``asyncio.sleep``), cost is token-based USD, about 5% of
    runs fail (``metadata["success"] is False``) and 2% raise. A few costs come back as
    strings (sometimes not even numeric), as in the real executor. Every returned cost
    is kept, as returned, in :attr:`reported_costs`.
    """

    price_input_per_mtok = 0.8
    price_output_per_mtok = 3.2

    def __init__(self, items: Sequence[dict[str, Any]] = (), config: TrainerConfig | None = None) -> None:
        self.config = config or TrainerConfig()
        self._items = {item["problem"]: item for item in items}
        self.reported_costs: list[Any] = []
        self.calls = 0
        self.exceptions = 0
        self._said_invalid_cost = False

    @property
    def total_reported_cost(self) -> float:
        """Sum of every reported cost (numeric strings parsed, invalid ones 0)."""
        return math.fsum(parse_cost(c) for c in self.reported_costs)

    async def execute_workflow(
        self, workflow_code: str, problem: str, problem_type: str = "math", **kwargs: Any
    ) -> tuple[Any, Any, dict[str, Any]]:
        """Run ``workflow_code`` on ``problem``. kwargs: entry_point, test, source, context."""
        started = time.perf_counter()
        self.calls += 1
        header = workflow_header(workflow_code)
        skill, seed = header if header else (0.3, stable_hash(workflow_code, problem))
        rng = random.Random(seed)
        cfg = self.config
        chain_len = max(1, (workflow_code or "").count("operator."))
        lo, hi = cfg.latency_ms
        latency_s = rng.uniform(lo, hi) / 1000.0  # the operators' LLM calls
        await asyncio.sleep(latency_s)

        fate = rng.random()
        if fate < cfg.execution_exception_rate:
            self.exceptions += 1
            raise rng.choice(_EXEC_ERRORS)()
        cost = self._token_cost(rng, problem, chain_len)
        item = self._items.get(problem)
        failed = fate < cfg.execution_exception_rate + cfg.execution_failure_rate
        if failed or item is None:
            answer: Any = None
            error = "operator returned an empty response" if item is not None else "unknown problem"
            metadata = {"success": False, "error": error}
        else:
            answer = _candidate_answer(item, skill, rng, cfg.inconclusive_rate, kwargs.get("entry_point"))
            metadata = {"success": True}
        # The workflow's own time; the wall time also holds waits for the event loop, which
        # the trainer's sync reward computations (code tests, judge calls) keep busy.
        metadata.update(
            execution_time=latency_s,
            wall_time=time.perf_counter() - started,
            operators=chain_len,
            source=kwargs.get("source"),
        )
        reported = self._report(cost, rng)
        self.reported_costs.append(reported)
        return answer, reported, metadata

    def _token_cost(self, rng: random.Random, problem: str, calls: int) -> float:
        prompt_tokens = completion_tokens = 0
        for _ in range(calls):
            prompt_tokens += len(problem) // 4 + rng.randint(350, 2200)
            completion_tokens += rng.randint(80, 850)
        return (prompt_tokens * self.price_input_per_mtok + completion_tokens * self.price_output_per_mtok) / 1e6

    def _report(self, cost: float, rng: random.Random) -> Any:
        roll = rng.random()
        if roll < self.config.invalid_cost_rate:
            if not self._said_invalid_cost:  # the warning otel-grpo gives next is expected: say why
                self._said_invalid_cost = True
                logger.warning("simulated: executor returned cost 'n/a' (demo fault injection)")
            return "n/a"
        if roll < self.config.invalid_cost_rate + self.config.string_cost_rate:
            return f"{cost:.6f}"
        return cost


# --- candidate answers ---------------------------------------------------------------
_FILLER = ("because", "according", "passage", "mentions", "which", "clearly", "states", "this")


def _candidate_answer(
    item: dict[str, Any], skill: float, rng: random.Random, inconclusive_rate: float, entry_point: str | None = None
) -> str:
    """An answer for ``item``: correct with probability ``skill``, else plausibly wrong;
    with probability ``inconclusive_rate`` in a form the rule-based checks cannot read."""
    correct = rng.random() < skill
    vague = rng.random() < inconclusive_rate
    source = item.get("source")
    truth = str(item.get("ground_truth", ""))
    if source in ("gsm8k", "math"):
        return _math_answer(truth, correct, vague, rng, boxed=source == "math")
    if source in ("humaneval", "mbpp"):
        return _code_answer(truth, correct, rng, entry_point or (item.get("meta") or {}).get("entry_point"))
    if source == "hotpotqa":
        return _span_answer(truth, correct, vague, rng, item)
    if source in ("commonsenseqa", "mmlu"):
        return _choice_answer(truth, correct, vague, rng, (item.get("meta") or {}).get("choices") or {})
    return truth if correct else "I am not sure."


def _final_fragment(truth: str) -> str:
    boxed = re.findall(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}", truth)
    if boxed:
        return boxed[-1].strip()
    hashes = re.findall(r"####\s*([^\n]*)", truth)
    return hashes[-1].strip() if hashes else truth.strip()


def _math_answer(truth: str, correct: bool, vague: bool, rng: random.Random, boxed: bool) -> str:
    fragment = _final_fragment(truth)
    value = scoring.extract_number(fragment)
    if not correct:
        if value is None:
            fragment = "0"
        elif "frac" in fragment or "/" in fragment:
            num = re.search(r"\d+", fragment)
            fragment = fragment.replace(num.group(0), str(int(num.group(0)) + 1), 1) if num else "1"
        else:
            delta = rng.choice((1, -1, 2, 10))
            wrong = value * 2 if rng.random() < 0.25 else value + delta
            fragment = f"{wrong:g}" if not float(wrong).is_integer() else str(int(wrong))
    plain = re.sub(r"\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\}", r"\1/\2", fragment)
    if vague:  # no #### and no \boxed{}: the rule gives up, the judge reads the last number
        return f"Working through it step by step, the result comes out to {plain}."
    if boxed:
        return f"Simplifying, we get $\\boxed{{{fragment}}}$."
    return f"Let me compute this step by step.\nThe result is {plain}.\n#### {plain}"


def _code_answer(truth: str, correct: bool, rng: random.Random, entry_point: str | None) -> str:
    if correct or not entry_point:
        return truth
    bug = rng.choice(("none", "none", "raise", "truncate", "flip"))
    if bug == "none":  # the model forgot the return statement
        return f"{truth.rstrip()}\n\n\ndef {entry_point}(*args, **kwargs):\n    pass\n"
    if bug == "raise":
        return f"{truth.rstrip()}\n\n\ndef {entry_point}(*args, **kwargs):\n    raise NotImplementedError\n"
    if bug == "flip":  # an inverted result: plausible, runs, fails the tests
        return (
            f"{truth.rstrip()}\n\n\n_reference = {entry_point}\n\n\n"
            f"def {entry_point}(*args, **kwargs):\n    result = _reference(*args, **kwargs)\n"
            "    return (not result) if isinstance(result, bool) else result[::-1] "
            "if isinstance(result, (list, str)) else result + 1\n"
        )
    lines = truth.rstrip().splitlines()  # a truncated generation: a syntax error
    return "\n".join(lines[: max(1, len(lines) - 1)]) + "\n    return (\n"


def _span_answer(truth: str, correct: bool, vague: bool, rng: random.Random, item: dict[str, Any]) -> str:
    tokens = truth.split()
    if correct:
        if vague:  # the answer, then a reasoning line: token F1 lands mid-band
            filler = " ".join(rng.sample(_FILLER, k=min(len(_FILLER), 1 + 2 * len(tokens))))
            return f"{truth}\nReasoning: {filler}"
        return rng.choice((truth, truth.lower(), f"{truth}."))
    if len(tokens) >= 2 and rng.random() < 0.6:  # a partial span
        return " ".join(tokens[:-1])
    words = [w.strip(".,;:()\"'") for w in str(item.get("context") or item.get("problem", "")).split()]
    words = [w for w in words if w and w[0].isupper() and w.lower() not in truth.lower()]
    return rng.choice(words) if words else "unknown"


def _choice_answer(truth: str, correct: bool, vague: bool, rng: random.Random, choices: dict[str, str]) -> str:
    letter = scoring.option_letter(truth) or truth.strip()[:1].upper()
    letters = sorted(choices) or ["A", "B", "C", "D"]
    if not correct:
        others = [c for c in letters if c != letter] or ["A"]
        letter = rng.choice(others)
    if vague and choices.get(letter):  # only the option text, no letter
        return rng.choice((choices[letter], f"{choices[letter].lower()}."))
    return rng.choice((letter, f"The answer is {letter}.", f"({letter})", f"Answer: {letter}"))
