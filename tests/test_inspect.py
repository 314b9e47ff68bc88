"""``otel-grpo inspect`` on a real offline WandB run that a trainer shares with otel-grpo.

The trainer calls ``wandb.init`` itself and logs its own rows (one per sample, and a
step-level row WandB drops, as the real trainer does); otel-grpo attaches to that run
and writes its rows and its ``dataset_statistics`` table. The run is read back from disk.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import otel_grpo
from otel_grpo.exporters.tables import attach_tables
from otel_grpo.tools.cli import main as cli_main
from otel_grpo.tools.runreader import read_run, unit_of
from tests.isolation import offline_run_env

pytestmark = pytest.mark.slow  # starts real processes, servers or WandB runs

ROOT = Path(__file__).resolve().parent.parent
STEPS = (1, 2, 3)
SOURCES = (("gsm8k", "math"), ("math", "math"), ("hotpotqa", "qa"))
JUDGE_LATENCY_S = 3.1  # every judge evaluation takes exactly this long


@pytest.fixture(scope="module")
def shared_run(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A trainer's offline run with otel-grpo's rows in it, read back from disk."""
    tmp = tmp_path_factory.mktemp("inspect-run")
    with offline_run_env(tmp):
        import wandb

        trainer_run = wandb.init(mode="offline", dir=str(tmp), project="trainer")
        tel = otel_grpo.setup(
            None, wandb={"mode": "offline", "dir": str(tmp), "dashboard": {"table_every": 2}}
        )  # dataset_statistics at step 2
        attach_tables(tel)
        trainer_rows = 0
        for step in STEPS:
            with otel_grpo.step(step):
                for i, (source, problem_type) in enumerate(SOURCES):
                    with otel_grpo.sample(source, problem_type):
                        otel_grpo.record_executor_run(cost=0.01, duration_s=0.5, success=True)
                        otel_grpo.record_judge_request(input_tokens=100, output_tokens=10, source=source)
                        otel_grpo.record_judge_evaluation("success", i % 2 == 0, JUDGE_LATENCY_S)
                        otel_grpo.record_sample(1.0 if i % 2 == 0 else 0.0)
                    for _ in range(4):  # the trainer's own per-sample rows, without a step
                        wandb.log({"sample/reward": 1.0, "sample/source": source})
                        trainer_rows += 1
                otel_grpo.record_scalars(loss=1.0 / step, kl_div=0.01 * step)
            wandb.log({"step": step, "loss": 1.0 / step, "accuracy": 0.5}, step=step)  # dropped by WandB
        with otel_grpo.validation():
            with otel_grpo.sample("gsm8k", "math"):
                otel_grpo.record_executor_run(cost=0.02, duration_s=0.5, success=True)
                otel_grpo.record_sample(1.0)
        assert tel.run is trainer_run, "otel-grpo attaches to the trainer's run"
        run_dir = Path(tel.run.dir).parent
        written = tel.exporter.health_counts()["rows_written"]
        tel.shutdown()
        wandb.finish()
    records = read_run(run_dir)
    return SimpleNamespace(run_dir=run_dir, records=records, written=written, trainer_rows=trainer_rows)


def _inspect(capsys: pytest.CaptureFixture, run_dir: Path, *extra: str) -> str:
    assert cli_main(["inspect", str(run_dir), *extra]) == 0
    return capsys.readouterr().out


def _value_lines(out: str) -> dict[str, str]:
    """{key: the rest of its line} of inspect's value lines."""
    return {m.group(1): m.group(2) for m in re.finditer(r"^  (\S+)\s+(.*)$", out, re.M)}


def test_header_counts_only_otel_grpo_rows(shared_run: SimpleNamespace, capsys: pytest.CaptureFixture) -> None:
    history = shared_run.records.history
    assert len(history) >= shared_run.written + shared_run.trainer_rows  # the trainer's rows are in the run
    out = _inspect(capsys, shared_run.run_dir)
    header = out.splitlines()[1]
    assert header.startswith(f"otel-grpo rows: {shared_run.written} ("), header
    assert f"{len(STEPS)} train steps, 1 validation pass" in header
    assert f"last train/step {max(STEPS)}" in header
    assert f"{len(history) - shared_run.written} other rows" in header and "not written by otel-grpo" in header
    assert f"{len(history)} rows" not in out


def test_values_carry_their_units(shared_run: SimpleNamespace, capsys: pytest.CaptureFixture) -> None:
    lines = _value_lines(_inspect(capsys, shared_run.run_dir))
    expected = {
        "train/accuracy": "%",
        "dataset/gsm8k/accuracy": "%",
        "val/accuracy": "%",
        "val/success_rate": "%",
        "judge/success_rate": "fraction (0-1)",
        "judge/gsm8k_success_rate": "fraction (0-1)",
        "judge/correct_ratio": "fraction (0-1)",
        "cost/total_cost": "USD",
        "dataset/gsm8k/avg_cost": "USD",
        "val/avg_cost": "USD",
        "judge/total_calls": "count",
        "cost/executor_calls": "count",
        "dataset/gsm8k/count": "count",
        "exporter/rows_written": "count",
        "train/step": "step",
    }
    for key, unit in expected.items():
        assert key in lines, f"{key} not shown"
        assert lines[key].endswith(unit), (key, lines[key])
    # percentages are 0-100, fractions 0-1
    assert lines["train/accuracy"].split()[0] == "66.7"  # 2 of 3 samples correct per step
    assert lines["judge/success_rate"].split()[0] == "1.000"
    assert lines["train/loss"].split() == ["0.3333"]  # unitless figures get no unit
    assert "sample/reward" in lines  # the trainer's keys, in their own section


def test_no_artifact_hashes(shared_run: SimpleNamespace, capsys: pytest.CaptureFixture) -> None:
    assert any(k.endswith(".sha256") for row in shared_run.records.history for k in row), "a table was logged"
    out = _inspect(capsys, shared_run.run_dir)
    for noise in ("sha256", "artifact_path", "wandb-client-artifact", "_latest_artifact_path", "log_mode"):
        assert noise not in out
    assert not re.search(r"[0-9a-f]{20,}", out), "a hash is printed"
    table = _value_lines(out)["dataset_statistics"]
    assert table.startswith(f"table, {len(SOURCES)} rows x 5 columns, at train/step ")


def test_latency_lines_say_bucket_estimate(shared_run: SimpleNamespace, capsys: pytest.CaptureFixture) -> None:
    out = _inspect(capsys, shared_run.run_dir)
    lines = _value_lines(out)
    for key in ("judge/latency_p50_s", "judge/latency_p95_s", "executor/latency_p50_s"):
        assert lines[key].endswith("s, bucket estimate"), lines[key]
    # why it matters: every call took exactly 3.1 s, the estimate from buckets says otherwise
    assert float(lines["judge/latency_p50_s"].split()[0]) != pytest.approx(JUDGE_LATENCY_S)
    assert "histogram_quantile" in out.splitlines()[-1]


def test_json_has_units_and_only_otel_grpo_rows(shared_run: SimpleNamespace, capsys: pytest.CaptureFixture) -> None:
    data = json.loads(_inspect(capsys, shared_run.run_dir, "--json"))
    assert data["rows"] == shared_run.written
    assert data["units"]["judge/latency_p95_s"] == "s, bucket estimate"
    assert data["units"]["train/accuracy"] == "%"
    assert "dataset_statistics" in data["tables"]
    assert not any("." in key for panel in data["panels"].values() for key in panel)


def test_unit_of_key_families() -> None:
    assert unit_of("train/accuracy_math") == "%"
    assert unit_of("val/gsm8k/accuracy") == "%"
    assert unit_of("grpo/gsm8k/zero_advantage_rate") == "fraction (0-1)"
    assert unit_of("judge/step_api_failure_rate") == "fraction (0-1)"
    assert unit_of("cost/judge_cost") == unit_of("cost/avg_cost_per_sample") == "USD"
    assert unit_of("cost/invalid_cost_count") == unit_of("judge/input_tokens") == "count"
    assert unit_of("train/count_math") == unit_of("executor/llm_requests") == "count"
    assert unit_of("train/loss") == unit_of("train/avg_reward") == unit_of("sample/reward") == ""


def _command() -> list[str]:
    exe = shutil.which("otel-grpo")
    return [exe] if exe else [sys.executable, "-m", "otel_grpo.tools.cli"]


def test_piping_into_head_is_not_an_error(shared_run: SimpleNamespace) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "OTEL_"))}
    command = " ".join(f"'{part}'" for part in [*_command(), "inspect", str(shared_run.run_dir)])
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", f"{command} | head -3"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert "Traceback" not in proc.stderr and "BrokenPipeError" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.splitlines()) == 3 and proc.stdout.startswith("run: ")

    # a reader that is gone before anything is printed: the write fails at once
    child = subprocess.Popen(
        [*_command(), "inspect", str(shared_run.run_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert child.stdout is not None and child.stderr is not None
    child.stdout.close()
    err = child.stderr.read().decode()
    assert child.wait(timeout=120) == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


def test_a_run_without_otel_grpo_rows(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    import wandb

    run = wandb.init(mode="offline", dir=str(tmp_path), project="trainer-only")
    for i in range(3):
        wandb.log({"loss": 1.0 / (i + 1)})
    run_dir = Path(run.dir).parent
    wandb.finish()
    out = _inspect(capsys, run_dir)
    assert "otel-grpo rows: 0 (" in out and "the run's 3 other rows" in out
    assert "otel-grpo wrote no rows to this run" in out
    assert _value_lines(out)["loss"] == "0.3333"


# --- a key the last row leaves out: its value says the step it comes from ------------------------------------
@pytest.fixture(scope="module")
def stale_run(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """An offline run whose hotpotqa samples are all judge-failed at steps 2 and 3, and mbpp runs at step 1 only.

    So ``dataset/hotpotqa/accuracy_excl_judge_failed`` and every ``dataset/mbpp/`` key are
    in the row of step 1 and left out of the rows of steps 2 and 3 (nothing to measure).
    """
    tmp = tmp_path_factory.mktemp("inspect-stale")
    with offline_run_env(tmp):
        tel = otel_grpo.setup(None, wandb={"mode": "offline", "dir": str(tmp)})
        for step in STEPS:
            with otel_grpo.step(step):
                for source, problem_type in [("gsm8k", "math"), ("hotpotqa", "qa")] + [("mbpp", "code")] * (step == 1):
                    with otel_grpo.sample(source, problem_type):
                        otel_grpo.record_executor_run(cost=0.01, duration_s=0.5, success=True)
                        if source == "hotpotqa" and step == 1:  # the judge answers: correct
                            otel_grpo.record_judge_evaluation("success", True, 0.2)
                        elif source == "hotpotqa":  # the judge is down: the trainer's fallback reward 0
                            otel_grpo.record_judge_evaluation("api_failure", None, 0.2, error_type="connection")
                        otel_grpo.record_sample(0.0 if source == "hotpotqa" and step > 1 else 1.0)
                otel_grpo.record_scalars(loss=1.0 / step)
        run_dir = Path(tel.run.dir).parent
        tel.shutdown()
    return SimpleNamespace(run_dir=run_dir, records=read_run(run_dir))


def _sections(out: str) -> dict[str, dict[str, str]]:
    """``{header: {key: the rest of its line}}`` of inspect's ``== ... ==`` sections."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("== "):
            current = sections.setdefault(line.strip("= "), {})
        elif m := re.match(r"^  (\S+)\s+(.*)$", line):
            current[m.group(1)] = m.group(2)
    return sections


def test_a_value_from_an_older_row_says_its_step(stale_run: SimpleNamespace, capsys: pytest.CaptureFixture) -> None:
    rows = {row["train/step"]: row for row in stale_run.records.otel_grpo_rows()}
    stale = "dataset/hotpotqa/accuracy_excl_judge_failed"
    assert stale in rows[1] and stale not in rows[2] and stale not in rows[3]  # omitted, not 0
    assert "dataset/mbpp/accuracy" in rows[1] and "dataset/mbpp/accuracy" not in rows[3]
    out = _inspect(capsys, stale_run.run_dir)
    assert "last train/step 3" in out.splitlines()[1]
    lines = _value_lines(out)
    assert lines[stale] == "100.0  %  (step 1)"  # step 1's figure, said so: not "0.0 %" read as step 3's
    assert lines["dataset/mbpp/accuracy"] == "100.0  %  (step 1)"
    assert lines["dataset/mbpp/count"] == "1  count  (step 1)"
    # values of the last row carry no step
    assert lines["dataset/hotpotqa/accuracy"] == "0.0  %"
    assert lines["dataset/hotpotqa/judge_failed_share"] == "1.000  fraction (0-1)"
    assert lines["judge/success_rate"] == "0.333  fraction (0-1)"
    data = json.loads(_inspect(capsys, stale_run.run_dir, "--json"))
    assert data["from_step"][stale] == 1 and data["from_step"]["dataset/hotpotqa/accuracy"] == 3


def test_groups_say_step_or_run_total(stale_run: SimpleNamespace, capsys: pytest.CaptureFixture) -> None:
    sections = _sections(_inspect(capsys, stale_run.run_dir))
    assert "train/accuracy" in sections["Training overview: step 3"]
    assert "dataset/gsm8k/accuracy" in sections["Datasets: step 3"]
    assert "dataset/hotpotqa/accuracy_excl_judge_failed" in sections["Reward integrity: step 3"]
    # the judge's rates since the start are run totals, its step_ rates the step's
    assert {"judge/success_rate", "judge/hotpotqa_success_rate", "judge/total_calls"} <= set(
        sections["Judge: run total up to step 3"]
    )
    assert set(sections["Judge: step 3"]) == {
        "judge/step_success_rate",
        "judge/step_parse_failure_rate",
        "judge/step_api_failure_rate",
    }
    assert "cost/total_cost" in sections["Cost: run total up to step 3"]
    assert "exporter/rows_written" in sections["Exporter health: run total up to step 3"]
    assert not any(header in ("Judge", "Cost", "Datasets") for header in sections)  # every group says its coverage
