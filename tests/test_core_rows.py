"""Every key of every WandB row, read back from the offline run on disk, against docs/keys.md."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

import otel_grpo
from otel_grpo import keys
from otel_grpo.tools.runreader import read_run
from tests.oracle import assert_rows_equal, expected_rows

SOURCES = [
    ("gsm8k", "math"),
    ("math", "math"),
    ("humaneval", "code"),
    ("mbpp", "code"),
    ("hotpotqa", "qa"),
    ("commonsenseqa", "qa"),
    ("mmlu", "qa"),
]


def s(source, ptype, reward, cost, exec_="ok", correctness=None, group=None):
    return {
        "source": source,
        "ptype": ptype,
        "reward": reward,
        "cost": cost,
        "exec": exec_,
        "correctness": correctness,
        "group": group,
    }


def j(source, outcome, verdict=None, requests=1):
    return {"source": source, "outcome": outcome, "verdict": verdict, "requests": requests}


def scripted_windows() -> list[dict]:
    """3+ steps, 7 sources, 3 problem types, judge outcomes, failures, a raising step, validation."""
    step1 = [
        s(src, pt, r, 0.01 * (i + 1), group=f"q{i}")
        for i, ((src, pt), r) in enumerate(zip(SOURCES, [1.0, 0.7, 1.0, 0.0, 0.4, 1.0, 0.2], strict=False))
    ]
    step1 += [
        s("gsm8k", "math", 1.0, "0.0125", group="q0"),  # numeric string cost; q0 all equal
        s("MBPP", None, 0.9, None, group="q3"),  # case, derived ptype, invalid cost
        s("math", "math", 0.5, 0.02, exec_="fail"),  # failed execution: incorrect, reward 0
        s(None, None, 0.95, "n/a"),
    ]  # unknown source and problem type
    judges1 = [
        j("gsm8k", "success", True),
        j("hotpotqa", "success", False),
        j("mmlu", "parse_failure"),
        j("math", "api_failure", requests=3),
    ]
    raising = [s("gsm8k", "math", 1.0, 0.5), s("hotpotqa", "qa", 0.0, 0.25)]
    step2 = [s(src, pt, 0.7, 0.02) for src, pt in SOURCES]
    step2 += [
        s("commonsenseqa", "qa", 1.0, 0.03, correctness=0.95),
        s("humaneval", "code", 0.0, 0.01, exec_="fail"),
        s("mmlu", "qa", 0.89, float("nan")),
    ]
    val = [s(src, pt, r, 0.004) for (src, pt), r in zip(SOURCES, [1.0, 0.0, 1.0, 1.0, 0.4, 0.0, 1.0], strict=False)]
    val += [s("gsm8k", "math", 0.0, 0.006, exec_="fail")]
    step3 = [s(src, pt, 1.0 if i % 2 else -10.0, 0.001) for i, (src, pt) in enumerate(SOURCES)]
    return [
        {
            "split": "train",
            "step": 1,
            "samples": step1,
            "judges": judges1,
            "scalars": {"loss": 0.9, "kl_div": 0.01, "temperature": 1.0},
        },
        {
            "split": "train",
            "step": 2,
            "samples": raising,
            "judges": [j("gsm8k", "api_failure", requests=2)],
            "scalars": {"loss": 99.0},
            "raises": True,
        },
        {
            "split": "train",
            "step": 2,
            "samples": step2,
            "judges": [j("mbpp", "success", True)],
            "scalars": {"loss": 0.7, "kl_div": 0.02, "temperature": 0.95},
        },
        {"split": "val", "step": 2, "samples": val, "judges": [j("hotpotqa", "parse_failure")]},
        {"split": "val", "step": 2, "samples": [], "judges": []},
        {"split": "train", "step": 3, "samples": step3, "judges": [], "scalars": {"loss": 0.5}},
        {"split": "train", "step": 4, "samples": [], "judges": [], "scalars": {}},
    ]


def drive(windows: list[dict]) -> None:
    """Run the script through the manual API."""
    for w in windows:
        scope = otel_grpo.step(w["step"]) if w["split"] == "train" else otel_grpo.validation(w["step"])
        try:
            with scope:
                for smp in w["samples"]:
                    with otel_grpo.sample(smp["source"], smp["ptype"], group=smp.get("group")):
                        if smp["exec"] != "none":
                            otel_grpo.record_executor_run(cost=smp["cost"], success=smp["exec"] == "ok")
                        if smp["exec"] != "fail":
                            otel_grpo.record_sample(smp["reward"], smp["correctness"])
                for jd in w["judges"]:
                    otel_grpo.record_judge_evaluation(jd["outcome"], jd["verdict"], source=jd["source"])
                    for _ in range(jd["requests"]):
                        otel_grpo.record_judge_request(source=jd["source"])
                otel_grpo.record_scalars(**w.get("scalars", {}))
                if w.get("raises"):
                    raise RuntimeError("CUDA out of memory")
        except RuntimeError:
            pass


def drive_one_call(windows: list[dict]) -> None:
    """The same script through the one-call form, ``record_workflow``."""
    for w in windows:
        scope = otel_grpo.step(w["step"]) if w["split"] == "train" else otel_grpo.validation(w["step"])
        try:
            with scope:
                for smp in w["samples"]:
                    otel_grpo.record_workflow(
                        smp["source"],
                        smp["reward"],
                        smp["correctness"],
                        problem_type=smp["ptype"],
                        cost=smp["cost"],
                        success=smp["exec"] != "fail",
                        group=smp.get("group"),
                        executed=smp["exec"] != "none",
                    )
                for jd in w["judges"]:
                    otel_grpo.record_judge_evaluation(jd["outcome"], jd["verdict"], source=jd["source"])
                    for _ in range(jd["requests"]):
                        otel_grpo.record_judge_request(source=jd["source"])
                otel_grpo.record_scalars(**w.get("scalars", {}))
                if w.get("raises"):
                    raise RuntimeError("CUDA out of memory")
        except RuntimeError:
            pass


def test_the_one_call_form_writes_the_same_rows(tmp_path):
    windows = scripted_windows()
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    drive_one_call(windows)
    rows = tel.rows
    tel.shutdown()
    assert_rows_equal(rows, expected_rows(windows))


def run_dir_of(tel) -> Path:
    return Path(tel.run.dir).parent


def test_every_key_of_every_row_matches_spec(tmp_path):
    windows = scripted_windows()
    tel = otel_grpo.setup(None, wandb={"mode": "offline", "dir": str(tmp_path)})
    drive(windows)
    run_dir = run_dir_of(tel)
    tel.shutdown()
    history = read_run(run_dir).history
    expected = expected_rows(windows)
    assert_rows_equal(history, expected)
    # A few values by hand, so the oracle itself is checked.
    first = history[0]
    assert first["train/accuracy"] == pytest.approx(100 * 6 / 11)  # 1.0,1.0,1.0,0.9,0.95,1.0 (>= 0.9)
    assert first["train/min_reward"] == 0.0 and first["train/max_reward"] == 1.0
    assert first["dataset/unknown/count"] == 1 and first["train/count_unknown"] == 1
    assert first["dataset/mbpp/count"] == 2 and first["dataset/mbpp/accuracy"] == 50.0
    assert first["dataset/gsm8k/avg_cost"] == pytest.approx((0.01 + 0.0125) / 2)
    assert first["cost/invalid_cost_count"] == 2
    assert first["judge/total_calls"] == 4 and first["judge/success_rate"] == 0.5
    assert first["grpo/gsm8k/zero_advantage_rate"] == 1.0 and first["grpo/mbpp/zero_advantage_rate"] == 0.0
    second = history[1]
    assert second["train/step"] == 2 and second["train/loss"] == 0.7  # not the raised attempt's 99
    assert second["judge/total_calls"] == 6  # the raised attempt's judge call still counts
    assert second["judge/step_success_rate"] == 1.0  # ...but not in this step's rates
    assert second["cost/judge_calls"] == (1 + 1 + 1 + 3) + 2 + 1
    assert second["cost/executor_calls"] == 11 + 2 + 10
    val_row = history[2]
    assert val_row["train/step"] == 2 and val_row["val/success_rate"] == pytest.approx(100 * 7 / 8)
    assert history[3]["train/min_reward"] == -10.0
    assert set(history[4]) - {"_step"} >= {"train/step", "cost/total_cost", "judge/total_calls"}
    assert not any(k.startswith(("dataset/", "train/acc")) for k in history[4])
    # run.summary keeps plain latest values of the keys a user reads there, and nothing else of ours.
    ours = tuple(keys.prefix(namespace) for namespace in keys.NAMESPACES)
    summary = {k: v for k, v in read_run(run_dir).summary.items() if k.startswith(ours)}
    latest = {}
    for row in history:
        latest.update({k: v for k, v in row.items() if k.startswith(ours)})
    sources = {"gsm8k", "math", "humaneval", "mbpp", "hotpotqa", "commonsenseqa", "mmlu", "unknown"}
    kept = set(keys.SUMMARY_KEYS) | {k for src in sources for k in keys.summary_keys_of(src)}
    assert set(summary) == kept & set(latest)
    assert summary == {k: latest[k] for k in summary}
    assert "dataset/gsm8k/accuracy" in summary and "val/gsm8k/accuracy" in summary
    assert "dataset/gsm8k/avg_cost" not in summary and "judge/parse_failure_rate" not in summary


def test_accuracy_threshold_is_configurable(tmp_path):
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"}, metrics={"accuracy_threshold": 0.5})
    with otel_grpo.step(1):
        for reward in (0.4, 0.5, 0.7, 1.0):
            with otel_grpo.sample("gsm8k"):
                otel_grpo.record_sample(reward)
    assert tel.rows[-1]["train/accuracy"] == 75.0
    assert tel.rows[-1]["train/accuracy_math"] == 75.0


def test_log_frequency_writes_every_nth_step_and_keeps_cumulative_totals(tmp_path):
    tel = otel_grpo.setup(None, wandb={"mode": "disabled", "log_frequency": 2})
    for step in range(1, 5):
        with otel_grpo.step(step), otel_grpo.sample("math"):
            otel_grpo.record_executor_run(cost=1.0)
            otel_grpo.record_sample(1.0)
    assert [r["train/step"] for r in tel.rows] == [2, 4]
    assert [r["cost/total_cost"] for r in tel.rows] == [2.0, 4.0]
    assert [r["dataset/math/count"] for r in tel.rows] == [1, 1]


def test_host_wandb_logging_with_and_without_step_loses_none_of_our_rows(tmp_path):
    import wandb

    run = wandb.init(project="host", mode="offline", dir=str(tmp_path))  # the trainer's own run
    tel = otel_grpo.setup(None, wandb={"mode": "offline", "dir": str(tmp_path)})
    for step in range(1, 5):
        with otel_grpo.step(step):
            for i in range(3):
                with otel_grpo.sample("gsm8k"):
                    otel_grpo.record_sample(1.0 if i else 0.0)
                wandb.log({"sample/reward": 1.0})  # per-sample, no step: advances the counter
        wandb.log({"loss": 1.0 / step}, step=step)  # stale step: WandB drops this host row
    assert tel.run is run  # attached to the trainer's run, not a second one
    run_dir = Path(run.dir).parent
    tel.shutdown()
    run.finish()
    history = read_run(run_dir).history
    ours = [r for r in history if "train/step" in r]
    assert [r["train/step"] for r in ours] == [1, 2, 3, 4]
    assert all(r["dataset/gsm8k/count"] == 3 and r["train/accuracy"] == pytest.approx(200 / 3) for r in ours)
    assert sum(1 for r in history if "sample/reward" in r) == 12


def test_host_logging_with_increasing_explicit_steps_loses_nothing(tmp_path):
    import wandb

    run = wandb.init(project="host", mode="offline", dir=str(tmp_path))
    tel = otel_grpo.setup(None, wandb={"mode": "offline", "dir": str(tmp_path)})
    for step in range(1, 4):
        wandb.log({"host/metric": step}, step=step * 100)
        with otel_grpo.step(step), otel_grpo.sample("mmlu"):
            otel_grpo.record_sample(1.0)
    run_dir = Path(run.dir).parent
    tel.shutdown()
    run.finish()
    history = read_run(run_dir).history
    assert [r["train/step"] for r in history if "train/step" in r] == [1, 2, 3]
    assert [r["host/metric"] for r in history if "host/metric" in r] == [1, 2, 3]


def test_32_threads_and_500_asyncio_tasks_give_exact_counts():
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    per_thread = 500
    sources = [src for src, _ in SOURCES]

    def worker(idx: int) -> None:
        src = sources[idx % 7]
        for n in range(per_thread):
            with otel_grpo.sample(src):
                otel_grpo.record_executor_run(cost=0.001)
                otel_grpo.record_sample(1.0 if n % 2 else 0.0)

    async def task(idx: int) -> None:
        with otel_grpo.sample(sources[idx % 7]):
            await asyncio.sleep(0.001 * (idx % 5))
            otel_grpo.record_executor_run(cost=0.001)
            await asyncio.sleep(0)
            otel_grpo.record_sample(1.0)

    async def tasks() -> None:
        await asyncio.gather(*(task(i) for i in range(500)))

    with otel_grpo.step(1):
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
        for t in threads:
            t.start()
        asyncio.run(tasks())
        for t in threads:
            t.join()
    row = tel.rows[-1]
    total = 32 * per_thread + 500
    assert sum(row[f"dataset/{src}/count"] for src in sources) == total
    for i, src in enumerate(sources):
        threads_here = len(range(i, 32, 7))
        tasks_here = len(range(i, 500, 7))
        assert row[f"dataset/{src}/count"] == threads_here * per_thread + tasks_here
        correct = threads_here * per_thread // 2 + tasks_here
        assert row[f"dataset/{src}/accuracy"] == pytest.approx(100 * correct / (threads_here * per_thread + tasks_here))
    assert row["cost/executor_calls"] == total
    assert row["cost/total_cost"] == pytest.approx(total * 0.001)


def test_validation_defaults_to_the_latest_step_and_attributes_by_context():
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    with otel_grpo.step(7):
        pass
    with otel_grpo.validation(), otel_grpo.sample("HotpotQA"):
        otel_grpo.record_judge_evaluation("success", True, source="code_llm_judge")
        otel_grpo.record_sample(1.0)
    row = tel.rows[-1]
    assert row["train/step"] == 7 and row["val/hotpotqa/count"] == 1
    assert row["judge/hotpotqa_success_rate"] == 1.0
    assert "judge/code_llm_judge_success_rate" not in row
    assert "judge/step_success_rate" not in row  # a validation row carries no train-step rates


def test_rows_get_their_own_run_when_the_trainers_run_is_disabled(tmp_path):
    import wandb

    host = wandb.init(project="host", mode="disabled")  # the trainer turned WandB off for itself
    tel = otel_grpo.setup(None, wandb={"mode": "offline", "dir": str(tmp_path)})
    with otel_grpo.step(1):
        with otel_grpo.sample("math"):
            otel_grpo.record_sample(1.0)
    assert tel.run is not host and not tel.run.disabled
    run_dir = Path(tel.run.dir).parent
    tel.shutdown()
    host.finish()
    assert [r["dataset/math/count"] for r in read_run(run_dir).history] == [1]


def test_rows_follow_the_trainer_when_it_finishes_its_run_and_starts_another(tmp_path):
    import wandb

    first = wandb.init(project="host", mode="offline", dir=str(tmp_path))
    tel = otel_grpo.setup(None, wandb={"mode": "offline", "dir": str(tmp_path)})
    with otel_grpo.step(1):
        with otel_grpo.sample("math"):
            otel_grpo.record_sample(1.0)
    first_dir = Path(first.dir).parent
    first.finish()
    second = wandb.init(project="host", mode="offline", dir=str(tmp_path))  # e.g. a separate eval run
    with otel_grpo.step(2):
        with otel_grpo.sample("math"):
            otel_grpo.record_sample(0.0)
    second_dir = Path(second.dir).parent
    tel.shutdown()
    second.finish()
    assert tel.exporter.health["rows_dropped"] == 0
    assert [r["train/step"] for r in read_run(first_dir).history] == [1]
    assert [r["train/step"] for r in read_run(second_dir).history] == [2]


def test_latency_percentiles_read_back_equal_hand_interpolated_buckets(tmp_path):
    # Buckets: semconv.DURATION_BUCKETS_S (..., 0.0465, 0.0674, 0.0977, 0.142, ...); quantiles interpolate
    # inside a bucket like Prometheus' histogram_quantile.
    tel = otel_grpo.setup(None, wandb={"mode": "offline", "dir": str(tmp_path)})
    with otel_grpo.step(1):
        for seconds in (0.05, 0.05, 0.05, 0.05):  # all in (0.0465, 0.0674]
            with otel_grpo.sample("gsm8k"):
                otel_grpo.record_executor_run(cost=0.0, duration_s=seconds)
                otel_grpo.record_judge_evaluation("success", True, duration_s=0.1)  # (0.0977, 0.142]
                otel_grpo.record_sample(1.0)
    run_dir = Path(tel.run.dir).parent
    tel.shutdown()
    row = read_run(run_dir).history[0]
    assert row["executor/latency_p50_s"] == pytest.approx(0.0465 + 0.0209 * 2 / 4)
    assert row["executor/latency_p95_s"] == pytest.approx(0.0465 + 0.0209 * 3.8 / 4)
    assert row["judge/latency_p50_s"] == pytest.approx(0.0977 + 0.0443 * 2 / 4)
    assert row["judge/latency_p95_s"] == pytest.approx(0.0977 + 0.0443 * 3.8 / 4)


def test_the_one_call_form_records_what_scored_each_sample_and_survives_bad_input(caplog):
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    with otel_grpo.step(1):
        otel_grpo.record_workflow("mbpp", 1.0, cost=0.01, scored_by="judge")
        otel_grpo.record_workflow("mbpp", 0.0, cost=0.01, scored_by="judge_failed")
        otel_grpo.record_workflow("mbpp", 1.0, cost=0.02)  # rule
        otel_grpo.record_workflow("mbpp", 1.0, cost=0.01, success=False)  # not scored, reward 0
        otel_grpo.record_workflow("gsm8k", "nan?", cost=object(), scored_by="oracle", success="maybe")
        otel_grpo.record_workflow(None, float("inf"), correctness=[1], group={"unhashable": 1})
    row = tel.rows[-1]
    tel.shutdown()
    assert row["dataset/mbpp/count"] == 4 and row["dataset/mbpp/accuracy"] == 50.0
    assert row["dataset/mbpp/judge_share"] == 2 / 3 and row["dataset/mbpp/judge_failed_share"] == 1 / 3
    assert row["dataset/mbpp/accuracy_excl_judge_failed"] == 100.0 * 2 / 3
    assert row["dataset/mbpp/exec_success_rate"] == 75.0
    assert row["dataset/mbpp/cost_per_correct"] == pytest.approx(0.05 / 2)
    # Unreadable values are counted as invalid, defaults are taken, and nothing raised.
    assert row["dataset/gsm8k/count"] == 1 and row["dataset/gsm8k/accuracy"] == 0.0
    assert row["dataset/unknown/count"] == 1
    assert row["cost/invalid_cost_count"] == 1
