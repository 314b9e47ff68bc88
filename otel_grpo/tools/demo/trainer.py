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

The parts, each importable from here too: :mod:`.policy` (the simulated policy),
:mod:`.executor` (:class:`AFlowExecutor`), :mod:`.reward` (:class:`RewardComputer`) and
:mod:`.trainer_config` (:class:`TrainerConfig`); this module is the trainer itself.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from otel_grpo.tools.demo.datasets import DATASETS, load_all, split_train_val
from otel_grpo.tools.demo.executor import AFlowExecutor, parse_cost
from otel_grpo.tools.demo.policy import SimulatedPolicy, stable_hash
from otel_grpo.tools.demo.reward import CORRECT_THRESHOLD, JUDGE_MODEL, RewardComputer
from otel_grpo.tools.demo.trainer_config import TrainerConfig

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

EXCEPTION_REWARD = -10.0


class CudaOutOfMemoryError(RuntimeError):
    """Stands in for ``torch.cuda.OutOfMemoryError``."""


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
        self.reward_computer = RewardComputer(
            judge_url=cfg.judge_url,
            use_llm_judge=cfg.use_llm_judge,
            judge_timeout_s=cfg.judge_timeout_s,
            code_test_timeout_s=cfg.code_test_timeout_s,
        )
        self.use_wandb = wandb is not None and cfg.wandb_mode != "disabled"
        self.wandb_run: Any = None
        self.current_step = 0
        self.step_attempts: Counter[int] = Counter()
        self.history: list[dict[str, Any]] = []
        self.val_history: list[tuple[int, dict[str, Any]]] = []
        self.on_step_start: Callable[[int], None] | None = None
        self.on_step_end: Callable[[int, dict[str, Any]], None] | None = None
        self.on_eval_end: Callable[[int, dict[str, Any]], None] | None = None

    def _drop_tests_maybe(self, item: dict[str, Any]) -> None:
        """Treat a share of the code items as having no tests (they get judged instead)."""
        meta = item.get("meta") or {}
        if item.get("problem_type") == "code" and meta.get("test"):
            share = self.config.code_without_tests_share
            if stable_hash(meta.get("id"), self.config.seed) % 1000 < share * 1000:
                meta["test"] = None

    # --- wandb -----------------------------------------------------------------------
    def _init_wandb(self) -> None:
        if not self.use_wandb or self.wandb_run is not None:
            return
        cfg = self.config
        kwargs = dict(
            project=cfg.wandb_project,
            dir=cfg.wandb_dir,
            config={
                "max_steps": cfg.max_steps,
                "batch_size": cfg.batch_size,
                "k": cfg.num_workflows,
                "eval_every": cfg.eval_every,
                "seed": cfg.seed,
                "judge_model": JUDGE_MODEL,
            },
        )
        try:
            self.wandb_run = wandb.init(mode=cfg.wandb_mode, **kwargs)
        except Exception as exc:  # noqa: BLE001 - e.g. online without an API key: keep the run offline
            if cfg.wandb_mode != "online":
                raise
            logger.warning(
                "wandb.init(mode='online') failed (%s); writing an offline run instead "
                "(upload it later with `wandb sync`)",
                exc,
            )
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
            if self.on_step_start is not None:
                self.on_step_start(step)
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
            batch.append(
                {key: item.get(key) for key in ("problem", "problem_type", "ground_truth", "source", "meta", "context")}
            )
        return batch

    async def _rollout(self, sample: dict[str, Any], workflow: str) -> SampleResult:
        """One task: execute the workflow, then compute the reward (sync) in the same task."""
        meta = sample.get("meta") or {}
        source = sample.get("source") or "unknown"
        result = SampleResult(source=source, reward=0.0)
        try:
            answer, cost, metadata = await self.executor.execute_workflow(
                workflow,
                sample["problem"],
                sample.get("problem_type") or "math",
                entry_point=meta.get("entry_point"),
                test=meta.get("test"),
                source=sample.get("source"),
                context=sample.get("context"),
            )
            result.cost = parse_cost(cost)
            result.success = bool(metadata.get("success"))
            if result.success:
                result.reward = self.reward_computer.compute_reward(
                    sample["problem"],
                    answer,
                    sample["ground_truth"],
                    sample.get("problem_type") or "math",
                    metadata=metadata,
                    test=meta.get("test"),
                    entry_point=meta.get("entry_point"),
                    source=sample.get("source"),
                )
        except Exception as exc:  # noqa: BLE001 - the real trainer punishes a crashing workflow
            logger.debug("rollout failed: %s: %s", type(exc).__name__, exc)
            result.reward, result.success = EXCEPTION_REWARD, False
        self._log({"sample/reward": result.reward, "sample/cost": result.cost, "sample/success": int(result.success)})
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
                f"simulated CUDA out of memory (demo fault injection, --oom-step {step}). "
                f"Tried to allocate 2.50 GiB (step {step}, backward pass)"
            )
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
