"""Faults survived, bad input handled, nothing lost, no secret leaked (issue: reliability)."""

from __future__ import annotations

import asyncio
import logging
import math
import multiprocessing
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

import otel_grpo
from otel_grpo.recording.totals import RunTotals
from otel_grpo.tools.runreader import read_run

pytestmark = pytest.mark.slow  # starts real processes, servers or WandB runs

ROOT = Path(__file__).resolve().parent.parent
FAKE_KEY = "0123456789abcdef" * 2 + "feedface"  # 40 hex chars, shaped like a WandB key

STEPPER = textwrap.dedent("""
    import sys, time, logging
    logging.basicConfig(level=logging.WARNING)
    import otel_grpo
    mode, steps, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    tel = otel_grpo.setup(None, wandb={"mode": mode, "dir": ".", "init_timeout_s": 5})
    for step in range(1, steps + 1):
        with otel_grpo.step(step):
            for src in ("gsm8k", "math"):
                with otel_grpo.sample(src):
                    otel_grpo.record_executor_run(cost=0.01)
                    otel_grpo.record_sample(1.0)
        print("STEP", step, flush=True)
        time.sleep(pause)
    tel.shutdown()
    print("DONE", flush=True)
""")


def _run_stepper(
    tmp_path: Path, mode: str, steps: int, pause: float, env_extra: dict, timeout: float = 120
) -> subprocess.CompletedProcess:
    script = tmp_path / "stepper.py"
    script.write_text(STEPPER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "OTEL_"))}
    env.update({"WANDB_SILENT": "true", "PYTHONPATH": str(ROOT), **env_extra})
    return subprocess.run(
        [sys.executable, str(script), mode, str(steps), str(pause)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _our_rows(path: Path) -> list[dict]:
    return [r for r in read_run(path).history if "train/step" in r]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("case", ["no_key", "refused", "never_answers"])
def test_wandb_unreachable_falls_back_to_offline_and_keeps_every_row(tmp_path, case, request):
    env = {}
    if case == "refused":
        env = {"WANDB_API_KEY": FAKE_KEY, "WANDB_BASE_URL": f"http://127.0.0.1:{_closed_port()}"}
    elif case == "never_answers":
        env = {"WANDB_API_KEY": FAKE_KEY, "WANDB_BASE_URL": request.getfixturevalue("silent_server")}
    started = time.monotonic()
    proc = _run_stepper(tmp_path, "online", 3, 0.0, env)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "DONE" in proc.stdout
    assert elapsed < 5 + 40, elapsed  # init bounded by init_timeout_s (5 s) plus start-up
    warnings = [line for line in proc.stderr.splitlines() if "Writing an offline run instead" in line]
    assert len(warnings) == 1, proc.stderr[-2000:]
    rows = _our_rows(tmp_path / "wandb")
    assert [r["train/step"] for r in rows] == [1, 2, 3]
    assert FAKE_KEY not in proc.stderr + proc.stdout


def test_kill_9_loses_at_most_the_step_in_flight(tmp_path):
    script = tmp_path / "stepper.py"
    script.write_text(STEPPER)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "OTEL_"))}
    env.update({"WANDB_SILENT": "true", "PYTHONPATH": str(ROOT)})
    proc = subprocess.Popen(
        [sys.executable, str(script), "offline", "1000", "0.3"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    done = 0
    deadline = time.monotonic() + 90
    while done < 6 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("STEP"):
            done = int(line.split()[1])
    time.sleep(1.5)  # one flush interval (1 s) after the 6th row was written
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    time.sleep(2)  # let wandb's service notice its parent is gone
    steps = [r["train/step"] for r in _our_rows(tmp_path / "wandb")]
    assert done >= 6
    assert steps[: done - 1] == list(range(1, done)), steps


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_ctrl_c_flush_completed_steps_and_finish_the_run(tmp_path, sig):
    script = tmp_path / "run_me.py"
    script.write_text(STEPPER)
    config = tmp_path / "telemetry.yaml"
    config.write_text("wandb:\n  dir: .\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "OTEL_"))}
    env.update({"WANDB_SILENT": "true", "PYTHONPATH": str(ROOT)})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otel_grpo.tools.cli",
            "run",
            "--config",
            str(config),
            "--",
            sys.executable,
            str(script),
            "offline",
            "1000",
            "0.2",
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    done = 0
    while done < 3:
        line = proc.stdout.readline()
        if line.startswith("STEP"):
            done = int(line.split()[1])
    proc.send_signal(sig)
    proc.communicate(timeout=60)
    records = read_run(tmp_path / "wandb")
    steps = [r["train/step"] for r in records.history if "train/step" in r]
    assert steps[:done] == list(range(1, done + 1))
    assert records.raw_types.get("exit", 0) == 1, records.raw_types  # the run was finished


class _Trainerish:
    def step(self, n: int) -> float:
        with otel_grpo.step(n):
            with otel_grpo.sample("gsm8k"):
                otel_grpo.record_executor_run(cost=0.5)
                otel_grpo.record_sample(1.0)
        return n * 2.0


@pytest.mark.parametrize("fault", ["wandb.log", "rollup", "summary"])
def test_exporter_faults_are_logged_once_counted_and_never_reach_the_trainer(tmp_path, monkeypatch, caplog, fault):
    import otel_grpo.exporters.wandb_exporter as wandb_exporter

    tel = otel_grpo.setup(None, wandb={"mode": "offline", "dir": str(tmp_path)})
    trainer = _Trainerish()
    assert trainer.step(1) == 2.0

    def boom(*args, **kwargs):
        raise RuntimeError("injected")

    if fault == "wandb.log":
        monkeypatch.setattr(tel.run, "log", boom)
    elif fault == "rollup":
        monkeypatch.setattr(wandb_exporter, "window_row", boom)
    else:
        monkeypatch.setattr(RunTotals, "snapshot", boom)
    caplog.set_level(logging.WARNING)
    results = [trainer.step(n) for n in (2, 3, 4)]
    assert results == [4.0, 6.0, 8.0]
    assert sum("injected" in r.getMessage() for r in caplog.records) == 1
    assert tel.exporter.health["export_errors"] == 3
    assert tel.exporter.health["rows_dropped"] == 3
    monkeypatch.undo()
    trainer.step(5)
    row = tel.rows[-1]
    assert row["exporter/rows_dropped"] == 3 and row["exporter/export_errors"] == 3
    assert row["cost/executor_calls"] == 5 and row["cost/total_cost"] == 2.5  # totals survived


def _child_scores(code: str) -> int:
    otel_grpo.record_sample(1.0)  # a child must not count, nor write anything
    with otel_grpo.step(999):
        otel_grpo.record_executor_run(cost=100.0)
    return len(code)


def test_200_forked_children_neither_hang_nor_double_count_nor_write(tmp_path):
    tel = otel_grpo.setup(None, wandb={"mode": "offline", "dir": str(tmp_path)})
    ctx = multiprocessing.get_context("fork")
    with otel_grpo.step(1):
        for i in range(200):
            with otel_grpo.sample("humaneval"):
                otel_grpo.record_executor_run(cost=0.01)
                proc = ctx.Process(target=_child_scores, args=("x" * i,))
                proc.start()
                proc.join(30)
                assert proc.exitcode == 0
                otel_grpo.record_sample(1.0)
    run_dir = Path(tel.run.dir).parent
    tel.shutdown()
    rows = _our_rows(run_dir)
    assert [r["train/step"] for r in rows] == [1]
    assert rows[0]["dataset/humaneval/count"] == 200
    assert rows[0]["cost/total_cost"] == pytest.approx(2.0)


def test_load_32_threads_x_10000_samples_and_1000_tasks_exact_and_bounded():
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    tracemalloc.start()

    def worker(i: int) -> None:
        for n in range(10_000):
            with otel_grpo.sample(("gsm8k", "math", "mmlu")[i % 3]):
                otel_grpo.record_sample(1.0 if n % 4 == 0 else 0.0)

    async def task() -> None:
        with otel_grpo.sample("hotpotqa"):
            await asyncio.sleep(0)
            otel_grpo.record_sample(1.0)

    async def many() -> None:
        await asyncio.gather(*(task() for _ in range(1000)))

    with otel_grpo.step(1):
        threads = [threading.Thread(target=worker, args=(i,)) for i in range(32)]
        for t in threads:
            t.start()
        asyncio.run(many())
        for t in threads:
            t.join()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    row = tel.rows[-1]
    assert row["dataset/gsm8k/count"] == 11 * 10_000 and row["dataset/mmlu/count"] == 10 * 10_000
    assert row["dataset/hotpotqa/count"] == 1000
    assert row["dataset/gsm8k/accuracy"] == 25.0
    assert peak < 8 * 1024 * 1024, peak  # bounded by series, not by 321,000 samples


def test_junk_sources_fold_into_other_with_one_warning(caplog):
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"}, metrics={"max_sources": 32})
    caplog.set_level(logging.WARNING)
    with otel_grpo.step(1):
        for i in range(500):
            with otel_grpo.sample(f"junk-{i}"):
                otel_grpo.record_sample(1.0)
        with otel_grpo.sample("GSM8K "):
            otel_grpo.record_sample(1.0)
    row = tel.rows[-1]
    junk_keys = {k.split("/")[1] for k in row if k.startswith("dataset/") and "junk" in k}
    assert len(junk_keys) == 32
    assert row["dataset/other/count"] == 500 - 32
    assert row["dataset/gsm8k/count"] == 1
    assert sum("recorded as 'other'" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(
    ("reward", "expected"),
    [
        (None, 0.0),
        (float("nan"), 0.0),
        (float("inf"), 0.0),
        ("abc", 0.0),
        ("0.7", 0.7),
        (np.float32(0.5), 0.5),
        (np.int64(1), 1.0),
        (-10, -10.0),
        (True, 1.0),
    ],
)
def test_bad_rewards_give_the_documented_value(reward, expected):
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    with otel_grpo.step(1):
        with otel_grpo.sample("gsm8k"):
            otel_grpo.record_sample(reward)
    row = tel.rows[-1]
    assert row["dataset/gsm8k/count"] == 1
    assert row["dataset/gsm8k/avg_reward"] == pytest.approx(expected)
    assert row["dataset/gsm8k/accuracy"] == (100.0 if expected >= 0.9 else 0.0)


@pytest.mark.parametrize(
    ("cost", "value", "invalid"),
    [
        ("0.0125", 0.0125, 0),
        (None, 0.0, 1),
        (float("nan"), 0.0, 1),
        ("n/a", 0.0, 1),
        (-1.0, 0.0, 1),
        (float("inf"), 0.0, 1),
        (np.float64(0.25), 0.25, 0),
        ([1], 0.0, 1),
    ],
)
def test_bad_costs_count_as_zero_and_are_counted(cost, value, invalid):
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    with otel_grpo.step(1):
        with otel_grpo.sample("math"):
            otel_grpo.record_executor_run(cost=cost)
            otel_grpo.record_sample(1.0)
    row = tel.rows[-1]
    assert row["cost/total_cost"] == pytest.approx(value)
    assert row["cost/invalid_cost_count"] == invalid
    assert row["cost/executor_calls"] == 1
    assert math.isfinite(row["dataset/math/avg_cost"])


def test_missing_labels_zero_sample_validation_and_empty_step():
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    with otel_grpo.step(1):
        otel_grpo.record_sample(0.2)  # no sample context, no labels
        with otel_grpo.sample(None, None):
            otel_grpo.record_sample(1.0)
        with otel_grpo.sample(12345, 7):  # wrong types
            otel_grpo.record_sample(1.0)
    row = tel.rows[-1]
    assert row["dataset/unknown/count"] == 2 and row["train/count_unknown"] == 2
    assert row["dataset/12345/count"] == 1 and row["train/count_7"] == 1
    with otel_grpo.validation():
        pass
    assert tel.rows[-1] is row  # zero validation samples: no val row, no val keys
    with otel_grpo.step(2):
        pass
    assert set(tel.rows[-1]) >= {"train/step"} and "train/accuracy" not in tel.rows[-1]


def test_a_raising_step_reaches_the_caller_unchanged_and_drops_its_samples():
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    error = KeyError("oom")
    with pytest.raises(KeyError) as caught:
        with otel_grpo.step(1):
            with otel_grpo.sample("gsm8k"):
                otel_grpo.record_sample(1.0)
            raise error
    assert caught.value is error
    with otel_grpo.step(1):
        with otel_grpo.sample("math"):
            otel_grpo.record_sample(0.0)
    assert [r["train/step"] for r in tel.rows] == [1]
    assert "dataset/gsm8k/count" not in tel.rows[0] and tel.rows[0]["dataset/math/count"] == 1


def test_bad_config_is_one_precise_error_and_exit_code_2(tmp_path):
    from otel_grpo.config import ConfigError

    bad = tmp_path / "bad.yaml"
    bad.write_text("wandb:\n  projct: x\n  mode: onlin\nmetrics:\n  accuracy_threshold: high\n")
    with pytest.raises(ConfigError) as caught:
        otel_grpo.setup(str(bad))
    message = str(caught.value)
    assert "bad.yaml" in message and "did you mean 'project'" in message and "wandb.mode" in message
    proc = subprocess.run(
        [sys.executable, "-m", "otel_grpo.tools.cli", "check-config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and "wandb.projct" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "otel_grpo.tools.cli", "run", "--config", str(bad), "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    proc = subprocess.run(
        [sys.executable, "-m", "otel_grpo.tools.cli", "check-config", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2 and str(tmp_path) in proc.stderr


def test_secrets_never_reach_config_run_files_logs_or_spans(tmp_path, monkeypatch, caplog):
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    file_key = "f" * 40
    config = tmp_path / "telemetry.yaml"
    config.write_text(
        f"wandb:\n  api_key: {file_key}\n  mode: offline\n  dir: {tmp_path}\n"
        "otlp:\n  headers:\n    authorization: ${OTLP_TOKEN}\n"
    )
    monkeypatch.setenv("WANDB_API_KEY", FAKE_KEY)
    monkeypatch.setenv("OTLP_TOKEN", "Bearer s3cr3t-token-value")
    spans = InMemorySpanExporter()
    caplog.set_level(logging.DEBUG)
    tel = otel_grpo.setup(str(config), span_processors=[SimpleSpanProcessor(spans)])
    with otel_grpo.step(1):
        with otel_grpo.sample("gsm8k"):
            otel_grpo.record_sample(1.0)
    run_dir = Path(tel.run.dir).parent
    tel.shutdown()
    warning = [r.getMessage() for r in caplog.records if "api_key" in r.getMessage()]
    assert warning and str(config) in warning[0] and "WANDB_API_KEY" in warning[0]
    secrets = (file_key, FAKE_KEY, "s3cr3t-token-value")
    records = read_run(run_dir)
    assert records.config["otel_grpo"]["otlp"]["headers"]["authorization"] == "***"
    everything = "\n".join(r.getMessage() for r in caplog.records)
    for path in run_dir.rglob("*"):
        if path.is_file():
            everything += path.read_bytes().decode("utf-8", "replace")
    for span in spans.get_finished_spans():
        everything += repr(dict(span.attributes or {})) + repr(span.events)
    for secret in secrets:
        assert secret not in everything
