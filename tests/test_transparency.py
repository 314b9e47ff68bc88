"""otel-grpo never changes what the trainer does: pickling, copying, bad input, busy ports, typos."""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import pickle
import socket
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pytest

import otel_grpo
from otel_grpo.instrumentation import report

# A trainer of the user's shape whose parts pickle (no HTTP clients), as a module of its own so
# that spawn children and `otel-grpo run` children can import it.
PARTS = """
import asyncio


class RewardComputer:
    def __init__(self, bonus=0.0):
        self.bonus = bonus
        self.eval_stats = {"total_evaluations": 0}

    def compute_reward(self, problem, prediction, ground_truth, problem_type="math", metadata=None,
                       test=None, entry_point=None, source=None):
        self.eval_stats["total_evaluations"] += 1
        return (1.0 if prediction == ground_truth else 0.0) + self.bonus


class AFlowExecutor:
    async def execute_workflow(self, workflow_code, problem, problem_type="math", **kwargs):
        return "42", 0.01, {"success": True, "execution_time": 0.01}


class GRPOTrainer:
    def __init__(self):
        self.executor = AFlowExecutor()
        self.reward_computer = RewardComputer()

    async def train_step(self, step):
        answer, cost, meta = await self.executor.execute_workflow("w", "q", "math", source="gsm8k")
        reward = self.reward_computer.compute_reward("q", answer, "42", "math", source="gsm8k")
        return {"step": step, "loss": 0.5, "avg_reward": reward}

    async def evaluate_on_val_set(self, num_samples=1):
        return {"val_accuracy": 1.0}
"""

PROBE = """
import copy, json, pickle, sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import trainer_parts as parts

if __name__ == "__main__":
    rc = parts.RewardComputer(bonus=0.5)
    blob = pickle.dumps(rc)
    bound = pickle.loads(pickle.dumps(rc.compute_reward))
    twin = copy.deepcopy(rc)
    twin.bonus = 2.0
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        remote = pool.submit(rc.compute_reward, "q", "42", "42").result(timeout=60)
    wrapped = type(vars(parts.RewardComputer)["compute_reward"]).__name__
    print(json.dumps({"blob": blob.hex(), "bound": bound("q", "42", "42"), "twin": twin.compute_reward("q", "1", "2"),
                      "original_after_twin": rc.compute_reward("q", "1", "2"), "remote": remote,
                      "dict": sorted(vars(pickle.loads(blob))), "wrapped": wrapped}))
"""


# The config that points otel-grpo run's targets at trainer_parts.
PARTS_CONFIG = textwrap.dedent("""
    wandb: {mode: disabled}
    instrumentation:
      targets:
        train_step: trainer_parts:GRPOTrainer.train_step
        evaluate: trainer_parts:GRPOTrainer.evaluate_on_val_set
        execute: trainer_parts:AFlowExecutor.execute_workflow
        compute_reward: trainer_parts:RewardComputer.compute_reward
        judge: null
""")


@pytest.fixture
def parts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The picklable trainer module, importable here and in spawn children."""
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "trainer_parts.py").write_text(PARTS)
    (folder / "probe.py").write_text(PROBE)
    monkeypatch.syspath_prepend(str(folder))
    sys.modules.pop("trainer_parts", None)
    import trainer_parts

    yield trainer_parts
    sys.modules.pop("trainer_parts", None)


@pytest.fixture(autouse=True)
def fresh_report():
    report.reset()
    yield
    report.reset()


def _instrumented(parts):
    otel_grpo.setup(None, wandb={"mode": "disabled"})
    trainer = parts.GRPOTrainer()
    before = {
        "rc": pickle.dumps(trainer.reward_computer),
        "ex": pickle.dumps(trainer.executor),
        "trainer": pickle.dumps(trainer),
    }
    otel_grpo.instrument_trainer(trainer)
    return trainer, before


def test_instrumented_objects_pickle_byte_for_byte_as_before(parts):
    trainer, before = _instrumented(parts)
    try:
        assert pickle.dumps(trainer.reward_computer) == before["rc"]
        assert pickle.dumps(trainer.executor) == before["ex"]
        assert pickle.dumps(trainer) == before["trainer"]
        rc = trainer.reward_computer
        assert vars(rc) == {"bonus": 0.0, "eval_stats": {"total_evaluations": 0}}  # nothing of ours on it
        bound = pickle.loads(pickle.dumps(rc.compute_reward))
        assert bound("q", "42", "42") == 1.0
        assert pickle.loads(pickle.dumps(type(rc).compute_reward))(rc, "q", "42", "42") == 1.0
    finally:
        otel_grpo.uninstrument_trainer(trainer)


def test_a_deep_copy_runs_its_own_method_and_carries_no_state_of_ours(parts):
    trainer, _ = _instrumented(parts)
    try:
        rc = trainer.reward_computer
        twin = copy.deepcopy(rc)
        twin.bonus = 2.0
        assert twin.compute_reward("q", "x", "y") == 2.0  # the copy's bonus, not the original's
        assert rc.compute_reward("q", "x", "y") == 0.0
        assert twin.eval_stats == {"total_evaluations": 1} and rc.eval_stats == {"total_evaluations": 1}
        assert copy.copy(rc).compute_reward("q", "42", "42") == 1.0
        method_copy = copy.deepcopy(rc.compute_reward)
        assert method_copy.__self__ is not rc and method_copy("q", "42", "42") == 1.0
        assert vars(twin) == {"bonus": 2.0, "eval_stats": {"total_evaluations": 1}}
    finally:
        otel_grpo.uninstrument_trainer(trainer)


def test_a_spawn_process_pool_runs_an_instrumented_method(parts):
    trainer, _ = _instrumented(parts)
    try:
        rc = trainer.reward_computer
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            assert pool.submit(rc.compute_reward, "q", "42", "42").result(timeout=60) == 1.0
            assert pool.submit(pickle.loads, pickle.dumps(rc)).result(timeout=60).bonus == 0.0
    finally:
        otel_grpo.uninstrument_trainer(trainer)


def test_under_otel_grpo_run_objects_pickle_copy_and_cross_processes_as_without(parts, tmp_path):
    project = Path(parts.__file__).parent
    (project / "telemetry.yaml").write_text(PARTS_CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "WANDB_"))}
    env["PYTHONPATH"] = str(project)

    def run(*prefix: str) -> dict:
        done = subprocess.run(
            [*prefix, sys.executable, "probe.py"], cwd=project, env=env, capture_output=True, text=True, timeout=180
        )
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout.strip().splitlines()[-1])

    plain = run()
    instrumented = run("otel-grpo", "run", "--config", "telemetry.yaml", "--")
    assert plain.pop("wrapped") == "function" and instrumented.pop("wrapped") == "RoleFunctionWrapper"
    assert instrumented == plain
    assert plain["twin"] == 2.0 and plain["original_after_twin"] == 0.5 and plain["remote"] == 1.5


# --- bad input never raises into the trainer --------------------------------------------------
class _Unfloatable:
    def __float__(self) -> float:
        raise RuntimeError("no float for you")


BAD_NUMBERS = [
    10**400,
    -(10**400),
    _Unfloatable(),
    np.array([1.0, 2.0]),
    np.array([1.0]),
    float("nan"),
    "n/a",
    1e300,
    object(),
]


@pytest.mark.parametrize("bad", BAD_NUMBERS, ids=lambda v: type(v).__name__ + repr(v)[:12])
def test_the_manual_api_counts_bad_numbers_and_never_raises(bad, tmp_path):
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    with otel_grpo.step(1):
        with otel_grpo.sample("gsm8k"):
            otel_grpo.record_executor_run(cost=bad, duration_s=bad, success=True)
            otel_grpo.record_judge_evaluation("success", verdict=True, duration_s=bad)
            otel_grpo.record_judge_request(input_tokens=bad, output_tokens=bad)
            otel_grpo.record_sample(bad, bad)
        otel_grpo.record_sample(0.75, source="gsm8k")
        otel_grpo.record_scalars(loss=bad, kl_div=0.5)
    row = tel.rows[-1]
    # the bad sample counts as reward 0 / incorrect; the good one is exact; nothing is inf or NaN
    assert row["dataset/gsm8k/count"] == 2
    assert row["dataset/gsm8k/avg_reward"] == pytest.approx(0.375)
    assert row["cost/total_cost"] == 0.0 and row["cost/invalid_cost_count"] == 1
    assert row["train/kl_div"] == 0.5 and "train/loss" not in row
    assert all(math.isfinite(v) for v in row.values() if isinstance(v, float))
    assert tel.recorder.invalid.total() >= 4


@pytest.mark.parametrize("bad_step", [None, "x", float("nan"), np.array([1.0]), -3, 2.5, True])
def test_bad_step_numbers_are_counted_and_the_window_takes_the_next_number(bad_step, caplog):
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    with otel_grpo.step(4):
        otel_grpo.record_sample(1.0, source="math")
    with caplog.at_level(logging.WARNING, logger="otel_grpo"):
        with otel_grpo.step(bad_step):
            otel_grpo.record_sample(0.0, source="math")
        with otel_grpo.validation(bad_step):
            otel_grpo.record_sample(1.0, source="math")
    assert [r["train/step"] for r in tel.rows] == [4, 5, 5]
    assert tel.rows[1]["dataset/math/accuracy"] == 0.0 and tel.rows[2]["val/accuracy"] == 100.0
    assert tel.recorder.invalid.counts["step number"] == (1 if bad_step is None else 2)  # validation(None) is fine
    assert sum("invalid step number" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize("flag", [np.array([True, False]), np.array([1]), "maybe", _Unfloatable()])
def test_arrays_and_junk_as_success_or_verdict_are_counted_not_raised(flag):
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    with otel_grpo.step(1):
        with otel_grpo.sample("mbpp"):
            otel_grpo.record_executor_run(cost=0.5, success=flag)
            otel_grpo.record_judge_evaluation("success", verdict=flag)
            otel_grpo.record_sample(1.0)
    row = tel.rows[-1]
    assert row["cost/executor_calls"] == 1 and row["dataset/mbpp/count"] == 1
    assert row["judge/total_calls"] == 1
    assert row["judge/correct_predictions"] == 0 and row["judge/incorrect_predictions"] == 0
    assert tel.recorder.invalid.counts["success flag"] == 1
    assert tel.recorder.invalid.counts["judge verdict"] == 1


def test_numpy_booleans_and_scalars_are_read_not_counted_invalid():
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    with otel_grpo.step(np.int64(2)):
        with otel_grpo.sample("gsm8k"):
            otel_grpo.record_executor_run(cost=np.float32(0.25), success=np.bool_(False))
        with otel_grpo.sample("gsm8k"):
            otel_grpo.record_executor_run(cost="0.25", success=np.bool_(True))
            otel_grpo.record_judge_evaluation("success", verdict=np.bool_(True))
            otel_grpo.record_sample(np.float64(1.0))
    row = tel.rows[-1]
    assert row["train/step"] == 2 and row["dataset/gsm8k/count"] == 2
    assert row["dataset/gsm8k/accuracy"] == 50.0 and row["judge/correct_predictions"] == 1
    assert tel.recorder.invalid.total() == 0


# --- a busy Prometheus port -----------------------------------------------------------------
def test_a_busy_prometheus_port_leaves_rows_and_otlp_running(tmp_path, caplog):
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    port = taken.getsockname()[1]
    try:
        with caplog.at_level(logging.WARNING, logger="otel_grpo"):
            tel = otel_grpo.setup(
                None,
                wandb={"mode": "offline", "dir": str(tmp_path)},
                prometheus={"enabled": True, "host": "127.0.0.1", "port": port},
            )
        warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
        assert len(warnings) == 1 and str(port) in warnings[0] and "prometheus.port" in warnings[0]
        assert tel.prometheus_url is None
        with otel_grpo.step(1):
            otel_grpo.record_sample(1.0, source="gsm8k")
        assert tel.rows[-1]["dataset/gsm8k/accuracy"] == 100.0
    finally:
        taken.close()


# --- a typo never goes silent -------------------------------------------------------------------
TYPO_TRAINER = """
import asyncio

class Trainer:  # not GRPOTrainer: the default targets do not match
    async def train_step(self, step):
        return {"loss": 1.0}

class RewardComputer:
    def compute_reward(self, problem, prediction, ground_truth, problem_type="math", source=None):
        return 1.0

async def main():
    t, rc = Trainer(), RewardComputer()
    for step in (1, 2):
        await t.train_step(step)
        rc.compute_reward("q", "a", "a", source="gsm8k")

asyncio.run(main())
print("trained")
"""


def _run_script(tmp_path: Path, name: str, source: str, *config: str) -> subprocess.CompletedProcess:
    (tmp_path / name).write_text(source)
    (tmp_path / "reward_computer.py").write_text(source)  # the default target module exists, the class too
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "WANDB_"))}
    env["WANDB_MODE"] = "disabled"
    return subprocess.run(
        ["otel-grpo", "run", *config, "--", sys.executable, name],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_trainer_whose_classes_do_not_match_gets_a_warning_naming_the_targets(tmp_path):
    done = _run_script(tmp_path, "train.py", TYPO_TRAINER.replace("from reward_computer", ""))
    assert done.returncode == 0 and done.stdout.strip() == "trained"
    assert "no training step has been instrumented" in done.stderr
    assert "instrumentation.targets" in done.stderr
    assert done.stderr.count("no training step has been instrumented") == 1


def test_a_module_name_typo_in_the_targets_is_named_at_exit(tmp_path):
    (tmp_path / "telemetry.yaml").write_text(
        textwrap.dedent("""
        wandb: {mode: disabled}
        instrumentation:
          targets:
            train_step: my_trainerr:Trainer.train_step
            compute_reward: my_trainer:RewardComputer.compute_reward
            evaluate: null
            execute: null
            judge: null
    """)
    )
    source = TYPO_TRAINER.replace("asyncio.run(main())", "").replace('print("trained")', "")
    (tmp_path / "my_trainer.py").write_text(source)
    done = _run_script(
        tmp_path,
        "train.py",
        "import asyncio, my_trainer\nasyncio.run(my_trainer.main())\nprint('trained')\n",
        "--config",
        "telemetry.yaml",
    )
    assert done.returncode == 0 and done.stdout.strip() == "trained"
    assert "my_trainerr:Trainer.train_step" in done.stderr and "instrumentation.targets" in done.stderr
    assert "my_trainer:RewardComputer.compute_reward (compute_reward)" in done.stderr


def test_otel_grpo_run_says_once_what_it_instrumented(parts):
    project = Path(parts.__file__).parent
    (project / "telemetry.yaml").write_text(PARTS_CONFIG)
    (project / "train.py").write_text(
        "import asyncio, trainer_parts\nt = trainer_parts.GRPOTrainer()\nprint(asyncio.run(t.train_step(1)))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "WANDB_"))}
    done = subprocess.run(
        ["otel-grpo", "run", "--config", "telemetry.yaml", "--", sys.executable, "train.py"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("otel-grpo: recording")]
    assert len(lines) == 1
    for method in (
        "GRPOTrainer.train_step (train_step)",
        "AFlowExecutor.execute_workflow (execute)",
        "RewardComputer.compute_reward (compute_reward)",
    ):
        assert method in lines[0]
    assert "no training step" not in done.stderr
