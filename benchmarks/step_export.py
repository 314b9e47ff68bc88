"""2. Step-end export latency: window close (its summary) + rollup + WandB write (offline run).

For each size, one training step records that many samples (the full key set: seven
sources, executor cost and latency, a judge evaluation and request on every fourth
sample, GRPO groups, trainer scalars), untimed; then the step's ``__exit__`` is timed:
closing the window (its frozen summary, with a snapshot of the run totals), the rollup of
that summary into the row and ``run.log`` into an offline WandB run. Sizes are interleaved.
For reference, the step end of the design document's Option A (numpy over the step's lists) and Option B
(``get_wandb_logs`` over the kept results) on the same samples is timed too.
"""

from __future__ import annotations

import time
from typing import Any

from benchmarks import common, workload
from benchmarks.baselines import MetricsCollector, option_a_collect, option_a_rollup

SMOKE = {"sizes": [100, 1_000, 10_000], "reps": 3}
FULL = {"sizes": [100, 10_000, 100_000], "reps": 9}
GOAL_MS = 5.0
FLAT = 1.5  # largest size's median within this factor of the smallest's


def _option_a_end(step: int, batch: list[tuple]) -> float:
    rewards, dataset_stats, ptype_stats = option_a_collect(batch)
    t0 = time.perf_counter()
    option_a_rollup(step, rewards, dataset_stats, ptype_stats, {"cost": 0.0, "calls": 0})
    return time.perf_counter() - t0


def _option_b_end(step: int, batch: list[tuple]) -> float:
    collector = MetricsCollector()
    for source, ptype, reward, correctness, cost, _qid in batch:
        collector.add_sample(
            {"source": source, "problem_type": ptype}, {"reward": reward, "correctness": correctness, "cost": cost}
        )
    t0 = time.perf_counter()
    collector.get_wandb_logs(step)
    return time.perf_counter() - t0


def _profiled_step_ends(otel_grpo: Any, state: dict, batch: list[tuple], count: int) -> Any:
    """cProfile ``count`` step ends (the recording before each is not profiled)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    for _ in range(count):
        state["step"] += 1
        scope = otel_grpo.step(state["step"])
        scope.__enter__()
        workload.record_train_samples(batch)
        prof.enable()
        scope.__exit__(None, None, None)
        prof.disable()
    return pstats.Stats(prof)


CONFIGS = {"default": {}, "tables_off": {"dashboard": {"table_every": 0, "sample_table_rows": 0}}}
GOAL_INTERCEPT_MS = 2.0
PARTS = (
    ("window close (commit the step, its summary and a snapshot of the run totals)", "close"),
    ("rollup (the row from the summary)", "rollup"),
    ("tables (WandB Table objects, when due)", "tables"),
    ("run.log (hand the row to wandb-core)", "log"),
)


class _PartTimer:
    """Times the stages of each step end by wrapping the objects that run them (this process only)."""

    def __init__(self, otel_grpo: Any, tel: Any) -> None:
        import otel_grpo.exporters.wandb_exporter as wandb_exporter

        self.totals: dict[str, float] = {key: 0.0 for _, key in PARTS}
        self.steps = 0
        self._restore: list[tuple[Any, str, Any]] = []
        self._wrap(tel.recorder, "close_window", "close")
        self._wrap(wandb_exporter, "window_row", "rollup")
        self._wrap(tel.exporter, "_extras", "tables")
        run = tel.exporter.start()
        if run is not None:
            self._wrap(run, "log", "log")

    def _wrap(self, owner: Any, name: str, part: str) -> None:
        original = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.totals[part] += time.perf_counter() - t0

        self._restore.append((owner, name, original))
        setattr(owner, name, timed)

    def close(self) -> None:
        for owner, name, original in reversed(self._restore):
            setattr(owner, name, original)


def _parts(otel_grpo: Any, tel: Any, state: dict, batch: list[tuple], count: int) -> dict[str, float]:
    """Mean ms per step end of each stage over ``count`` step ends (and the whole step end, ``total``)."""
    timer = _PartTimer(otel_grpo, tel)
    total = 0.0
    try:
        for _ in range(count):
            state["step"] += 1
            scope = otel_grpo.step(state["step"])
            scope.__enter__()
            workload.record_train_samples(batch)
            t0 = time.perf_counter()
            scope.__exit__(None, None, None)
            total += time.perf_counter() - t0
    finally:
        timer.close()
    out = {key: timer.totals[key] / count * 1e3 for _, key in PARTS}
    out["total"] = total / count * 1e3
    return out


def _intercept(ms: dict[int, list[float]]) -> tuple[float, float]:
    """Least-squares (intercept ms, slope µs per sample) of the median step-end time on samples per step.

    Medians, not every repetition: a step that logs a table (every ``table_every`` steps) is an
    outlier that would tilt the line and move the intercept either way.
    """
    xs = list(ms)
    ys = [common.median(values) for values in ms.values()]
    mean_x, mean_y = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0
    return mean_y - slope * mean_x, slope * 1e3


def _measure_config(
    otel_grpo: Any, wandb_overrides: dict, sizes: list[int], reps: int, batches: dict[int, list], profile: bool
) -> dict[str, Any]:
    """Set up otel-grpo with an offline run, time interleaved step ends, optionally profile them."""
    tmp = common.scratch_dir("wandb")
    tel = otel_grpo.setup({}, wandb={"mode": "offline", "dir": tmp, "project": "otel-grpo-bench", **wandb_overrides})
    tel.exporter.start()  # wandb.init is not part of any step end
    state = {"step": 0}

    def one_step(n: int) -> float:
        state["step"] += 1
        scope = otel_grpo.step(state["step"])
        scope.__enter__()
        workload.record_train_samples(batches[n])
        otel_grpo.record_scalars(loss=0.5, kl_div=0.01, temperature=0.9)
        t0 = time.perf_counter()
        scope.__exit__(None, None, None)
        return time.perf_counter() - t0

    for n in sizes:  # warm-up: first row, lazily built structures
        one_step(n)
    times = common.interleave({str(n): (lambda n=n: one_step(n)) for n in sizes}, reps=reps, warmup=0)
    out: dict[str, Any] = {
        "ms": {n: [t * 1e3 for t in times[str(n)]] for n in sizes},
        "keys": len(tel.rows[-1]) if tel.rows else 0,
        "written": tel.exporter.health.get("rows_written", 0),
        "dropped": tel.exporter.health.get("rows_dropped", 0),
    }
    out["parts"] = _parts(otel_grpo, tel, state, batches[sizes[0]], count=max(reps, 5))
    if profile:
        breakdown = {}
        for n in sizes:
            stats = _profiled_step_ends(otel_grpo, state, batches[n], count=3)
            breakdown[n] = {k: v / 3 for k, v in common.self_time_by_group(stats, common.GROUPS).items()}
            if n == sizes[-1]:
                out["profile"] = common.format_stats(stats, top=18)
        out["breakdown"] = breakdown
    tel.shutdown()
    return out


def run(params: dict[str, Any]) -> dict[str, Any]:
    """Section 2 (runs inside its own process): the default configuration, then tables off."""
    import otel_grpo

    size = SMOKE if params.get("smoke") else FULL
    sizes, reps = size["sizes"], size["reps"]
    batches = {n: common.make_samples(n, seed=n) for n in sizes}
    res = {
        name: _measure_config(otel_grpo, overrides, sizes, reps, batches, profile=name == "default")
        for name, overrides in CONFIGS.items()
    }
    a_ms = {n: common.median([_option_a_end(1, batches[n]) * 1e3 for _ in range(3)]) for n in sizes}
    b_ms = {n: common.median([_option_b_end(1, batches[n]) * 1e3 for _ in range(3)]) for n in sizes}
    ms, off = res["default"]["ms"], res["tables_off"]["ms"]
    rows = []
    for n in sizes:
        rows.append(
            [
                f"{n:,}",
                common.fmt(common.median(ms[n]), 2),
                common.fmt(common.quantile(ms[n], 0.95), 2),
                common.fmt(common.median(off[n]), 2),
                common.fmt(common.quantile(off[n], 0.95), 2),
                common.fmt(a_ms[n], 2),
                common.fmt(b_ms[n], 2),
            ]
        )
    medians = [common.median(ms[n]) for n in sizes]
    off_medians = [common.median(off[n]) for n in sizes]
    worst = max(medians)
    flat = medians[-1] / medians[0] if medians[0] > 0 else float("inf")
    off_flat = off_medians[-1] / off_medians[0] if off_medians[0] > 0 else float("inf")
    off_worst = max(off_medians)
    intercept, slope = _intercept(ms)
    off_intercept, off_slope = _intercept(off)
    goals = [
        common.goal(
            "per-step intercept (median step-end time regressed on samples per step, default config)",
            f"<= {GOAL_INTERCEPT_MS:g} ms",
            f"{intercept:.2f} ms (slope {slope:+.4f} µs/sample; tables off: {off_intercept:.2f} ms, "
            f"{off_slope:+.4f} µs/sample)",
            intercept <= GOAL_INTERCEPT_MS,
        ),
        common.goal(
            "step-end latency, default config (median, every size)",
            f"< {GOAL_MS:g} ms",
            f"{worst:.2f} ms at worst (tables off: {off_worst:.2f} ms)",
            worst < GOAL_MS,
        ),
        common.goal(
            "flat in samples per step (both configs)",
            f"{sizes[-1]:,} within {FLAT:g}x of {sizes[0]:,}",
            f"{flat:.2f}x default, {off_flat:.2f}x tables off",
            max(flat, off_flat) <= FLAT,
        ),
    ]
    profiles, tables = [], []
    parts = {name: res[name]["parts"] for name in CONFIGS}
    tables.append(
        {
            "title": f"Where a step end's time goes at {sizes[0]:,} samples (ms per step end, mean of timed "
            "stages; the rest of the total is the step scope itself)",
            "columns": ["stage", *(f"{name}: ms" for name in CONFIGS), *(f"{name}: share" for name in CONFIGS)],
            "rows": [
                [
                    label,
                    *(f"{parts[name][key]:.3f}" for name in CONFIGS),
                    *(f"{100 * parts[name][key] / parts[name]['total']:.0f}%" for name in CONFIGS),
                ]
                for label, key in (*PARTS, ("whole step end", "total"))
            ],
        }
    )
    breakdown = res["default"].get("breakdown", {})
    if breakdown and not all(g["met"] for g in goals):
        labels = [k for k in breakdown[sizes[-1]] if max(b[k] for b in breakdown.values()) >= 5e-5]
        tables.append(
            {
                "title": "Default config: profiled self time per step end by component, ms (standard "
                "library and builtins charged to their callers; cProfile inflates Python code)",
                "columns": ["samples/step", *labels, "total"],
                "rows": [
                    [f"{n:,}", *(f"{b[k] * 1e3:.2f}" for k in labels), f"{sum(b.values()) * 1e3:.2f}"]
                    for n, b in breakdown.items()
                ],
            }
        )
        profiles.append(
            {
                "title": f"3 step ends after {sizes[-1]:,} samples each, default config",
                "text": res["default"]["profile"],
            }
        )
    from otel_grpo.config import load_config

    dashboard = load_config({}).wandb.dashboard
    analysis = []
    if not all(g["met"] for g in goals):
        off_small = common.median(off[sizes[0]])
        off_big = common.median(off[sizes[-1]])
        if medians[0] > 1.2 * off_small:
            analysis.append(
                f"- WandB tables: with the default config a step end takes {medians[0]:.1f} ms at {sizes[0]:,} "
                f"samples, {off_small:.1f} ms with tables off: the difference is wandb serialising each wandb.Table "
                "to a JSON file in the run directory (mkdir, open, fsync) and adding artifact and file records."
            )
        if off_big > FLAT * off_small:
            analysis.append(
                f"- Growth with samples (tables off: {off_small:.1f} ms at {sizes[0]:,} → {off_big:.1f} ms at "
                f"{sizes[-1]:,}): part of the step end scales with the samples of the step (for example a loop "
                "over the window's GRPO groups in Recorder.close_window); the profile shows which lines."
            )
        analysis.append(
            f"- What stays ({off_small:.1f} ms with tables off at {sizes[0]:,} samples), stage by stage in the "
            "table above: the window's close (its summary and the snapshot of the run totals, under the "
            "recorder's lock), the rollup of that summary, and run.log handing the row to wandb-core "
            "over its socket. run.log stays on the step path: the row's own exporter/rows_written and "
            "rows_dropped are exact only when the write has happened before the next row is built."
        )
    notes = [
        f"{reps} interleaved repetitions per size after one warm-up step each; each configuration has its own "
        "offline WandB run, started before the first timed step; p95 over the repetitions.",
        f"Default config: the 'Dataset Statistics' WandB table every {dashboard.table_every} step(s), the "
        f"per-sample table with {dashboard.sample_table_rows} rows per step (wandb.dashboard.table_every, "
        "sample_table_rows); 'tables off' sets both to 0. Steps that log a table show in the p95 column.",
        f"Rows carry {res['default']['keys']} keys; rows written / dropped: {res['default']['written']} / "
        f"{res['default']['dropped']} (default), {res['tables_off']['written']} / {res['tables_off']['dropped']} "
        "(tables off).",
        "Option A / Option B columns: only their step-end computation on the same samples (no WandB "
        "write), for reference: their cost grows with the samples kept.",
    ]
    return {
        "title": "2. Step-end export latency",
        "params": {"sizes": sizes, "reps": reps},
        "columns": [
            "samples/step",
            "default: median ms",
            "default: p95 ms",
            "tables off: median ms",
            "tables off: p95 ms",
            "Option A step end ms",
            "Option B step end ms",
        ],
        "rows": rows,
        "goals": goals,
        "notes": notes,
        "tables": tables,
        "analysis": analysis,
        "profiles": profiles,
        "raw": {name: {"ms": {str(n): v for n, v in r["ms"].items()}, "parts": r["parts"]} for name, r in res.items()}
        | {"option_a_ms": a_ms, "option_b_ms": b_ms},
    }


if __name__ == "__main__":
    common.worker_main({"run": run})
