"""Wall time otel-grpo adds to a TRL GRPOTrainer run: per optimizer step, and for the example.

``python -m benchmarks.trl_overhead [--steps 20] [--rounds 3]``

The example's model and reward functions (``examples/trl``: a random Qwen2, a rule
reward and an LLM judge against a local judge server) train ``--steps`` optimizer steps,
each run in a fresh interpreter: plain TRL, and the same script under ``otel-grpo run``
(no code change), alternating, ``--rounds`` times each. A trainer callback notes the
time at each ``on_step_begin``; a step's wall time is the time to the next one (so it
includes otel-grpo's window close and row). Per run, the median step; per mode, the
median of the runs. Reported:

* **added per step** = median step (otel-grpo) - median step (plain);
* **A/A** = the same difference between two sets of plain runs, the noise floor;
* **timed inside**: the time spent in otel-grpo's own TRL code (merging a scoring call's
  completions and recording them, opening and closing the windows, writing the row), per
  step, summed by timers around those methods in the otel-grpo runs;
* **the example**: wall time of ``python examples/trl/train.py`` (6 steps, evaluation
  every 3), plain and under ``otel-grpo run``, imports included.

Prints a Markdown section; nothing is written to ``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "trl"


def _child(steps: int, judge_url: str, out: str) -> None:
    """One training run; prints ``{"steps": [seconds, ...], "train_s": ...}``."""
    import torch

    torch.set_num_threads(1)
    os.environ["JUDGE_URL"] = judge_url
    sys.path.insert(0, str(EXAMPLE))
    from datasets import Dataset
    from rewards import answer_match, judge_reward
    from tiny import build_model, build_tokenizer, dataset_rows
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    begins: list[float] = []

    class StepClock(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            begins.append(time.perf_counter())

        def on_train_end(self, args, state, control, **kwargs):
            begins.append(time.perf_counter())

    inside = _time_inside_otel_grpo()
    tokenizer = build_tokenizer()
    config = GRPOConfig(
        output_dir=out,
        use_cpu=True,
        max_steps=steps,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        logging_steps=1,
        save_strategy="no",
        report_to="wandb",
        reward_weights=[0.5, 0.5],
        seed=0,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=build_model(tokenizer),
        reward_funcs=[answer_match, judge_reward],
        args=config,
        train_dataset=Dataset.from_list(dataset_rows(repeat=8)),
        processing_class=tokenizer,
        callbacks=[StepClock()],
    )
    started = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - started
    steps_s = [b - a for a, b in zip(begins, begins[1:], strict=False)]
    print(json.dumps({"steps": steps_s, "train_s": train_s, "inside_s": inside[0] / max(1, steps)}))


def _time_inside_otel_grpo() -> list[float]:
    """Under ``otel-grpo run``: sum the time spent in otel-grpo's own TRL code (scoring merge, windows)."""
    total, depth = [0.0], [0]
    try:
        from otel_grpo.instrumentation.trl.session import TrlSession
    except ImportError:
        return total
    from otel_grpo.api import get_telemetry

    if get_telemetry() is None:
        return total

    def timed(name: str) -> None:
        original = getattr(TrlSession, name)

        def wrapper(self, *args, **kwargs):
            depth[0] += 1
            started = time.perf_counter()
            try:
                return original(self, *args, **kwargs)
            finally:
                depth[0] -= 1
                if not depth[0]:  # outermost only: open_step closes windows itself
                    total[0] += time.perf_counter() - started

        setattr(TrlSession, name, wrapper)

    for name in ("_after", "open_step", "close_step", "open_validation", "close_validation"):
        timed(name)
    return total


def _env(where: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "OTEL_"))}
    env.update(WANDB_MODE="offline", WANDB_DIR=str(where), WANDB_SILENT="true", OMP_NUM_THREADS="1")
    env.update(TOKENIZERS_PARALLELISM="false", PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    return env


def _otel_grpo() -> list[str]:
    found = shutil.which("otel-grpo", path=str(Path(sys.executable).parent))
    return [found] if found else [sys.executable, "-m", "otel_grpo.tools.cli"]


def _run(command: list[str], where: Path) -> tuple[float, str]:
    where.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    proc = subprocess.run(command, cwd=where, env=_env(where), capture_output=True, text=True, timeout=900)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{command} exited {proc.returncode}:\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def _training(mode: str, steps: int, judge_url: str, where: Path) -> tuple[float, float]:
    """Median step wall time (s) of one run, first step (warm-up) left out; otel-grpo's own time per step."""
    command = [sys.executable, "-m", "benchmarks.trl_overhead", "--child", "--steps", str(steps)]
    command += ["--judge-url", judge_url, "--out", str(where / "trainer")]
    if mode == "otel":
        command = [*_otel_grpo(), "run", "--", *command]
    _, stdout = _run(command, where)
    result = json.loads(stdout.strip().splitlines()[-1])
    return statistics.median(result["steps"][1:]), result["inside_s"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--judge-url", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--out", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.steps, args.judge_url, args.out)
        return 0
    from otel_grpo.tools.demo.judge_server import JudgeServer

    tmp = Path(tempfile.mkdtemp(prefix="trl-bench-"))
    medians: dict[str, list[float]] = {"plain": [], "plain2": [], "otel": []}
    inside: list[float] = []
    with JudgeServer() as judge:
        for round_ in range(args.rounds):
            for mode in ("plain", "otel", "plain2"):
                run_mode = "otel" if mode == "otel" else "plain"
                median, own = _training(run_mode, args.steps, judge.url, tmp / f"{mode}-{round_}")
                medians[mode].append(median)
                if mode == "otel":
                    inside.append(own)
        example = [sys.executable, str(EXAMPLE / "train.py"), "--judge-url", judge.url]
        plain_s, _ = _run(example, tmp / "example-plain")
        otel_s, _ = _run([*_otel_grpo(), "run", "--", *example], tmp / "example-otel")
    shutil.rmtree(tmp, ignore_errors=True)
    step = {mode: statistics.median(values) for mode, values in medians.items()}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print("## TRL GRPOTrainer overhead (`python -m benchmarks.trl_overhead`)\n")
    print(f"{platform.python_version()}, {os.cpu_count()} CPUs, load average {load:.1f} at the end; ", end="")
    print(
        f"{args.steps} optimizer steps per run, {args.rounds} runs per mode, "
        "4 completions (one prompt, 4 generations) and 4 judge requests per step.\n"
    )
    print("| figure | value |")
    print("|---|---|")
    print(f"| median step, plain TRL | {step['plain'] * 1000:.1f} ms |")
    print(f"| median step, under `otel-grpo run` | {step['otel'] * 1000:.1f} ms |")
    print(f"| **added per step** (otel-grpo - plain) | {(step['otel'] - step['plain']) * 1000:+.1f} ms |")
    print(f"| A/A noise (plain - plain) | {(step['plain2'] - step['plain']) * 1000:+.1f} ms |")
    own = statistics.median(inside) * 1000
    print(f"| otel-grpo's own TRL code per step, timed inside (merge, record, window, row) | {own:.2f} ms |")
    print(f"| the example, plain (`python examples/trl/train.py`, 6 steps + 2 evaluations) | {plain_s:.1f} s |")
    print(f"| the example under `otel-grpo run` | {otel_s:.1f} s |")
    print(
        "\nRuns (ms): "
        + "; ".join(f"{m}: " + ", ".join(f"{v * 1000:.1f}" for v in vals) for m, vals in medians.items())
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
