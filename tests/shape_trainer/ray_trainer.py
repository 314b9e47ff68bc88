"""The user's trainer shape with its executor and reward computer moved into Ray (no otel-grpo import).

``RayTaskTrainer``: one Ray task runs each workflow, another scores it (the trainer
awaits the first, then the second, in the per-workflow asyncio task, like the original).
``RayActorTrainer``: two actors hold the executor and the reward computer.
``RayUserClassTrainer``: the executor and the reward computer are themselves the actors.
``KILL_DIR``: when set (an environment variable the workers see), the first attempt of
every execution whose plan cost is 0.0123 dies with ``os._exit`` after the executor ran;
Ray retries it.
"""

import asyncio
import hashlib
import json
import os

import ray
from aflow_executor import AFlowExecutor
from grpo_trainer import GRPOTrainer
from reward_computer import RewardComputer

KILL_COST = 0.0123
_reward_computers = {}


def _spec(sample):
    return json.dumps(
        {
            "kind": sample["kind"],
            "reward": sample["reward"],
            "cost": sample["cost"],
            "judge_fault": sample["judge_fault"],
            "judge_fault2": sample.get("judge_fault2"),
            "answer": "42",
        }
    )


def _maybe_die(spec, qid):
    """The first attempt of a planned kill dies here, after the executor ran (its spend is made)."""
    kill_dir = os.environ.get("KILL_DIR")
    if not kill_dir or json.loads(spec)["cost"] != KILL_COST:
        return
    marker = os.path.join(kill_dir, f"{qid}-{hashlib.sha256(spec.encode()).hexdigest()[:16]}")
    if not os.path.exists(marker):
        with open(marker, "w") as f:
            f.write("died once")
        os._exit(1)


@ray.remote(max_retries=2)
def execute_task(executor, spec, qid, problem_type, source):
    result = asyncio.run(
        executor.execute_workflow(spec, qid, problem_type, entry_point=None, test=None, source=source, context=None)
    )
    _maybe_die(spec, qid)
    return result


@ray.remote
def reward_task(judge_url, qid, spec, problem_type, meta, source):
    rc = _reward_computers.get(judge_url)
    if rc is None:
        rc = _reward_computers[judge_url] = RewardComputer(judge_url=judge_url)
    return rc.compute_reward(qid, spec, "42", problem_type, metadata=meta, source=source)


@ray.remote
class ExecutorActor:
    """Holds the executor; async, so several workflows run at once."""

    def __init__(self):
        self.executor = AFlowExecutor()

    async def execute(self, spec, qid, problem_type, source):
        return await self.executor.execute_workflow(
            spec, qid, problem_type, entry_point=None, test=None, source=source, context=None
        )


@ray.remote
class RewardActor:
    """Holds the reward computer (and its judge client)."""

    def __init__(self, judge_url):
        self.reward_computer = RewardComputer(judge_url=judge_url)

    def compute(self, qid, spec, problem_type, meta, source):
        return self.reward_computer.compute_reward(qid, spec, "42", problem_type, metadata=meta, source=source)


class RayTaskTrainer(GRPOTrainer):
    """Each workflow's execution and scoring run as Ray tasks."""

    def __init__(self, plan, judge_url, **kwargs):
        super().__init__(plan, judge_url, **kwargs)
        self.judge_url = judge_url

    async def _execute(self, spec, sample):
        ptype = sample["problem_type"] or "math"
        return await execute_task.remote(self.executor, spec, sample["qid"], ptype, sample["source"])

    async def _score(self, spec, sample, meta):
        ptype = sample["problem_type"] or "math"
        return await reward_task.remote(self.judge_url, sample["qid"], spec, ptype, meta, sample["source"])

    async def _run_one(self, sample):
        spec = _spec(sample)
        try:
            _answer, _cost, meta = await self._execute(spec, sample)
            reward = 0.0 if not meta["success"] else await self._score(spec, sample, meta)
        except Exception:
            reward = -10.0
        return reward


class RayUserClassTrainer(RayTaskTrainer):
    """Actors made straight from the user's classes: ``ray.remote(AFlowExecutor)``."""

    def __init__(self, plan, judge_url, **kwargs):
        super().__init__(plan, judge_url, **kwargs)
        self.executor_actor = ray.remote(AFlowExecutor).remote()
        self.reward_actor = ray.remote(RewardComputer).remote(judge_url=judge_url)

    async def _execute(self, spec, sample):
        ptype = sample["problem_type"] or "math"
        return await self.executor_actor.execute_workflow.remote(
            spec, sample["qid"], ptype, entry_point=None, test=None, source=sample["source"], context=None
        )

    async def _score(self, spec, sample, meta):
        ptype = sample["problem_type"] or "math"
        return await self.reward_actor.compute_reward.remote(
            sample["qid"], spec, "42", ptype, metadata=meta, source=sample["source"]
        )


class RayActorTrainer(RayTaskTrainer):
    """Two actors hold the executor and the reward computer."""

    def __init__(self, plan, judge_url, **kwargs):
        super().__init__(plan, judge_url, **kwargs)
        self.executor_actor = ExecutorActor.remote()
        self.reward_actor = RewardActor.remote(judge_url)

    async def _execute(self, spec, sample):
        ptype = sample["problem_type"] or "math"
        return await self.executor_actor.execute.remote(spec, sample["qid"], ptype, sample["source"])

    async def _score(self, spec, sample, meta):
        ptype = sample["problem_type"] or "math"
        return await self.reward_actor.compute.remote(sample["qid"], spec, ptype, meta, sample["source"])
