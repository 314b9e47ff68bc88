"""What otel-grpo is compared with: the design document's Option A and Option B, and naive OTel.

* **Option A** (design doc, "minimal intrusion"): the trainer keeps per-source and
  per-problem-type lists for the step and computes the row with numpy at step end.
  The per-sample part is written inline in each benchmark loop, as the document does
  inside ``train_step``; :func:`option_a_rollup` is its step end.
* **Option B** (design doc, "full refactor"): :class:`MetricsCollector` keeps every
  sample's result dict and computes the row from them. As written in the document,
  ``reset()`` is only called from ``__init__``, so it keeps every sample of the run.
* **Floor of the manual API's shape** (reference): the same three calls (a ``with``
  sample scope carried in a contextvar, an executor-run call, a sample call) over a
  locked dict of per-series sums, with no label normalisation, no value checks and no
  OpenTelemetry: what any implementation of that API shape costs at least in CPython.
* **Naive OpenTelemetry**: one SDK ``Counter.add`` / ``Histogram.record`` per metric per
  sample with attributes, into a MeterProvider with an ``InMemoryMetricReader``.

All three produce the same train/, dataset/ and cost/ keys otel-grpo produces from the
same five figures per sample (source, problem_type, reward, correctness, cost).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from contextvars import ContextVar
from typing import Any

import numpy as np

from benchmarks.common import THRESHOLD


# --- Option A ------------------------------------------------------------------------------
def new_option_a_step() -> tuple[list, dict, dict]:
    """Fresh per-step containers: (all rewards, per-source lists, per-problem-type lists)."""
    return [], {}, {}


def option_a_rollup(step: int, rewards: list, dataset_stats: dict, ptype_stats: dict, totals: dict) -> dict[str, Any]:
    """The step end of Option A: numpy over the step's lists -> one WandB row."""
    row: dict[str, Any] = {"train/step": step}
    if rewards:
        arr = np.asarray(rewards, dtype=float)
        row["train/avg_reward"] = float(np.mean(arr))
        row["train/max_reward"] = float(np.max(arr))
        row["train/min_reward"] = float(np.min(arr))
        row["train/accuracy"] = float(np.mean(arr >= THRESHOLD) * 100)
    for ptype, stats in ptype_stats.items():
        correctness = np.asarray(stats["correctness"], dtype=float)
        row[f"train/accuracy_{ptype}"] = float(np.mean(correctness >= THRESHOLD) * 100)
        row[f"train/avg_score_{ptype}"] = float(np.mean(correctness))
        row[f"train/count_{ptype}"] = len(correctness)
    for source, stats in dataset_stats.items():
        correct = stats["correct"]
        costs = np.asarray(stats["costs"], dtype=float)
        row[f"dataset/{source}/accuracy"] = sum(correct) / len(correct) * 100
        row[f"dataset/{source}/count"] = len(correct)
        row[f"dataset/{source}/avg_reward"] = float(np.mean(stats["rewards"]))
        row[f"dataset/{source}/avg_cost"] = float(np.mean(costs))
        totals["cost"] += float(costs.sum())
        totals["calls"] += len(costs)
    row["cost/total_cost"] = totals["cost"]
    row["cost/executor_calls"] = totals["calls"]
    row["cost/avg_cost_per_sample"] = totals["cost"] / max(totals["calls"], 1)
    return row


def option_a_collect(batch: list[tuple]) -> tuple[list, dict, dict]:
    """Option A's per-sample work over ``batch``: append to dicts of lists."""
    rewards, dataset_stats, ptype_stats = new_option_a_step()
    for source, ptype, reward, correctness, cost, _qid in batch:
        stats = dataset_stats.get(source)
        if stats is None:
            stats = dataset_stats[source] = {"correct": [], "rewards": [], "costs": []}
        stats["correct"].append(correctness >= THRESHOLD)
        stats["rewards"].append(reward)
        stats["costs"].append(cost)
        pstats = ptype_stats.get(ptype)
        if pstats is None:
            pstats = ptype_stats[ptype] = {"correctness": []}
        pstats["correctness"].append(correctness)
        rewards.append(reward)
    return rewards, dataset_stats, ptype_stats


def option_a_step(step: int, batch: list[tuple], totals: dict) -> dict[str, Any]:
    """One whole Option A step over ``batch`` (used where the loop itself is not timed)."""
    rewards, dataset_stats, ptype_stats = option_a_collect(batch)
    return option_a_rollup(step, rewards, dataset_stats, ptype_stats, totals)


# --- Option B ------------------------------------------------------------------------------
class MetricsCollector:
    """The design document's Option B collector, with the same keys as the others.

    ``add_sample`` keeps each sample's result dict in three lists; ``get_wandb_logs``
    recomputes the row from everything kept. The document calls ``reset()`` only from
    ``__init__``; callers that want per-step rows must call it themselves.
    """

    def __init__(self) -> None:
        self.reset()
        self.cost_total = 0.0
        self.calls = 0

    def reset(self) -> None:
        """Forget every sample."""
        self.samples: list[dict] = []
        self.by_problem_type: defaultdict[str, list] = defaultdict(list)
        self.by_dataset: defaultdict[str, list] = defaultdict(list)
        self.judge_stats = {"success": 0, "parse_failures": 0, "api_failures": 0}

    def add_sample(self, sample: dict, result: dict) -> None:
        """Keep one sample's result."""
        self.samples.append(result)
        self.by_problem_type[sample["problem_type"]].append(result)
        self.by_dataset[sample.get("source", "unknown")].append(result)

    def get_wandb_logs(self, step: int) -> dict[str, Any]:
        """The row for everything kept."""
        logs: dict[str, Any] = {"train/step": step}
        if self.samples:
            rewards = [r["reward"] for r in self.samples]
            logs["train/accuracy"] = self._compute_accuracy(self.samples)
            logs["train/avg_reward"] = float(np.mean(rewards))
            logs["train/max_reward"] = max(rewards)
            logs["train/min_reward"] = min(rewards)
        for ptype, results in self.by_problem_type.items():
            logs[f"train/accuracy_{ptype}"] = self._compute_accuracy(results)
            logs[f"train/avg_score_{ptype}"] = float(np.mean([r["correctness"] for r in results]))
            logs[f"train/count_{ptype}"] = len(results)
        for source, results in self.by_dataset.items():
            costs = [r["cost"] for r in results]
            logs[f"dataset/{source}/accuracy"] = self._compute_accuracy(results)
            logs[f"dataset/{source}/count"] = len(results)
            logs[f"dataset/{source}/avg_reward"] = float(np.mean([r["reward"] for r in results]))
            logs[f"dataset/{source}/avg_cost"] = float(np.mean(costs))
        return logs

    def step_costs(self, results: list[dict]) -> None:
        """Fold the cost of ``results`` into the cumulative cost keys."""
        for r in results:
            self.cost_total += r["cost"]
        self.calls += len(results)

    @staticmethod
    def _compute_accuracy(results: list[dict]) -> float:
        if not results:
            return 0.0
        correct = sum(1 for r in results if r.get("correctness", 0) >= THRESHOLD)
        return correct / len(results) * 100


# --- the floor of the manual API's shape -----------------------------------------------------
class _FloorScope:
    __slots__ = ("_rec", "_key", "_token")

    def __init__(self, rec: MinimalRecorder, key: tuple[str, str]) -> None:
        self._rec = rec
        self._key = key

    def __enter__(self) -> _FloorScope:
        self._token = self._rec.var.set(self._key)
        return self

    def __exit__(self, *exc: Any) -> None:
        self._rec.var.reset(self._token)


class MinimalRecorder:
    """``sample()`` / ``record_executor_run()`` / ``record_sample()`` over locked per-series sums."""

    def __init__(self) -> None:
        self.var: ContextVar = ContextVar("floor_sample", default=None)
        self.lock = threading.Lock()
        self.series: dict[tuple[str, str], list] = {}
        self.cost_total = 0.0
        self.calls = 0

    def sample(self, source: str, problem_type: str) -> _FloorScope:
        """A sample scope."""
        return _FloorScope(self, (source, problem_type))

    def _entry(self) -> list:
        key = self.var.get()
        entry = self.series.get(key)
        if entry is None:
            entry = self.series[key] = [0, 0, 0.0, 0.0, 0.0, 0, float("inf"), float("-inf")]
        return entry

    def record_executor_run(self, cost: float) -> None:
        """One executor run of the current sample."""
        with self.lock:
            entry = self._entry()
            entry[4] += cost
            entry[5] += 1

    def record_sample(self, reward: float, correctness: float) -> None:
        """The current sample's reward and correctness."""
        with self.lock:
            entry = self._entry()
            entry[0] += 1
            entry[1] += correctness >= THRESHOLD
            entry[2] += reward
            entry[3] += correctness
            if reward < entry[6]:
                entry[6] = reward
            if reward > entry[7]:
                entry[7] = reward

    def step_end(self, step: int) -> dict[str, Any]:
        """The row of the step, from the per-series sums; then start over."""
        with self.lock:
            series, self.series = self.series, {}
        row: dict[str, Any] = {"train/step": step}
        n = sum(e[0] for e in series.values())
        if n:
            row["train/avg_reward"] = sum(e[2] for e in series.values()) / n
            row["train/min_reward"] = min(e[6] for e in series.values())
            row["train/max_reward"] = max(e[7] for e in series.values())
            row["train/accuracy"] = 100 * sum(e[1] for e in series.values()) / n
        by_ptype: dict[str, list] = {}
        for (source, ptype), e in series.items():
            if e[0]:
                acc = by_ptype.setdefault(ptype, [0, 0, 0.0])
                acc[0] += e[0]
                acc[1] += e[1]
                acc[2] += e[3]
                row[f"dataset/{source}/accuracy"] = 100 * e[1] / e[0]
                row[f"dataset/{source}/count"] = e[0]
                row[f"dataset/{source}/avg_reward"] = e[2] / e[0]
                row[f"dataset/{source}/avg_cost"] = e[4] / e[0]
            self.cost_total += e[4]
            self.calls += e[5]
        for ptype, (count, correct, csum) in by_ptype.items():
            row[f"train/accuracy_{ptype}"] = 100 * correct / count
            row[f"train/avg_score_{ptype}"] = csum / count
            row[f"train/count_{ptype}"] = count
        row["cost/total_cost"] = self.cost_total
        row["cost/executor_calls"] = self.calls
        row["cost/avg_cost_per_sample"] = self.cost_total / max(self.calls, 1)
        return row


# --- naive OpenTelemetry -------------------------------------------------------------------
class NaiveOtel:
    """One SDK instrument call per metric per sample, with attributes."""

    def __init__(self) -> None:
        from opentelemetry.sdk.metrics import Counter, Histogram, MeterProvider
        from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader

        delta = AggregationTemporality.DELTA
        self.reader = InMemoryMetricReader(preferred_temporality={Counter: delta, Histogram: delta})
        self.provider = MeterProvider(metric_readers=[self.reader])
        meter = self.provider.get_meter("naive-grpo")
        self.samples = meter.create_counter("grpo.samples", unit="{sample}")
        self.correct = meter.create_counter("grpo.samples.correct", unit="{sample}")
        self.reward = meter.create_histogram("grpo.reward", unit="1")
        self.correctness = meter.create_histogram("grpo.correctness", unit="1")
        self.cost = meter.create_counter("grpo.executor.cost", unit="USD")
        self.cost_total = 0.0
        self.calls = 0

    def rollup(self, step: int) -> dict[str, Any]:
        """Collect the step's delta and compute the same row."""
        data = self.reader.get_metrics_data()
        series: dict[tuple[str, str], dict[str, float]] = {}
        mins, maxs = [], []
        for rm in data.resource_metrics if data else ():
            for sm in rm.scope_metrics:
                for metric in sm.metrics:
                    for dp in metric.data.data_points:
                        attrs = dp.attributes
                        key = (attrs["source"], attrs["problem_type"])
                        s = series.setdefault(key, {})
                        if metric.name in ("grpo.reward", "grpo.correctness"):
                            s[metric.name] = dp.sum
                            if metric.name == "grpo.reward":
                                mins.append(dp.min)
                                maxs.append(dp.max)
                        else:
                            s[metric.name] = dp.value
        row: dict[str, Any] = {"train/step": step}
        n = sum(s.get("grpo.samples", 0) for s in series.values())
        if n:
            row["train/avg_reward"] = sum(s.get("grpo.reward", 0.0) for s in series.values()) / n
            row["train/max_reward"] = max(maxs)
            row["train/min_reward"] = min(mins)
            row["train/accuracy"] = 100 * sum(s.get("grpo.samples.correct", 0) for s in series.values()) / n
        by_ptype: dict[str, list[float]] = {}
        for (source, ptype), s in series.items():
            count = s.get("grpo.samples", 0)
            if not count:
                continue
            acc = by_ptype.setdefault(ptype, [0, 0, 0.0])
            acc[0] += count
            acc[1] += s.get("grpo.samples.correct", 0)
            acc[2] += s.get("grpo.correctness", 0.0)
            row[f"dataset/{source}/accuracy"] = 100 * s.get("grpo.samples.correct", 0) / count
            row[f"dataset/{source}/count"] = count
            row[f"dataset/{source}/avg_reward"] = s.get("grpo.reward", 0.0) / count
            row[f"dataset/{source}/avg_cost"] = s.get("grpo.executor.cost", 0.0) / count
            self.cost_total += s.get("grpo.executor.cost", 0.0)
            self.calls += count
        for ptype, (count, correct, csum) in by_ptype.items():
            row[f"train/accuracy_{ptype}"] = 100 * correct / count
            row[f"train/avg_score_{ptype}"] = csum / count
            row[f"train/count_{ptype}"] = count
        row["cost/total_cost"] = self.cost_total
        row["cost/executor_calls"] = self.calls
        row["cost/avg_cost_per_sample"] = self.cost_total / max(self.calls, 1)
        return row
