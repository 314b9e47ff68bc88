"""AFlow operators (trimmed): an async OpenAI-compatible LLM and the operators built on it.

The LLM is the same gpt-oss-120b server the judge uses (the user's config). The operators
read the server's verdict tag, so a workflow's answer depends on real LLM replies.
"""

import re

import openai

_VERDICT = re.compile(r"<true_false>\s*(True|False)\s*</true_false>", re.I)

# USD per token (the user's cost table for gpt-oss-120b)
PRICE_INPUT = 0.15 / 1_000_000
PRICE_OUTPUT = 0.60 / 1_000_000


class AsyncLLM:
    """One workflow's LLM: an ``openai.AsyncOpenAI`` client plus a usage/cost tracker."""

    def __init__(self, config):
        self.model = config["model"]
        self.client = openai.AsyncOpenAI(
            base_url=config["base_url"], api_key="sk-dummy", timeout=config.get("timeout", 30.0), max_retries=1
        )
        self.prompt_tokens = 0
        self.completion_tokens = 0

    async def __call__(self, prompt, max_tokens=512):
        reply = await self.client.chat.completions.create(
            model=self.model, messages=[{"role": "user", "content": prompt}], temperature=0.0, max_tokens=max_tokens
        )
        if reply.usage is not None:
            self.prompt_tokens += reply.usage.prompt_tokens
            self.completion_tokens += reply.usage.completion_tokens
        return reply.choices[0].message.content

    def get_usage_summary(self):
        cost = self.prompt_tokens * PRICE_INPUT + self.completion_tokens * PRICE_OUTPUT
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_cost": round(cost, 10),
        }

    async def close(self):
        await self.client.close()


def create_llm_instance(llm_config):
    """AFlow's factory: one LLM per workflow instance."""
    return AsyncLLM(llm_config)


def _verdict(content):
    if content is None:
        return None
    found = _VERDICT.findall(content)
    return found[-1].lower() == "true" if found else None


class Custom:
    """Free-form call: the instruction and the input go to the LLM, its text comes back."""

    def __init__(self, llm):
        self.llm = llm

    async def __call__(self, input, instruction, max_tokens=512):
        content = await self.llm(f"{instruction}\n{input}", max_tokens=max_tokens)
        return {"response": content or ""}


class Review:
    """Asks the LLM whether a solution agrees with a reference derivation."""

    def __init__(self, llm):
        self.llm = llm

    async def __call__(self, problem, solution, reference):
        prompt = (
            f"Review the solution against the reference.\nQuestion: {problem}\n"
            f"Prediction: {solution}\nGround truth: {reference}"
        )
        content = await self.llm(prompt)
        verdict = _verdict(content)
        return {"review_result": bool(verdict), "feedback": content or ""}


class ScEnsemble:
    """Self-consistency: the solution that the LLM finds equivalent to most others wins."""

    def __init__(self, llm):
        self.llm = llm

    async def __call__(self, solutions, problem):
        votes = [0] * len(solutions)
        for i, first in enumerate(solutions):
            for j in range(i + 1, len(solutions)):
                prompt = (
                    f"Are these two answers equivalent?\nQuestion: {problem}\n"
                    f"Prediction: {first}\nGround truth: {solutions[j]}"
                )
                if _verdict(await self.llm(prompt)):
                    votes[i] += 1
                    votes[j] += 1
        best = max(range(len(solutions)), key=lambda k: (votes[k], -k))
        return {"response": solutions[best], "votes": votes}
