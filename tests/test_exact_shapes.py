"""Exact numbers in every trainer shape: two-phase scoring, threads, overflow, distinct sources.

Each test builds its rows from a plan with tests/oracle.py (an independent restatement of
the key contract) or by hand, and compares every key of every row.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

import otel_grpo
from tests.oracle import assert_rows_equal, expected_rows

# Eight problems: four gsm8k answered right, four humaneval answered wrong, two workflows each
# (a GRPO group of K=2) with different costs. A reward paired with the wrong execution would
# move samples between the two datasets.
PROBLEMS = [(f"gsm8k question {i}", "gsm8k", "math", "42", "42") for i in range(4)] + [
    (f"humaneval task {i}", "humaneval", "code", "def f(): pass", "def f(): return 1") for i in range(4)
]
K = 2


def _cost(index: int, copy: int) -> float:
    return 0.01 * (index + 1) + 0.001 * copy


def _plan_window(step: int) -> dict:
    samples = []
    for index, (problem, source, ptype, answer, truth) in enumerate(PROBLEMS):
        for copy in range(K):
            samples.append(
                {
                    "source": source,
                    "ptype": ptype,
                    "reward": 1.0 if answer == truth else 0.0,
                    "cost": _cost(index, copy),
                    "exec": "ok",
                    "group": problem,
                }
            )
    return {"split": "train", "step": step, "samples": samples, "judges": [], "scalars": {"loss": 0.5}, "raises": False}


class Executor:
    async def execute_workflow(self, workflow_code, problem, problem_type="math", **kwargs):
        index, copy = workflow_code
        await asyncio.sleep(0.001 * ((index * 7 + copy * 3) % 5))  # finish out of order
        return PROBLEMS[index][3], _cost(index, copy), {"success": True, "execution_time": 0.01}


class SyncExecutor:
    def execute_workflow(self, workflow_code, problem, problem_type="math", **kwargs):
        index, copy = workflow_code
        time.sleep(0.001 * ((index * 7 + copy * 3) % 5))
        return PROBLEMS[index][3], _cost(index, copy), {"success": True, "execution_time": 0.01}


class RewardComputer:
    def compute_reward(
        self,
        problem,
        prediction,
        ground_truth,
        problem_type="math",
        metadata=None,
        test=None,
        entry_point=None,
        source=None,
    ):
        return 1.0 if prediction == ground_truth else 0.0


def _jobs():
    return [(index, copy) for index in range(len(PROBLEMS)) for copy in range(K)]


class TwoPhaseTrainer:
    """Runs every execution of the step first, then scores them all (three ways)."""

    def __init__(self, mode: str):
        self.mode = mode
        self.executor = SyncExecutor() if mode == "thread_pool" else Executor()
        self.reward_computer = RewardComputer()

    async def train_step(self, step):
        jobs = _jobs()
        if self.mode == "sequential":  # one coroutine awaits each execution, then scores in a loop
            results = [await self._execute(job) for job in jobs]
            for job, result in zip(jobs, results, strict=True):
                self._score(job, result)
        elif self.mode == "gather":  # gather the executions, then gather the scoring
            results = await asyncio.gather(*(self._execute(job) for job in jobs))

            async def score(job, result):
                await asyncio.sleep(0)
                self._score(job, result)

            await asyncio.gather(*(score(job, r) for job, r in zip(jobs, results, strict=True)))
        else:  # a thread pool executes, then a second pool pass scores
            with ThreadPoolExecutor(4) as pool:
                results = list(pool.map(self._execute_sync, jobs))
                list(pool.map(lambda pair: self._score(*pair), zip(jobs, results, strict=True)))
        return {"loss": 0.5}

    async def _execute(self, job):
        index, _copy = job
        problem, source, ptype, _answer, _truth = PROBLEMS[index]
        return await self.executor.execute_workflow(job, problem, ptype, source=source)

    def _execute_sync(self, job):
        index, _copy = job
        problem, source, ptype, _answer, _truth = PROBLEMS[index]
        return self.executor.execute_workflow(job, problem, ptype, source=source)

    def _score(self, job, result):
        index, _copy = job
        problem, source, ptype, _answer, truth = PROBLEMS[index]
        return self.reward_computer.compute_reward(problem, result[0], truth, ptype, source=source)


@pytest.mark.parametrize("mode", ["sequential", "gather", "thread_pool"])
def test_two_phase_scoring_pairs_each_reward_with_its_own_execution(mode):
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    rows: list[dict] = []
    tel.exporter.row_listeners.append(lambda row, window: rows.append(row))
    trainer = otel_grpo.instrument_trainer(TwoPhaseTrainer(mode))
    try:
        for step in (1, 2):
            asyncio.run(trainer.train_step(step))
    finally:
        otel_grpo.uninstrument_trainer(trainer)
    expected = expected_rows([_plan_window(1), _plan_window(2)])
    assert rows[0]["dataset/gsm8k/count"] == 8 and rows[0]["dataset/gsm8k/accuracy"] == 100.0
    assert rows[0]["dataset/humaneval/count"] == 8 and rows[0]["dataset/humaneval/accuracy"] == 0.0
    assert_rows_equal(rows, expected, ignore_prefixes=("executor/latency",))


# --- steps from several OS threads at once --------------------------------------------------------
def _step_plan(step: int) -> tuple[int, int]:
    """(correct gsm8k samples, incorrect math samples) of a step: different for every step."""
    return step % 5 + 1, step % 3


def test_steps_running_in_several_threads_each_get_exactly_their_own_samples():
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    rows: list[dict] = []
    tel.exporter.row_listeners.append(lambda row, window: rows.append(row))
    close = tel.recorder.close_window

    def close_then_yield(*args, **kwargs):  # the OS may switch threads right after a window commits
        summary = close(*args, **kwargs)
        time.sleep(0.001)
        return summary

    tel.recorder.close_window = close_then_yield
    threads, steps_per_thread = 8, 25
    start = threading.Barrier(threads)

    def worker(first: int) -> None:
        start.wait()
        for step in range(first, first + steps_per_thread):
            good, bad = _step_plan(step)
            with otel_grpo.step(step):
                for _ in range(good):
                    otel_grpo.record_sample(1.0, source="gsm8k")
                time.sleep(0.0005)
                for _ in range(bad):
                    otel_grpo.record_sample(0.0, source="math")

    pool = [threading.Thread(target=worker, args=(1 + t * steps_per_thread,)) for t in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(60)
    assert len(rows) == threads * steps_per_thread
    wrong = []
    for row in rows:
        good, bad = _step_plan(row["train/step"])
        got = (row.get("dataset/gsm8k/count", 0), row.get("dataset/math/count", 0))
        if got != (good, bad) or row["train/avg_reward"] != good / (good + bad):
            wrong.append((row["train/step"], got, (good, bad)))
    assert not wrong, f"{len(wrong)} rows hold another step's samples, e.g. {wrong[:3]}"


# --- one overflow must not poison a series --------------------------------------------------------
def test_an_overflowing_reward_is_counted_invalid_once_and_later_steps_stay_exact(caplog):
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    with caplog.at_level(logging.WARNING, logger="otel_grpo"):
        with otel_grpo.step(1):
            for reward in (1e308, 1e308, 1.0, 0.0):
                otel_grpo.record_sample(reward, source="gsm8k")
        for step in (2, 3, 4):
            with otel_grpo.step(step):
                for reward in (1.0, 1.0, 1.0, 0.0):
                    otel_grpo.record_sample(reward, source="gsm8k")
        with otel_grpo.step(5):
            otel_grpo.record_executor_run(cost=1e308, source="gsm8k")
            otel_grpo.record_sample(1.0, source="gsm8k")
        with otel_grpo.step(6):
            otel_grpo.record_executor_run(cost=0.5, source="gsm8k")
            otel_grpo.record_sample(1.0, source="gsm8k")
    rows = tel.rows
    assert rows[0]["dataset/gsm8k/avg_reward"] == 0.25  # the two 1e308 count as 0, like any invalid reward
    assert rows[0]["dataset/gsm8k/count"] == 4
    for row in rows[1:4]:
        assert row["dataset/gsm8k/avg_reward"] == 0.75 and row["train/avg_reward"] == 0.75
        assert row["dataset/gsm8k/accuracy"] == 75.0
    assert rows[4]["cost/total_cost"] == 0.0 and rows[4]["cost/invalid_cost_count"] == 1
    assert rows[5]["cost/total_cost"] == 0.5 and rows[5]["dataset/gsm8k/avg_cost"] == 0.5
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert sum("invalid reward" in w for w in warnings) == 1
    assert sum("invalid cost" in w for w in warnings) == 1


# --- distinct sources stay distinct ---------------------------------------------------------------
_SAFE = re.compile(r"^[a-z0-9_.\-]+$")


def test_distinct_source_names_never_merge_and_stay_valid_keys_and_labels():
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    long_a, long_b = "x" * 70 + "_alpha", "x" * 70 + "_beta"
    names = ["math", "émath", "数学", "算术", True, 1, long_a, long_b, "gsm8k/train", "gsm8k_train", " GSM8K "]
    with otel_grpo.step(1):
        for name in names:
            otel_grpo.record_sample(1.0, source=name)
    row = tel.rows[-1]
    sources = sorted(key.split("/")[1] for key in row if key.startswith("dataset/") and key.endswith("/count"))
    # " GSM8K " is gsm8k (lower-cased and stripped); every other name is a dataset of its own
    assert len(sources) == len(names) and "gsm8k" in sources and "math" in sources
    assert "true" in sources and "1" in sources
    assert all(row[f"dataset/{s}/count"] == 1 for s in sources)
    for source in sources:
        assert _SAFE.match(source) and len(source) <= 64, source


def test_sources_past_the_cardinality_limit_fold_into_other_with_one_warning(caplog):
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"}, metrics={"max_sources": 2})
    with caplog.at_level(logging.WARNING, logger="otel_grpo"):
        with otel_grpo.step(1):
            for name in ["gsm8k", "squad_v2", "triviaqa", "nq", "drop", "gsm8k"]:
                otel_grpo.record_sample(1.0, source=name)
    row = tel.rows[-1]
    assert row["dataset/gsm8k/count"] == 2 and row["dataset/squad_v2/count"] == 1
    assert row["dataset/triviaqa/count"] == 1 and row["dataset/other/count"] == 2
    assert sum("recorded as 'other'" in r.getMessage() for r in caplog.records) == 1


# --- a judge evaluation outside any sample --------------------------------------------------------
class JudgeOnly:
    """A reward-only trainer that calls its judge directly, with no compute_reward around it."""

    def __init__(self):
        self.reward_computer = self
        self.eval_stats = {"llm_judge_success": 0}

    async def train_step(self, step):
        self._llm_judge_compare("q", "42", "42", "math", source="MMLU")
        self._llm_judge_compare("q", "41", "42", "math")
        return {"loss": 0.1}

    def _llm_judge_compare(self, problem, prediction, ground_truth, problem_type, source=None):
        self.eval_stats["llm_judge_success"] += 1
        return prediction == ground_truth


def test_a_judge_evaluation_outside_any_sample_gets_its_own_source_or_unknown():
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    trainer = otel_grpo.instrument_trainer(JudgeOnly())
    try:
        asyncio.run(trainer.train_step(1))
    finally:
        otel_grpo.uninstrument_trainer(trainer)
    row = tel.rows[-1]
    assert row["judge/total_calls"] == 2
    assert row["judge/mmlu_success_rate"] == 1.0 and row["judge/unknown_success_rate"] == 1.0
    assert row["judge/correct_predictions"] == 1 and row["judge/incorrect_predictions"] == 1
    assert not any(key.startswith("dataset/") for key in row)  # no sample was served
