"""``otel-grpo demo`` end to end: the WandB run on disk carries the key contract (docs/keys.md).

One in-process run with a faulty judge (30% of judge requests faulted) is read back from
its offline run directory and checked against ledgers the demo keeps independently of
otel-grpo (the executor's reported costs, the reward computer's judge outcomes, the judge
server's own counters) and against the fault rates derived from the client's retry
logic. A second test runs the judge server and the demo (default options) as two
processes talking real HTTP, and checks the default run stays within its time budget.
"""

from __future__ import annotations

import math
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from otel_grpo.tools.demo import cli as demo_cli
from otel_grpo.tools.demo.datasets import DATASETS
from otel_grpo.tools.demo.trainer import parse_cost
from otel_grpo.tools.runreader import read_run
from tests.isolation import offline_run_env

pytestmark = pytest.mark.slow  # starts real processes, servers or WandB runs

PTYPES = ("math", "code", "qa")
FAULT_RATE = 0.3
STEPS = 5
EVAL_EVERY = 2
SEED = 3


def _latest(history: list[dict]) -> dict:
    latest: dict = {}
    for row in history:
        latest.update({k: v for k, v in row.items() if v is not None})
    return latest


def _within(observed: float, p: float, n: int, sigmas: float = 4.0) -> bool:
    """Binomial tolerance for a rate observed over ``n`` trials."""
    return abs(observed - p) <= sigmas * math.sqrt(max(p * (1 - p), 1e-12) / n) + 1.0 / n


def expected_judge_rates(fault_rate: float, client_retries: int, attempts: int = 2) -> dict[str, float]:
    """Outcome probabilities of one judge evaluation given the injected fault rate.

    The server answers each request, independently, with HTTP 500 (a), an unparsable
    reply (a) or null content (a), a = fault_rate / 3, else a verdict. The OpenAI client
    retries a 500 ``client_retries`` times, so one ``create`` raises with probability
    a**(r+1) and otherwise returns the first non-500 reply: outcome X with probability
    p_X * (1 + a + ... + a**r). The reward computer makes up to ``attempts`` attempts,
    retrying after null content or an exception (q per attempt): the evaluation is an
    api_failure when every attempt fails (q**attempts), a parse_failure when the first
    readable reply has no verdict, a success otherwise.
    """
    a = fault_rate / 3.0
    reach = sum(a**i for i in range(client_retries + 1))
    p_raise = a ** (client_retries + 1)
    p_ok, p_unparsable, p_null = (1 - fault_rate) * reach, a * reach, a * reach
    q = p_null + p_raise
    before_last = sum(q**i for i in range(attempts))
    return {"api_failure": q**attempts, "parse_failure": p_unparsable * before_last, "success": p_ok * before_last}


@pytest.fixture(scope="module")
def faulty_run(tmp_path_factory: pytest.TempPathFactory):
    """One in-process demo run against a judge server faulting 30% of requests."""
    workdir = tmp_path_factory.mktemp("demo_faulty")
    with offline_run_env(workdir):
        args = demo_cli.parse_args(
            [
                "--steps",
                str(STEPS),
                "--eval-every",
                str(EVAL_EVERY),
                "--judge-fault-rate",
                str(FAULT_RATE),
                "--seed",
                str(SEED),
                "--wandb-dir",
                str(workdir),
                "--judge-outage",
                "none",  # the fault rates alone (the default outage window would reach step 5)
            ]
        )
        result = demo_cli.run_demo(args, inconclusive_rate=0.45)  # more judge evaluations
    assert result.run_dir is not None and result.run_dir.is_dir()
    records = read_run(result.run_dir)
    return result, records


def test_every_spec_key_group_is_written(faulty_run):
    result, records = faulty_run
    keys = records.keys()
    expected = {
        "train/step",
        "train/loss",
        "train/kl_div",
        "train/temperature",
        "train/avg_reward",
        "train/max_reward",
        "train/min_reward",
        "train/accuracy",
        "judge/total_calls",
        "judge/success_rate",
        "judge/parse_failure_rate",
        "judge/api_failure_rate",
        "judge/correct_predictions",
        "judge/incorrect_predictions",
        "judge/correct_ratio",
        "val/accuracy",
        "val/avg_correctness",
        "val/success_rate",
        "val/avg_cost",
        "cost/total_cost",
        "cost/avg_cost_per_sample",
        "cost/executor_calls",
        "cost/judge_calls",
    }
    for ptype in PTYPES:
        expected |= {f"train/accuracy_{ptype}", f"train/avg_score_{ptype}", f"train/count_{ptype}"}
    for source in DATASETS:
        expected |= {f"dataset/{source}/{m}" for m in ("accuracy", "count", "avg_reward")}
        expected |= {f"val/{source}/{m}" for m in ("accuracy", "count", "avg_cost")}
    judged = {source for source, _ in result.trainer.reward_computer.judge_outcomes}
    assert set(DATASETS) - {"humaneval", "mbpp"} <= judged  # rules are inconclusive for every QA/math set
    expected |= {f"judge/{source}_success_rate" for source in judged}
    missing = sorted(expected - keys)
    assert not missing, f"keys missing from the run on disk: {missing}"

    # One train row per step (step 2 hit a CUDA OOM once and was retried), every row with train/step.
    train_rows = records.rows_with("train/loss")
    assert [row["train/step"] for row in train_rows] == list(range(1, STEPS + 1))
    assert all("train/step" in row for row in records.history if any(k.startswith("judge/") for k in row))
    assert result.trainer.step_attempts[2] == 2
    val_steps = [row["train/step"] for row in records.rows_with("val/accuracy")]
    assert val_steps == list(range(EVAL_EVERY, STEPS + 1, EVAL_EVERY))
    # Units: percentages under train/ and val/, fractions under judge/.
    for row in train_rows:
        assert 0.0 <= row["train/accuracy"] <= 100.0
        assert row["train/count_math"] + row["train/count_code"] + row["train/count_qa"] == 14 * 4
    latest = _latest(records.history)
    assert 0.0 <= latest["judge/success_rate"] <= 1.0
    total = latest["judge/success_rate"] + latest["judge/parse_failure_rate"] + latest["judge/api_failure_rate"]
    assert total == pytest.approx(1.0)


def test_judge_rates_match_the_injected_faults(faulty_run):
    result, records = faulty_run
    latest = _latest(records.history)
    rc = result.trainer.reward_computer
    ledger = Counter()
    for (_source, outcome), n in rc.judge_outcomes.items():
        ledger[outcome.split("_")[0] if outcome.startswith("success") else outcome] += n
    evaluations = sum(ledger.values())

    # Exactly what the reward computer saw, one outcome per evaluation.
    assert latest["judge/total_calls"] == evaluations
    for outcome in ("success", "parse_failure", "api_failure"):
        assert latest[f"judge/{outcome}_rate"] == pytest.approx(ledger[outcome] / evaluations), outcome
    verdicts = Counter(outcome for (_s, outcome), n in rc.judge_outcomes.items() for _ in range(n))
    assert latest["judge/correct_predictions"] == verdicts["success_true"]
    assert latest["judge/incorrect_predictions"] == verdicts["success_false"]
    # Every HTTP request the server answered is a judge request (client retries included).
    stats = result.judge_stats
    assert latest["cost/judge_calls"] == stats["total"]

    # The server injected what it was asked to, per request ...
    for outcome in ("http_500", "unparsable", "null_content"):
        assert _within(stats[outcome] / stats["total"], FAULT_RATE / 3, stats["total"]), (outcome, stats)
    # ... and the evaluation outcomes follow from the retry logic.
    expected = expected_judge_rates(FAULT_RATE, client_retries=rc.client.max_retries)
    assert evaluations >= 100
    for outcome, p in expected.items():
        observed = latest[f"judge/{outcome}_rate"]
        assert _within(observed, p, evaluations), (outcome, observed, p, evaluations)


def test_total_cost_is_the_sum_of_reported_costs(faulty_run):
    result, records = faulty_run
    latest = _latest(records.history)
    executor = result.trainer.executor
    reported = executor.reported_costs
    assert any(isinstance(c, str) for c in reported), "the demo executor should report some costs as strings"
    assert latest["cost/total_cost"] == pytest.approx(math.fsum(parse_cost(c) for c in reported), rel=1e-9)
    assert latest["cost/total_cost"] == pytest.approx(executor.total_reported_cost, rel=1e-9)
    # Runs that raised are executor runs too (with no cost).
    assert latest["cost/executor_calls"] == executor.calls == len(reported) + executor.exceptions
    assert latest["cost/avg_cost_per_sample"] == pytest.approx(latest["cost/total_cost"] / executor.calls)


def test_bad_arguments_exit_with_2(capsys):
    assert demo_cli.main(["--steps", "0"]) == 2
    assert demo_cli.main(["--judge-fault-rate", "1.5"]) == 2
    assert demo_cli.main(["--judge-url", "localhost:8002"]) == 2
    assert demo_cli.main(["--no-such-option"]) == 2
    assert "--steps must be at least 1" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(*args: str) -> list[str]:
    script = shutil.which("otel-grpo")
    return [script, *args] if script else [sys.executable, "-m", "otel_grpo.tools.cli", *args]


def _wait_healthy(url: str, proc: subprocess.Popen, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"judge server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"judge server not healthy at {url}")


def test_demo_against_a_judge_server_process(tmp_path: Path):
    """Two processes, real HTTP; default demo options otherwise, within the 2-minute budget."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "OTEL_"))}
    env["WANDB_SILENT"] = "true"
    server = subprocess.Popen(
        _command("judge-server", "--port", str(port), "--unparsable-rate", "0.1", "--log-level", "WARNING"),
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_healthy(f"http://127.0.0.1:{port}/health", server)
        started = time.monotonic()
        demo = subprocess.run(
            _command("demo", "--judge-url", f"http://127.0.0.1:{port}/v1"),
            cwd=tmp_path,
            env={**env, "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=150,
        )
        elapsed = time.monotonic() - started
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert elapsed < 120, f"default demo took {elapsed:.1f}s"
    run_dirs = sorted((tmp_path / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 1
    assert f"otel-grpo inspect {run_dirs[0]}" in demo.stdout
    assert f"wandb sync {run_dirs[0]}" in demo.stdout
    records = read_run(run_dirs[0])
    latest = _latest(records.history)
    assert [r["train/step"] for r in records.rows_with("train/loss")] == list(range(1, 13))
    assert latest["judge/total_calls"] > 0
    assert latest["cost/judge_calls"] >= latest["judge/total_calls"]
    assert 0.0 < latest["judge/parse_failure_rate"] < 0.35  # the server's 10% unparsable replies
    for source in DATASETS:
        assert f"dataset/{source}/accuracy" in latest and f"val/{source}/accuracy" in latest


def test_an_unreachable_judge_url_fails_fast_with_one_line(tmp_path: Path):
    """Nothing listening at --judge-url: exit 2 within seconds, one line naming the URL (no password)."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "OTEL_"))}
    # What starting the command costs on this machine now (imports, under whatever load): not the probe's.
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", "import otel_grpo.tools.cli, otel_grpo.tools.demo.cli"], check=True)
    startup = time.monotonic() - started
    started = time.monotonic()
    demo = subprocess.run(
        _command("demo", "--judge-url", f"http://user:s3cret@127.0.0.1:{port}/v1"),
        cwd=tmp_path,
        env={**env, "WANDB_SILENT": "true", "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    elapsed = time.monotonic() - started
    assert demo.returncode == 2, demo.stdout + demo.stderr
    assert elapsed < startup + 8, f"took {elapsed:.1f}s (starting the command alone: {startup:.1f}s)"
    lines = demo.stderr.strip().splitlines()
    assert len(lines) == 1, demo.stderr
    assert f"cannot reach the judge at http://user:REDACTED@127.0.0.1:{port}/v1" in lines[0]
    assert "connection refused" in lines[0] and "s3cret" not in demo.stderr
    assert not (tmp_path / "wandb").exists()  # nothing was started


def _recording_console():
    import io

    from rich.console import Console

    return Console(file=io.StringIO(), width=120, record=True, color_system=None)


def test_the_screen_says_which_faults_are_simulated_and_logs_above_the_bar(tmp_path: Path):
    import logging

    root_handlers = list(logging.getLogger().handlers)
    console = _recording_console()
    args = demo_cli.parse_args(["--steps", "2", "--eval-every", "0", "--seed", "7", "--wandb-mode", "disabled"])
    result = demo_cli.run_demo(args, console=console, invalid_cost_rate=0.05)
    screen = console.export_text()
    assert "n/a" in result.trainer.executor.reported_costs  # the fault was injected ...
    assert screen.count("simulated: executor returned cost 'n/a' (demo fault injection)") == 1  # ... and said once
    assert "simulated CUDA out of memory (demo fault injection, --oom-step 2)" in screen
    # Log lines are printed by the progress display's console, each on lines of its own.
    for line in screen.splitlines():
        if "WARNING" in line:
            assert line.startswith("WARNING"), line
    assert "GRPO" in screen and "judge ok" in screen
    assert logging.getLogger().handlers == root_handlers  # the demo's log handler is gone afterwards


def test_a_failing_judge_shows_down_in_the_progress_line_and_warns_once(tmp_path: Path, caplog):
    import logging

    from otel_grpo.tools.demo.judge_server import FaultConfig, JudgeServer

    caplog.set_level(logging.WARNING, logger="otel_grpo.instrumentation.judge_health")
    console = _recording_console()
    with JudgeServer(faults=FaultConfig(error_rate=1.0, error_status=400)) as server:  # reachable, always failing
        port = server.port
        args = demo_cli.parse_args(
            ["--steps", "1", "--eval-every", "0", "--wandb-mode", "disabled", "--judge-url", server.url]
        )
        result = demo_cli.run_demo(args, console=console, inconclusive_rate=0.45)
    outcomes = Counter()
    for (_source, outcome), n in result.trainer.reward_computer.judge_outcomes.items():
        outcomes[outcome] += n
    assert outcomes["api_failure"] >= 5 and set(outcomes) == {"api_failure"}
    screen = console.export_text()
    assert "judge DOWN (http_status)" in screen
    warnings = [r.getMessage() for r in caplog.records if r.name == "otel_grpo.instrumentation.judge_health"]
    assert len(warnings) == 1 and "error.type=http_status" in warnings[0] and f"127.0.0.1:{port}" in warnings[0]


# --- the judge outage window ------------------------------------------------------------------------
OUTAGE_STEPS = (2, 3)


@pytest.fixture(scope="module")
def outage_run(tmp_path_factory: pytest.TempPathFactory):
    """A short demo whose judge fails every request during steps 2-3, and never otherwise."""
    workdir = tmp_path_factory.mktemp("demo_outage")
    with offline_run_env(workdir):
        args = demo_cli.parse_args(
            ["--steps", "4", "--eval-every", "0", "--oom-step", "0", "--judge-fault-rate", "0"]
            + ["--judge-outage", "2-3", "--seed", "1", "--wandb-dir", str(workdir)]
        )
        result = demo_cli.run_demo(args, console=_recording_console(), inconclusive_rate=0.45)
    records = read_run(result.run_dir)
    train = {r["train/step"]: r for r in records.history if "train/loss" in r}
    return result, train


def _judge_failed(row: dict, source: str) -> int:
    """Judge-failed samples of a source in a row: its share of the scored samples."""
    count = row[f"dataset/{source}/count"]
    scored = round(count * row[f"dataset/{source}/exec_success_rate"] / 100)
    return round(row.get(f"dataset/{source}/judge_failed_share", 0.0) * scored)


def test_parse_outage_window():
    assert demo_cli.parse_outage("6-7") == (6, 7) and demo_cli.parse_outage(" 3 ") == (3, 3)
    assert demo_cli.parse_outage("none") is None and demo_cli.parse_outage("0") is None
    assert demo_cli.parse_args([]).outage == (5, 7)  # on by default, inside the default 12 steps
    for bad in ("7-6", "0-2", "x", "2-"):
        with pytest.raises(demo_cli.DemoError, match="--judge-outage"):
            demo_cli.parse_outage(bad)


def test_judge_failed_share_rises_only_in_the_outage_steps(outage_run):
    result, train = outage_run
    assert sorted(train) == [1, 2, 3, 4] and result.outage == OUTAGE_STEPS
    for step, row in train.items():
        sources = [s for s in DATASETS if f"dataset/{s}/count" in row]
        if step in OUTAGE_STEPS:  # every judged sample's evaluations failed
            assert row["train/judge_failed_share"] > 0
            assert row["train/judge_failed_share"] == pytest.approx(row["train/judge_share"])
            for s in sources:
                assert row[f"dataset/{s}/judge_failed_share"] == pytest.approx(row[f"dataset/{s}/judge_share"])
        else:  # no fault outside the window: no judge-failed sample
            assert row["train/judge_failed_share"] == 0.0 and row["train/judge_share"] > 0
            assert all(row[f"dataset/{s}/judge_failed_share"] == 0.0 for s in sources)
    # the judge-failed samples of the rows are exactly the reward computer's failed evaluations
    failed_in_rows = sum(_judge_failed(train[step], s) for step in OUTAGE_STEPS for s in DATASETS)
    ledger = result.trainer.reward_computer.judge_outcomes
    assert failed_in_rows == sum(n for (_, outcome), n in ledger.items() if outcome == "api_failure") > 0
    assert set(o for (_, o), n in ledger.items() if n) <= {"api_failure", "success_true", "success_false"}
    stats = result.judge_stats
    assert stats["outage"] > 0 and stats["outage"] == stats["http_500"] + stats["http_503"] + stats["null_content"]


def test_accuracy_excluding_judge_failed_leaves_out_only_the_fallback_zeros(outage_run):
    from otel_grpo.tools.runreader import accuracy_excl_judge_failed

    _, train = outage_run
    for step, row in train.items():
        for s in (s for s in DATASETS if f"dataset/{s}/count" in row):
            count, failed = row[f"dataset/{s}/count"], _judge_failed(row, s)
            accuracy, excl = row[f"dataset/{s}/accuracy"], row.get(f"dataset/{s}/accuracy_excl_judge_failed")
            if count == failed:
                assert excl is None  # no sample left: the key is omitted
                continue
            # the judge-failed samples got the fallback reward 0: the same correct samples, fewer samples
            assert accuracy * count == pytest.approx(excl * (count - failed)), (step, s)
            assert excl >= accuracy if failed else excl == pytest.approx(accuracy)
        derived = accuracy_excl_judge_failed(row)
        assert derived == pytest.approx(row["train/accuracy_excl_judge_failed"])
        if step in OUTAGE_STEPS:
            assert derived > row["train/accuracy"]  # plain accuracy drops, the judge-failed zeros pull it down
        else:
            assert derived == pytest.approx(row["train/accuracy"])


def test_the_summary_tells_the_outage_effect(outage_run):
    result, train = outage_run
    effect = demo_cli.outage_effect(result.rows, OUTAGE_STEPS)
    assert effect["inside_steps"] == [2, 3] and effect["around_steps"] == [1, 4]
    inside, around = effect["inside"], effect["around"]
    assert inside["judge_failed_share"] == pytest.approx(
        (train[2]["train/judge_failed_share"] + train[3]["train/judge_failed_share"]) / 2
    )
    assert inside["judge_failed_share"] > 0 and around["judge_failed_share"] == 0.0
    assert inside["accuracy_excl_judge_failed"] > inside["accuracy"]
    console = _recording_console()
    demo_cli.print_summary(result, console)
    screen = console.export_text()
    assert f"Judge outage (simulated, steps 2-3; {result.judge_stats['outage']} judge requests failed)." in screen
    assert "Mean per step in the outage vs the steps around it (1, 4):" in screen
    assert inside["judge_ok"] == 0.0 and around["judge_ok"] == pytest.approx(1.0)  # judge/step_success_rate
    assert "  judge evaluations ok           0.0% (around: 100.0%)" in screen
    share = f"{inside['judge_failed_share']:.1%}"
    assert f"  judge-failed share           {share:>6} of scored samples (around: 0.0%)" in screen
    assert "accuracy excl. judge-failed" in screen
