"""Trust round 2: samples across a step close, validation inside a step, no zeros where nothing was measured.

Every sample recorded is counted exactly once, in the totals and in the rows, whichever thread
records it and whenever windows close; a validation is logged at the step during which it ran;
execution and cost figures are omitted where no executor ran and nothing carried a cost.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

import otel_grpo
from otel_grpo import semconv
from otel_grpo.tools.runreader import read_run

SOURCES = ("gsm8k", "math", "humaneval", "mbpp", "hotpotqa", "commonsenseqa", "mmlu")


@pytest.fixture
def fast_switching():
    """Threads switch every microsecond, so a step close lands between any two bytecodes."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(before)


def _samples_in_rows(rows: list[dict]) -> int:
    return sum(int(v) for row in rows for k, v in row.items() if k.startswith("dataset/") and k.endswith("/count"))


def _correct_in_rows(rows: list[dict]) -> float:
    return sum(
        row[k] * row[k.replace("/accuracy", "/count")] / 100
        for row in rows
        for k in row
        if k.startswith("dataset/") and k.endswith("/accuracy")
    )


def _samples_total(reader: InMemoryMetricReader) -> int:
    data = reader.get_metrics_data()
    total = 0
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == semconv.SAMPLES[0]:
                    total += sum(int(p.value) for p in metric.data.data_points)
    return total


def _run_threads_across_closes(record_one, workers: int = 3, per_worker: int = 6000) -> int:
    """``workers`` threads call ``record_one(i)`` while the main thread opens and closes steps.

    The last step stays open until every worker is done, so every sample has a row to land in.
    Returns the number of samples recorded.
    """
    done = threading.Event()
    finished = [0]
    lock = threading.Lock()

    def work(offset: int) -> None:
        for i in range(per_worker):
            record_one(offset + i)
            if i % 100 == 0:
                time.sleep(0)  # let the main thread close a step now and then, whatever the scheduler does
        with lock:
            finished[0] += 1
            if finished[0] == workers:
                done.set()

    threads = [threading.Thread(target=work, args=(w * per_worker,)) for w in range(workers)]
    for t in threads:
        t.start()
    step = 0
    while not done.is_set():
        step += 1
        with otel_grpo.step(step):
            pass
    for t in threads:
        t.join()
    with otel_grpo.step(step + 1):
        pass
    assert step > 20, "the workers finished before enough steps closed to test anything"
    return workers * per_worker


@pytest.mark.parametrize("extra_reader", [False, True], ids=["otel-grpo readers", "with a reader of yours"])
def test_record_workflow_from_threads_across_step_closes_counts_every_sample_once(fast_switching, extra_reader):
    reader = InMemoryMetricReader()
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"}, metric_readers=[reader] if extra_reader else ())

    def record(i: int) -> None:
        otel_grpo.record_workflow(SOURCES[i % 7], 1.0, cost=0.001, success=True)

    recorded = _run_threads_across_closes(record)
    assert _samples_in_rows(tel.rows) == recorded
    assert round(_correct_in_rows(tel.rows)) == recorded  # every figure of a row from one consistent snapshot
    if extra_reader:
        assert _samples_total(reader) == recorded


def test_the_three_call_form_from_threads_across_step_closes_counts_every_sample_once(fast_switching):
    reader = InMemoryMetricReader()
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"}, metric_readers=[reader])

    def record(i: int) -> None:
        with otel_grpo.sample(SOURCES[i % 7]):
            otel_grpo.record_executor_run(cost=0.001, success=True)
            otel_grpo.record_sample(1.0)

    recorded = _run_threads_across_closes(record, per_worker=4000)
    rows = tel.rows
    assert _samples_in_rows(rows) == recorded
    assert _samples_total(reader) == recorded
    # An execution whose step closed before its reward came is counted there, unscored; the reward is
    # not counted again but in an exporter health counter, so correct + late == recorded.
    correct = _correct_in_rows(rows)
    late = max((row.get("exporter/late_rewards", 0) for row in rows), default=0)
    assert round(correct) + late == recorded


@pytest.fixture(autouse=True)
def keep_every_row(monkeypatch):
    """Keep every row the exporter writes (its own deque keeps the last 100)."""
    from otel_grpo.exporters import wandb_exporter

    original = wandb_exporter.WandbStepExporter.__init__

    def init(self, *args, **kwargs):
        kwargs["keep_rows"] = 1_000_000
        original(self, *args, **kwargs)

    monkeypatch.setattr(wandb_exporter.WandbStepExporter, "__init__", init)


def test_a_reward_after_its_step_closed_is_counted_once_at_that_step(tmp_path):
    tel = otel_grpo.setup(None, wandb={"mode": "offline", "dir": str(tmp_path)})
    scope = otel_grpo.sample("gsm8k", "math")
    with otel_grpo.step(1):
        with scope:
            otel_grpo.record_executor_run(cost=0.01, success=True)
    with otel_grpo.step(2):
        with scope:  # the same sample, scored after step 1 closed
            otel_grpo.record_sample(1.0)
        with otel_grpo.sample("math", "math"):
            otel_grpo.record_executor_run(cost=0.02, success=True)
            otel_grpo.record_sample(1.0)
    run_dir = tel.run.dir
    tel.shutdown()
    first, second = read_run(str(tmp_path / "wandb")).history[:2]
    assert first["dataset/gsm8k/count"] == 1 and first["dataset/gsm8k/accuracy"] == 0.0  # unscored: incorrect
    assert "exporter/late_rewards" not in first
    assert "dataset/gsm8k/count" not in second  # not a sample of step 2
    assert second["dataset/math/count"] == 1 and second["train/accuracy"] == 100.0
    assert second["exporter/late_rewards"] == 1
    assert run_dir


# --- validation inside a step -------------------------------------------------------------------------------
def test_a_manual_validation_inside_a_step_is_logged_at_that_step(tmp_path):
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    for step in (1, 2, 3):
        with otel_grpo.step(step):
            otel_grpo.record_workflow("gsm8k", 1.0, cost=0.01)
            if step == 3:
                with otel_grpo.validation():
                    otel_grpo.record_workflow("mmlu", 0.0, cost=0.01)
    with otel_grpo.validation():  # outside any step: the latest step
        otel_grpo.record_workflow("math", 1.0, cost=0.01)
    rows = tel.rows
    val_rows = [row for row in rows if "val/accuracy" in row]
    assert [row["train/step"] for row in val_rows] == [3, 3]
    assert val_rows[0]["val/mmlu/count"] == 1 and val_rows[1]["val/math/count"] == 1


class _Executor:
    async def execute_workflow(self, workflow_code, problem, problem_type="math", **kwargs):
        return "42", 0.01, {"success": True, "execution_time": 0.01}


class _Rewards:
    def compute_reward(self, problem, prediction, ground_truth, problem_type="math", metadata=None, source=None):
        return 1.0 if prediction == ground_truth else 0.0


class _ValidatingTrainer:
    """Validates from within ``train_step`` (every second step), like some trainers do."""

    def __init__(self) -> None:
        self.executor = _Executor()
        self.reward_computer = _Rewards()

    async def _one(self, source: str, answer: str) -> None:
        ptype = "math" if source in ("gsm8k", "math") else "code" if source in ("humaneval", "mbpp") else "qa"
        prediction, _cost, _meta = await self.executor.execute_workflow("code", f"q-{source}", ptype, source=source)
        self.reward_computer.compute_reward(f"q-{source}", prediction, answer, source=source)

    async def train_step(self, step: int) -> dict:
        await asyncio.gather(*(self._one(src, "42") for src in SOURCES[:3]))
        if step % 2 == 0:
            await self.evaluate_on_val_set(num_samples=2)
        return {"loss": 1.0 / step}

    async def evaluate_on_val_set(self, num_samples: int = 50) -> dict:
        await asyncio.gather(*(self._one(src, "7") for src in SOURCES[3 : 3 + num_samples]))
        return {}

    async def train(self, steps: int) -> None:
        for step in range(1, steps + 1):
            await self.train_step(step)


def test_a_trainer_that_validates_from_within_train_step_gets_its_val_row_at_that_step():
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    trainer = _ValidatingTrainer()
    otel_grpo.instrument_trainer(trainer)
    try:
        asyncio.run(trainer.train(4))
    finally:
        otel_grpo.uninstrument_trainer(trainer)
    rows = tel.rows
    val_steps = [row["train/step"] for row in rows if "val/accuracy" in row]
    assert val_steps == [2, 4]
    val = next(row for row in rows if "val/accuracy" in row)
    assert val["val/accuracy"] == 0.0 and val["val/mbpp/count"] == 1 and val["val/hotpotqa/count"] == 1
    train_rows = [row for row in rows if "train/accuracy" in row]
    assert [row["train/step"] for row in train_rows] == [1, 2, 3, 4]
    assert all(row["train/count_math"] == 2 and row["train/count_code"] == 1 for row in train_rows)


# --- zeros where nothing was measured ----------------------------------------------------------------------
EXECUTION_KEYS = ("/exec_success_rate", "/avg_cost", "/cost_per_correct")


def test_a_reward_only_run_gets_no_execution_or_cost_figures():
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    with otel_grpo.step(1):
        otel_grpo.record_workflow("gsm8k", 1.0)
        otel_grpo.record_workflow("mmlu", 0.0)
        with otel_grpo.sample("math"):
            otel_grpo.record_sample(1.0)
    with otel_grpo.validation():
        otel_grpo.record_workflow("gsm8k", 1.0)
    train, val = tel.rows
    assert train["dataset/gsm8k/accuracy"] == 100.0 and train["train/accuracy"] == pytest.approx(200 / 3)
    assert not [k for k in train if k.endswith(EXECUTION_KEYS)]
    for key in ("cost/step_cost", "cost/total_cost", "cost/executor_calls", "cost/cost_per_correct"):
        assert key not in train and key not in val
    assert val["val/accuracy"] == 100.0
    assert not [k for k in val if k.endswith(("success_rate", "avg_cost", "cost_per_correct"))]


def test_execution_figures_are_over_executor_runs_and_omitted_for_a_source_without_one():
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    with otel_grpo.step(1):
        otel_grpo.record_workflow("gsm8k", 1.0, cost=0.02, success=True)
        otel_grpo.record_workflow("gsm8k", 0.0, cost=0.04, success=False)
        otel_grpo.record_workflow("gsm8k", 1.0)  # a reward-only sample of the same source: not an execution
        otel_grpo.record_workflow("mmlu", 1.0)  # a source with no executor run at all
    with otel_grpo.validation():
        otel_grpo.record_workflow("math", 1.0, cost=0.01, success=True)
        otel_grpo.record_workflow("math", 1.0)
        otel_grpo.record_workflow("mbpp", 0.0)
    train, val = tel.rows
    assert train["dataset/gsm8k/count"] == 3
    assert train["dataset/gsm8k/exec_success_rate"] == 50.0  # 1 of 2 executor runs
    assert train["dataset/gsm8k/avg_cost"] == pytest.approx(0.03)  # per executor run
    assert train["dataset/gsm8k/cost_per_correct"] == pytest.approx(0.06 / 2)
    assert train["cost/step_cost"] == pytest.approx(0.06)
    for figure in EXECUTION_KEYS:
        assert f"dataset/mmlu{figure}" not in train
    assert val["val/success_rate"] == 100.0 and val["val/avg_cost"] == pytest.approx(0.01)
    assert val["val/math/avg_cost"] == pytest.approx(0.01)
    assert "val/mbpp/avg_cost" not in val and "val/mbpp/cost_per_correct" not in val


def test_records_that_arrive_late_count_their_spend_and_judge_figures_but_no_sample():
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    recorder = tel.recorder
    with otel_grpo.step(1):
        otel_grpo.record_workflow("gsm8k", 1.0, cost=0.01)
    with recorder.late_records():  # what a Ray call the trainer did not wait for recorded in step 1
        otel_grpo.record_workflow("gsm8k", 1.0, cost=0.5)
        with otel_grpo.sample("math"):
            otel_grpo.record_executor_run(cost=0.25, success=True)
            otel_grpo.record_sample(1.0)
        otel_grpo.record_judge_evaluation("success", True, source="math")
        otel_grpo.record_judge_request(source="math")
    with otel_grpo.step(2):
        otel_grpo.record_workflow("mmlu", 0.0, cost=0.01)
    first, second = tel.rows
    assert second["cost/total_cost"] == pytest.approx(0.01 + 0.5 + 0.25 + 0.01)
    assert second["cost/executor_calls"] == 4 and second["judge/total_calls"] == 1
    assert second["cost/judge_calls"] == 1
    assert second["dataset/mmlu/count"] == 1 and "dataset/gsm8k/count" not in second
    assert "dataset/math/count" not in second and second["train/accuracy"] == 0.0
    assert second["exporter/late_samples"] == 2
