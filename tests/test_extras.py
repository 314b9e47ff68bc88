"""The lean core and its extras: a training process that only wants WandB rows imports no optional package.

Each scenario runs in a fresh Python process in which the optional packages are made
unimportable by a meta-path finder, as in a virtual environment where only
``pip install otel-grpo`` (no extras) was run. The WandB rows are read back from the
offline run on disk.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from otel_grpo import extras
from otel_grpo.tools.runreader import read_run

pytestmark = pytest.mark.slow  # starts real processes, servers or WandB runs

ROOT = Path(__file__).resolve().parent.parent

#: Every package an extra brings that the core must not need (top-level names and dotted prefixes).
OPTIONAL = (
    "matplotlib",
    "openai",
    "rich",
    "httpx",
    "wandb_workspaces",
    "grpc",
    "numpy",
    "prometheus_client",
    "ray",
    "opentelemetry.exporter.otlp",
    "opentelemetry.exporter.prometheus",
)

_BLOCKER = """
import sys

BLOCKED = {blocked!r}
ATTEMPTS = []


class _NotInstalled:
    '''Behaves as if the blocked distributions were not installed.'''

    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            ATTEMPTS.append(name)
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None


sys.meta_path.insert(0, _NotInstalled())
"""

_TRAINER = """
import asyncio
import json
import sys

import otel_grpo


class AFlowExecutor:
    async def execute_workflow(self, workflow, problem, problem_type, entry_point=None, test=None,
                               source=None, context=None):
        return "42", 0.01, {"success": True}


class RewardComputer:
    def compute_reward(self, problem, prediction, answer, problem_type, metadata=None, source=None):
        return 1.0 if prediction == answer else 0.0


class GRPOTrainer:
    def __init__(self):
        self.executor = AFlowExecutor()
        self.reward_computer = RewardComputer()

    async def train_step(self, step):
        answer, cost, meta = await self.executor.execute_workflow("wf", "q1", "math", source="gsm8k")
        reward = self.reward_computer.compute_reward("q1", answer, "42", "math", metadata=meta, source="gsm8k")
        return {"step": step, "loss": 1.0 / step, "avg_reward": reward}
"""


def _run(tmp_path: Path, body: str, *, blocked: tuple[str, ...] = OPTIONAL, args: tuple[str, ...] = ()):
    script = _BLOCKER.format(blocked=list(blocked)) + textwrap.dedent(body)
    path = tmp_path / "scenario.py"
    path.write_text(script)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "OTEL_"))}
    env.update(WANDB_SILENT="true", PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, str(path), *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180
    )


def _train_steps(run_dir: Path) -> list[float]:
    run = read_run(str(run_dir / "wandb"))
    return [row["train/step"] for row in run.history if "train/step" in row]


def test_core_alone_setup_and_instrument_trainer_write_wandb_rows(tmp_path: Path) -> None:
    """No optional package importable: setup(), instrument_trainer() and two steps write two rows."""
    proc = _run(
        tmp_path,
        _TRAINER
        + textwrap.dedent(
            """
        tel = otel_grpo.setup()
        after_setup = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in BLOCKED))
        trainer = otel_grpo.instrument_trainer(GRPOTrainer())
        for step in (1, 2):
            asyncio.run(trainer.train_step(step))
        tel.shutdown()
        loaded = sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in BLOCKED))
        print(json.dumps({"after_setup": after_setup, "loaded": loaded}))
        """
        ),
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report == {"after_setup": [], "loaded": []}
    assert "otel-grpo[" not in proc.stderr, proc.stderr  # nothing asked for an extra
    assert _train_steps(tmp_path) == [1, 2]


def test_setup_imports_no_optional_package_when_all_are_installed(tmp_path: Path) -> None:
    """With every extra installed, `import otel_grpo; otel_grpo.setup()` still loads none of them."""
    proc = _run(
        tmp_path,
        """
        import json
        import otel_grpo

        tel = otel_grpo.setup(wandb={"mode": "disabled"})
        optional = OPTIONAL
        print(json.dumps(sorted(m for m in sys.modules if any(m == b or m.startswith(b + ".") for b in optional))))
        tel.shutdown()
        """.replace("OPTIONAL", repr(OPTIONAL)),
        blocked=(),
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_otlp_without_its_extra_warns_once_and_rows_carry_on(tmp_path: Path, protocol: str) -> None:
    proc = _run(
        tmp_path,
        _TRAINER
        + textwrap.dedent(
            f"""
        tel = otel_grpo.setup(otlp={{"enabled": True, "endpoint": "http://127.0.0.1:9", "protocol": "{protocol}"}})
        trainer = otel_grpo.instrument_trainer(GRPOTrainer())
        for step in (1, 2, 3):
            asyncio.run(trainer.train_step(step))
        tel.shutdown()
        """
        ),
    )
    assert proc.returncode == 0, proc.stderr
    hints = [line for line in proc.stderr.splitlines() if "pip install 'otel-grpo[otlp]'" in line]
    assert len(hints) == 1, proc.stderr
    assert f"the OTLP exporter ({protocol}) needs the otlp extra" in hints[0]
    assert "WandB rows carry on without OTLP export" in hints[0]
    assert "Traceback" not in proc.stderr
    assert _train_steps(tmp_path) == [1, 2, 3]


def test_prometheus_without_its_extra_warns_once_and_rows_carry_on(tmp_path: Path) -> None:
    proc = _run(
        tmp_path,
        _TRAINER
        + textwrap.dedent(
            """
        tel = otel_grpo.setup(prometheus={"enabled": True, "port": 0})
        assert tel.prometheus_url is None
        trainer = otel_grpo.instrument_trainer(GRPOTrainer())
        for step in (1, 2):
            asyncio.run(trainer.train_step(step))
        tel.shutdown()
        """
        ),
    )
    assert proc.returncode == 0, proc.stderr
    hints = [line for line in proc.stderr.splitlines() if "pip install 'otel-grpo[prometheus]'" in line]
    assert len(hints) == 1, proc.stderr
    assert "the Prometheus endpoint needs the prometheus extra" in hints[0]
    assert "Traceback" not in proc.stderr
    assert _train_steps(tmp_path) == [1, 2]


def test_dashboard_command_without_its_extra_exits_2_with_the_pip_line(tmp_path: Path) -> None:
    proc = _run(
        tmp_path,
        """
        from otel_grpo.tools.dashboards.wandb_workspace import main

        sys.exit(main(["--dry-run", "--project", "p"]))
        """,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        "otel-grpo: otel-grpo dashboard needs the dashboards extra: pip install 'otel-grpo[dashboards]' "
        "(No module named 'wandb_workspaces')"
    ]


def test_missing_extra_error_is_one_line_naming_the_extra() -> None:
    with pytest.raises(extras.MissingExtraError) as caught:
        extras.require("otel_grpo_no_such_module", extra="report", feature="otel-grpo report")
    message = str(caught.value)
    assert message == (
        "otel-grpo: otel-grpo report needs the report extra: pip install 'otel-grpo[report]' "
        "(No module named 'otel_grpo_no_such_module')"
    )
    assert "\n" not in message
    assert isinstance(caught.value, ImportError)  # `except ImportError` still catches it
    assert caught.value.extra == "report"
    assert extras.require("json", extra="report", feature="x").__name__ == "json"


def test_require_extra_checks_without_importing(tmp_path: Path) -> None:
    proc = _run(
        tmp_path,
        """
        from otel_grpo import extras

        extras.require_extra("report", feature="otel-grpo report", modules=["json"])
        try:
            extras.require_extra("demo", feature="otel-grpo demo")
        except extras.MissingExtraError as exc:
            print(exc)
        print("openai" in sys.modules, "rich" in sys.modules)
        """,
        blocked=("openai",),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "otel-grpo: otel-grpo demo needs the demo extra: pip install 'otel-grpo[demo]' (No module named 'openai')",
        "False False",
    ]


def _pyproject() -> dict:
    tomllib = pytest.importorskip("tomllib")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _names(requirements: list[str]) -> set[str]:
    return {re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower().replace("_", "-") for r in requirements}


def test_core_dependencies_are_lean_and_every_extra_is_declared() -> None:
    project = _pyproject()["project"]
    core = _names(project["dependencies"])
    heavy = {
        "matplotlib",
        "openai",
        "rich",
        "httpx",
        "wandb-workspaces",
        "numpy",
        "opentelemetry-exporter-otlp-proto-grpc",
        "opentelemetry-exporter-otlp-proto-http",
        "opentelemetry-exporter-prometheus",
        "ray",
    }
    assert core & heavy == set()
    assert {"wandb", "opentelemetry-api", "opentelemetry-sdk", "wrapt", "pydantic", "pyyaml"} <= core
    optional = project["optional-dependencies"]
    assert set(extras.EXTRA_MODULES) <= set(optional)
    # [all] pulls in every extra; [test] every extra the tests import, so `pip install -e ".[test]"`
    # runs every test.
    pulled = {}
    for name in ("test", "all"):
        line = next(r for r in optional[name] if r.startswith("otel-grpo["))
        pulled[name] = set(line[len("otel-grpo[") : -1].split(","))
    assert pulled["all"] == set(extras.EXTRA_MODULES)
    assert pulled["test"] >= set(extras.EXTRA_MODULES) - {"ray"}
    imports_ray = re.compile(r"^\s*(import|from) ray\b", re.MULTILINE)
    tests_import_ray = any(imports_ray.search(f.read_text()) for f in (ROOT / "tests").rglob("*.py"))
    assert ("ray" in pulled["test"]) == tests_import_ray
