"""A Collector that is down or never answers must not slow a training step or raise."""

from __future__ import annotations

import socket
import statistics
import time

import pytest

import otel_grpo

pytestmark = pytest.mark.slow  # starts real processes, servers or WandB runs


def _steps(n: int = 40) -> list[float]:
    durations = []
    for step in range(1, n + 1):
        started = time.perf_counter()
        with otel_grpo.step(step):
            for src in ("gsm8k", "math", "humaneval", "mbpp", "hotpotqa", "commonsenseqa", "mmlu"):
                with otel_grpo.sample(src):
                    otel_grpo.record_executor_run(cost=0.01, duration_s=0.2)
                    otel_grpo.record_judge_evaluation("success", True, 0.1)
                    otel_grpo.record_sample(1.0)
        durations.append(time.perf_counter() - started)
        time.sleep(0.01)  # let the periodic exporter (every 50 ms) fire between steps
    return durations


def _closed_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("target", ["closed_port", "never_answers"])
def test_steps_take_no_longer_with_the_collector_unreachable(target, request):
    otel_grpo.setup(None, wandb={"mode": "disabled"})
    baseline = statistics.median(_steps())
    endpoint = _closed_endpoint() if target == "closed_port" else request.getfixturevalue("silent_server")
    tel = otel_grpo.setup(
        None,
        wandb={"mode": "disabled"},
        otlp={"enabled": True, "endpoint": endpoint, "export_interval_s": 0.05, "timeout_s": 1.0},
    )
    with_collector_down = statistics.median(_steps())
    started = time.monotonic()
    tel.shutdown()
    shutdown_s = time.monotonic() - started
    # Within noise: the export thread, not the step, meets the dead endpoint.
    assert with_collector_down < baseline * 1.5 + 0.002, (baseline, with_collector_down)
    assert shutdown_s < 15, shutdown_s
    assert tel.rows[-1]["dataset/gsm8k/count"] == 1  # WandB rows unaffected
    if target == "closed_port":  # the outage is reported in the exporter-health keys
        assert tel.rows[-1]["exporter/otlp_export_errors"] >= 1
