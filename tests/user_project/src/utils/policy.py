"""A stand-in for the policy LLM: writes AFlow workflow code from templates, deterministically.

The real policy samples Python code from a 7B model; here the 'sampling' is a seeded RNG
whose exploration grows with the temperature. Every generated workflow imports AFlow's
top-level packages ``scripts`` and ``benchmarks``, exactly like AFlow's generated graphs.
"""

import random

HEADER = """from benchmarks.benchmark import BaseBenchmark
from scripts.operators import Custom, Review, ScEnsemble, create_llm_instance


class Workflow:
    def __init__(self, name, llm_config, dataset):
        self.name = name
        self.dataset = dataset
        self.llm = create_llm_instance(llm_config)
        self.custom = Custom(self.llm)
        self.review = Review(self.llm)
        self.sc_ensemble = ScEnsemble(self.llm)
"""

REVIEW = (
    HEADER
    + """
    async def __call__(self, problem, problem_type="math", **kwargs):
        draft = {first!r}
        checked = await self.review(problem=problem, solution=draft, reference={second!r})
        answer = draft if checked["review_result"] else {second!r}
        return BaseBenchmark.extract_answer(answer, problem_type), self.llm.get_usage_summary()["total_cost"]
"""
)

ENSEMBLE = (
    HEADER
    + """
    async def __call__(self, problem, problem_type="math", **kwargs):
        solutions = {candidates!r}
        best = await self.sc_ensemble(solutions=solutions, problem=problem)
        return BaseBenchmark.extract_answer(best["response"], problem_type), self.llm.get_usage_summary()["total_cost"]
"""
)

# A terse direct call: with 8 tokens gpt-oss runs out of room (content null), so the draft stays.
DIRECT = (
    HEADER
    + """
    async def __call__(self, problem, problem_type="math", **kwargs):
        draft = {first!r}
        reply = await self.custom(input=problem, instruction="Answer briefly.", max_tokens=8)
        answer = reply["response"].strip() or draft
        if "<true_false>" in answer:
            answer = draft
        cost = self.llm.get_usage_summary()["total_cost"]
        return BaseBenchmark.extract_answer(answer, problem_type), f"{{cost:.8f}}"
"""
)

# Generated code that compiles but breaks at run time (a KeyError in the operator output).
BROKEN = (
    HEADER
    + """
    async def __call__(self, problem, problem_type="math", **kwargs):
        reply = await self.custom(input=problem, instruction="Solve step by step.")
        return reply["solution"], self.llm.get_usage_summary()["total_cost"]
"""
)


class WorkflowPolicy:
    """Generates K workflows per question; ``log_prob`` plays the model's forward pass."""

    def __init__(self, seed):
        self.seed = seed

    def generate(self, sample, k, step, temperature, salt=0):
        rng = random.Random(f"{self.seed}:{step}:{salt}:{sample['problem']}")
        candidates = list(sample["meta"]["candidates"])
        codes = []
        for _ in range(k):
            roll = rng.random()
            picks = rng.sample(candidates, min(3, len(candidates)))
            if roll < 0.08 * temperature:
                code = BROKEN
            elif roll < 0.35:
                code = REVIEW.format(first=picks[0], second=picks[-1])
            elif roll < 0.75:
                code = ENSEMBLE.format(candidates=picks)
            else:
                code = DIRECT.format(first=picks[0])
            codes.append(code)
        return codes
