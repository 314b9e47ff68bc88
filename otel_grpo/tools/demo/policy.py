"""The simulated policy: workflows whose quality follows a per-dataset learning curve.

No GPU and no real LLM: :class:`SimulatedPolicy` writes AFlow-style workflow code and
states its skill and seed in the code's header (``# policy: skill=... seed=...``), which
the simulated executor (:mod:`otel_grpo.tools.demo.executor`) reads back with
:func:`workflow_header`.
"""

from __future__ import annotations

import math
import random
import re
import zlib
from collections.abc import Sequence
from typing import Any

from otel_grpo.tools.demo.datasets import PROBLEM_TYPES


def stable_hash(*parts: Any) -> int:
    """A hash of ``parts`` that is the same in every process and run (unlike ``hash``)."""
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode("utf-8"))


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
    "math": [
        ("Custom",),
        ("AnswerGenerate", "ScEnsemble"),
        ("Programmer", "Custom"),
        ("Custom", "Custom", "ScEnsemble"),
    ],
    "code": [
        ("CustomCodeGenerate",),
        ("CustomCodeGenerate", "Test"),
        ("CustomCodeGenerate", "CustomCodeGenerate", "ScEnsemble", "Test"),
    ],
    "qa": [("Custom",), ("AnswerGenerate",), ("AnswerGenerate", "ScEnsemble"), ("Custom", "Custom", "ScEnsemble")],
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

    def generate_workflows(self, questions: Sequence[dict[str, Any]], step: int, temperature: float) -> list[str]:
        """One workflow (Python source) per question, sampled at ``temperature``."""
        workflows = []
        for question in questions:
            source = question.get("source") or "unknown"
            ptype = question.get("problem_type") or PROBLEM_TYPES.get(source, "qa")
            skill = self.skill(source, step) + self.rng.gauss(0.0, 0.12 * temperature)
            skill = min(0.98, max(0.02, skill))
            chain = self.rng.choice(OPERATOR_CHAINS.get(ptype, OPERATOR_CHAINS["qa"]))
            workflows.append(render_workflow(chain, skill, self.rng.getrandbits(48), step, temperature))
        return workflows

    def update(self, rewards: Sequence[float]) -> tuple[float, float]:
        """A simulated policy-gradient update: returns ``(loss, kl_div)``."""
        self.updates += 1
        clean = [max(0.0, r) for r in rewards] or [0.0]
        mean = sum(clean) / len(clean)
        spread = math.sqrt(sum((r - mean) ** 2 for r in clean) / len(clean))
        t = self.updates
        loss = 0.9 * math.exp(-t / 9.0) + 0.25 * (1.0 - mean) + 0.05 * spread + self.rng.gauss(0, 0.02)
        kl_div = 0.004 * t**0.8 + 0.01 * spread + abs(self.rng.gauss(0, 0.002))
        return max(0.01, loss), kl_div


def render_workflow(chain: Sequence[str], skill: float, seed: int, step: int, temperature: float) -> str:
    """The Python source of one workflow running the operators of ``chain``, headed by its skill and seed."""
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


def workflow_header(workflow_code: str) -> tuple[float, int] | None:
    """``(skill, seed)`` from the header :class:`SimulatedPolicy` wrote, or None without one."""
    match = _WORKFLOW_RE.search(workflow_code or "")
    return (float(match.group(1)), int(match.group(2))) if match else None
