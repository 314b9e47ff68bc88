"""The GRPO training script the TRL tests run (plain, under ``otel-grpo run``, or with instrument_trainer).

Not a test module: it only defines ``main``. Its reward functions write what TRL gave
them and what they returned to ``OUT/calls-{rank}.jsonl`` (one JSON line per call), so the
tests can compute every expected row with plain code. ``--mode instrument`` calls
``otel_grpo.instrument_trainer(trainer)``; ``plain`` and ``auto`` (``otel-grpo run``) leave
the script unchanged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "trl"
VERDICT = re.compile(r"<true_false>\s*(true|false)\s*</true_false>", re.I)
# (source, problem_type, question, answer): mixed case and one source the rule does not score.
ROWS = [
    ("gsm8k", "math", "What is 2 plus 2?", "4"),
    ("HotpotQA", "qa", "Which river flows through Cairo?", "nile"),
    ("mbpp", "code", "Which planet is called the red planet?", "mars"),
    ("mmlu", "", "How many legs has a spider? A six B eight", "b"),
    ("math", "math", "What is 3 times 3?", "9"),
    ("gsm8k", "math", "What is 10 minus 7?", "3"),
]

STATE: dict = {}


def _log(func: str, sources, ptypes, values, **extra) -> None:
    trainer = STATE["trainer"]
    entry = {
        "func": func,
        "rank": STATE["rank"],
        "global_step": trainer.state.global_step,
        "training": bool(trainer.model.training),
        "sources": list(sources),
        "ptypes": list(ptypes),
        "values": list(values),
        **extra,
    }
    with open(STATE["log"], "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


def rule(completions, source, problem_type, **kwargs):
    """0, 0.5 or 1 from the completion's word count; None (not applicable) for mbpp."""
    values = [None if s == "mbpp" else (len(c.split()) % 3) / 2 for c, s in zip(completions, source, strict=True)]
    _log("rule", source, problem_type, values)
    return values


def _ask(prompt: str, completion: str, answer: str) -> str:
    return f"Question: {prompt}\nPrediction: {completion.strip()}\nGround truth: {answer}"


def _read(text: str | None) -> float | None:
    match = VERDICT.search(text or "")
    return None if match is None else float(match.group(1).lower() == "true")


def judge(prompts, completions, answer, source, problem_type, **kwargs):
    """1.0 / 0.0 from the judge's verdict; None when the request failed or no verdict came back."""
    import openai

    client = openai.OpenAI(base_url=STATE["judge_url"], api_key="sk-test", max_retries=0, timeout=10)
    values, failed, tokens = [], [], [0, 0]
    for p, c, a in zip(prompts, completions, answer, strict=True):
        try:
            reply = client.chat.completions.create(
                model="gpt-oss-120b", messages=[{"role": "user", "content": _ask(p, c, a)}], max_tokens=256
            )
        except openai.OpenAIError:
            values.append(None)
            failed.append(True)
            continue
        content = reply.choices[0].message.content
        values.append(_read(content))
        failed.append(not content)  # empty or null content: a failed request (docs/keys.md: api_failure)
        _count(tokens, reply)
    _log("judge", source, problem_type, values, failed=failed, requests=len(values), tokens=tokens)
    return values


def _count(tokens: list[int], reply) -> None:
    if reply.usage is not None:
        tokens[0] += reply.usage.prompt_tokens
        tokens[1] += reply.usage.completion_tokens


async def async_judge(prompts, completions, answer, source, problem_type, **kwargs):
    """The same judge, async: one request per completion, all at once."""
    import openai

    client = openai.AsyncOpenAI(base_url=STATE["judge_url"], api_key="sk-test", max_retries=0, timeout=10)

    async def one(p, c, a):
        try:
            reply = await client.chat.completions.create(
                model="gpt-oss-120b", messages=[{"role": "user", "content": _ask(p, c, a)}], max_tokens=256
            )
        except openai.OpenAIError:
            return None, True
        _count(tokens, reply)
        content = reply.choices[0].message.content
        return _read(content), not content

    tokens = [0, 0]
    results = await asyncio.gather(*(one(p, c, a) for p, c, a in zip(prompts, completions, answer, strict=True)))
    await client.close()
    values = [v for v, _ in results]
    _log("judge", source, problem_type, values, failed=[f for _, f in results], requests=len(values), tokens=tokens)
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--mode", choices=("plain", "auto", "instrument"), default="plain")
    parser.add_argument("--judge-url", required=True)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--steps-per-generation", type=int, default=None)
    parser.add_argument("--num-iterations", type=int, default=1)
    parser.add_argument("--eval-steps", type=int, default=0)
    parser.add_argument("--async-judge", action="store_true")
    parser.add_argument("--weights", default="1.0,0.5")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(EXAMPLES))
    from datasets import Dataset
    from tiny import build_model, build_tokenizer
    from trl import GRPOConfig, GRPOTrainer

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rank = int(os.environ.get("RANK", "0"))
    STATE.update(rank=rank, log=out / f"calls-{rank}.jsonl", judge_url=args.judge_url)
    rows = [
        {"prompt": f"Question: {q} Answer:", "answer": a, "source": s, "problem_type": p} for s, p, q, a in ROWS * 8
    ]
    tokenizer = build_tokenizer()
    config = GRPOConfig(
        output_dir=str(out / "trainer"),
        use_cpu=True,
        max_steps=args.steps,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        steps_per_generation=args.steps_per_generation,
        num_iterations=args.num_iterations,
        learning_rate=1e-4,
        logging_steps=1,
        save_strategy="no",
        report_to="wandb",
        reward_weights=[float(w) for w in args.weights.split(",")],
        eval_strategy="steps" if args.eval_steps else "no",
        eval_steps=args.eval_steps or None,
        per_device_eval_batch_size=4,
        seed=0,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=build_model(tokenizer),
        reward_funcs=[rule, async_judge if args.async_judge else judge],
        args=config,
        train_dataset=Dataset.from_list(rows[:32]),
        eval_dataset=Dataset.from_list(rows[32:36]) if args.eval_steps else None,
        processing_class=tokenizer,
    )
    STATE["trainer"] = trainer
    if args.mode == "instrument":
        import otel_grpo

        otel_grpo.instrument_trainer(trainer)
    trainer.train()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
