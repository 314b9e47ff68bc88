"""The hot paths of two commits, measured side by side in one run (interleaved processes).

    python -m benchmarks.compare_commits --ref HEAD~3          # a commit against the working tree
    python -m benchmarks.compare_commits --ref A --other B --rounds 7

Each tree is laid out as installed (as :mod:`benchmarks.demo_rows` does) and measured in its
own fresh interpreter, the two alternating round after round, so machine noise falls on both
alike. Per round and tree:

* **auto path**: the benchmarks' shape trainer (:class:`benchmarks.recording.MiniTrainer`,
  async ``train_step`` gathering executor + reward tasks) instrumented with
  ``instrument_trainer`` minus the same trainer with otel-grpo off, µs per sample;
* **one-call API**: ``record_workflow`` inside ``step()``, µs per sample (step end included);
* **step end**: the ``__exit__`` of a step of 1,000 recorded samples, WandB offline, ms.

WandB tables are off in both trees (a table step would land in one measure or another
depending on step numbers).

Medians over the rounds, and the ratio after/before.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

from benchmarks.demo_rows import _checkout, _layout

PROBE = textwrap.dedent(
    """
    import asyncio, json, os, random, sys, tempfile, time
    sys.path.append(sys.argv[1])  # the tree's benchmarks package (otel_grpo comes from PYTHONPATH, first)
    import otel_grpo
    from benchmarks.recording import MiniTrainer
    from benchmarks import common

    random.seed(0)
    SOURCES = [("gsm8k", "math"), ("math", "math"), ("humaneval", "code"), ("mbpp", "code"),
               ("hotpotqa", "qa"), ("commonsenseqa", "qa"), ("mmlu", "qa")]
    def batch(n):
        return [(*SOURCES[i % 7], random.choice([0.0, 1.0]), 1.0, 0.01, f"q{i // 4}") for i in range(n)]
    N = 1000
    steps = [batch(N) for _ in range(3)]
    os.chdir(tempfile.mkdtemp())
    # tables off: a table step (every table_every steps) would land in one measure or another
    # depending on the step numbers, and cost both trees a WandB Table build and its imports
    tables_off = {"table_every": 0, "sample_table_rows": 0}
    tel = otel_grpo.setup(None, wandb={"mode": "offline", "dir": os.getcwd(), "dashboard": tables_off})
    plain, auto = MiniTrainer(steps), MiniTrainer(steps)
    otel_grpo.instrument_trainer(auto)
    loop = asyncio.new_event_loop()
    step_no = [0]
    def train(trainer, reps):
        t0 = time.perf_counter()
        for _ in range(reps):
            step_no[0] += 1
            loop.run_until_complete(trainer.train_step(step_no[0]))
        return (time.perf_counter() - t0) / (reps * N) * 1e6
    def one_call(reps):
        t0 = time.perf_counter()
        for r in range(reps):
            step_no[0] += 1
            with otel_grpo.step(step_no[0]):
                for source, ptype, reward, correctness, cost, _ in steps[r % 3]:
                    otel_grpo.record_workflow(source, reward, correctness, problem_type=ptype, cost=cost)
        return (time.perf_counter() - t0) / (reps * N) * 1e6
    def step_end(reps):
        ends = []
        for r in range(reps):
            step_no[0] += 1
            scope = otel_grpo.step(step_no[0])
            scope.__enter__()
            for source, ptype, reward, correctness, cost, _ in steps[r % 3]:
                otel_grpo.record_workflow(source, reward, correctness, problem_type=ptype, cost=cost, duration_s=0.5)
            t0 = time.perf_counter()
            scope.__exit__(None, None, None)
            ends.append((time.perf_counter() - t0) * 1e3)
        return sorted(ends)[len(ends) // 2]
    train(auto, 2); one_call(2); step_end(3)  # warm up
    with common.otel_grpo_off():
        base = train(plain, 6)
    added = train(auto, 6) - base
    print(json.dumps({"auto_us": added, "one_call_us": one_call(6), "step_end_ms": step_end(15)}))
    tel.shutdown()
    """
)

MEASURES = (("auto_us", "auto path added, µs/sample"), ("one_call_us", "one-call API, µs/sample"),
            ("step_end_ms", "step end at 1,000 samples, ms"))  # fmt: skip


def _measure(tree: Path, source: Path) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "OTEL_"))}
    env.update(PYTHONPATH=str(tree), WANDB_SILENT="true")
    out = subprocess.run(
        [sys.executable, "-c", PROBE, str(source)],
        env=env,
        cwd=tempfile.mkdtemp(prefix="compare-run-"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    if out.returncode != 0:
        raise RuntimeError(f"the probe failed in {tree}:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", required=True, help="the commit measured as 'before'")
    parser.add_argument("--other", help="a second commit ('after'); default: the working tree")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="compare-commits-"))
    try:
        before_src = _checkout(args.ref, scratch / "before-src")
        after_src = _checkout(args.other, scratch / "after-src") if args.other else Path.cwd()
        trees = {
            "before": (_layout(before_src, scratch / "before"), before_src),
            "after": (_layout(after_src, scratch / "after"), after_src),
        }
        results: dict[str, list[dict[str, float]]] = {"before": [], "after": []}
        for round_no in range(args.rounds):
            order = ("before", "after") if round_no % 2 == 0 else ("after", "before")
            for name in order:
                results[name].append(_measure(*trees[name]))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    label = args.other or "working tree"
    print(f"| measure (median of {args.rounds} interleaved rounds) | {args.ref} | {label} | after / before |")
    print("|---|---|---|---|")
    for key, text in MEASURES:
        before = statistics.median(r[key] for r in results["before"])
        after = statistics.median(r[key] for r in results["after"])
        print(f"| {text} | {before:.2f} | {after:.2f} | {after / before:.2f} |")


if __name__ == "__main__":
    main()
