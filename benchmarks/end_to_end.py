"""5. End to end: the shape trainer (tests/shape_trainer) with and without instrumentation.

The judge is the demo JudgeServer on loopback, in its own process. The trainer keeps
its own habits: its own offline WandB run, a ``wandb.log`` per sample without ``step=``
and one per step with it, a step that raises once (CUDA OOM) and is retried, a
validation pass every 2nd step, judge faults (unparsable replies, HTTP 500, null
content). Its OpenAI client is rebuilt with ``max_retries=0`` (same for both sides):
the client's own retry back-off sleeps 0.5-8 s with jitter, noise far above 1%.

Two comparisons, each in its own process (``otel_grpo.setup`` once per process):
without tracing, and with tracing (``span_processors=[BatchSpanProcessor(
InMemorySpanExporter())]``). Each repetition runs, in rotated order, a fresh
uninstrumented trainer (otel-grpo detached), a fresh instrumented trainer, and a second
uninstrumented trainer: the spread between the two uninstrumented runs is the noise
band (A/A). Overhead = median over repetitions of instrumented / uninstrumented − 1.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

from benchmarks import common

SMOKE = {"steps": 4, "questions": 7, "k": 2, "val_questions": 7, "reps": 2}
FULL = {"steps": 30, "questions": 14, "k": 4, "val_questions": 14, "reps": 10}
GOAL = 0.01


def worker(params: dict[str, Any]) -> dict[str, Any]:
    """One comparison (tracing on or off) in this (fresh) process."""
    sys.path.insert(0, str(common.SHAPE_DIR))
    import openai
    import wandb
    from grpo_trainer import GRPOTrainer
    from plan import make_plan

    import otel_grpo

    url, port, tracing = params["url"], params["port"], params["tracing"]
    steps = params["steps"]
    tmp = common.scratch_dir("e2e")
    wandb.init(project="shape-trainer", mode="offline", dir=tmp)  # the trainer's own run
    processors = []
    exporter = None
    if tracing:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

        exporter = InMemorySpanExporter()
        processors = [BatchSpanProcessor(exporter)]
    tel = otel_grpo.setup(
        {}, wandb={"mode": "offline", "dir": tmp}, judge={"ports": [port]}, span_processors=processors
    )
    plan = make_plan(
        steps=steps, questions=params["questions"], k=params["k"], val_questions=params["val_questions"], seed=7
    )
    samples_per_run = (
        sum(len(plan["train"][s]) for s in range(1, steps + 1))
        + len(plan["val"]) * (steps // 2)
        + sum(3 for s in plan["raise_once"] if s <= steps)
    )

    def make_trainer() -> Any:
        trainer = GRPOTrainer(plan, url, use_wandb=False, eval_every=2)
        trainer.use_wandb = True  # log into the run opened above, as the trainer would its own
        trainer.reward_computer.client = openai.OpenAI(base_url=url, api_key="sk-dummy", timeout=5.0, max_retries=0)
        return trainer

    cpu: dict[str, list[float]] = {"plain": [], "instrumented": []}
    spans = [0]
    extra: dict[str, Any] = {}

    def timed(trainer: Any, kind: str, profile: bool) -> float:
        c0, t0 = time.process_time(), time.perf_counter()
        if profile:
            extra[f"stats_{kind}"] = common.profile_stats(lambda: asyncio.run(trainer.train(steps)))
        else:
            asyncio.run(trainer.train(steps))
        elapsed = time.perf_counter() - t0
        cpu[kind].append(time.process_time() - c0)
        return elapsed

    def plain(profile: bool = False) -> float:
        trainer = make_trainer()
        with common.otel_grpo_off():
            return timed(trainer, "plain", profile)

    def instrumented(profile: bool = False) -> float:
        trainer = make_trainer()
        otel_grpo.instrument_trainer(trainer)
        elapsed = timed(trainer, "instrumented", profile)
        if exporter is not None:
            tel.providers.tracer_provider.force_flush()
            spans[0] = max(spans[0], len(exporter.get_finished_spans()))
            exporter.clear()
        return elapsed

    times = common.interleave(
        {"plain": plain, "instrumented": instrumented, "plain_again": plain}, reps=params["reps"], warmup=1
    )
    cpu_out = {k: v[-params["reps"] * (2 if k == "plain" else 1) :] for k, v in cpu.items()}  # no warm-up
    profile_text, groups = "", {}
    if params.get("profile"):
        plain(profile=True)
        instrumented(profile=True)
        profile_text = common.format_stats(extra["stats_instrumented"], top=20)
        groups = {
            kind: common.self_time_by_group(extra[f"stats_{kind}"], common.GROUPS) for kind in ("plain", "instrumented")
        }
    rows = len(tel.rows)
    tel.shutdown(finish_run=False)
    wandb.finish()
    return {
        "times": times,
        "cpu": cpu_out,
        "samples_per_run": samples_per_run,
        "spans_per_run": spans[0],
        "rows": rows,
        "profile": profile_text,
        "groups": groups,
    }


def run(params: dict[str, Any]) -> dict[str, Any]:
    """Section 5: judge server process + one worker process per comparison."""
    size = SMOKE if params.get("smoke") else FULL
    results = {}
    with common.JudgeProcess() as judge:
        for tracing in (False, True):
            results[tracing] = common.run_worker(
                "end_to_end",
                "worker",
                {**size, "url": judge.url, "port": judge.port, "tracing": tracing, "profile": not params.get("smoke")},
                timeout=900,
            )
    rows, goals, profiles = [], [], []
    steps = size["steps"]
    for tracing, res in results.items():
        t = res["times"]
        ratios = [i / p - 1 for i, p in zip(t["instrumented"], t["plain"], strict=True)]
        aa = [a / p - 1 for a, p in zip(t["plain_again"], t["plain"], strict=True)]
        overhead = common.median(ratios)
        noise = common.median([abs(x) for x in aa])
        lo, hi = common.iqr(ratios)
        plain_s, inst_s = common.median(t["plain"]), common.median(t["instrumented"])
        per_step_ms = (inst_s - plain_s) / steps * 1e3
        per_sample_us = (inst_s - plain_s) / res["samples_per_run"] * 1e6
        cpu_plain, cpu_inst = common.median(res["cpu"]["plain"]), common.median(res["cpu"]["instrumented"])
        cpu_overhead = cpu_inst / cpu_plain - 1 if cpu_plain else 0.0
        label = "instrumented + tracing (BatchSpanProcessor → in-memory)" if tracing else "instrumented (no tracing)"
        rows.append(
            [
                label,
                f"{plain_s:.3f}",
                f"{inst_s:.3f}",
                f"{overhead * 100:+.2f}%",
                f"{lo * 100:+.2f}% … {hi * 100:+.2f}%",
                f"±{noise * 100:.2f}%",
                f"{per_step_ms:+.2f}",
                f"{per_sample_us:+.1f}",
                f"{cpu_overhead * 100:+.1f}%",
            ]
        )
        met = overhead <= GOAL
        measured = f"{overhead * 100:+.2f}% (A/A noise ±{noise * 100:.2f}%)"
        goals.append(common.goal(f"wall-time overhead, {label}", f"<= {GOAL * 100:g}%", measured, met))
        if res["spans_per_run"]:
            rows[-1][0] += f", {res['spans_per_run']:,} spans/run"
    tables = []
    for tracing, res in results.items():
        if res["profile"] and not goals[int(tracing)]["met"]:
            profiles.append(
                {
                    "title": f"one instrumented run ({steps} steps, {res['samples_per_run']} samples, "
                    f"tracing {'on' if tracing else 'off'}): trainer.train only",
                    "text": res["profile"],
                }
            )
            tables.append(
                {
                    "title": f"Tracing {'on' if tracing else 'off'}: profiled self time by component, ms "
                    "per step, one uninstrumented vs one instrumented run (standard library and "
                    "builtins charged to their callers; cProfile inflates Python code)",
                    "columns": ["component", "uninstrumented", "instrumented", "added"],
                    "rows": common.group_table(res["groups"]["plain"], res["groups"]["instrumented"], steps, "ms"),
                }
            )
    res = results[False]
    analysis = []
    if not all(g["met"] for g in goals):
        t = res["times"]
        own = common.median(t["plain"]) / steps * 1e3
        added = (common.median(t["instrumented"]) - common.median(t["plain"])) / steps * 1e3
        analysis.append(
            f"- This trainer's own step takes {own:.0f} ms (the demo judge answers in about a millisecond, the "
            f"executor sleeps 1 ms); otel-grpo adds {added:.1f} ms per step: a fixed cost per window (1.5 windows "
            "per step here, counting validation: step end with the window's summary, rollup, run.log and, when due, "
            "WandB tables; section 2) plus tens of µs per sample and per judge request (section 1, section 6). "
            f"At 1% the same absolute cost needs steps of at least {added * 100 / 1e3:.1f} s; the user's steps "
            "(LLM executors, a 120B judge) take minutes."
            + (
                f" Largest additions in the profile (ms per step, inflated by cProfile): "
                f"{common.top_added(res['groups']['plain'], res['groups']['instrumented'], steps, 'ms')}."
                if res.get("groups")
                else ""
            )
        )
        if len(results) > 1:
            tr = results[True]["times"]
            extra = (common.median(tr["instrumented"]) - common.median(tr["plain"])) / steps * 1e3 - added
            analysis.append(
                f"- Tracing adds about {extra:+.1f} ms per step on top ({results[True]['spans_per_run'] / steps:.0f} "
                "spans per step: SDK span creation with attributes, the BatchSpanProcessor queue and its export "
                "thread competing for the GIL)."
            )
    notes = [
        f"{steps} steps per run ({size['questions']} questions x K={size['k']} per step, validation of "
        f"{size['val_questions']} every 2nd step, step 2 raises once and is retried) = {res['samples_per_run']} "
        f"samples per run; {size['reps']} interleaved repetitions after one warm-up.",
        "Overhead: median of per-repetition ratios; IQR across repetitions; A/A noise: median |second "
        "uninstrumented run / first − 1|. Per step / per sample: difference of the medians. CPU-time "
        "overhead: process CPU time of the trainer process (all its threads), instrumented / uninstrumented − 1.",
        "otel-grpo writes its rows into the trainer's offline WandB run (attach); the uninstrumented "
        "runs detach otel-grpo (and its HTTP hooks) so they pay nothing for it.",
    ]
    return {
        "title": "5. End to end: shape trainer",
        "params": size,
        "columns": [
            "variant",
            "uninstrumented s (median)",
            "instrumented s (median)",
            "overhead",
            "overhead IQR",
            "A/A noise",
            "ms per step",
            "µs per sample",
            "CPU-time overhead",
        ],
        "rows": rows,
        "goals": goals,
        "notes": notes,
        "tables": tables,
        "analysis": analysis,
        "profiles": profiles,
        "raw": {str(k): {"wall_s": v["times"], "cpu_s": v["cpu"]} for k, v in results.items()},
    }


if __name__ == "__main__":
    common.worker_main({"worker": worker, "run": run})
