"""otel-grpo on TRL's GRPOTrainer, with real TRL on CPU: every key of every row, against plain code.

A tiny random Qwen2 trains a few steps (``tests/test_trl_train.py``) against a local judge
server that fails on a fixed schedule. The script's reward functions log what TRL gave
them and what they returned; ``tests/test_trl_expected.py`` computes the rows docs/trl.md asks
for from those logs alone, and the rows otel-grpo wrote are read back from the offline
WandB run. Skipped when TRL (the ``trl`` extra) is not installed.
"""

from __future__ import annotations

import functools
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from otel_grpo.tools.demo.judge_server import FaultConfig, JudgeServer
from otel_grpo.tools.runreader import find_run_file, read_run
from tests.oracle import assert_rows_equal
from tests.test_trl_expected import NO_EXECUTOR, expected_rows, read_calls, windows

pytest.importorskip("trl", reason="the trl extra is not installed")

pytestmark = pytest.mark.slow

SCRIPT = Path(__file__).resolve().parent / "test_trl_train.py"
ROOT = SCRIPT.parent.parent
# Request i gets SCHEDULE[i % len]: HTTP errors (api_failure), replies without a verdict (parse_failure).
SCHEDULE = ["ok", "ok", "http_500", "ok", "unparsable", "ok", "ok", "ok", "null_content", "ok", "ok"]
TIMING = ("step_time", "runtime", "per_second", "profiling/")
CONFIG = """
wandb: {mode: offline}
instrumentation:
  trl: {correctness: %s}
"""


@pytest.fixture
def judge():
    with JudgeServer(faults=FaultConfig(schedule=SCHEDULE)) as server:
        yield server


def otel_grpo_command() -> list[str]:
    found = shutil.which("otel-grpo", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "otel_grpo.tools.cli"]


def train(tmp: Path, name: str, judge_url: str, *, mode: str, launch: list[str] | None = None, **options) -> Path:
    """Run the training script in its own directory; return that directory."""
    where = tmp / name
    where.mkdir()
    (where / "config").mkdir()
    (where / "config" / "telemetry.yaml").write_text(CONFIG % options.pop("correctness", "null"))
    args = ["--out", str(where), "--mode", mode, "--judge-url", judge_url]
    for key, value in options.items():
        flag = "--" + key.replace("_", "-")
        args += [flag] if value is True else [flag, str(value)]
    command = [*(launch or [sys.executable]), str(SCRIPT), *args]
    if mode == "auto":
        command = [*otel_grpo_command(), "run", "--", *command]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "OTEL_"))}
    env.update(WANDB_MODE="offline", WANDB_DIR=str(where), WANDB_SILENT="true", PYTHONPATH=str(ROOT))
    env.update(OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    proc = subprocess.run(command, cwd=where, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    (where / "stderr.txt").write_text(proc.stderr)
    return where


@functools.lru_cache(maxsize=16)
def records(where: Path):
    """The run under ``where`` read back from disk (once: each read is a ``wandb leet inspect``)."""
    return read_run(where / "wandb")


def our_rows(where: Path) -> list[dict]:
    """otel-grpo's rows. wandb adds TRL's last train/global_step (its ``*`` step_sync glob) to a row that
    carries a table, whatever the table's own definition says: dropped here, after checking it."""
    rows = []
    for row in records(where).otel_grpo_rows():
        row = {k: v for k, v in row.items() if k != "_step"}
        if "train/global_step" in row:
            assert any(k.startswith("dataset_statistics.") for k in row)
            assert row.pop("train/global_step") < row["train/step"]
        rows.append(row)
    return rows


def check_rows(where: Path, steps: int, correctness: str | None = None, weights=(1.0, 0.5)) -> list[dict]:
    """otel-grpo's rows equal the expected ones, key by key; returns the rows."""
    calls = read_calls(where)
    expected = expected_rows(windows(calls, steps, dict(zip(("rule", "judge"), weights, strict=True)), correctness))
    actual = our_rows(where)
    for row in actual:  # no executor, an unpriced judge: no execution or cost figure, not a 0
        assert not [k for k in row if k.endswith(NO_EXECUTOR)], row
    for row in actual:
        if "judge/total_calls" in row:  # bucket estimates of each judge request's latency: present, not exact
            assert row.pop("judge/latency_p50_s") >= 0 and row.pop("judge/latency_p95_s") >= 0
    assert_rows_equal(actual, expected)
    return actual


def trl_rows(where: Path) -> list[dict]:
    """TRL's own rows (train/global_step), timings aside."""
    return [
        {k: v for k, v in row.items() if k != "_step" and not any(t in k for t in TIMING)}
        for row in records(where).history
        if "train/global_step" in row and "train/step" not in row
    ]


def metric_records(where: Path) -> list[dict]:
    """The run's define_metric records."""
    out = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(find_run_file(where / "wandb"))],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    records = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return [r["metric"] for r in records if r.get("type") == "metric"]


def test_one_process_under_otel_grpo_run_rows_exact_and_trl_metrics_unchanged(tmp_path, judge):
    steps = 3
    plain = train(tmp_path, "plain", judge.url, mode="plain", steps=steps, eval_steps=2)
    with JudgeServer(faults=FaultConfig(schedule=SCHEDULE)) as second:  # the same fault sequence again
        auto = train(tmp_path, "auto", second.url, mode="auto", steps=steps, eval_steps=2, correctness="judge")
    rows = check_rows(auto, steps, correctness="judge")
    outcomes = {k for row in rows for k in row if k.startswith("judge/") and row[k]}
    assert {"judge/api_failure_rate", "judge/parse_failure_rate", "judge/success_rate"} <= outcomes
    assert any(k.startswith("val/") for row in rows for k in row)
    assert rows[-1]["exporter/unscorable"] > 0  # mbpp: the rule's None and a failed judge evaluation
    # TRL's own metrics: the same values at the same global steps, with or without otel-grpo.
    assert trl_rows(auto) == trl_rows(plain) and len(trl_rows(plain)) >= steps
    # ... the same x axis: otel-grpo defines only its own keys, one by one, never a glob.
    ours = {k for row in our_rows(auto) for k in row} | {"dataset_statistics"}  # our keys, and our table
    theirs = {k for row in trl_rows(plain) for k in row}
    assert not ours & theirs and theirs
    auto_metrics = metric_records(auto)
    assert [m for m in auto_metrics if m.get("name") not in ours] == metric_records(plain)
    defined_by_us = [m for m in auto_metrics if m.get("name") in ours or m.get("step_metric") == "train/step"]
    assert defined_by_us and all("glob_name" not in m for m in defined_by_us)
    # ... and the same summaries.
    summary_auto, summary_plain = records(auto).summary, records(plain).summary
    for key in set(summary_plain) - ours:
        if not any(t in key for t in TIMING):
            assert summary_auto.get(key) == summary_plain[key], key


def test_generation_reuse_and_async_judge_with_instrument_trainer(tmp_path, judge):
    steps = 6  # one generation every steps_per_generation * num_iterations = 4 steps: scored at steps 1 and 5
    where = train(
        tmp_path,
        "reuse",
        judge.url,
        mode="instrument",
        steps=steps,
        steps_per_generation=2,
        num_iterations=2,
        async_judge=True,
    )
    rows = check_rows(where, steps)
    assert [row["train/step"] for row in rows] == list(range(1, steps + 1))
    scored = [row["train/step"] for row in rows if "train/accuracy" in row]
    assert scored == [1, 5]
    assert all("judge/total_calls" in row and "cost/judge_calls" in row for row in rows)


def test_two_processes_under_accelerate_rows_exact(tmp_path, judge):
    steps = 2
    launch = ["accelerate", "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1"]
    launch = [str(Path(sys.executable).parent / "accelerate"), *launch[1:]]
    where = train(tmp_path, "two", judge.url, mode="auto", launch=launch, steps=steps, eval_steps=2)
    calls = read_calls(where)
    assert len(calls) == 2 and all(calls)  # both processes scored
    rows = check_rows(where, steps)
    assert len(rows) >= steps
    assert not math.isnan(rows[-1]["judge/total_calls"])


def test_the_readme_example_under_otel_grpo_run(tmp_path, judge):
    where = tmp_path / "example"
    where.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "OTEL_"))}
    env.update(WANDB_MODE="offline", WANDB_DIR=str(where), WANDB_SILENT="true", OMP_NUM_THREADS="1")
    example = [sys.executable, str(ROOT / "examples" / "trl" / "train.py"), "--judge-url", judge.url, "--steps", "2"]
    command = [*otel_grpo_command(), "run", "--", *example, "--eval-steps", "2"]
    proc = subprocess.run(command, cwd=where, env=env, capture_output=True, text=True, timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-4000:]
    # no config: the default targets name modules a TRL script does not have, which is no typo
    assert "instrumentation.targets" not in proc.stderr, proc.stderr[-4000:]
    inspect = [*otel_grpo_command(), "inspect", str(where / "wandb")]
    shown = subprocess.run(inspect, cwd=where, env=env, capture_output=True, text=True, timeout=120, check=True)
    for key in ("train/step", "train/accuracy", "dataset/", "judge/success_rate", "val/accuracy"):
        assert key in shown.stdout, shown.stdout
    assert "train/loss" in shown.stdout  # TRL's own keys, in the same run
