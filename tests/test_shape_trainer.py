"""The user's trainer shape, instrumented with no edits: in-process and under `otel-grpo run`."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest

import otel_grpo
from otel_grpo.tools.demo.judge_server import JudgeServer
from otel_grpo.tools.runreader import read_run
from tests.oracle import assert_rows_equal, expected_rows, scored_by

pytestmark = pytest.mark.slow  # starts real processes, servers or WandB runs

STEPS = 3
IGNORED = ("executor/latency", "judge/latency", "judge/input_tokens", "judge/output_tokens")
EVAL_EVERY = 2
JUDGE = {
    "ok_true": ("success", True, 1),
    "ok_false": ("success", False, 1),
    "unparsable": ("parse_failure", None, 1),
    "http_500": ("api_failure", None, 3),
    "null_content": ("api_failure", None, 2),
}


def to_event(sample: dict) -> tuple[dict, list[dict]]:
    """What docs/terms.md says one planned sample is, and the judge evaluations it causes."""
    event = {
        "source": sample["source"],
        "ptype": sample["problem_type"] or "math",
        "cost": sample["cost"],
        "exec": "ok",
        "reward": sample["reward"],
        "group": sample["qid"],
    }
    judges = []
    if sample["kind"] == "exec_fail":
        event["exec"] = "fail"
    elif sample["kind"] == "exec_raise":
        event.update(exec="fail", cost=0.0)
    elif sample["kind"] == "reward_raise":
        event["reward"] = 0.0
    elif sample["kind"] == "judge":
        verdicts = []
        for fault in (sample["judge_fault"], sample.get("judge_fault2")):
            if fault is None:
                continue
            outcome, verdict, requests = JUDGE[fault]
            verdicts.append(verdict)
            judges.append({"source": sample["source"], "outcome": outcome, "verdict": verdict, "requests": requests})
        event["reward"] = 1.0 if any(verdicts) else 0.0
    return event, judges


def window(split: str, step: int, samples: list[dict], raises: bool = False) -> dict:
    events = []
    for sample in samples:
        event, judges = to_event(sample)
        events.append({**event, "judges": judges})  # made while serving this sample: they decide its scorer
    scalars = (
        {} if split == "val" else {"loss": 1.0 / step, "kl_div": 0.01 * step, "temperature": round(1.0 - 0.1 * step, 3)}
    )
    return {"split": split, "step": step, "samples": events, "judges": [], "scalars": scalars, "raises": raises}


def plan_windows(plan: dict) -> list[dict]:
    windows = []
    for step in range(1, STEPS + 1):
        if step in plan["raise_once"]:
            windows.append(window("train", step, plan["train"][step][:3], raises=True))
        windows.append(window("train", step, plan["train"][step]))
        if step % EVAL_EVERY == 0:
            windows.append(window("val", step, plan["val"]))
    return windows


@pytest.fixture
def judge_server():
    with JudgeServer() as server:
        yield server


def test_instrument_trainer_rows_equal_values_computed_from_the_plan(tmp_path, shape_path, judge_server):
    from grpo_trainer import GRPOTrainer
    from plan import make_plan

    plan = make_plan(steps=STEPS)
    tel = otel_grpo.setup(None, wandb={"mode": "offline", "dir": str(tmp_path)}, judge={"ports": [judge_server.port]})
    trainer = GRPOTrainer(plan, judge_server.url, wandb_dir=str(tmp_path), eval_every=EVAL_EVERY)
    otel_grpo.instrument_trainer(trainer)
    otel_grpo.instrument_trainer(trainer)  # idempotent: wraps once
    asyncio.run(trainer.train(STEPS))
    run_dir = Path(trainer_run_dir())
    tel.shutdown()
    import wandb

    wandb.finish()
    ours = [r for r in read_run(run_dir).history if "train/step" in r]
    windows = plan_windows(plan)
    assert_rows_equal(ours, expected_rows(windows), ignore_prefixes=IGNORED)
    # The plan reaches every scorer, and both samples judged twice are in it.
    events = [e for w in windows for e in w["samples"]]
    assert {scored_by(e) for e in events} == {"rule", "judge", "judge_failed", "not_scored"}
    twice = [[j["outcome"] for j in e["judges"]] for e in events if len(e["judges"]) == 2]
    assert sorted(twice) == [["api_failure", "success"], ["parse_failure", "api_failure"]]
    assert 0 < max(r.get("train/judge_failed_share", 0) for r in ours) < 1


def trainer_run_dir() -> str:
    import wandb

    return str(Path(wandb.run.dir).parent)


def test_auto_instrumented_under_otel_grpo_run_without_code_change(tmp_path, shape_path, judge_server):
    from plan import make_plan

    config = tmp_path / "telemetry.yaml"
    config.write_text(f"judge:\n  ports: [{judge_server.port}]\n")
    wandb_dir = tmp_path / "runs"
    wandb_dir.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "otel_grpo.tools.cli",
            "run",
            "--config",
            str(config),
            "--",
            sys.executable,
            str(shape_path / "train.py"),
            "--judge-url",
            judge_server.url,
            "--steps",
            str(STEPS),
            "--wandb-dir",
            str(wandb_dir),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    ours = [r for r in read_run(wandb_dir / "wandb").history if "train/step" in r]
    assert_rows_equal(ours, expected_rows(plan_windows(make_plan(steps=STEPS))), ignore_prefixes=IGNORED)


class _Boom(Exception):
    pass


def _reference_results(shape_path: Path, judge_url: str) -> list:
    from grpo_trainer import GRPOTrainer
    from plan import make_plan

    trainer = GRPOTrainer(make_plan(steps=2), judge_url, use_wandb=False)
    results = []
    for step in (1, 2, 2):
        try:
            results.append(asyncio.run(trainer.train_step(step)))
        except Exception as exc:  # noqa: BLE001
            results.append((type(exc), str(exc)))
    results.append(asyncio.run(trainer.evaluate_on_val_set(num_samples=3)))
    return results


def test_return_values_and_exceptions_are_identical_with_and_without_instrumentation(shape_path, judge_server):
    bare = _reference_results(shape_path, judge_server.url)
    otel_grpo.setup(None, wandb={"mode": "disabled"}, judge={"ports": [judge_server.port]})
    from grpo_trainer import GRPOTrainer
    from plan import make_plan

    trainer = GRPOTrainer(make_plan(steps=2), judge_server.url, use_wandb=False)
    otel_grpo.instrument_trainer(trainer)
    instrumented = []
    for step in (1, 2, 2):
        try:
            instrumented.append(asyncio.run(trainer.train_step(step)))
        except Exception as exc:  # noqa: BLE001
            instrumented.append((type(exc), str(exc)))
    instrumented.append(asyncio.run(trainer.evaluate_on_val_set(num_samples=3)))
    assert instrumented == bare

    # The very exception object raised by the executor reaches the caller unchanged.
    error = _Boom("boom")

    class BrokenExecutor(type(trainer.executor)):
        async def execute_workflow(self, *args, **kwargs):
            raise error

    assert otel_grpo.get_telemetry().rows, "the instrumented run wrote rows"
    otel_grpo.uninstrument_trainer(trainer)
    assert "execute_workflow" not in vars(type(trainer.executor)) or not hasattr(
        vars(type(trainer.executor))["execute_workflow"], "otel_grpo_role"
    )
    trainer.executor = BrokenExecutor.__new__(BrokenExecutor)
    otel_grpo.instrument_trainer(trainer)
    assert vars(BrokenExecutor)["execute_workflow"].otel_grpo_role == "execute"
    with pytest.raises(_Boom) as caught:
        asyncio.run(trainer.executor.execute_workflow("{}", "p"))
    assert caught.value is error
    otel_grpo.uninstrument_trainer(trainer)


def test_a_differently_named_trainer_is_instrumented_through_config():
    class Loop:
        def __init__(self):
            self.runner = self
            self.scorer = self

        async def do_step(self, it):
            out = await self.run(problem="p", kind="gsm8k")
            return {"loss": 0.25, "reward": self.score("p", out, "gt", kind="gsm8k")}

        async def run(self, problem, kind):
            return ("42", 0.5, {"success": True})

        def score(self, problem, prediction, truth, kind=None):
            return 1.0

    otel_grpo.setup(
        None,
        wandb={"mode": "disabled"},
        instrumentation={
            "targets": {
                "train_step": "my_rl.loop:Loop.do_step",
                "evaluate": None,
                "execute": "my_rl.loop:Loop.run",
                "compute_reward": "my_rl.loop:Loop.score",
                "judge": None,
            },
            "arguments": {"step": "it", "source": "kind", "workflow_kwargs_source": "kind"},
            "executor_attribute": "runner",
            "reward_attribute": "scorer",
        },
    )
    loop = otel_grpo.instrument_trainer(Loop())
    result = asyncio.run(loop.do_step(5))
    assert result == {"loss": 0.25, "reward": 1.0}
    row = otel_grpo.get_telemetry().rows[-1]
    assert row["train/step"] == 5 and row["train/loss"] == 0.25
    assert row["dataset/gsm8k/count"] == 1 and row["dataset/gsm8k/avg_cost"] == 0.5


def test_opentelemetry_instrument_finds_the_entry_points(tmp_path):
    from importlib.metadata import entry_points

    instrumentors = {ep.name: ep.value for ep in entry_points(group="opentelemetry_instrumentor")}
    exporters = {ep.name: ep.value for ep in entry_points(group="opentelemetry_metrics_exporter")}
    assert instrumentors.get("otel_grpo") == "otel_grpo.instrumentation.auto:GrpoInstrumentor"
    assert exporters.get("grpo_wandb") == "otel_grpo.exporters.step_reader:StepMetricReader"
    script = tmp_path / "t.py"
    script.write_text(
        "import asyncio, otel_grpo\n"
        "class T:\n"
        "    async def train_step(self, step):\n"
        "        return {'loss': 0.5}\n"
        "import types, sys\n"
        "m = types.ModuleType('grpo_trainer'); m.GRPOTrainer = T; sys.modules['grpo_trainer'] = m\n"
        "import wrapt; wrapt.importer._post_import_hooks  # noqa\n"
        "import importlib; importlib.import_module('grpo_trainer')\n"
        "from wrapt.importer import notify_module_loaded; notify_module_loaded(m)\n"
        "asyncio.run(T().train_step(3))\n"
        "tel = otel_grpo.get_telemetry()\n"
        "print('ROWS', [r['train/step'] for r in tel.rows], tel.rows[-1].get('train/loss'))\n"
    )
    env = {
        "OTEL_METRICS_EXPORTER": "grpo_wandb",
        "OTEL_TRACES_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "WANDB_MODE": "disabled",
        "PATH": __import__("os").environ["PATH"],
    }
    proc = subprocess.run(
        ["opentelemetry-instrument", sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=tmp_path,
    )
    assert "ROWS [3] 0.5" in proc.stdout, proc.stdout + proc.stderr[-2000:]


def test_reward_computed_in_a_thread_pool_pairs_with_its_execution():
    """Variation: compute_reward offloaded with run_in_executor (no context copied)."""

    class Executor:
        async def execute_workflow(self, workflow_code, problem, problem_type="math", **kwargs):
            return "42", 0.25, {"success": True}

    class Scorer:
        def compute_reward(self, problem, prediction, ground_truth, problem_type="math", source=None):
            return 1.0 if problem.endswith("0") else 0.0

    class Trainer:
        def __init__(self):
            self.executor, self.reward_computer = Executor(), Scorer()

        async def one(self, i):
            answer, cost, meta = await self.executor.execute_workflow("wf", f"q{i}", "math", source="gsm8k")
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, self.reward_computer.compute_reward, f"q{i}", answer, "42")

        async def train_step(self, step):
            rewards = await asyncio.gather(*(self.one(i) for i in range(20)))
            return {"loss": sum(rewards)}

    otel_grpo.setup(None, wandb={"mode": "disabled"})
    trainer = otel_grpo.instrument_trainer(Trainer())
    asyncio.run(trainer.train_step(1))
    row = otel_grpo.get_telemetry().rows[-1]
    assert row["dataset/gsm8k/count"] == 20  # one sample per workflow, not 40
    assert row["dataset/gsm8k/accuracy"] == 10.0  # q0 and q10
    assert row["cost/total_cost"] == 5.0


def test_parts_under_other_attribute_names_are_found_without_config():
    class Executor:
        async def execute_workflow(self, workflow_code, problem, problem_type="math", **kwargs):
            return "42", 0.5, {"success": True}

    class Scorer:
        def compute_reward(self, problem, prediction, ground_truth, problem_type="math", source=None):
            return 1.0

    class Trainer:
        def __init__(self):
            self.aflow_executor, self.scorer, self.name = Executor(), Scorer(), "t"

        async def train_step(self, step):
            _, cost, _ = await self.aflow_executor.execute_workflow("wf", "p", "qa", source="mmlu")
            return {"loss": self.scorer.compute_reward("p", "42", "42", "qa", source="mmlu")}

    otel_grpo.setup(None, wandb={"mode": "disabled"})
    trainer = otel_grpo.instrument_trainer(Trainer())
    assert asyncio.run(trainer.train_step(2)) == {"loss": 1.0}
    row = otel_grpo.get_telemetry().rows[-1]
    assert row["dataset/mmlu/count"] == 1 and row["dataset/mmlu/avg_cost"] == 0.5
    assert row["dataset/mmlu/accuracy"] == 100.0
