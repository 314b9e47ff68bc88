"""GRPO trainer for AFlow workflow generation (trimmed from the user's, same shape).

train() -> train_step(step) (retried on CUDA OOM) -> one asyncio task per workflow:
_compute_log_prob, then execute_workflow, then compute_reward when the execution
succeeded. Validation runs the same task pattern. The trainer starts its own WandB run.
"""

import asyncio
import math

from aflow_executor import AFlowExecutor
from reward_computer import RewardComputer
from utils.data import BatchSampler, load_jsonl
from utils.grpo import policy_loss, wa_grpo_advantages
from utils.policy import WorkflowPolicy

try:
    import wandb
except ImportError:  # the trainer also runs without wandb
    wandb = None


class CudaOutOfMemoryError(RuntimeError):
    """What torch.cuda.OutOfMemoryError looks like to this trainer (no GPU needed here)."""


class GRPOTrainer:
    """Trains the workflow-writing policy with GRPO over mixed datasets."""

    def __init__(self, config, judge_url=None, wandb_dir=None, use_wandb=True):
        self.config = config
        train_cfg = config["training"]
        self.max_steps = train_cfg["max_steps"]
        self.batch_size = train_cfg["batch_size"]
        self.k = train_cfg["k"]
        self.log_every = train_cfg["log_every"]
        self.eval_every = train_cfg["eval_every"]
        self.val_samples = train_cfg["val_samples"]
        self.temperature_start = train_cfg["temperature_start"]
        self.temperature_end = train_cfg["temperature_end"]
        self.beta = config["model"]["ref_kl_beta"]
        judge_cfg = config["llm_judge"]
        base_url = judge_url or judge_cfg["base_url"]
        self.train_data = load_jsonl(config["data"]["train"])
        self.val_data = load_jsonl(config["data"]["test"])
        self.sampler = BatchSampler(self.train_data, seed=train_cfg["seed"])
        self.policy = WorkflowPolicy(seed=train_cfg["seed"])
        self.executor = AFlowExecutor({"model": config["aflow_executor_model"], "base_url": base_url})
        self.reward_computer = RewardComputer(
            judge_base_url=base_url, judge_model=judge_cfg["model"], use_llm_judge=judge_cfg["use_llm_judge"]
        )
        self.oom_once_at = {2}  # the user's runs hit an OOM on some step; retried with the same number
        self.attempts = []
        self.samples_seen = []
        self.task_errors = []
        self.use_wandb = use_wandb and wandb is not None
        if self.use_wandb:
            wandb.init(
                project=config["wandb"]["project"],
                mode=config["wandb"]["mode"],
                dir=wandb_dir,
                config={"training": train_cfg, "model": config["model"]["name"]},
            )

    def get_current_temperature(self, step):
        frac = (step - 1) / max(self.max_steps - 1, 1)
        return round(self.temperature_start + (self.temperature_end - self.temperature_start) * frac, 6)

    def _compute_log_prob(self, workflow_code):
        """The policy's forward pass over the generated code (a deterministic stand-in)."""
        total = 0.0
        for i, byte in enumerate(workflow_code.encode("utf-8")):
            total -= math.log1p(((byte * 31 + i) % 97) / 97.0)
        return total / max(len(workflow_code), 1)

    async def _rollout(self, sample, workflow_code, split, step):
        """One task: forward pass, execute, then reward only for a successful execution."""
        log_prob = self._compute_log_prob(workflow_code)
        try:
            answer, cost, metadata = await self.executor.execute_workflow(
                workflow_code,
                sample["problem"],
                sample["problem_type"],
                entry_point=sample["meta"].get("entry_point"),
                test=sample["meta"].get("test"),
                source=sample["source"],
                context=sample["context"],
            )
            if metadata["success"]:
                reward = self.reward_computer.compute_reward(
                    sample["problem"],
                    answer,
                    sample["ground_truth"],
                    problem_type=sample["problem_type"],
                    metadata=metadata,
                    test=sample["meta"].get("test"),
                    entry_point=sample["meta"].get("entry_point"),
                    source=sample["source"],
                )
            else:
                reward = 0.0
            result = {
                "reward": reward,
                "correctness": reward,
                "cost": float(cost),
                "success": bool(metadata["success"]),
            }
        except Exception as exc:  # noqa: BLE001 - their trainer scores a crashed task -10
            self.task_errors.append(f"{split}/{step}/{sample['source']}: {type(exc).__name__}")
            result = {"reward": -10.0, "correctness": -10.0, "cost": 0.0, "success": False}
        result.update(source=sample["source"], log_prob=log_prob)
        if self.use_wandb:
            wandb.log({"sample/reward": result["reward"], "sample/success": int(result["success"])})  # no step
        return result

    async def train_step(self, step):
        temperature = self.get_current_temperature(step)
        batch = self.sampler.sample(self.batch_size)
        attempt = sum(1 for s, _ in self.attempts if s == step)
        self.attempts.append((step, [q["source"] for q in batch]))
        tasks = []
        for sample in batch:
            for code in self.policy.generate(sample, self.k, step, temperature, salt=attempt):
                tasks.append(self._rollout(sample, code, "train", step))
        results = await asyncio.gather(*tasks)
        for r in results:
            self.samples_seen.append(["train", step, r["source"], r["reward"]])
        rewards = [r["reward"] for r in results]
        advantages = wa_grpo_advantages(rewards, self.k)
        log_probs = [r["log_prob"] for r in results]
        loss, kl = policy_loss(advantages, log_probs, [lp * 0.98 for lp in log_probs], self.beta)
        if step in self.oom_once_at:
            self.oom_once_at.discard(step)
            raise CudaOutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        correct = sum(1 for r in results if r["correctness"] >= 0.9)
        return {
            "step": step,
            "loss": loss,
            "kl_div": kl,
            "avg_reward": sum(advantages) / len(advantages),
            "max_reward": max(advantages),
            "min_reward": min(advantages),
            "num_samples": len(results),
            "accuracy": 100.0 * correct / len(results),
            "num_correct": correct,
            "num_total": len(results),
            "avg_correctness_score": sum(r["correctness"] for r in results) / len(results),
        }

    async def evaluate_on_val_set(self, num_samples=50):
        samples = self.val_data[:num_samples]
        tasks = []
        for sample in samples:
            code = self.policy.generate(sample, 1, step=0, temperature=0.0)[0]
            tasks.append(self._rollout(sample, code, "val", 0))
        results = await asyncio.gather(*tasks)
        for r in results:
            self.samples_seen.append(["val", None, r["source"], r["reward"]])
        n = max(len(results), 1)
        return {
            "val_accuracy": 100.0 * sum(r["correctness"] >= 0.9 for r in results) / n,
            "val_avg_correctness": sum(r["correctness"] for r in results) / n,
            "val_avg_cost": sum(r["cost"] for r in results) / n,
            "val_success_rate": 100.0 * sum(r["success"] for r in results) / n,
        }

    async def train(self):
        history = {"steps": [], "val": []}
        for step in range(1, self.max_steps + 1):
            for attempt in range(3):
                try:
                    metrics = await self.train_step(step)
                    break
                except CudaOutOfMemoryError:
                    if attempt == 2:
                        raise
            history["steps"].append(metrics)
            if self.use_wandb and step % self.log_every == 0:
                wandb.log(metrics, step=step)
            if step % self.eval_every == 0:
                val_metrics = await self.evaluate_on_val_set(num_samples=self.val_samples)
                history["val"].append({"step": step, **val_metrics})
                if self.use_wandb:
                    wandb.log(val_metrics, step=step)
        return history
