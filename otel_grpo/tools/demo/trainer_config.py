"""What the demo trainer does: :class:`TrainerConfig`, filled by the demo's command line."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class TrainerConfig:
    """What the demo trainer does; the CLI fills it from its options."""

    max_steps: int = 12
    batch_size: int = 14  # questions per step, round-robin over the datasets
    num_workflows: int = 4  # K: workflows per question (one GRPO group)
    eval_every: int = 4
    log_every: int = 1
    val_samples: int = 28
    judge_url: str = "http://localhost:8002/v1"
    judge_timeout_s: float = 30.0
    use_llm_judge: bool = True
    wandb_mode: str = "offline"  # online | offline | disabled
    wandb_dir: str | None = None
    wandb_project: str = "otel-grpo-demo"
    seed: int = 0
    oom_steps: tuple[int, ...] = (2,)  # steps whose first attempt hits a simulated CUDA OOM
    max_step_attempts: int = 3
    temperature_start: float = 1.0
    temperature_end: float = 0.4
    val_fraction: float = 0.2
    code_without_tests_share: float = 0.2  # code items treated as having no tests (judged)
    inconclusive_rate: float = 0.18  # answers in a form the rules cannot read
    execution_failure_rate: float = 0.05
    execution_exception_rate: float = 0.02
    string_cost_rate: float = 0.04
    invalid_cost_rate: float = 0.005
    latency_ms: tuple[float, float] = (5.0, 40.0)
    code_test_timeout_s: float = 5.0
