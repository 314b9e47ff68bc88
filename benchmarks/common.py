"""Shared helpers: workload, timing, statistics, profiles, subprocess workers, machine info."""

from __future__ import annotations

import argparse
import atexit
import contextlib
import cProfile
import gc
import json
import os
import platform
import pstats
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SHAPE_DIR = REPO_ROOT / "tests" / "shape_trainer"

SOURCES = ("gsm8k", "math", "humaneval", "mbpp", "hotpotqa", "commonsenseqa", "mmlu")
PTYPE = {
    "gsm8k": "math",
    "math": "math",
    "humaneval": "code",
    "mbpp": "code",
    "hotpotqa": "qa",
    "commonsenseqa": "qa",
    "mmlu": "qa",
}
REWARDS = (0.0, 0.2, 0.4, 0.7, 1.0)
THRESHOLD = 0.9

_ENV_PREFIXES = ("WANDB_", "OTEL_")


# --- workload ------------------------------------------------------------------------------
def make_samples(n: int, seed: int = 0, k: int = 4) -> list[tuple]:
    """``n`` samples ``(source, problem_type, reward, correctness, cost, question_id)``.

    Sources cycle through the seven datasets, ``k`` consecutive samples share a question
    (a GRPO group), rewards are the trainer's graded values, costs are floats in USD.
    """
    rng = random.Random(seed)
    out = []
    for i in range(n):
        source = SOURCES[(i // k) % len(SOURCES)]
        reward = rng.choice(REWARDS)
        out.append((source, PTYPE[source], reward, reward, round(rng.uniform(0.001, 0.05), 4), f"q{i // k}"))
    return out


# --- statistics ----------------------------------------------------------------------------
def median(values: list[float]) -> float:
    """Median (0.0 for an empty list)."""
    return float(statistics.median(values)) if values else 0.0


def quantile(values: list[float], q: float) -> float:
    """Linear-interpolated ``q`` quantile."""
    if not values:
        return 0.0
    data = sorted(values)
    pos = (len(data) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(data) - 1)
    return float(data[lo] + (data[hi] - data[lo]) * (pos - lo))


def iqr(values: list[float]) -> tuple[float, float]:
    """(25th, 75th) percentiles."""
    return quantile(values, 0.25), quantile(values, 0.75)


def interleave(variants: dict[str, Callable[[], float]], reps: int, warmup: int = 1) -> dict[str, list[float]]:
    """Run every variant ``reps`` times, rotating the order each repetition.

    Each callable returns the seconds it measured itself. ``warmup`` rounds are run
    first and thrown away; a full ``gc.collect()`` precedes every measured call.
    """
    names = list(variants)
    times: dict[str, list[float]] = {name: [] for name in names}
    for rep in range(warmup + reps):
        shift = rep % len(names)
        for name in names[shift:] + names[:shift]:
            gc.collect()
            elapsed = variants[name]()
            if rep >= warmup:
                times[name].append(elapsed)
    return times


# --- profiles ------------------------------------------------------------------------------
def _short_path(path: str) -> str:
    for marker in ("site-packages/", str(REPO_ROOT) + "/", "/lib/python3"):
        idx = path.find(marker)
        if idx >= 0:
            return path[idx + len(marker) :] if marker != "/lib/python3" else "stdlib" + path[idx + len(marker) + 3 :]
    return path


# Where instrumentation time goes: source files grouped (first match wins).
GROUPS: dict[str, tuple[str, ...]] = {
    "otel-grpo wrappers": (
        "otel_grpo/instrumentation/wrapping.py",
        "otel_grpo/instrumentation/roles.py",
        "otel_grpo/instrumentation/calls.py",
        "otel_grpo/instrumentation/judge_call.py",
        "otel_grpo/instrumentation/pairing.py",
        "otel_grpo/instrumentation/patching.py",
    ),
    "otel-grpo HTTP hooks": ("otel_grpo/instrumentation/llm_http/",),
    "otel-grpo tables": ("exporters/tables.py",),
    "otel-grpo recorder + API": ("otel_grpo/",),
    "rollup + WandB exporter": ("exporters/",),
    "OTel metrics SDK": ("opentelemetry/sdk/metrics",),
    "OTel other (spans, context, attributes)": ("opentelemetry/",),
    "wrapt": ("wrapt/",),
    "wandb": ("wandb/",),
}


def group_table(before: dict[str, float], after: dict[str, float], per: float, unit: str) -> list[list[str]]:
    """Rows (group, without, with, added) of self time per ``per`` units, largest addition first."""
    scale = 1e3 if unit == "ms" else 1e6
    rows = []
    for label in sorted(after, key=lambda k: -(after[k] - before.get(k, 0.0))):
        b, a = before.get(label, 0.0) * scale / per, after[label] * scale / per
        if max(a, b) >= 0.005:
            rows.append([label, f"{b:,.2f}", f"{a:,.2f}", f"{a - b:+,.2f}"])
    total_b = sum(before.values()) * scale / per
    total_a = sum(after.values()) * scale / per
    rows.append(["total (profiled)", f"{total_b:,.2f}", f"{total_a:,.2f}", f"{total_a - total_b:+,.2f}"])
    return rows


def top_added(before: dict[str, float], after: dict[str, float], per: float, unit: str, count: int = 4) -> str:
    """'A +x, B +y, ...': the components that grew most between two grouped profiles."""
    scale = 1e3 if unit == "ms" else 1e6
    added = sorted(((after[k] - before.get(k, 0.0)) * scale / per, k) for k in after if k != "other")
    return ", ".join(f"{label} {value:+,.1f} {unit}" for value, label in reversed(added[-count:]) if value > 0)


def profile_stats(fn: Callable[[], Any]) -> pstats.Stats:
    """cProfile ``fn()``; its statistics."""
    prof = cProfile.Profile()
    prof.enable()
    try:
        fn()
    finally:
        prof.disable()
    return pstats.Stats(prof)


def _is_shared(path: str) -> bool:
    """Builtins and the standard library: their time belongs to whoever called them."""
    return path == "~" or path.startswith("<frozen") or ("/lib/python3" in path and "site-packages" not in path)


def self_time_by_group(stats: pstats.Stats, groups: dict[str, tuple[str, ...]]) -> dict[str, float]:
    """Self time (seconds) per group of source files.

    ``groups`` maps a label to path substrings (first match wins). Builtins and standard
    library functions are charged to the groups of their callers, in proportion to the
    time spent on each call edge, transitively; what is left is ``other``.
    """
    table = stats.stats  # type: ignore[attr-defined]
    memo: dict[tuple, dict[str, float]] = {}

    def own_group(path: str) -> str | None:
        for label, needles in groups.items():
            if any(n in path for n in needles):
                return label
        return None if _is_shared(path) else "other"

    def shares(func: tuple, seen: frozenset) -> dict[str, float]:
        if func in memo:
            return memo[func]
        label = own_group(func[0])
        if label is not None:
            result = {label: 1.0}
        elif func in seen or func not in table or not table[func][4]:
            result = {"other": 1.0}
        else:
            callers = table[func][4]
            weights = {c: (edge[2] or 1e-12) for c, edge in callers.items()}
            total = sum(weights.values())
            result = {}
            for caller, weight in weights.items():
                for lab, share in shares(caller, seen | {func}).items():
                    result[lab] = result.get(lab, 0.0) + share * weight / total
        memo[func] = result
        return result

    out: dict[str, float] = {label: 0.0 for label in groups}
    out["other"] = 0.0
    for func, (_cc, _nc, tottime, _ct, _callers) in table.items():
        for label, share in shares(func, frozenset()).items():
            out[label] += tottime * share
    return out


def profile(fn: Callable[[], Any], top: int = 15, sort: str = "tottime") -> str:
    """cProfile ``fn()`` and return a fixed-width summary of the ``top`` entries."""
    return format_stats(profile_stats(fn), top, sort)


def format_stats(stats: pstats.Stats, top: int = 15, sort: str = "tottime") -> str:
    """A fixed-width summary of the ``top`` entries of ``stats``."""
    entries = []
    for (path, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        where = f"{_short_path(path)}:{line}({name})" if line else name
        entries.append((tottime, cumtime, ncalls, where))
    key = 0 if sort == "tottime" else 1
    entries.sort(key=lambda e: e[key], reverse=True)
    total = stats.total_tt  # type: ignore[attr-defined]
    lines = [
        f"total {total * 1e3:.1f} ms, sorted by {sort}",
        f"{'ncalls':>9} {'tottime ms':>10} {'cumtime ms':>10}  function",
    ]
    for tottime, cumtime, ncalls, where in entries[:top]:
        lines.append(f"{ncalls:>9} {tottime * 1e3:>10.2f} {cumtime * 1e3:>10.2f}  {where}")
    return "\n".join(lines)


# --- process helpers -----------------------------------------------------------------------
def rss_bytes() -> int:
    """Resident set size of this process, from /proc (falls back to ru_maxrss)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def scratch_dir(prefix: str) -> str:
    """A temporary directory removed when this process exits (WandB run directories)."""
    path = tempfile.mkdtemp(prefix=f"otel-grpo-bench-{prefix}-")
    atexit.register(shutil.rmtree, path, True)
    return path


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without WANDB_*/OTEL_* variables, WandB silent, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_ENV_PREFIXES)}
    env["WANDB_SILENT"] = "true"
    env["PYTHONUNBUFFERED"] = "1"
    pythonpath = env.get("PYTHONPATH", "")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), pythonpath) if p)
    env.update(extra)
    return env


def run_worker(
    module: str, function: str, params: dict[str, Any], timeout: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``function(params)`` of ``benchmarks.<module>`` in a fresh interpreter; its JSON result.

    Raises RuntimeError with the child's stderr tail if it fails or times out.
    """
    with tempfile.TemporaryDirectory(prefix="otel-grpo-bench-") as tmp:
        out = Path(tmp) / "result.json"
        cmd = [
            sys.executable,
            "-m",
            f"benchmarks.{module}",
            function,
            "--params",
            json.dumps(params),
            "--json-out",
            str(out),
        ]
        try:
            proc = subprocess.run(cmd, cwd=tmp, env=env or clean_env(), capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            raise RuntimeError(f"benchmarks.{module} {function} timed out after {timeout:.0f}s") from exc
        if proc.returncode != 0 or not out.exists():
            tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-25:])
            raise RuntimeError(f"benchmarks.{module} {function} exited {proc.returncode}:\n{tail}")
        return json.loads(out.read_text())


def worker_main(functions: dict[str, Callable[[dict[str, Any]], dict[str, Any]]]) -> None:
    """Entry point of a benchmark module run as ``python -m benchmarks.X FUNCTION --params JSON``."""
    parser = argparse.ArgumentParser()
    parser.add_argument("function", choices=sorted(functions))
    parser.add_argument("--params", default="{}")
    parser.add_argument("--json-out", required=True)
    args = parser.parse_args()
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    result = functions[args.function](json.loads(args.params))
    Path(args.json_out).write_text(json.dumps(result, default=float))


@contextlib.contextmanager
def otel_grpo_off() -> Iterator[None]:
    """Make the process look as if otel-grpo were never set up, then restore it.

    Used for the *uninstrumented* side of a comparison run in the same process as the
    instrumented side: the current :class:`~otel_grpo.api.Telemetry` handle is detached
    (every hook becomes a single ``get_telemetry()`` lookup) and the process-wide HTTP
    hooks are removed, so only the trainer's own work is timed.
    """
    from otel_grpo import api

    tel = api.get_telemetry()
    http = None
    try:
        from otel_grpo.instrumentation import llm_http as http
    except ImportError:
        http = None
    http_on = bool(http is not None and getattr(http, "is_http_instrumented", lambda: False)())
    if http_on:
        http.uninstrument_http()
    api._current = None
    try:
        yield
    finally:
        api._current = tel
        if http_on:
            http.instrument_http(api.get_telemetry)


class JudgeProcess:
    """The demo :class:`~otel_grpo.tools.demo.judge_server.JudgeServer` in its own process, on loopback.

    A separate process so the server does not compete with the measured trainer for the
    GIL; it exits when its stdin closes.
    """

    def __init__(self, schedule: list[str] | None = None) -> None:
        self.schedule = schedule
        self.proc: subprocess.Popen | None = None
        self.port = 0

    @property
    def url(self) -> str:
        """OpenAI base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> JudgeProcess:
        cmd = [sys.executable, "-m", "benchmarks.judge_proc"]
        if self.schedule:
            cmd += ["--schedule", ",".join(self.schedule)]
        self.proc = subprocess.Popen(
            cmd, cwd=str(REPO_ROOT), env=clean_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        line = self.proc.stdout.readline() if self.proc.stdout else ""
        if not line.startswith("PORT "):
            self.__exit__()
            raise RuntimeError(f"judge server did not start: {line!r}")
        self.port = int(line.split()[1])
        return self

    def __exit__(self, *exc: object) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin:
                proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


# --- the machine ---------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def code_fingerprint() -> str:
    """A hash of the code under test (otel_grpo/, exporters/, the shape trainer): did it change mid-run?"""
    import hashlib

    digest = hashlib.sha256()
    for folder in ("otel_grpo", "exporters", "tests/shape_trainer"):
        for path in sorted((REPO_ROOT / folder).rglob("*")):
            if path.suffix in (".py", ".yaml") and path.is_file():
                digest.update(str(path.relative_to(REPO_ROOT)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def load_average() -> str:
    """The 1-minute load average (other work on the machine skews timings)."""
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except OSError:
        return "n/a"


def machine_info() -> dict[str, Any]:
    """CPU model, core count, OS, Python and the versions of the packages measured."""
    dirty = [line.split(None, 1)[-1] for line in _git("status", "--porcelain", "--untracked-files=no").splitlines()]
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": {
            name: _version(name)
            for name in (
                "otel-grpo",
                "opentelemetry-sdk",
                "opentelemetry-api",
                "wandb",
                "numpy",
                "openai",
                "httpx",
                "wrapt",
            )
        },
        "git": (
            _git("rev-parse", "--short", "HEAD") + (f" + uncommitted changes to {', '.join(dirty)}" if dirty else "")
        )
        or "unknown",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "code": code_fingerprint(),
    }


# --- result building -----------------------------------------------------------------------
def goal(name: str, target: str, measured: str, met: bool | None) -> dict[str, Any]:
    """One goal line: ``met`` is None when the figure could not be measured."""
    return {"name": name, "target": target, "measured": measured, "met": met}


def fmt(value: float, digits: int = 2) -> str:
    """A number with ``digits`` decimals (thousands separated)."""
    return f"{value:,.{digits}f}"
