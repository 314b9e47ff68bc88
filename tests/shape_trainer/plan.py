"""Deterministic plan of what the shape trainer does; tests recompute expectations from it.

Each sample is a dict: source (may be None or odd-cased), problem_type (may be None),
kind ("reward" | "judge" | "exec_fail" | "exec_raise" | "reward_raise"), reward (for
"reward"), judge_fault (for "judge": ok_true | ok_false | unparsable | http_500 | null_content),
judge_fault2 (optional, for "judge": a second judge evaluation of the same sample, whose
reward is then 1.0 if either verdict is True), cost (float, str, None or "n/a").
"""

from __future__ import annotations

import random

SOURCES = ["gsm8k", "math", "humaneval", "mbpp", "hotpotqa", "commonsenseqa", "mmlu"]
PTYPE = {
    "gsm8k": "math",
    "math": "math",
    "humaneval": "code",
    "mbpp": "code",
    "hotpotqa": "qa",
    "commonsenseqa": "qa",
    "mmlu": "qa",
}
REWARDS = [0.0, 0.2, 0.4, 0.7, 1.0]
JUDGE_FAULTS = ["ok_true", "ok_false", "ok_true", "unparsable", "http_500", "null_content"]


def make_plan(steps: int = 3, questions: int = 7, k: int = 2, val_questions: int = 5, seed: int = 1) -> dict:
    """Return {"train": {step: [sample...]}, "val": [sample...], "raise_once": {step}}."""
    rng = random.Random(seed)

    def sample(i: int, qid: str) -> dict:
        source = SOURCES[i % len(SOURCES)]
        roll = rng.random()
        if roll < 0.08:
            kind = "exec_fail"
        elif roll < 0.13:
            kind = "exec_raise"
        elif roll < 0.16:
            kind = "reward_raise"
        elif roll < 0.40:
            kind = "judge"
        else:
            kind = "reward"
        cost_roll = rng.random()
        if cost_roll < 0.1:
            cost = f"{rng.randint(1, 50) / 1000:.3f}"  # numeric string
        elif cost_roll < 0.15:
            cost = None
        elif cost_roll < 0.18:
            cost = "n/a"
        else:
            cost = round(rng.uniform(0.001, 0.05), 4)
        src: str | None = source
        if i % 11 == 5:
            src = source.upper()  # must be lower-cased
        ptype: str | None = PTYPE[source]
        if i % 9 == 4:
            ptype = None  # derived from the source
        if i % 13 == 12:
            src, ptype = None, None  # unknown
        return {
            "qid": qid,
            "source": src,
            "problem_type": ptype,
            "kind": kind,
            "reward": rng.choice(REWARDS),
            "judge_fault": rng.choice(JUDGE_FAULTS),
            "cost": cost,
        }

    train = {}
    for step in range(1, steps + 1):
        batch = []
        for q in range(questions):
            base = sample(q + step, f"s{step}q{q}")
            for _ in range(k):
                s = dict(base)
                s.update(
                    {
                        k2: v
                        for k2, v in sample(q + step, base["qid"]).items()
                        if k2 in ("kind", "reward", "judge_fault", "cost")
                    }
                )
                batch.append(s)
        train[step] = batch
    for s in train[steps][:k]:  # one group with no labels at all: "unknown"
        s["source"], s["problem_type"] = None, None
    for s in train[1][-k:]:  # one group with an upper-case source
        s["source"] = s["source"].upper()
    # Samples judged twice: a failure then a verdict (scored by the judge), and two
    # failures (scored judge_failed: the reward is the trainer's fallback).
    train[1][0].update(kind="judge", judge_fault="http_500", judge_fault2="ok_false")
    train[steps][-1].update(kind="judge", judge_fault="unparsable", judge_fault2="null_content")
    val = [sample(i, f"v{i}") for i in range(val_questions)]
    return {"train": train, "val": val, "raise_once": {2}}
