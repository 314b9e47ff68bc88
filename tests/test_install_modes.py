"""The package installed as a user installs it, offline, in both install modes.

Each test makes a venv with ``--system-site-packages`` (the dependencies come from the
system), installs a copy of this checkout with ``pip install --no-deps
--no-build-isolation --no-index`` (regular) or the same with ``-e`` (editable), and checks
from a folder outside the checkout that the distribution claims no generic top-level
import name, that its entry point resolves, and that ``otel-grpo run`` leaves the
child's ``sys.path`` alone.

Building offline without build isolation needs setuptools with ``bdist_wheel`` (setuptools
>= 70.1, or the ``wheel`` package) in the system site-packages; without them the tests skip
and say so.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # starts real processes, servers or WandB runs

ROOT = Path(__file__).resolve().parent.parent
ENTRY_POINT = "otel_grpo.exporters.step_reader:StepMetricReader"
PIP_TIMEOUT_S = 300
RUN_TIMEOUT_S = 120
COPY_IGNORE = shutil.ignore_patterns(
    ".git",
    "__pycache__",
    "*.egg-info",
    "build",
    "dist",
    "wandb",
    ".venv",
    ".pytest_cache",
    ".ruff_cache",
    ".benchmarks",
    "*.pyc",
)

BUILD_CHECK = textwrap.dedent("""
    import json
    found = {"setuptools": None, "build_editable": False, "bdist_wheel": False}
    try:
        import setuptools
        import setuptools.build_meta as backend
        found["setuptools"] = setuptools.__version__
        found["build_editable"] = hasattr(backend, "build_editable")
    except Exception:
        pass
    try:
        from setuptools.command.bdist_wheel import bdist_wheel  # noqa: F401 - setuptools >= 70.1
        found["bdist_wheel"] = True
    except Exception:
        try:
            from wheel.bdist_wheel import bdist_wheel  # noqa: F401 - older setuptools + wheel
            found["bdist_wheel"] = True
        except Exception:
            pass
    print(json.dumps(found))
""")

INSPECT = textwrap.dedent("""
    import importlib, importlib.metadata as md, json, sys
    out = {"imports": {}}
    for name in ("exporters", "benchmarks", "tests"):
        try:
            module = importlib.import_module(name)
            out["imports"][name] = getattr(module, "__file__", None) or str(getattr(module, "__path__", ""))
        except ModuleNotFoundError:
            out["imports"][name] = None
    import otel_grpo
    import otel_grpo.exporters.rollup as rollup
    out["otel_grpo"] = otel_grpo.__file__
    out["rollup"] = rollup.__file__
    points = [ep for ep in md.entry_points(group="opentelemetry_metrics_exporter") if ep.name == "grpo_wandb"]
    out["entry_points"] = sorted({ep.value for ep in points})
    loaded = points[0].load() if points else None
    out["loaded"] = f"{loaded.__module__}:{loaded.__qualname__}" if loaded else None
    dist = md.distribution("otel-grpo")
    out["dist_path"] = str(dist.locate_file(""))
    out["dist_files"] = [str(f) for f in (dist.files or [])]
    finders = [str(dist.locate_file(f)) for f in (dist.files or []) if str(f).endswith("_finder.py")]
    out["editable_mapping"] = None
    if finders:
        namespace = {}
        source = open(finders[0], encoding="utf-8").read()
        exec(compile(source, finders[0], "exec"), namespace)
        out["editable_mapping"] = sorted(namespace.get("MAPPING", {}))
    print(json.dumps(out))
""")


def _env() -> dict[str, str]:
    """The environment without the checkout on PYTHONPATH and without pip/WandB/OTel settings."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("WANDB_", "OTEL_", "PYTEST_", "VIRTUAL_ENV")) and k != "PYTHONPATH"
    }
    kept = [
        p
        for p in os.environ.get("PYTHONPATH", "").split(os.pathsep)
        if p and not Path(p).resolve().is_relative_to(ROOT)
    ]
    if kept:
        env["PYTHONPATH"] = os.pathsep.join(kept)
    env["PIP_NO_INDEX"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["WANDB_SILENT"] = "true"
    return env


def _run(command: list[str], cwd: Path, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout, check=False)


MISSING_BUILD_TOOLS = (
    "invalid command 'bdist_wheel'",
    "No module named 'wheel'",
    "No module named 'setuptools'",
    "Cannot import 'setuptools.build_meta'",
)


def _install(tmp_path: Path, editable: bool) -> tuple[Path, Path]:
    """A venv with the checkout installed into it: returns (venv's python, a folder outside the checkout)."""
    venv = tmp_path / "venv"
    made = subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    tools = json.loads(_run([str(python), "-c", BUILD_CHECK], outside).stdout.strip().splitlines()[-1])
    if not tools["setuptools"] or not tools["bdist_wheel"] or (editable and not tools["build_editable"]):
        pytest.skip(
            "an offline --no-build-isolation install needs setuptools>=64 with bdist_wheel (setuptools>=70.1,"
            f" or the `wheel` package) in the system site-packages; found {tools}: "
            "`pip install 'setuptools>=70.1' wheel` in CI"
        )
    source = tmp_path / "otel-grpo-src"
    shutil.copytree(ROOT, source, ignore=COPY_IGNORE)
    command = [str(python), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    command += ["-e", str(source)] if editable else [str(source)]
    proc = _run(command, outside, timeout=PIP_TIMEOUT_S)
    output = proc.stdout + proc.stderr
    if proc.returncode != 0 and any(marker in output for marker in MISSING_BUILD_TOOLS):
        pytest.skip(f"build tools missing for an offline install: {output[-500:]}")
    assert proc.returncode == 0, output[-4000:]
    assert (venv / "bin" / "otel-grpo").exists(), "the console script was not installed"
    return python, outside


def _check_install(python: Path, outside: Path, editable: bool) -> None:
    proc = _run([str(python), "-c", INSPECT], outside)
    assert proc.returncode == 0, proc.stderr[-3000:]
    found = json.loads(proc.stdout.strip().splitlines()[-1])
    venv, source = python.parent.parent, outside.parent / "otel-grpo-src"
    where = source if editable else venv
    # The package and its export stage come from this install (not the system's copy, not the checkout).
    assert Path(found["otel_grpo"]).is_relative_to(where), found["otel_grpo"]
    assert Path(found["rollup"]).is_relative_to(where), found["rollup"]
    if not editable:
        assert Path(found["rollup"]).parent.name == "exporters"
        assert Path(found["rollup"]).parent.parent.name == "otel_grpo"
    # No generic top-level name: these imports fail.
    assert found["imports"] == {"exporters": None, "benchmarks": None, "tests": None}
    # What the distribution installs, by its own record.
    if editable:
        assert found["editable_mapping"], "no editable finder found"
        assert all(name.split(".")[0] == "otel_grpo" for name in found["editable_mapping"]), found["editable_mapping"]
    else:
        tops = {Path(f).parts[0] for f in found["dist_files"] if not f.startswith("..")}
        assert "otel_grpo" in tops
        assert all(top == "otel_grpo" or top.endswith(".dist-info") for top in tops), tops
    # The entry point of the step reader resolves.
    assert found["entry_points"] == [ENTRY_POINT]
    assert found["loaded"] == "otel_grpo.exporters.step_reader:StepMetricReader"
    # `otel-grpo run` gives the child the sys.path of the plain command.
    show = "import sys, json; print(json.dumps(sys.path))"
    plain = _run([str(python), "-c", show], outside)
    otel = _run([str(python.parent / "otel-grpo"), "run", "--", str(python), "-c", show], outside)
    assert plain.returncode == 0, plain.stderr[-2000:]
    assert otel.returncode == 0, otel.stderr[-2000:]
    plain_path = json.loads(plain.stdout.strip().splitlines()[-1])
    otel_path = json.loads(otel.stdout.strip().splitlines()[-1])
    assert otel_path == plain_path
    # The checkout itself is never a path entry (its top-level folders would shadow the user's).
    assert str(source.resolve()) not in {str(Path(p).resolve()) for p in otel_path if p}


def test_regular_install(tmp_path):
    python, outside = _install(tmp_path, editable=False)
    _check_install(python, outside, editable=False)


def test_editable_install(tmp_path):
    python, outside = _install(tmp_path, editable=True)
    _check_install(python, outside, editable=True)
