"""The demo's rows, key by key, at two commits: a change of the core must not change a number.

    python -m benchmarks.demo_rows --ref HEAD~3          # the working tree against a commit
    python -m benchmarks.demo_rows --ref A --other B     # two commits

Each tree is laid out as installed (``exporters/`` as ``otel_grpo.exporters``) in a temporary
folder and runs ``otel-grpo demo --seed S`` there (WandB offline); the rows otel-grpo wrote
are read back from disk and compared key by key (floats to 1e-9 relative). Keys that depend
on wall time or on the judge server's replies are left out: latency percentiles and tokens.
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from otel_grpo import keys
from otel_grpo.tools.runreader import read_run

TIMING_KEYS = ("latency", "_tokens")


def _layout(source: Path, where: Path) -> Path:
    """``source`` (a checkout) laid out as installed under ``where``."""
    shutil.copytree(source / "otel_grpo", where / "otel_grpo")
    shutil.copytree(source / "exporters", where / "otel_grpo" / "exporters")
    return where


def _checkout(ref: str, where: Path) -> Path:
    """Commit ``ref`` of this repository, extracted into ``where``."""
    top = Path(subprocess.check_output(["git", "rev-parse", "--show-toplevel"], text=True).strip())
    archive = subprocess.run(["git", "-C", str(top), "archive", ref], check=True, capture_output=True).stdout
    where.mkdir(parents=True)
    subprocess.run(["tar", "-x", "-C", str(where)], input=archive, check=True)
    return where


def demo_rows(tree: Path, seed: int, steps: int) -> list[dict]:
    """Run the demo of ``tree`` (installed layout) and return otel-grpo's rows, timing keys left out."""
    workdir = Path(tempfile.mkdtemp(prefix="demo-rows-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "OTEL_"))}
    env.update(PYTHONPATH=str(tree), WANDB_SILENT="true", COLUMNS="120")
    command = [sys.executable, "-m", "otel_grpo.tools.cli", "demo", "--seed", str(seed), "--steps", str(steps)]
    subprocess.run(command, cwd=workdir, env=env, check=True, capture_output=True, timeout=900)
    ours = tuple(keys.prefix(namespace) for namespace in keys.NAMESPACES)
    rows = []
    for row in read_run(workdir / "wandb").history:
        kept = {k: v for k, v in row.items() if k.startswith(ours) and not any(t in k for t in TIMING_KEYS)}
        if keys.STEP in kept:
            rows.append(kept)
    shutil.rmtree(workdir, ignore_errors=True)
    return rows


def differences(before: list[dict], after: list[dict]) -> list[str]:
    """Every key whose presence or value differs, row by row."""
    found = [] if len(before) == len(after) else [f"{len(before)} rows before, {len(after)} after"]
    for index, (old, new) in enumerate(zip(before, after, strict=False)):
        for key in sorted(set(old) | set(new)):
            if key not in old or key not in new:
                found.append(f"row {index}: {key} only {'before' if key in old else 'after'}")
            elif not _same(old[key], new[key]):
                found.append(f"row {index}: {key} {old[key]!r} -> {new[key]!r}")
    return found


def _same(a: object, b: object) -> bool:
    if isinstance(a, int | float) and isinstance(b, int | float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", required=True, help="the commit to compare with (before)")
    parser.add_argument("--other", help="a second commit (after); default: the working tree")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=12)
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="demo-rows-trees-"))
    try:
        before_tree = _layout(_checkout(args.ref, scratch / "before-src"), scratch / "before")
        after_source = _checkout(args.other, scratch / "after-src") if args.other else Path.cwd()
        after_tree = _layout(after_source, scratch / "after")
        before, after = demo_rows(before_tree, args.seed, args.steps), demo_rows(after_tree, args.seed, args.steps)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    found = differences(before, after)
    print(f"{len(before)} rows, {sum(map(len, before))} keys before; {len(after)} rows, {sum(map(len, after))} after")
    print("\n".join(found) if found else "identical, key by key (latency and token keys aside)")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
