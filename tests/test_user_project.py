"""otel-grpo changes nothing about what a trainer of the user's real shape does.

`tests/user_project/` is a small copy of the user's project layout (train.py, src/ with
grpo_trainer, aflow_executor, reward_computer and a utils package, and an AFlow checkout
whose top-level `benchmarks` and `scripts` packages every generated workflow imports).
It is copied outside the repository and run twice, as `python train.py` and as
`otel-grpo run -- python train.py`, against the repo's loopback judge server, which
plays the one gpt-oss-120b server both the executor and the judge talk to.
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

from otel_grpo.tools.demo.judge_server import JudgeServer
from otel_grpo.tools.runreader import read_run

pytestmark = pytest.mark.slow  # starts real processes, servers or WandB runs

ROOT = Path(__file__).resolve().parent.parent
PROJECT = Path(__file__).resolve().parent / "user_project"
STEPS = 3
EVAL_EVERY = 2
RUN_TIMEOUT_S = 240


def otel_grpo_command() -> list[str]:
    """The installed console script, next to this interpreter (else on PATH)."""
    script = Path(sys.executable).parent / "otel-grpo"
    if script.exists():
        return [str(script)]
    found = shutil.which("otel-grpo")
    return [found] if found else [sys.executable, "-m", "otel_grpo.tools.cli"]


def inside_repo(path: str) -> bool:
    try:
        Path(path or ".").resolve().relative_to(ROOT)
    except ValueError:
        return False
    return True


def child_env(**extra: str) -> dict[str, str]:
    """The test's environment without WANDB_*/OTEL_* settings and without the repo on PYTHONPATH."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "OTEL_", "PYTEST_")) and k != "PYTHONPATH"
    }
    kept = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and not inside_repo(p)]
    if kept:
        env["PYTHONPATH"] = os.pathsep.join(kept)
    env["WANDB_SILENT"] = "true"
    env.update(extra)
    return env


def last_json_line(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert lines, f"no JSON line in the trainer's output:\n{stdout[-2000:]}"
    return json.loads(lines[-1])


def copy_project(dest: Path) -> Path:
    assert not inside_repo(str(dest)), "the copy must live outside the repository"
    shutil.copytree(PROJECT, dest, ignore=shutil.ignore_patterns("__pycache__", "wandb"))
    return dest


def run_trainer(
    project: Path,
    judge_url: str,
    wandb_dir: Path | None,
    *,
    instrumented: bool,
    env: dict[str, str] | None = None,
    extra: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    command = [
        sys.executable,
        "train.py",
        "--judge-url",
        judge_url,
        "--steps",
        str(STEPS),
        "--eval-every",
        str(EVAL_EVERY),
        *extra,
    ]
    if wandb_dir is not None:
        command += ["--wandb-dir", str(wandb_dir)]
    if instrumented:
        command = [*otel_grpo_command(), "run", "--", *command]
    return subprocess.run(
        command, cwd=project, env=env or child_env(), capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False
    )


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory):
    """One plain and one `otel-grpo run` training of the copied project, against one judge server."""
    base = tmp_path_factory.mktemp("user_project_runs")
    project = copy_project(base / "aflow-grpo")
    with JudgeServer(host="127.0.0.1") as server:
        plain_dir, otel_dir = base / "wandb-plain", base / "wandb-otel"
        plain = run_trainer(project, server.url, plain_dir, instrumented=False)
        before = server.stats
        otel = run_trainer(project, server.url, otel_dir, instrumented=True)
        after = server.stats
    requests = {key: after[key] - before[key] for key in ("total", "ok", "bad_request")}
    return {
        "plain": plain,
        "otel": otel,
        "plain_dir": plain_dir,
        "otel_dir": otel_dir,
        "requests": requests,
        "project": project,
    }


def results(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, f"exit {proc.returncode}\nSTDERR:\n{proc.stderr[-4000:]}"
    return last_json_line(proc.stdout)


def only_run_dir(wandb_dir: Path) -> Path:
    found = sorted((wandb_dir / "wandb").glob("offline-run-*"))
    assert len(found) == 1, f"expected the trainer's one run under {wandb_dir}, found {found}"
    return found[0]


def test_both_runs_exit_0_and_compute_identical_results(runs):
    plain, otel = results(runs["plain"]), results(runs["otel"])
    # What the trainer computed: every step's metrics, validation, judge counters, each sample's reward.
    assert otel["steps"] == plain["steps"]
    assert otel["val"] == plain["val"]
    assert otel["eval_stats"] == plain["eval_stats"]
    assert otel["samples"] == plain["samples"]
    assert otel == plain
    assert "Traceback" not in runs["otel"].stderr, runs["otel"].stderr[-3000:]
    # The plan really exercises the user's paths: a retried OOM step, validation, the judge,
    # failed executions, crashed tasks (-10), and datasets beyond the seven (squad_v2).
    assert [step for step, _ in plain["attempts"]] == [1, 2, 2, 3]
    assert [v["step"] for v in plain["val"]] == [2]
    assert plain["eval_stats"]["llm_judge_success"] > 0
    assert plain["execution_errors"] and plain["task_errors"]
    sources = {source for _, _, source, _ in plain["samples"]}
    assert {"gsm8k", "math", "humaneval", "mbpp", "hotpotqa", "squad_v2"} <= sources
    assert any(reward == -10.0 for *_, reward in plain["samples"])
    assert any(reward == 1.0 for *_, reward in plain["samples"])


def test_no_workflow_failed_to_compile_in_either_run(runs):
    for name in ("plain", "otel"):
        assert results(runs[name])["compile_errors"] == [], f"{name}: generated workflows failed to compile"


def test_otel_grpo_rows_are_written_into_the_trainers_run(runs):
    results(runs["otel"])
    records = read_run(only_run_dir(runs["otel_dir"]))
    ours = records.rows_with("train/step")
    train_rows = [row for row in ours if "train/loss" in row]
    assert [row["train/step"] for row in train_rows] == [1, 2, 3]
    assert any("dataset/gsm8k/accuracy" in row for row in ours)
    assert any("val/accuracy" in row and row["train/step"] == 2 for row in ours)
    # The plain run is untouched: only the trainer's own keys.
    plain = read_run(only_run_dir(runs["plain_dir"]))
    assert not plain.rows_with("train/step")
    assert plain.rows_with("sample/reward")


def _train_samples(res: dict) -> dict[int, list[tuple[str, float]]]:
    """The samples of each step's successful attempt (the OOM'd attempt emits no row)."""
    by_step: dict[int, list[tuple[str, float]]] = {}
    for split, step, source, reward in res["samples"]:
        if split == "train":
            by_step.setdefault(step, []).append((source, reward))
    sizes = {m["step"]: m["num_samples"] for m in res["steps"]}
    return {step: samples[-sizes[step] :] for step, samples in by_step.items()}


def test_otel_grpo_rows_agree_with_the_trainers_own_numbers(runs):
    res = results(runs["otel"])
    rows = read_run(only_run_dir(runs["otel_dir"])).rows_with("train/step")
    train_rows = {row["train/step"]: row for row in rows if "train/loss" in row}
    for metrics, temperature in zip(res["steps"], res["temperatures"], strict=True):
        row = train_rows[metrics["step"]]
        assert row["train/loss"] == pytest.approx(metrics["loss"], rel=1e-9)
        assert row["train/kl_div"] == pytest.approx(metrics["kl_div"], rel=1e-9)
        assert row["train/temperature"] == pytest.approx(temperature)
        assert row["train/accuracy"] == pytest.approx(metrics["accuracy"])
        assert sum(v for k, v in row.items() if k.startswith("train/count_")) == metrics["num_samples"]
    # Per dataset, from the (source, reward) pairs the trainer saw; a crashed task (-10) is reward 0.
    for step, samples in _train_samples(res).items():
        row = train_rows[step]
        for source in {s for s, _ in samples}:
            rewards = [max(r, 0.0) for s, r in samples if s == source]
            assert row[f"dataset/{source}/count"] == len(rewards), (step, source)
            assert row[f"dataset/{source}/accuracy"] == pytest.approx(
                100.0 * sum(r >= 0.9 for r in rewards) / len(rewards)
            ), (step, source)
            assert row[f"dataset/{source}/avg_reward"] == pytest.approx(sum(rewards) / len(rewards)), (step, source)
    (val,) = res["val"]
    val_row = next(row for row in rows if "val/accuracy" in row)
    assert val_row["val/accuracy"] == pytest.approx(val["val_accuracy"])
    assert val_row["val/success_rate"] == pytest.approx(val["val_success_rate"])
    assert val_row["val/avg_cost"] == pytest.approx(val["val_avg_cost"], rel=1e-6)
    last = rows[-1]
    assert last["cost/executor_calls"] == len(res["samples"])
    # No judge faults were served: every judge evaluation is one successful request.
    stats = res["eval_stats"]
    assert stats["llm_judge_api_failures"] == stats["llm_judge_parse_failures"] == 0
    assert last["judge/total_calls"] == stats["llm_judge_success"]


def test_executor_and_judge_requests_to_the_same_server_are_counted_apart(runs):
    """The executor's operators and the judge share one server and port (the user's config)."""
    res = results(runs["otel"])
    last = read_run(only_run_dir(runs["otel_dir"])).rows_with("train/step")[-1]
    served = runs["requests"]
    assert served["bad_request"] == 0 and served["total"] == served["ok"]
    assert last["cost/judge_calls"] == res["eval_stats"]["llm_judge_success"]
    assert last["executor/llm_requests"] + last["cost/judge_calls"] == served["total"]


def test_a_shadowed_aflow_package_is_detected_by_this_project(tmp_path):
    """The check above has teeth: a `benchmarks` package in front of AFlow's breaks every workflow."""
    project = copy_project(tmp_path / "aflow-grpo")
    decoy = tmp_path / "decoy"
    for package in ("benchmarks", "scripts"):
        (decoy / package).mkdir(parents=True)
        (decoy / package / "__init__.py").write_text("")
    with JudgeServer(host="127.0.0.1") as server:
        proc = run_trainer(
            project, server.url, None, instrumented=False, extra=("--no-wandb",), env=child_env(PYTHONPATH=str(decoy))
        )
    res = results(proc)
    assert any("benchmarks.benchmark" in error for error in res["compile_errors"])
    assert all(reward <= 0 for *_, reward in res["samples"])


SHOW_PATH = textwrap.dedent("""
    import builtins, json, os, sys
    custom = sys.modules.get("sitecustomize")
    print(json.dumps({"sys_path": sys.path, "PYTHONPATH": os.environ.get("PYTHONPATH"),
                      "environ": dict(os.environ),
                      "user_sitecustomize_runs": getattr(builtins, "_user_sitecustomize_runs", 0),
                      "sitecustomize_file": getattr(custom, "__file__", None)}))
""")

# A user's sitecustomize: counts its runs in this interpreter and in the environment it hands
# down to child processes, and appends a folder to sys.path.
USER_SITECUSTOMIZE = textwrap.dedent("""
    import builtins, os, sys
    builtins._user_sitecustomize_runs = getattr(builtins, "_user_sitecustomize_runs", 0) + 1
    os.environ["USER_SITECUSTOMIZE_RAN"] = str(int(os.environ.get("USER_SITECUSTOMIZE_RAN", "0")) + 1)
    sys.path.append(os.path.join(os.path.dirname(os.path.abspath(__file__)), "added-by-sitecustomize"))
""")

# otel-grpo's documented WandB setting (flush the transaction log often) is the one variable it may add.
OTEL_GRPO_ENV = {"WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL"}


def _show(script: Path, env: dict[str, str], instrumented: bool) -> dict:
    command = [sys.executable, str(script)]
    if instrumented:
        command = [*otel_grpo_command(), "run", "--", *command]
    proc = subprocess.run(command, cwd=script.parent, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return last_json_line(proc.stdout)


def _app(tmp_path: Path, with_user_sitecustomize: bool) -> tuple[Path, dict[str, str], Path]:
    app = tmp_path / "app"
    app.mkdir()
    script = app / "show_path.py"
    script.write_text(SHOW_PATH)
    env = child_env()
    user_site = tmp_path / "user-site"
    if with_user_sitecustomize:
        user_site.mkdir()
        (user_site / "sitecustomize.py").write_text(USER_SITECUSTOMIZE)
        env["PYTHONPATH"] = os.pathsep.join([str(user_site), *filter(None, [env.get("PYTHONPATH")])])
    return script, env, user_site


@pytest.mark.parametrize("with_pythonpath", [False, True], ids=["no-PYTHONPATH", "user-PYTHONPATH"])
def test_the_childs_sys_path_and_pythonpath_are_those_of_the_plain_command(tmp_path, with_pythonpath):
    script, env, user_site = _app(tmp_path, with_pythonpath)
    original = env.get("PYTHONPATH")
    plain = _show(script, env, instrumented=False)
    otel = _show(script, env, instrumented=True)
    assert otel["sys_path"] == plain["sys_path"]
    assert otel["PYTHONPATH"] == plain["PYTHONPATH"] == original
    assert not any(inside_repo(p) for p in otel["sys_path"] if p), "the repository leaked onto the path"
    assert not [k for k in otel["environ"] if k.startswith("OTEL_GRPO_ORIGINAL")]
    if with_pythonpath:
        # The user's own sitecustomize still runs, once in the program's interpreter, and stays
        # the interpreter's sitecustomize module.
        assert plain["user_sitecustomize_runs"] == otel["user_sitecustomize_runs"] == 1
        assert otel["sitecustomize_file"] == plain["sitecustomize_file"] == str(user_site / "sitecustomize.py")
        assert str(user_site / "added-by-sitecustomize") in otel["sys_path"]


def test_the_childs_environment_is_the_one_the_plain_command_sees(tmp_path):
    """`otel-grpo run` hands the program the environment it was started with, not one already
    changed by the start-up of otel-grpo's own interpreter (which runs the user's sitecustomize too)."""
    script, env, _ = _app(tmp_path, with_user_sitecustomize=True)
    plain = _show(script, env, instrumented=False)["environ"]
    otel = _show(script, env, instrumented=True)["environ"]
    differ = {
        k: (plain.get(k), otel.get(k))
        for k in set(plain) | set(otel)
        if plain.get(k) != otel.get(k) and k not in OTEL_GRPO_ENV
    }
    assert differ == {}, f"environment variables that differ (plain, otel-grpo run): {differ}"
