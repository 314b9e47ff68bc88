"""The start-up line (issue 22): one line, once, saying what is recorded, where the WandB run
directory is (or "WandB off") and the Prometheus URL; a second setup() warns.

Real screens: ``otel-grpo run`` and ``otel-grpo demo`` subprocesses and manual-API scripts,
their stderr read as a user sees it; the directory named is the run directory on disk.
"""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import otel_grpo

ROOT = Path(__file__).resolve().parent.parent
START = "otel-grpo: recording"
METRICS_URL = re.compile(r"http://127\.0\.0\.1:\d+/metrics")
AGAIN = "setup() was called again"


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "OTEL_"))}
    env.update({"WANDB_ERROR_REPORTING": "false", "PYTHONPATH": str(ROOT), **extra})
    return env


def _run(args: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 180):
    done = subprocess.run(args, cwd=cwd, env=env or _env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _offline_runs(root: Path) -> list[Path]:
    return sorted(p for p in (root / "wandb").glob("offline-run-*") if p.is_dir())


# --- otel-grpo run ---------------------------------------------------------------------------------
TRAINER = """
class GRPOTrainer:
    async def train_step(self, step):
        return {"loss": 1.0 / step}

    async def evaluate_on_val_set(self, step):
        return {}
"""
TRAIN = """
import asyncio, grpo_trainer
trainer = grpo_trainer.GRPOTrainer()
for step in (1, 2, 3):
    asyncio.run(trainer.train_step(step))
print("trained")
"""
RUN_CONFIG = """
wandb: {mode: offline, dir: .}
prometheus: {enabled: true, port: 0}
instrumentation:
  targets: {execute: null, compute_reward: null, judge: null}
"""


def _otel_grpo_run(tmp_path: Path, config: str = RUN_CONFIG, **env: str):
    (tmp_path / "grpo_trainer.py").write_text(TRAINER)
    (tmp_path / "train.py").write_text(TRAIN)
    (tmp_path / "telemetry.yaml").write_text(config)
    command = ["otel-grpo", "run", "--config", "telemetry.yaml", "--", sys.executable, "train.py"]
    return _run(command, tmp_path, _env(PYTHONPATH=str(tmp_path), **env))


@pytest.mark.slow
def test_otel_grpo_run_says_once_what_where_and_the_url(tmp_path):
    done = _otel_grpo_run(tmp_path)
    assert done.stdout.strip() == "trained"
    (line,) = [line for line in done.stderr.splitlines() if START in line]
    (run_dir,) = _offline_runs(tmp_path)
    assert line == (
        f"{START} grpo_trainer:GRPOTrainer.evaluate_on_val_set (evaluate), "
        f"grpo_trainer:GRPOTrainer.train_step (train_step) and LLM HTTP requests; "
        f"WandB offline run in {run_dir.resolve()}; Prometheus metrics at {METRICS_URL.search(line).group(0)}"
    )
    assert len(METRICS_URL.findall(done.stderr)) == 1, done.stderr  # the URL once, not once per module
    assert "otel-grpo: instrumented" not in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("how", ["WANDB_SILENT", "announce: false"])
def test_wandb_silent_or_the_switch_hides_it(tmp_path, how):
    if how == "WANDB_SILENT":
        done = _otel_grpo_run(tmp_path, WANDB_SILENT="true")
    else:
        done = _otel_grpo_run(tmp_path, RUN_CONFIG + "announce: false\n")
    assert done.stdout.strip() == "trained"
    assert START not in done.stderr and not METRICS_URL.search(done.stderr), done.stderr
    assert len(_offline_runs(tmp_path)) == 1  # recorded all the same


# --- otel-grpo demo --------------------------------------------------------------------------------
@pytest.mark.slow
def test_otel_grpo_demo_screen_has_one_startup_line(tmp_path):
    args = ["otel-grpo", "demo", "--steps", "2", "--eval-every", "2", "--prometheus-port", "0"]
    done = _run([*args, "--wandb-dir", str(tmp_path)], tmp_path, _env(COLUMNS="300", TERM="dumb"))
    screen = done.stdout + done.stderr
    assert screen.count(START) == 1, screen
    assert len(METRICS_URL.findall(screen)) == 1, screen
    (run_dir,) = _offline_runs(tmp_path)
    flat = " ".join(screen.split())  # rich wraps the line at the screen width
    assert f"WandB offline run in {run_dir.resolve()} (the trainer's run); Prometheus metrics at" in flat
    for method in ("GRPOTrainer.train_step (train_step)", "RewardComputer._llm_judge_compare (judge)"):
        assert method in flat
    assert "otel-grpo: instrumented" not in screen


# --- the manual API ---------------------------------------------------------------------------------
MANUAL = """
import sys
import otel_grpo

config = {"wandb": {"mode": sys.argv[1], "dir": "."}, "prometheus": {"enabled": True, "port": 0}}
for _ in range(int(sys.argv[2])):  # setup() once, or more
    tel = otel_grpo.setup(None, **config)
print("URL", tel.prometheus_url, flush=True)
for step in (1, 2):
    with otel_grpo.step(step):
        with otel_grpo.sample("gsm8k"):
            otel_grpo.record_sample(1.0)
tel.shutdown()
"""


@pytest.mark.slow
@pytest.mark.parametrize("setups", [1, 2])
def test_manual_api_says_it_once_and_a_second_setup_warns(tmp_path, setups):
    (tmp_path / "manual.py").write_text(textwrap.dedent(MANUAL))
    done = _run([sys.executable, "manual.py", "offline", str(setups)], tmp_path)  # no logging set up
    lines = done.stderr.splitlines()
    (line,) = [line for line in lines if START in line]
    (run_dir,) = _offline_runs(tmp_path)
    url = done.stdout.split()[1]
    assert line == (
        f"{START} the manual API and LLM HTTP requests; WandB offline run in {run_dir.resolve()}; "
        f"Prometheus metrics at {url}"
    )
    warnings = [line for line in lines if AGAIN in line]
    assert len(warnings) == setups - 1, done.stderr
    if warnings:
        assert warnings[0].startswith("otel-grpo: setup() was called again: this setup replaces the previous one")


@pytest.mark.slow
def test_wandb_off_says_so(tmp_path):
    (tmp_path / "manual.py").write_text(textwrap.dedent(MANUAL))
    done = _run([sys.executable, "manual.py", "disabled", "1"], tmp_path)
    (line,) = [line for line in done.stderr.splitlines() if START in line]
    assert line.startswith(f"{START} the manual API and LLM HTTP requests; WandB off; Prometheus metrics at http")
    assert not (tmp_path / "wandb").exists()


INSTRUMENTED = """
import asyncio
import otel_grpo

class Trainer:
    async def train_step(self, step):
        return {"loss": 0.5}

trainer = otel_grpo.instrument_trainer(Trainer(), wandb={"mode": "disabled"})
asyncio.run(trainer.train_step(1))
asyncio.run(trainer.train_step(2))
"""


@pytest.mark.slow
def test_instrument_trainer_says_what_it_wrapped_once(tmp_path):
    (tmp_path / "train.py").write_text(textwrap.dedent(INSTRUMENTED))
    done = _run([sys.executable, "train.py"], tmp_path)
    lines = [line for line in done.stderr.splitlines() if line.startswith("otel-grpo:")]
    assert lines == [f"{START} Trainer.train_step (train_step) and LLM HTTP requests; WandB off"], done.stderr


# --- in process: through logging -----------------------------------------------------------------
def test_a_program_logging_otel_grpo_info_gets_it_as_a_record(caplog, monkeypatch):
    from otel_grpo.instrumentation import report

    monkeypatch.setattr(report._Report, "wrapped", {})  # methods other tests of this process wrapped
    monkeypatch.delenv("WANDB_SILENT")
    caplog.set_level(logging.INFO, logger="otel_grpo")
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    again = otel_grpo.setup(None, wandb={"mode": "disabled"})
    assert tel is not again
    for step in (1, 2):
        with otel_grpo.step(step):
            otel_grpo.record_sample(1.0, source="gsm8k")
    starts = [r for r in caplog.records if r.getMessage().startswith(START)]
    assert [(r.name, r.levelname, r.getMessage()) for r in starts] == [
        ("otel_grpo.instrumentation.report", "INFO", f"{START} the manual API and LLM HTTP requests; WandB off")
    ]
    assert [r.levelname for r in caplog.records if AGAIN in r.getMessage()] == ["WARNING"]


def test_wandb_silent_turns_announce_off_in_the_config(monkeypatch):
    from otel_grpo.config import load_config

    assert load_config(env={}).announce is True
    assert load_config(env={"WANDB_SILENT": "true"}).announce is False
    assert load_config(env={"WANDB_SILENT": "false"}).announce is True
    assert load_config(env={"WANDB_SILENT": "true"}, announce=True).announce is True  # code wins, as for every key
