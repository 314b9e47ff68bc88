"""``python -m benchmarks [--smoke] [--out benchmarks/RESULTS.md] [--only SECTION,...]``.

Runs every section in a fresh interpreter, one after the other, and writes the
Markdown report and ``results.json`` next to it. Without ``--out`` a full run writes
``benchmarks/RESULTS.md`` (the tracked results) and a ``--smoke`` run writes into a new
temporary directory, so a smoke run never overwrites the tracked results. Exits 1 when
a section failed to run (a missed goal is a result, not a failure).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from benchmarks import SECTIONS, common, report

TIMEOUT = {"smoke": 120, "full": 900}
TRACKED_RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
RAY = "ray"  # benchmarks.ray_overhead: in a full run when Ray is installed; in a smoke run only with --only ray
RAY_SIZES = {"smoke": ("2", "8", "2"), "full": ("5", "500", "8")}  # steps, workflows per step, actors


def _ray_run(mode: str, *args: str) -> str:
    root = Path(__file__).resolve().parent.parent
    cmd = [sys.executable, "-m", "benchmarks.ray_overhead", *args]
    proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, timeout=TIMEOUT[mode] * 2)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise RuntimeError(f"benchmarks.ray_overhead exited {proc.returncode}:\n{tail}")
    return proc.stdout


def ray_section(mode: str) -> tuple[str, dict]:
    """The Ray scale-out section (Markdown) and its goal line, measured by ``benchmarks.ray_overhead`` in its
    own processes; a full run adds the step end with a background task running."""
    steps, workflows, actors = RAY_SIZES[mode]
    with tempfile.TemporaryDirectory(prefix="otel-grpo-bench-ray-") as tmp:
        goal_path = Path(tmp) / "goal.json"
        text = _ray_run(
            mode, "--steps", steps, "--workflows", workflows, "--actors", actors, "--goal-json", str(goal_path)
        )
        goal = json.loads(goal_path.read_text(encoding="utf-8"))
    if mode == "full":
        text = text.rstrip("\n") + "\n\n" + _ray_run(mode, "--background", "--steps", "10", "--workflows", "32")
    return text, goal


def default_out(smoke: bool) -> Path:
    """Where the report goes without ``--out``: the tracked file for a full run, a temporary one for a smoke run."""
    if smoke:
        return Path(tempfile.mkdtemp(prefix="otel-grpo-bench-smoke-")) / "RESULTS.md"
    return TRACKED_RESULTS


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; returns the exit status."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, under a minute in total")
    parser.add_argument(
        "--out",
        default=None,
        help="Markdown report path; results.json is written next to it "
        "(default: benchmarks/RESULTS.md for a full run, a new temporary directory with --smoke)",
    )
    parser.add_argument("--only", default="", help=f"comma-separated subset of {','.join((*SECTIONS, RAY))}")
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "full"
    selected = [s.strip() for s in args.only.split(",") if s.strip()]
    if not selected:
        selected = list(SECTIONS)
        if not args.smoke and importlib.util.find_spec("ray") is not None:
            selected.append(RAY)
    unknown = [s for s in selected if s not in (*SECTIONS, RAY)]
    if unknown:
        parser.error(f"unknown sections {unknown}; choose from {', '.join((*SECTIONS, RAY))}")
    with_ray = RAY in selected
    selected = [s for s in selected if s != RAY]
    out = Path(args.out) if args.out else default_out(args.smoke)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = (
        "python -m benchmarks"
        + (" --smoke" if args.smoke else "")
        + (f" --out {args.out}" if args.out else "")
        + (f" --only {args.only}" if args.only else "")
    )
    started = time.perf_counter()
    machine = common.machine_info()
    sections = []
    failed = False
    for name in selected:
        t0 = time.perf_counter()
        load_start = common.load_average()
        print(f"[benchmarks] {name} ...", file=sys.stderr, flush=True)
        try:
            result = common.run_worker(name, "run", {"smoke": args.smoke}, timeout=TIMEOUT[mode])
        except Exception as exc:  # noqa: BLE001 - report the failure, run the other sections
            failed = True
            number = SECTIONS.index(name) + 1
            result = {"title": f"{number}. {name}", "error": f"{exc}\n{traceback.format_exc(limit=2)}"}
        result["section"] = name
        result["duration_s"] = time.perf_counter() - t0
        result["load"] = f"{load_start} / {common.load_average()} on {os.cpu_count()} cores"
        print(f"[benchmarks] {name} done in {result['duration_s']:.1f}s", file=sys.stderr, flush=True)
        sections.append(result)
    end = common.machine_info()
    if end["code"] != machine["code"]:
        machine["git_changed"] = end["git"]  # the code under test changed while the benchmarks ran
    results = {
        "mode": mode,
        "command": command,
        "machine": machine,
        "duration_s": time.perf_counter() - started,
        "sections": sections,
    }
    ray_text = ""
    if with_ray:
        print("[benchmarks] ray ...", file=sys.stderr, flush=True)
        try:
            ray_text, goal = ray_section(mode)
            results["extra_goals"] = [("Ray", goal)]
        except Exception as exc:  # noqa: BLE001 - report the failure, keep the other sections
            failed = True
            ray_text = f"## Ray scale-out overhead\n\nfailed: {exc}\n"
        results["duration_s"] = time.perf_counter() - started
    text = report.render(results)
    if ray_text:
        text = text.rstrip("\n") + "\n\n" + ray_text
    out.write_text(text, encoding="utf-8")
    json_path = out.with_name(out.stem.lower() + ".json")
    json_path.write_text(json.dumps(results, indent=1, default=float), encoding="utf-8")
    print(f"[benchmarks] wrote {out} and {json_path} in {results['duration_s']:.0f}s", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
