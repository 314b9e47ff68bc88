"""Latency buckets a p50 can be read from: within 25 % of the latency from 10 ms to 10 min."""

from __future__ import annotations

import math

import pytest

from otel_grpo import semconv as sc
from otel_grpo.exporters.rollup import quantile


def _estimate(bounds: tuple[float, ...], value: float, q: float, n: int = 20) -> float:
    counts = [0] * (len(bounds) + 1)
    counts[next((i for i, b in enumerate(bounds) if value <= b), len(bounds))] = n
    estimate = quantile(bounds, counts, q)
    assert estimate is not None
    return estimate


def _latencies() -> list[float]:
    """10 ms to 10 min, 400 values per decade (every bucket edge is crossed)."""
    low, high = math.log10(0.01), math.log10(600.0)
    steps = int((high - low) * 400)
    return [10 ** (low + (high - low) * i / steps) for i in range(steps + 1)]


def test_a_constant_latency_reads_back_within_25_percent_as_p50() -> None:
    worst = max(abs(_estimate(sc.DURATION_BUCKETS_S, v, 0.5) - v) / v for v in _latencies())
    assert worst <= 0.25, f"worst relative error {worst:.1%}"


def test_the_genai_buckets_read_10_ms_as_5_ms_which_is_why_executor_and_judge_latency_do_not_use_them() -> None:
    assert _estimate(sc.GEN_AI_DURATION_BUCKETS_S, 0.01, 0.5) == pytest.approx(0.005)  # the issue the buckets fix
    assert _estimate(sc.DURATION_BUCKETS_S, 0.01, 0.5) == pytest.approx((0.00725 + 0.0105) / 2)


def test_buckets_are_increasing_and_geometric_enough() -> None:
    bounds = sc.DURATION_BUCKETS_S
    ratios = [b / a for a, b in zip(bounds, bounds[1:], strict=False)]
    assert all(r > 1 for r in ratios) and max(ratios) <= 1.5
    assert bounds[0] < 0.01 and bounds[-1] > 600
