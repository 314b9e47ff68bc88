"""``otel-grpo demo --ray N``: the demo trainer with its executor and reward computer in N Ray actors.

Each actor holds its own :class:`~otel_grpo.tools.demo.executor.AFlowExecutor` and
:class:`~otel_grpo.tools.demo.reward.RewardComputer`, built from the trainer's
configuration; the per-workflow tasks of a step call them round-robin. The trainer is
otherwise the demo's own, and otel-grpo is set up exactly as without Ray: the workers
are instrumented by otel-grpo itself, with no change to this code.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from typing import Any

from otel_grpo.tools.demo.executor import AFlowExecutor, parse_cost
from otel_grpo.tools.demo.reward import RewardComputer
from otel_grpo.tools.demo.trainer import EXCEPTION_REWARD, GRPOTrainer, SampleResult, TrainerConfig

logger = logging.getLogger(__name__)


class DemoWorker:
    """One Ray worker: the demo's executor and reward computer, as the user would move them."""

    def __init__(self, items: list[dict[str, Any]], config: TrainerConfig) -> None:
        self.executor = AFlowExecutor(items, config)
        self.reward_computer = RewardComputer(
            judge_url=config.judge_url,
            use_llm_judge=config.use_llm_judge,
            judge_timeout_s=config.judge_timeout_s,
            code_test_timeout_s=config.code_test_timeout_s,
        )

    def execute(self, workflow: str, sample: dict[str, Any]) -> tuple[Any, Any, dict[str, Any]]:
        """Run one workflow (the executor is async: one event loop per call, in this actor's thread)."""
        meta = sample.get("meta") or {}
        return asyncio.run(
            self.executor.execute_workflow(
                workflow,
                sample["problem"],
                sample.get("problem_type") or "math",
                entry_point=meta.get("entry_point"),
                test=meta.get("test"),
                source=sample.get("source"),
                context=sample.get("context"),
            )
        )

    def compute_reward(self, sample: dict[str, Any], answer: Any, metadata: dict[str, Any]) -> float:
        """Score one answer (rules, code tests, or the judge)."""
        meta = sample.get("meta") or {}
        return self.reward_computer.compute_reward(
            sample["problem"],
            answer,
            sample["ground_truth"],
            sample.get("problem_type") or "math",
            metadata=metadata,
            test=meta.get("test"),
            entry_point=meta.get("entry_point"),
            source=sample.get("source"),
        )


class RayDemoTrainer(GRPOTrainer):
    """The demo trainer, rolling out on ``workers`` Ray actors."""

    def __init__(self, config: TrainerConfig | None, workers: int) -> None:
        import ray

        super().__init__(config)
        items = [item for items in self.train_data.values() for item in items]
        items += [item for items in self.val_data.values() for item in items]
        actor = ray.remote(num_cpus=0, max_concurrency=8)(DemoWorker)
        self.workers = [actor.remote(items, self.config) for _ in range(workers)]
        self._next = itertools.cycle(range(workers))

    async def _rollout(self, sample: dict[str, Any], workflow: str) -> SampleResult:
        """One task: execute on a worker, then score on the same worker."""
        worker = self.workers[next(self._next)]
        source = sample.get("source") or "unknown"
        result = SampleResult(source=source, reward=0.0)
        try:
            answer, cost, metadata = await worker.execute.remote(workflow, sample)
            result.cost = parse_cost(cost)
            result.success = bool(metadata.get("success"))
            if result.success:
                result.reward = await worker.compute_reward.remote(sample, answer, metadata)
        except Exception as exc:  # noqa: BLE001 - the real trainer punishes a crashing workflow
            logger.debug("rollout failed: %s: %s", type(exc).__name__, exc)
            result.reward, result.success = EXCEPTION_REWARD, False
        self._log({"sample/reward": result.reward, "sample/cost": result.cost, "sample/success": int(result.success)})
        return result


def start_ray(workers: int) -> bool:
    """Start a local Ray instance on 127.0.0.1 unless one is running; True when this call started it."""
    import ray

    if ray.is_initialized():
        return False
    ray.init(
        num_cpus=max(2, workers),
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        configure_logging=False,
    )
    return True
