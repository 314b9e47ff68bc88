"""The demo's reference trainer, of the user's shape (``reference/trainer-shape.md``).

Three classes named like the user's modules, so ``otel_grpo.instrument_trainer`` finds
them with the default configuration and nothing in this file knows about otel-grpo:

* :class:`GRPOTrainer` (``grpo_trainer``): ``async train()``, ``async train_step(step)``,
  ``get_current_temperature(step)``, ``async evaluate_on_val_set(num_samples)``; it calls
  ``wandb.init`` itself, logs one ``wandb.log({...})`` per sample without a step and
  ``wandb.log(metrics, step=step)`` per step, and retries a step on a (simulated) CUDA OOM;
* :class:`AFlowExecutor` (``aflow_executor``): ``async execute_workflow(...) ->
  (answer, cost, metadata)``;
* :class:`RewardComputer` (``reward_computer``): sync ``compute_reward(...)`` with
  rule-based checks and an LLM-judge fallback over the OpenAI client.

No GPU and no real LLM: :class:`SimulatedPolicy` writes workflow code whose quality
follows a per-dataset learning curve, and the executor answers from the ground truth
(correct with probability = skill, else a plausible wrong answer, sometimes in a form
the rules cannot read, which sends the reward computer to the judge). The rewards
themselves are real: numbers are matched, code runs against its tests in a
subprocess, QA answers are token-F1 or option-letter checked, and the judge is a real
HTTP server.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import random
import re
import time
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import openai

from otel_grpo.tools.demo import scoring
from otel_grpo.tools.demo.datasets import DATASETS, PROBLEM_TYPES, load_all, split_train_val

try:  # the user's trainer runs with or without wandb
    import wandb
except ImportError:  # pragma: no cover
    wandb = None

__all__ = [
    "AFlowExecutor",
    "CudaOutOfMemoryError",
    "GRPOTrainer",
    "RewardComputer",
    "SimulatedPolicy",
    "TrainerConfig",
    "parse_cost",
]

logger = logging.getLogger(__name__)

JUDGE_MODEL = "gpt-oss-120b"
CORRECT_THRESHOLD = 0.9
EXCEPTION_REWARD = -10.0


class CudaOutOfMemoryError(RuntimeError):
    """Stands in for ``torch.cuda.OutOfMemoryError``."""


def parse_cost(value: Any) -> float:
    """A reported cost as a float: numbers and numeric strings; anything else (None,
    NaN, ``"n/a"``, negative) is 0, as SPEC.md counts it."""
    if isinstance(value, bool):
        return 0.0
    try:
        number = float(value)
    except (TypeError, ValueError):
        return 0.0
    return number if math.isfinite(number) and number >= 0 else 0.0


def _stable_hash(*parts: Any) -> int:
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode("utf-8"))


# =====================================================================================
# Configuration
# =====================================================================================
@dataclass
class TrainerConfig:
    """What the demo trainer does; the CLI fills it from its options."""

    max_steps: int = 12
    batch_size: int = 14  # questions per step, round-robin over the datasets
    num_workflows: int = 4  # K: workflows per question (one GRPO group)
    eval_every: int = 4
    log_every: int = 1
    val_samples: int = 28
    judge_url: str = "http://localhost:8002/v1"
    judge_timeout_s: float = 30.0
    use_llm_judge: bool = True
    wandb_mode: str = "offline"  # online | offline | disabled
    wandb_dir: str | None = None
    wandb_project: str = "otel-grpo-demo"
    seed: int = 0
    oom_steps: tuple[int, ...] = (2,)  # steps whose first attempt hits a simulated CUDA OOM
    max_step_attempts: int = 3
    temperature_start: float = 1.0
    temperature_end: float = 0.4
    val_fraction: float = 0.2
    code_without_tests_share: float = 0.2  # code items treated as having no tests (judged)
    inconclusive_rate: float = 0.18  # answers in a form the rules cannot read
    execution_failure_rate: float = 0.05
    execution_exception_rate: float = 0.02
    string_cost_rate: float = 0.04
    invalid_cost_rate: float = 0.005
    latency_ms: tuple[float, float] = (5.0, 40.0)
    code_test_timeout_s: float = 5.0


# =====================================================================================
# Policy: writes workflows whose quality follows a learning curve
# =====================================================================================
# source -> (skill at step 0, skill when trained, midpoint as a share of max_steps, width)
SKILL_CURVES: dict[str, tuple[float, float, float, float]] = {
    "gsm8k": (0.30, 0.90, 0.35, 0.14),
    "math": (0.08, 0.66, 0.55, 0.16),
    "humaneval": (0.18, 0.82, 0.45, 0.14),
    "mbpp": (0.22, 0.86, 0.40, 0.14),
    "hotpotqa": (0.15, 0.74, 0.50, 0.16),
    "commonsenseqa": (0.40, 0.90, 0.30, 0.14),
    "mmlu": (0.22, 0.80, 0.45, 0.16),
}
_DEFAULT_CURVE = (0.3, 0.6, 0.5, 0.2)

# AFlow-style operator chains: each operator is one LLM call of the executor.
OPERATOR_CHAINS: dict[str, list[tuple[str, ...]]] = {
    "math": [("Custom",), ("AnswerGenerate", "ScEnsemble"), ("Programmer", "Custom"),
             ("Custom", "Custom", "ScEnsemble")],
    "code": [("CustomCodeGenerate",), ("CustomCodeGenerate", "Test"),
             ("CustomCodeGenerate", "CustomCodeGenerate", "ScEnsemble", "Test")],
    "qa": [("Custom",), ("AnswerGenerate",), ("AnswerGenerate", "ScEnsemble"),
           ("Custom", "Custom", "ScEnsemble")],
}

_WORKFLOW_RE = re.compile(r"#\s*policy:\s*skill=([0-9.]+)\s+seed=(\d+)")


class SimulatedPolicy:
    """The policy LLM without a GPU: per-dataset skill that improves over the steps.

    ``skill(source, step)`` is logistic in ``step / max_steps`` with a per-dataset floor,
    ceiling, midpoint and width. Each generated workflow gets that skill plus noise that
    grows with the sampling temperature, written into the workflow's code header so the
    executor can "run" it.
    """

    def __init__(self, max_steps: int, seed: int = 0) -> None:
        self.max_steps = max(1, int(max_steps))
        self.rng = random.Random(seed)
        self.updates = 0

    def skill(self, source: str, step: int) -> float:
        """Probability that a workflow for ``source`` answers correctly at ``step``."""
        lo, hi, mid, width = SKILL_CURVES.get(source, _DEFAULT_CURVE)
        x = (step / self.max_steps - mid) / width
        return lo + (hi - lo) / (1.0 + math.exp(-x))

    def generate_workflows(self, questions: Sequence[dict[str, Any]], step: int,
                           temperature: float) -> list[str]:
        """One workflow (Python source) per question, sampled at ``temperature``."""
        workflows = []
        for question in questions:
            source = question.get("source") or "unknown"
            ptype = question.get("problem_type") or PROBLEM_TYPES.get(source, "qa")
            skill = self.skill(source, step) + self.rng.gauss(0.0, 0.12 * temperature)
            skill = min(0.98, max(0.02, skill))
            chain = self.rng.choice(OPERATOR_CHAINS.get(ptype, OPERATOR_CHAINS["qa"]))
            workflows.append(_render_workflow(chain, skill, self.rng.getrandbits(48), step, temperature))
        return workflows

    def update(self, rewards: Sequence[float]) -> tuple[float, float]:
        """A simulated policy-gradient update: returns ``(loss, kl_div)``."""
        self.updates += 1
        clean = [max(0.0, r) for r in rewards] or [0.0]
        mean = sum(clean) / len(clean)
        spread = math.sqrt(sum((r - mean) ** 2 for r in clean) / len(clean))
        t = self.updates
        loss = 0.9 * math.exp(-t / 9.0) + 0.25 * (1.0 - mean) + 0.05 * spread + self.rng.gauss(0, 0.02)
        kl_div = 0.004 * t ** 0.8 + 0.01 * spread + abs(self.rng.gauss(0, 0.002))
        return max(0.01, loss), kl_div


def _render_workflow(chain: Sequence[str], skill: float, seed: int, step: int, temperature: float) -> str:
    lines = [
        f"# policy: skill={skill:.4f} seed={seed}",
        f"# generated at step {step}, temperature {temperature:.2f}",
        "class Workflow:",
        "    def __init__(self, name, llm_config, dataset):",
        "        self.llm = create_llm_instance(llm_config)",
    ]
    for i, op in enumerate(chain):
        lines.append(f"        self.op{i} = operator.{op}(self.llm)")
    lines += ["", "    async def __call__(self, problem):", "        result = problem"]
    for i, _ in enumerate(chain):
        lines.append(f"        result = await self.op{i}(input=result)")
    lines.append("        return result['response'], self.llm.get_usage_summary()['total_cost']")
    return "\n".join(lines) + "\n"


# =====================================================================================
# Executor: "runs" a workflow with a simulated LLM
# =====================================================================================
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

    @property
    def total_reported_cost(self) -> float:
        """Sum of every reported cost (numeric strings parsed, invalid ones 0)."""
        return math.fsum(parse_cost(c) for c in self.reported_costs)

    async def execute_workflow(self, workflow_code: str, problem: str, problem_type: str = "math",
                               **kwargs: Any) -> tuple[Any, Any, dict[str, Any]]:
        """Run ``workflow_code`` on ``problem``. kwargs: entry_point, test, source, context."""
        started = time.perf_counter()
        self.calls += 1
        match = _WORKFLOW_RE.search(workflow_code or "")
        skill = float(match.group(1)) if match else 0.3
        seed = int(match.group(2)) if match else _stable_hash(workflow_code, problem)
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
        metadata.update(execution_time=latency_s, wall_time=time.perf_counter() - started, operators=chain_len,
                        source=kwargs.get("source"))
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
            return "n/a"
        if roll < self.config.invalid_cost_rate + self.config.string_cost_rate:
            return f"{cost:.6f}"
        return cost


# --- candidate answers ---------------------------------------------------------------
_FILLER = ("because", "according", "passage", "mentions", "which", "clearly", "states", "this")


def _candidate_answer(item: dict[str, Any], skill: float, rng: random.Random, inconclusive_rate: float,
                      entry_point: str | None = None) -> str:
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
        return (f"{truth.rstrip()}\n\n\n_reference = {entry_point}\n\n\n"
                f"def {entry_point}(*args, **kwargs):\n    result = _reference(*args, **kwargs)\n"
                "    return (not result) if isinstance(result, bool) else result[::-1] "
                "if isinstance(result, (list, str)) else result + 1\n")
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


# =====================================================================================
# Reward computer: rules first, then the LLM judge
# =====================================================================================
JUDGE_SYSTEM_PROMPT = (
    "You are a careful grader. Decide whether the model's prediction is equivalent to the "
    "ground truth for the given problem. Think briefly, then finish with "
    "<true_false>True</true_false> or <true_false>False</true_false>."
)
_JUDGE_FOOTER = ("Is the prediction correct? Answer with <true_false>True</true_false> or "
                 "<true_false>False</true_false>.")
JUDGE_TEMPLATES: dict[str, str] = {
    "math": "Problem: {problem}\n\nPrediction: {prediction}\n\nGround truth: {ground_truth}\n\n" + _JUDGE_FOOTER,
    "code": ("Problem:\n```python\n{problem}\n```\n\nPredicted solution:\n```python\n{prediction}\n```\n\n"
             "Reference solution:\n```python\n{ground_truth}\n```\n\n" + _JUDGE_FOOTER),
    "hotpotqa": "Question: {problem}\n\nPrediction: {prediction}\n\nGround truth: {ground_truth}\n\n" + _JUDGE_FOOTER,
    "choice": ("Question: {problem}\n\nPrediction: {prediction}\n\nGround truth: {ground_truth}\n\n"
               + _JUDGE_FOOTER),
    "default": "Question: {problem}\n\nPrediction: {prediction}\n\nGround truth: {ground_truth}\n\n" + _JUDGE_FOOTER,
}
_TEMPLATE_FOR = {"gsm8k": "math", "math": "math", "humaneval": "code", "mbpp": "code",
                 "code_llm_judge": "code", "hotpotqa": "hotpotqa", "commonsenseqa": "choice", "mmlu": "choice"}

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

    def __init__(self, judge_url: str = "http://localhost:8002/v1", use_llm_judge: bool = True,
                 judge_timeout_s: float = 30.0, code_test_timeout_s: float = 5.0) -> None:
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
    def compute_reward(self, problem: str, prediction: Any, ground_truth: Any, problem_type: str = "math",
                       metadata: dict[str, Any] | None = None, test: str | None = None,
                       entry_point: str | None = None, source: str | None = None) -> float:
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

    def _judge(self, problem: str, prediction: str, ground_truth: str, problem_type: str,
               source: str | None) -> bool:
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

    def _math_reward(self, problem: str, prediction: str, ground_truth: str, problem_type: str,
                     source: str | None) -> float:
        pred, gold = self._marked_number(prediction), self._marked_number(ground_truth)
        match = scoring.numeric_match(pred, gold) if pred is not None and gold is not None else None
        if match is None:  # numeric extraction failed: ask the judge
            match = self._judge(problem, prediction, ground_truth, problem_type, source)
        return 1.0 if match else 0.0

    def _code_reward(self, problem: str, prediction: str, ground_truth: str, test: str | None,
                     entry_point: str | None) -> float:
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

    def _span_reward(self, problem: str, prediction: str, ground_truth: str, problem_type: str,
                     source: str | None) -> float:
        f1 = scoring.token_f1(prediction, ground_truth)
        lo, hi = F1_JUDGE_BAND
        if lo <= f1 < hi and self._judge(problem, prediction, ground_truth, problem_type, source):
            return 1.0
        return scoring.grade(f1)

    def _choice_reward(self, problem: str, prediction: str, ground_truth: str, problem_type: str,
                       source: str | None) -> float:
        match = scoring.option_match(prediction, ground_truth)
        if match is None:  # no option letter found
            match = self._judge(problem, prediction, _choice_truth(problem, ground_truth), problem_type, source)
        return 1.0 if match else 0.0

    # --- the judge -------------------------------------------------------------------
    def _llm_judge_compare(self, problem: str, prediction: str, ground_truth: str, problem_type: str,
                           source: str | None = None) -> bool:
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
                        model=JUDGE_MODEL, messages=messages, temperature=0.0, max_tokens=800)
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


# =====================================================================================
# The trainer
# =====================================================================================
@dataclass
class SampleResult:
    """What one rollout task produced."""

    source: str
    reward: float
    cost: float = 0.0
    success: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class GRPOTrainer:
    """A GRPO trainer of the user's shape: K workflows per question, one asyncio task per
    workflow (executor, then the sync reward computation), metrics per step, validation
    every ``eval_every`` steps."""

    def __init__(self, config: TrainerConfig | None = None) -> None:
        self.config = cfg = config or TrainerConfig()
        self.max_steps = cfg.max_steps
        self.batch_size = cfg.batch_size
        self.num_workflows = cfg.num_workflows
        self.log_every = cfg.log_every
        self.eval_every = cfg.eval_every
        self.val_samples = cfg.val_samples
        self.rng = random.Random(cfg.seed)
        data = load_all()
        self.train_data: dict[str, list[dict[str, Any]]] = {}
        self.val_data: dict[str, list[dict[str, Any]]] = {}
        for name, items in data.items():
            for item in items:
                self._drop_tests_maybe(item)
            self.train_data[name], self.val_data[name] = split_train_val(items, cfg.val_fraction, cfg.seed)
        every_item = [item for items in data.values() for item in items]
        self.policy = SimulatedPolicy(cfg.max_steps, seed=cfg.seed + 1)
        self.executor = AFlowExecutor(every_item, cfg)
        self.reward_computer = RewardComputer(judge_url=cfg.judge_url, use_llm_judge=cfg.use_llm_judge,
                                              judge_timeout_s=cfg.judge_timeout_s,
                                              code_test_timeout_s=cfg.code_test_timeout_s)
        self.use_wandb = wandb is not None and cfg.wandb_mode != "disabled"
        self.wandb_run: Any = None
        self.current_step = 0
        self.step_attempts: Counter[int] = Counter()
        self.history: list[dict[str, Any]] = []
        self.val_history: list[tuple[int, dict[str, Any]]] = []
        self.on_step_end: Callable[[int, dict[str, Any]], None] | None = None
        self.on_eval_end: Callable[[int, dict[str, Any]], None] | None = None

    def _drop_tests_maybe(self, item: dict[str, Any]) -> None:
        """Treat a share of the code items as having no tests (they get judged instead)."""
        meta = item.get("meta") or {}
        if item.get("problem_type") == "code" and meta.get("test"):
            share = self.config.code_without_tests_share
            if _stable_hash(meta.get("id"), self.config.seed) % 1000 < share * 1000:
                meta["test"] = None

    # --- wandb -----------------------------------------------------------------------
    def _init_wandb(self) -> None:
        if not self.use_wandb or self.wandb_run is not None:
            return
        cfg = self.config
        kwargs = dict(project=cfg.wandb_project, dir=cfg.wandb_dir,
                      config={"max_steps": cfg.max_steps, "batch_size": cfg.batch_size, "k": cfg.num_workflows,
                              "eval_every": cfg.eval_every, "seed": cfg.seed, "judge_model": JUDGE_MODEL})
        try:
            self.wandb_run = wandb.init(mode=cfg.wandb_mode, **kwargs)
        except Exception as exc:  # noqa: BLE001 - e.g. online without an API key: keep the run offline
            if cfg.wandb_mode != "online":
                raise
            logger.warning("wandb.init(mode='online') failed (%s); writing an offline run instead "
                           "(upload it later with `wandb sync`)", exc)
            self.wandb_run = wandb.init(mode="offline", **kwargs)

    def _log(self, data: dict[str, Any], step: int | None = None) -> None:
        if self.use_wandb and self.wandb_run is not None:
            if step is None:
                wandb.log(data)
            else:
                wandb.log(data, step=step)

    # --- schedule --------------------------------------------------------------------
    def get_current_temperature(self, step: int) -> float:
        """Sampling temperature: linear decay from ``temperature_start`` to ``temperature_end``."""
        cfg = self.config
        frac = 0.0 if self.max_steps <= 1 else (step - 1) / (self.max_steps - 1)
        frac = min(1.0, max(0.0, frac))
        return round(cfg.temperature_start + (cfg.temperature_end - cfg.temperature_start) * frac, 4)

    # --- loop ------------------------------------------------------------------------
    async def train(self) -> None:
        """Run ``max_steps`` steps, retrying a step on CUDA OOM; validate every ``eval_every``."""
        self._init_wandb()
        for step in range(1, self.max_steps + 1):
            self.current_step = step
            metrics: dict[str, Any] = {}
            for attempt in range(self.config.max_step_attempts):
                try:
                    metrics = await self.train_step(step)
                    break
                except CudaOutOfMemoryError as exc:
                    logger.warning("step %d attempt %d: %s; retrying", step, attempt + 1, exc)
                    if attempt == self.config.max_step_attempts - 1:
                        raise
                    await asyncio.sleep(0)  # torch.cuda.empty_cache() in the real trainer
            self.history.append(metrics)
            if step % self.log_every == 0:
                self._log(metrics, step=step)
            if self.on_step_end is not None:
                self.on_step_end(step, metrics)
            if self.eval_every and step % self.eval_every == 0:
                val_metrics = await self.evaluate_on_val_set(num_samples=self.val_samples)
                self.val_history.append((step, val_metrics))
                self._log(val_metrics, step=step)
                if self.on_eval_end is not None:
                    self.on_eval_end(step, val_metrics)

    def _sample_batch(self, step: int) -> list[dict[str, Any]]:
        names = [n for n in DATASETS if self.train_data.get(n)]
        batch = []
        for i in range(self.batch_size):
            name = names[(i + step) % len(names)]
            item = self.rng.choice(self.train_data[name])
            batch.append({key: item.get(key) for key in ("problem", "problem_type", "ground_truth",
                                                         "source", "meta", "context")})
        return batch

    async def _rollout(self, sample: dict[str, Any], workflow: str) -> SampleResult:
        """One task: execute the workflow, then compute the reward (sync) in the same task."""
        meta = sample.get("meta") or {}
        source = sample.get("source") or "unknown"
        result = SampleResult(source=source, reward=0.0)
        try:
            answer, cost, metadata = await self.executor.execute_workflow(
                workflow, sample["problem"], sample.get("problem_type") or "math",
                entry_point=meta.get("entry_point"), test=meta.get("test"), source=sample.get("source"),
                context=sample.get("context"))
            result.cost = parse_cost(cost)
            result.success = bool(metadata.get("success"))
            if result.success:
                result.reward = self.reward_computer.compute_reward(
                    sample["problem"], answer, sample["ground_truth"], sample.get("problem_type") or "math",
                    metadata=metadata, test=meta.get("test"), entry_point=meta.get("entry_point"),
                    source=sample.get("source"))
        except Exception as exc:  # noqa: BLE001 - the real trainer punishes a crashing workflow
            logger.debug("rollout failed: %s: %s", type(exc).__name__, exc)
            result.reward, result.success = EXCEPTION_REWARD, False
        self._log({"sample/reward": result.reward, "sample/cost": result.cost,
                   "sample/success": int(result.success)})
        return result

    async def train_step(self, step: int) -> dict[str, Any]:
        """One GRPO step: sample, generate K workflows per question, roll out, update."""
        batch = self._sample_batch(step)
        temperature = self.get_current_temperature(step)
        expanded = [sample for sample in batch for _ in range(self.num_workflows)]
        workflows = self.policy.generate_workflows(expanded, step, temperature)
        results = await asyncio.gather(*(self._rollout(s, w) for s, w in zip(expanded, workflows, strict=True)))
        self.step_attempts[step] += 1
        if step in self.config.oom_steps and self.step_attempts[step] == 1:
            raise CudaOutOfMemoryError(
                f"CUDA out of memory. Tried to allocate 2.50 GiB (step {step}, backward pass)")
        rewards = [r.reward for r in results]
        loss, kl_div = self.policy.update(rewards)
        num_correct = sum(1 for r in rewards if r >= CORRECT_THRESHOLD)
        n = len(rewards)
        return {
            "step": step,
            "loss": loss,
            "kl_div": kl_div,
            "avg_reward": sum(rewards) / n,
            "max_reward": max(rewards),
            "min_reward": min(rewards),
            "num_samples": n,
            "accuracy": 100.0 * num_correct / n,
            "num_correct": num_correct,
            "num_total": n,
            "avg_correctness_score": sum(max(0.0, r) for r in rewards) / n,
        }

    def _val_questions(self, num_samples: int) -> list[dict[str, Any]]:
        """Validation items interleaved over the datasets, the same ones every time."""
        pools = [self.val_data[n] for n in DATASETS if self.val_data.get(n)]
        ordered = []
        for i in range(max((len(p) for p in pools), default=0)):
            ordered.extend(pool[i] for pool in pools if i < len(pool))
        return ordered[:num_samples]

    async def evaluate_on_val_set(self, num_samples: int = 50) -> dict[str, Any]:
        """One greedy workflow per validation question; accuracy, correctness, cost, success."""
        questions = self._val_questions(num_samples)
        if not questions:
            return {"val_accuracy": 0.0, "val_avg_correctness": 0.0, "val_avg_cost": 0.0, "val_success_rate": 0.0}
        workflows = self.policy.generate_workflows(questions, self.current_step or self.max_steps, 0.2)
        results = await asyncio.gather(*(self._rollout(q, w) for q, w in zip(questions, workflows, strict=True)))
        n = len(results)
        return {
            "val_accuracy": 100.0 * sum(1 for r in results if r.reward >= CORRECT_THRESHOLD) / n,
            "val_avg_correctness": sum(max(0.0, r.reward) for r in results) / n,
            "val_avg_cost": sum(r.cost for r in results) / n,
            "val_success_rate": 100.0 * sum(1 for r in results if r.success) / n,
        }
