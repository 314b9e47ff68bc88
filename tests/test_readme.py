"""Every README code block a user would paste works in an empty project of their own.

The README's fenced blocks are run in order, as a new user would, in a temporary
project OUTSIDE this repository (no ``config/``, no repository on ``sys.path``), with
WandB offline and the project's trainer judging against a loopback judge server:

- ``bash``: each command line runs through ``bash`` in the project directory and must
  exit 0 without a traceback. Commands matched by :data:`SKIPPED_COMMANDS` (each with
  its reason) are not run; every other command is, so a new command in the README is
  tested by default. In ``a && b`` each command is matched on its own.
- ``python``: each block runs as a script in the project, after :data:`PRELUDE`, which
  gives it only what the README says the reader already has (their ``trainer``, and a
  ``step`` number in a loop of their own).
- ``yaml``: each block is written to a file and must pass ``otel-grpo check-config``.
- Blocks in any other language (or none: the architecture drawing) are not code to run.

A command or script that trains (``otel-grpo run``, ``opentelemetry-instrument``,
``otel-grpo demo``, every Python block) must leave a new offline WandB run whose rows
carry ``train/step`` and per-dataset keys, read back from disk.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

from otel_grpo import keys
from otel_grpo.tools.demo.judge_server import JudgeServer
from otel_grpo.tools.runreader import read_run

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
KEYS_DOC = REPO / "docs" / "keys.md"
PROBLEM_TYPES = ("math", "code", "qa")

SKIPPED_COMMANDS: tuple[tuple[str, str], ...] = (
    (r"^pip install\b", "installs into the environment and needs the network (the test runs the installed package)"),
    (r"^python -m pytest\b", "the test suite itself"),
    (r"^pre-commit\b", "a contributor's git hook set-up"),
    (r"^docker\b", "needs Docker"),
    (r"^wandb sync\b", "uploads to wandb.ai: needs the network and an account"),
    (r"--otlp-endpoint http://localhost:4318\b", "needs the Collector that `docker compose up` starts"),
    (r"^otel-grpo dashboard\b(?!.*--dry-run)", "creates a WandB workspace online: needs the network and an account"),
)
"""``(regex, reason)``: a command matching ``regex`` (searched in the command) is not run."""

TRAINING_COMMANDS = re.compile(r"^(otel-grpo (run|demo)\b|(\w+=\S+ )*opentelemetry-instrument\b)")
"""Commands that train, and so must leave a new WandB run."""

PRELUDE = """\
import asyncio  # noqa: F401
from grpo_trainer import GRPOTrainer

trainer = GRPOTrainer()  # the reader's own trainer
step = 1  # inside the reader's own loop
"""
"""What a README Python snippet may assume the reader already has."""

COMMAND_TIMEOUT_S = 240


@dataclass(frozen=True)
class Block:
    """One fenced code block of the README."""

    language: str
    text: str
    line: int  # 1-based line of the opening fence

    def label(self) -> str:
        return f"README.md:{self.line} ({self.language or 'plain'})"


def readme_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, in order."""
    blocks: list[Block] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = re.match(r"^(\s*)(`{3,}|~{3,})\s*([\w+-]*)", lines[i])
        if not opening:
            i += 1
            continue
        indent, fence, language = opening.groups()
        body: list[str] = []
        j = i + 1
        while j < len(lines) and not lines[j].strip().startswith(fence):
            body.append(lines[j][len(indent) :] if lines[j].startswith(indent) else lines[j])
            j += 1
        blocks.append(Block(language.lower(), "\n".join(body) + "\n", i + 1))
        i = j + 1
    return blocks


def shell_commands(block_text: str) -> list[str]:
    """Command lines of a shell block: comment-only lines dropped, ``\\`` continuations joined."""
    commands: list[str] = []
    pending = ""
    for raw in block_text.splitlines():
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        commands.append((pending + line.strip()).strip())
        pending = ""
    return commands


def skip_reason(command: str) -> str | None:
    """Why ``command`` is not run, or None when it is run."""
    for pattern, reason in SKIPPED_COMMANDS:
        if re.search(pattern, command):
            return reason
    return None


def without_comment(command: str) -> str:
    """The command without a trailing ``# comment`` (bash's rule: a ``#`` starting a word, outside quotes)."""
    quote = ""
    for i, char in enumerate(command):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or command[i - 1].isspace()):
            return command[:i].rstrip()
    return command.rstrip()


def runnable_part(command: str) -> tuple[str | None, list[str]]:
    """``(command to run or None, [skipped parts with reasons])`` for one ``a && b`` line."""
    parts = [part.strip() for part in without_comment(command).split(" && ")]
    kept: list[str] = []
    skipped: list[str] = []
    for part in parts:
        reason = skip_reason(part)
        if reason is None:
            kept.append(part)
        else:
            skipped.append(f"{part!r}: {reason}")
    return (" && ".join(kept) if kept else None), skipped


# --------------------------------------------------------------------------- the user's project
# A trainer of the shape docs/trainer-shape.md describes, as small as it gets.
PROJECT_FILES = {
    "aflow_executor.py": """
        import asyncio


        class AFlowExecutor:
            async def execute_workflow(self, workflow_code, problem, problem_type="math", **kwargs):
                await asyncio.sleep(0.001)
                answer = str(eval(problem["question"]))  # the "workflow": arithmetic
                return answer, 0.002, {"success": True, "execution_time": 0.001}
    """,
    "reward_computer.py": """
        import os
        import re

        import openai


        class RewardComputer:
            def __init__(self):
                url = os.environ.get("JUDGE_URL", "http://localhost:8002/v1")
                self.client = openai.OpenAI(base_url=url, api_key="sk-local", timeout=10.0, max_retries=0)
                self.eval_stats = {"total_evaluations": 0, "llm_judge_success": 0}

            def compute_reward(self, problem, prediction, ground_truth, problem_type="math",
                               metadata=None, test=None, entry_point=None, source=None):
                self.eval_stats["total_evaluations"] += 1
                if problem_type == "math":
                    return 1.0 if prediction.strip() == ground_truth else 0.0
                return 1.0 if self._llm_judge_compare(problem, prediction, ground_truth, problem_type, source) else 0.0

            def _llm_judge_compare(self, problem, prediction, ground_truth, problem_type, source=None):
                reply = self.client.chat.completions.create(
                    model="gpt-oss-120b",
                    messages=[{"role": "user", "content": f"Prediction: {prediction}\\nGround truth: {ground_truth}"}],
                )
                match = re.search(r"<true_false>(True|False)</true_false>", reply.choices[0].message.content or "")
                if match:
                    self.eval_stats["llm_judge_success"] += 1
                return bool(match) and match.group(1) == "True"
    """,
    "grpo_trainer.py": """
        import asyncio

        from aflow_executor import AFlowExecutor
        from reward_computer import RewardComputer

        PROBLEMS = [
            {"source": "gsm8k", "problem_type": "math", "question": "2 + 2", "answer": "4"},
            {"source": "math", "problem_type": "math", "question": "3 * 3", "answer": "9"},
            {"source": "hotpotqa", "problem_type": "qa", "question": "5 - 1", "answer": "4"},
        ]


        class GRPOTrainer:
            def __init__(self, k=2):
                self.k = k
                self.executor = AFlowExecutor()
                self.reward_computer = RewardComputer()

            def get_current_temperature(self, step):
                return 0.7

            async def _sample(self, problem):
                answer, cost, metadata = await self.executor.execute_workflow(
                    "workflow", problem, problem["problem_type"], source=problem["source"]
                )
                if not metadata["success"]:
                    return 0.0
                return self.reward_computer.compute_reward(
                    problem, answer, problem["answer"], problem["problem_type"], metadata=metadata,
                    source=problem["source"],
                )

            async def train_step(self, step):
                rewards = await asyncio.gather(*(self._sample(p) for p in PROBLEMS for _ in range(self.k)))
                return {"loss": 1.0 / step, "kl_div": 0.01 * step, "avg_reward": sum(rewards) / len(rewards)}

            async def evaluate_on_val_set(self, num_samples=50):
                rewards = await asyncio.gather(*(self._sample(p) for p in PROBLEMS[:num_samples]))
                return {"val_accuracy": 100.0 * sum(rewards) / len(rewards)}

            async def train(self, steps=2):
                for step in range(1, steps + 1):
                    await self.train_step(step)
                await self.evaluate_on_val_set(num_samples=3)
    """,
    "train.py": '''
        """The user's training script: python train.py [their own arguments]."""
        import argparse
        import asyncio

        from grpo_trainer import GRPOTrainer

        parser = argparse.ArgumentParser()
        parser.add_argument("--steps", type=int, default=2)
        args, _their_other_arguments = parser.parse_known_args()
        asyncio.run(GRPOTrainer().train(args.steps))
    ''',
}


def make_project(root: Path) -> None:
    for name, text in PROJECT_FILES.items():
        (root / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


def project_env(judge_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "OTEL_"))}
    env.update(
        JUDGE_URL=judge_url,
        WANDB_MODE="offline",
        WANDB_SILENT="true",
        NO_COLOR="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def run_dirs(project: Path) -> set[Path]:
    return set((project / "wandb").glob("offline-run-*"))


def assert_new_run_with_rows(project: Path, before: set[Path], what: str) -> None:
    new = run_dirs(project) - before
    assert new, f"{what}: no new WandB run under {project / 'wandb'}"
    keys: set[str] = set()
    for run in new:
        for row in read_run(run).history:
            keys |= set(row)
    assert "train/step" in keys, f"{what}: no otel-grpo row (keys: {sorted(keys)[:20]})"
    assert any(k.startswith("dataset/gsm8k/") for k in keys), f"{what}: no dataset/gsm8k/ key ({sorted(keys)[:40]})"


def run_checked(args: list[str], project: Path, env: dict[str, str], what: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        args,
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    output = f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, f"{what} exited {proc.returncode}\n{output}"
    assert "Traceback (most recent call last)" not in proc.stderr, f"{what} printed a traceback\n{output}"
    return proc


def key_pattern(key: str, sources: set[str]) -> str:
    """``dataset/gsm8k/count`` -> ``dataset/{source}/count``: a key as docs/keys.md names it."""
    parts = key.split("/")
    if len(parts) == 3 and parts[1] in sources:
        return f"{parts[0]}/{{source}}/{parts[2]}"
    judge_source = re.fullmatch(r"judge/(.+)_success_rate", key)
    if judge_source and judge_source.group(1) in sources:
        return "judge/{source}_success_rate"
    by_type = re.fullmatch(r"train/(accuracy|avg_score|count)_(\w+)", key)
    if by_type and by_type.group(2) in PROBLEM_TYPES:
        return f"train/{by_type.group(1)}_{{ptype}}"
    return key


def assert_every_key_is_documented(project: Path) -> None:
    """Every otel-grpo key the runs wrote is named in docs/keys.md (with its unit there)."""
    written: set[str] = set()
    for run in run_dirs(project):
        for row in read_run(run).history:
            written |= {k for k in row if k.startswith(tuple(keys.prefix(ns) for ns in keys.NAMESPACES))}
    sources = set(keys.sources_in(written))
    assert {"gsm8k", "hotpotqa"} <= sources, sorted(written)
    doc = KEYS_DOC.read_text(encoding="utf-8")
    undocumented = sorted({key_pattern(k, sources) for k in written} - {p for p in re.findall(r"`([^`]+)`", doc)})
    assert not undocumented, f"keys written but not in docs/keys.md: {undocumented}"


# --------------------------------------------------------------------------- tests of the extraction
def test_blocks_commands_and_skips_are_read_as_a_user_reads_them() -> None:
    text = (
        "x\n```bash\n# a comment\npip install -e . && otel-grpo demo   # ~15 s\nfoo \\\n  --bar\n```\n"
        "```python\nprint(1)\n```\n"
    )
    blocks = readme_blocks(text)
    assert [(b.language, b.line) for b in blocks] == [("bash", 2), ("python", 8)]
    commands = shell_commands(blocks[0].text)
    assert commands == ["pip install -e . && otel-grpo demo   # ~15 s", "foo --bar"]
    run, skipped = runnable_part(commands[0])
    assert run == "otel-grpo demo"
    assert skipped == ["'pip install -e .': " + SKIPPED_COMMANDS[0][1]]
    assert runnable_part("OTEL_METRICS_EXPORTER=grpo_wandb opentelemetry-instrument python train.py") == (
        "OTEL_METRICS_EXPORTER=grpo_wandb opentelemetry-instrument python train.py",
        [],
    )
    assert runnable_part("docker compose up -d   # Collector")[0] is None


def test_the_readme_has_blocks_of_every_kind_this_test_runs() -> None:
    languages = {block.language for block in readme_blocks(README.read_text(encoding="utf-8"))}
    assert {"bash", "python", "yaml"} <= languages


# --------------------------------------------------------------------------- the README, pasted
@pytest.mark.slow
def test_readme_code_blocks_work_in_an_empty_project(tmp_path: Path) -> None:
    project = tmp_path / "my-project"
    project.mkdir()
    assert REPO not in project.parents
    make_project(project)
    ran: list[str] = []
    skipped: list[str] = []
    with JudgeServer() as judge:
        env = project_env(judge.url)
        for block in readme_blocks(README.read_text(encoding="utf-8")):
            if block.language in ("bash", "sh", "shell", "console"):
                for command in shell_commands(block.text):
                    to_run, skipped_parts = runnable_part(command)
                    skipped += [f"{block.label()}: {part}" for part in skipped_parts]
                    if to_run is None:
                        continue
                    before = run_dirs(project)
                    what = f"{block.label()}: {to_run}"
                    proc = run_checked(["bash", "-c", to_run], project, env, what)
                    ran.append(what)
                    if TRAINING_COMMANDS.search(to_run):
                        assert_new_run_with_rows(project, before, what)
                    if to_run.startswith("otel-grpo inspect"):
                        assert "train/step" in proc.stdout and "dataset/gsm8k/accuracy" in proc.stdout, proc.stdout
            elif block.language == "python":
                script = project / f"readme_block_{block.line}.py"
                script.write_text(PRELUDE + "\n" + block.text, encoding="utf-8")
                before = run_dirs(project)
                what = f"{block.label()} as {script.name}"
                run_checked([sys.executable, script.name], project, env, what)
                ran.append(what)
                assert_new_run_with_rows(project, before, what)
            elif block.language in ("yaml", "yml"):
                config = project / f"readme_block_{block.line}.yaml"
                config.write_text(block.text, encoding="utf-8")
                what = f"{block.label()}: otel-grpo check-config {config.name}"
                run_checked(["otel-grpo", "check-config", config.name], project, env, what)
                ran.append(what)
    print("ran:\n  " + "\n  ".join(ran) + "\nskipped:\n  " + "\n  ".join(skipped))
    assert any("otel-grpo run" in what for what in ran)
    assert any("as readme_block_" in what for what in ran)
    assert_every_key_is_documented(project)


def test_key_patterns_are_the_ones_docs_keys_md_uses() -> None:
    sources = {"gsm8k", "squad_v2"}
    assert key_pattern("dataset/gsm8k/accuracy", sources) == "dataset/{source}/accuracy"
    assert key_pattern("grpo/squad_v2/zero_advantage_rate", sources) == "grpo/{source}/zero_advantage_rate"
    assert key_pattern("judge/gsm8k_success_rate", sources) == "judge/{source}_success_rate"
    assert key_pattern("judge/step_success_rate", sources) == "judge/step_success_rate"
    assert key_pattern("train/accuracy_code", sources) == "train/accuracy_{ptype}"
    assert key_pattern("train/kl_div", sources) == "train/kl_div"
