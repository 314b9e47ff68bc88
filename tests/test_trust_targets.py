"""A typo in any configured target never goes silent: module typos warn like class typos.

The shape trainer (tests/shape_trainer) runs under ``otel-grpo run`` with a config whose
targets are right except one: a misspelt module (executor, reward, judge, validation),
a module that exists but is never imported, or a misspelt class. Each gets exactly one
warning naming the target and ``instrumentation.targets``; a config that matches gets
none. ``otel-grpo check-config`` lists the targets whose modules cannot be found as notes
(exit status 0), without importing the user's modules.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from otel_grpo.tools.demo.judge_server import JudgeServer

pytestmark = pytest.mark.slow  # starts real processes and a judge server

SHAPE_DIR = Path(__file__).resolve().parent / "shape_trainer"
TARGETS = {
    "train_step": "grpo_trainer:GRPOTrainer.train_step",
    "evaluate": "grpo_trainer:GRPOTrainer.evaluate_on_val_set",
    "execute": "aflow_executor:AFlowExecutor.execute_workflow",
    "compute_reward": "reward_computer:RewardComputer.compute_reward",
    "judge": "reward_computer:RewardComputer._llm_judge_compare",
}
MODULE_TYPOS = {
    "execute": "aflow_executr:AFlowExecutor.execute_workflow",
    "compute_reward": "reward_computr:RewardComputer.compute_reward",
    "judge": "reward_computr:RewardComputer._llm_judge_compare",
    "evaluate": "grpo_trainr:GRPOTrainer.evaluate_on_val_set",
}


@pytest.fixture(scope="module")
def judge_server():
    with JudgeServer() as server:
        yield server


def write_config(path: Path, targets: dict[str, str], judge_port: int = 8002) -> Path:
    lines = [
        "wandb: {mode: disabled}",
        f"judge: {{ports: [{judge_port}]}}",
        "instrumentation:",
        "  targets:",
        *(f"    {role}: {target}" for role, target in targets.items()),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def run_shape_trainer(tmp_path: Path, targets: dict[str, str], judge_server: JudgeServer) -> Any:
    config = write_config(tmp_path / "telemetry.yaml", targets, judge_server.port)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "WANDB_"))}
    env.update(PYTHONPATH=str(tmp_path))  # tmp_path: modules only the config names (wandb is off: no WANDB_SILENT)
    done = subprocess.run(
        [
            "otel-grpo",
            "run",
            "--config",
            str(config),
            "--",
            sys.executable,
            str(SHAPE_DIR / "train.py"),
            "--judge-url",
            judge_server.url,
            "--steps",
            "2",
            "--wandb-dir",
            str(tmp_path),
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def target_warnings(stderr: str) -> list[str]:
    """otel-grpo's lines that send the reader to instrumentation.targets."""
    return [line for line in stderr.splitlines() if "instrumentation.targets" in line]


def test_a_config_that_matches_gets_no_target_warning(tmp_path, judge_server):
    done = run_shape_trainer(tmp_path, TARGETS, judge_server)
    assert target_warnings(done.stderr) == []
    (recording,) = [line for line in done.stderr.splitlines() if line.startswith("otel-grpo: recording")]
    assert all(f"{target} ({role})" in recording for role, target in TARGETS.items())


@pytest.mark.parametrize("role", sorted(MODULE_TYPOS))
def test_a_module_typo_in_any_target_is_one_warning_naming_it(role, tmp_path, judge_server):
    typo = MODULE_TYPOS[role]
    done = run_shape_trainer(tmp_path, {**TARGETS, role: typo}, judge_server)
    warnings = target_warnings(done.stderr)
    assert len(warnings) == 1, done.stderr[-3000:]
    assert typo in warnings[0] and "cannot be found" in warnings[0]
    assert all(typo not in line for line in done.stderr.splitlines() if line not in warnings)


def test_a_module_never_imported_is_named_at_exit(tmp_path, judge_server):
    (tmp_path / "unused_scorer.py").write_text("class Scorer:\n    def score(self, x):\n        return x\n")
    target = "unused_scorer:Scorer.score"
    done = run_shape_trainer(tmp_path, {**TARGETS, "compute_reward": target}, judge_server)
    warnings = target_warnings(done.stderr)
    assert len(warnings) == 1 and target in warnings[0] and "never imported" in warnings[0], done.stderr[-3000:]
    assert done.stderr.rstrip().splitlines()[-1] == warnings[0]  # said at exit


def test_targets_left_at_their_defaults_are_no_typo_for_a_trainer_of_another_shape(tmp_path):
    """A trainer whose modules are not the default targets' (TRL's, a loop of its own) configures
    only its own targets: the defaults it does not have are not warned about as typos."""
    (tmp_path / "my_loop.py").write_text(
        "class Loop:\n"
        "    def train_step(self, step):\n"
        "        return {'loss': 1.0 / step, 'reward': Scorer().score('gsm8k')}\n"
        "class Scorer:\n"
        "    def score(self, source):\n"
        "        return 1.0\n"
    )
    (tmp_path / "train.py").write_text("import my_loop\nprint([my_loop.Loop().train_step(s) for s in (1, 2)])\n")
    (tmp_path / "telemetry.yaml").write_text(
        "wandb: {mode: disabled}\ninstrumentation:\n  targets:\n    train_step: my_loop:Loop.train_step\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "WANDB_"))}
    env.update(PYTHONPATH=str(tmp_path))
    done = subprocess.run(
        ["otel-grpo", "run", "--config", "telemetry.yaml", "--", sys.executable, "train.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert target_warnings(done.stderr) == [], done.stderr[-3000:]
    assert "my_loop:Loop.train_step (train_step)" in done.stderr  # and its own target is recorded


def test_a_class_typo_is_one_warning_too(tmp_path, judge_server):
    typo = "aflow_executor:AFlowExecuter.execute_workflow"
    done = run_shape_trainer(tmp_path, {**TARGETS, "execute": typo}, judge_server)
    warnings = target_warnings(done.stderr)
    assert len(warnings) == 1 and typo in warnings[0], done.stderr[-3000:]


# --- check-config -------------------------------------------------------------------------------------
def check_config(cwd: Path, config: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "WANDB_"))}
    return subprocess.run(
        ["otel-grpo", "check-config", str(config)], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


def test_check_config_notes_targets_whose_module_cannot_be_found(tmp_path):
    matching = check_config(SHAPE_DIR, write_config(tmp_path / "ok.yaml", TARGETS))
    assert matching.returncode == 0 and "note:" not in matching.stdout, matching.stdout

    typos = {**TARGETS, "execute": MODULE_TYPOS["execute"], "judge": MODULE_TYPOS["judge"]}
    done = check_config(SHAPE_DIR, write_config(tmp_path / "typo.yaml", typos))
    assert done.returncode == 0 and done.stderr == ""
    notes = [line for line in done.stdout.splitlines() if line.startswith("note:")]
    assert len(notes) == 2, done.stdout
    for role in ("execute", "judge"):
        (note,) = [n for n in notes if f"target {role}={MODULE_TYPOS[role]}" in n]
        assert "instrumentation.targets" in note and str(SHAPE_DIR) in note

    # Found where the run will find it (the current directory), and looked up without being run.
    marker = tmp_path / "executed"
    project = tmp_path / "project"
    (project / "mypkg").mkdir(parents=True)
    (project / "mypkg" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (project / "mypkg" / "trainer.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    own = {"train_step": "mypkg.trainer:T.train_step", "execute": "mypkg.executr:E.run"}
    own.update(evaluate="null", compute_reward="null", judge="null")
    done = check_config(project, write_config(tmp_path / "own.yaml", own))
    notes = [line for line in done.stdout.splitlines() if line.startswith("note:")]
    assert done.returncode == 0 and len(notes) == 1 and "mypkg.executr:E.run" in notes[0], done.stdout
    assert not marker.exists(), "check-config ran the user's module"
