"""A GRPO trainer of the user's shape (trainer-shape.md), driven by a deterministic plan."""

import asyncio
import json

from aflow_executor import AFlowExecutor
from reward_computer import RewardComputer

try:
    import wandb
except ImportError:  # pragma: no cover
    wandb = None


class CudaOOM(RuntimeError):
    """Stands in for torch.cuda.OutOfMemoryError."""


class GRPOTrainer:
    """async train_step / evaluate_on_val_set; per-sample wandb.log without step."""

    def __init__(self, plan, judge_url, use_wandb=True, wandb_dir=None, log_every=1, eval_every=2):
        self.plan = plan
        self.executor = AFlowExecutor()
        self.reward_computer = RewardComputer(judge_url=judge_url)
        self.log_every = log_every
        self.eval_every = eval_every
        self.raised = set()
        self.use_wandb = use_wandb and wandb is not None
        if self.use_wandb:
            wandb.init(project="shape-trainer", mode="offline", dir=wandb_dir)

    def get_current_temperature(self, step):
        return round(1.0 - 0.1 * step, 3)

    async def _run_one(self, sample):
        spec = json.dumps(
            {
                "kind": sample["kind"],
                "reward": sample["reward"],
                "cost": sample["cost"],
                "judge_fault": sample["judge_fault"],
                "judge_fault2": sample.get("judge_fault2"),
                "answer": "42",
            }
        )
        try:
            answer, cost, meta = await self.executor.execute_workflow(
                spec,
                sample["qid"],
                sample["problem_type"] or "math",
                entry_point=None,
                test=None,
                source=sample["source"],
                context=None,
            )
            if not meta["success"]:
                reward = 0.0
            else:
                reward = self.reward_computer.compute_reward(
                    sample["qid"], spec, "42", sample["problem_type"] or "math", metadata=meta, source=sample["source"]
                )
        except Exception:
            reward = -10.0
        if self.use_wandb:
            wandb.log({"sample/reward": reward})  # no step: advances wandb's counter
        return reward

    async def train_step(self, step):
        if step in self.plan["raise_once"] and step not in self.raised:
            self.raised.add(step)
            await asyncio.gather(*(self._run_one(s) for s in self.plan["train"][step][:3]))
            raise CudaOOM("CUDA out of memory")
        rewards = await asyncio.gather(*(self._run_one(s) for s in self.plan["train"][step]))
        correct = sum(1 for r in rewards if r >= 0.9)
        return {
            "step": step,
            "loss": 1.0 / step,
            "kl_div": 0.01 * step,
            "avg_reward": sum(rewards) / len(rewards),
            "max_reward": max(rewards),
            "min_reward": min(rewards),
            "num_samples": len(rewards),
            "accuracy": 100.0 * correct / len(rewards),
            "num_correct": correct,
            "num_total": len(rewards),
            "avg_correctness_score": sum(rewards) / len(rewards),
        }

    async def evaluate_on_val_set(self, num_samples=50):
        rewards = await asyncio.gather(*(self._run_one(s) for s in self.plan["val"][:num_samples]))
        return {"val_accuracy": 100.0 * sum(r >= 0.9 for r in rewards) / max(len(rewards), 1)}

    async def train(self, max_steps):
        for step in range(1, max_steps + 1):
            for attempt in range(3):
                try:
                    metrics = await self.train_step(step)
                    break
                except CudaOOM:
                    if attempt == 2:
                        raise
            if self.use_wandb and step % self.log_every == 0:
                wandb.log(metrics, step=step)
            if step % self.eval_every == 0:
                val_metrics = await self.evaluate_on_val_set(num_samples=len(self.plan["val"]))
                if self.use_wandb:
                    wandb.log(val_metrics, step=step)
