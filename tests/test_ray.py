"""Ray scale-out on a real local Ray cluster: every key of every row equals the one-process plan.

The trainer is the user's shape (tests/shape_trainer) with its executor and reward calls
moved into Ray tasks, or into actors holding the executor and the reward computer; the
judge is a real HTTP server on 127.0.0.1. Expected rows come from tests/oracle.py, an
independent statement of the key contract, applied to the plan, exactly as for the
one-process trainer in tests/test_shape_trainer.py.

One Ray cluster (2 CPUs, loopback only) serves the whole session; the two-node test runs
its own driver in a subprocess.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import otel_grpo
from otel_grpo import semconv
from otel_grpo.tools.demo.judge_server import JudgeServer
from tests.conftest import ROOT, SHAPE_DIR
from tests.oracle import assert_rows_equal, expected_rows
from tests.test_shape_trainer import EVAL_EVERY, IGNORED, STEPS, plan_windows

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray")

KILL_COST = 0.0123  # tests/shape_trainer/ray_trainer.py: executions with this cost die once
_LOCAL_ONLY = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"  # "0": every Ray node uses 127.0.0.1, never the host's address


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """One local Ray cluster for the session: 2 CPUs, no dashboard, every node on 127.0.0.1."""
    from ray._private import ray_constants

    kill_dir = tmp_path_factory.mktemp("ray-kill")
    previous = os.environ.get(_LOCAL_ONLY)
    os.environ[_LOCAL_ONLY] = "0"  # for the cluster's processes
    previous_flag, ray_constants.ENABLE_RAY_CLUSTER = ray_constants.ENABLE_RAY_CLUSTER, False  # read at import
    ray.init(
        address="local",  # a cluster of its own, never one another process started
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=False,
        runtime_env={
            "env_vars": {"PYTHONPATH": os.pathsep.join([str(SHAPE_DIR), str(ROOT)]), "KILL_DIR": str(kill_dir)}
        },
    )
    yield kill_dir
    ray.shutdown()
    ray_constants.ENABLE_RAY_CLUSTER = previous_flag
    if previous is None:
        os.environ.pop(_LOCAL_ONLY, None)
    else:
        os.environ[_LOCAL_ONLY] = previous


@pytest.fixture
def judge_server():
    with JudgeServer() as server:
        yield server


def _run(trainer_class: str, plan: dict, judge_server, tmp_path: Path) -> list[dict]:
    from ray_trainer import RayActorTrainer, RayTaskTrainer, RayUserClassTrainer

    tel = otel_grpo.setup(None, wandb={"mode": "disabled"}, judge={"ports": [judge_server.port]})
    rows: list[dict] = []
    tel.exporter.row_listeners.append(lambda row, window: rows.append(row))
    klass = {"tasks": RayTaskTrainer, "actors": RayActorTrainer, "user_classes": RayUserClassTrainer}[trainer_class]
    trainer = klass(plan, judge_server.url, use_wandb=False, eval_every=EVAL_EVERY)
    otel_grpo.instrument_trainer(trainer)
    try:
        asyncio.run(trainer.train(STEPS))
    finally:
        otel_grpo.uninstrument_trainer(trainer)
    return rows


@pytest.mark.parametrize("trainer_class", ["tasks", "actors", "user_classes"])
def test_rows_of_a_trainer_on_ray_equal_the_one_process_plan(
    trainer_class, ray_cluster, shape_path, judge_server, tmp_path
):
    from plan import make_plan

    plan = make_plan(steps=STEPS)
    assert all(s["cost"] != KILL_COST for step in plan["train"].values() for s in step)
    rows = _run(trainer_class, plan, judge_server, tmp_path)
    assert_rows_equal(rows, expected_rows(plan_windows(plan)), ignore_prefixes=IGNORED)
    assert any(row.get("judge/total_calls") for row in rows), "the judge ran in the workers"
    assert any(row.get("cost/judge_calls") for row in rows), "judge HTTP requests were counted"


def test_a_worker_killed_mid_task_counts_only_the_attempt_that_returned(
    ray_cluster, shape_path, judge_server, tmp_path
):
    """Rule: a call's records travel with its result, so a killed attempt delivers nothing.

    Its executor ran (the spend was made) and then the worker died with os._exit before
    returning; Ray retried the task and the retry returned. The rows count the retry's
    records once, and nothing of the dead attempt: exactly the one-process plan.
    """
    from plan import make_plan

    plan = make_plan(steps=STEPS)
    killed = [step[i] for step in plan["train"].values() for i in (0, 5)]
    for sample in killed:
        sample["kind"], sample["cost"] = "reward", KILL_COST  # executed, then killed once
    rows = _run("tasks", plan, judge_server, tmp_path)
    assert len(list(ray_cluster.iterdir())) >= len(killed), "every planned execution died once"
    assert_rows_equal(rows, expected_rows(plan_windows(plan)), ignore_prefixes=IGNORED)


_TWO_NODES = textwrap.dedent(
    """
    import asyncio, json, sys
    sys.path[:0] = [{shape!r}, {root!r}]
    import ray
    from ray.cluster_utils import Cluster
    import otel_grpo
    from otel_grpo.tools.demo.judge_server import JudgeServer

    cluster = Cluster(initialize_head=True, head_node_args={{"num_cpus": 1, "node_ip_address": "127.0.0.1",
                                                            "include_dashboard": False}})
    cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1", resources={{"second_node": 1}})
    ray.init(address=cluster.address, _node_ip_address="127.0.0.1", log_to_driver=False,
             runtime_env={{"env_vars": {{"PYTHONPATH": {path!r}}}}})
    from plan import make_plan
    from ray_trainer import RayTaskTrainer, execute_task

    nodes = set()

    class TwoNodeTrainer(RayTaskTrainer):
        async def _execute(self, spec, sample):  # every other execution on the second node
            task = execute_task.options(resources={{"second_node": 0.01}}) if len(nodes) % 2 else execute_task
            nodes.add(len(nodes))
            ptype = sample["problem_type"] or "math"
            return await task.remote(self.executor, spec, sample["qid"], ptype, sample["source"])

    with JudgeServer() as judge:
        tel = otel_grpo.setup(None, wandb={{"mode": "disabled"}}, judge={{"ports": [judge.port]}})
        rows = []
        tel.exporter.row_listeners.append(lambda row, window: rows.append(row))
        trainer = otel_grpo.instrument_trainer(TwoNodeTrainer(make_plan(steps={steps}), judge.url, use_wandb=False,
                                                              eval_every={eval_every}))
        asyncio.run(trainer.train({steps}))
        tel.shutdown()
    alive = [n for n in ray.nodes() if n["Alive"]]
    print(json.dumps({{"nodes": len(alive), "rows": rows}}))
    ray.shutdown()
    cluster.shutdown()
    """
)


def test_two_nodes_of_a_simulated_cluster_give_the_one_process_rows(shape_path, tmp_path):
    """ray.cluster_utils.Cluster with two nodes (its own driver: one cluster per process)."""
    import json

    from plan import make_plan

    script = tmp_path / "two_nodes.py"
    path = os.pathsep.join([str(SHAPE_DIR), str(ROOT)])
    script.write_text(
        _TWO_NODES.format(shape=str(SHAPE_DIR), root=str(ROOT), path=path, steps=STEPS, eval_every=EVAL_EVERY)
    )
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, _LOCAL_ONLY: "0"}
    proc = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=280, cwd=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["nodes"] == 2
    assert_rows_equal(result["rows"], expected_rows(plan_windows(make_plan(steps=STEPS))), ignore_prefixes=IGNORED)


def test_demo_on_ray_workers_counts_what_the_workers_did(ray_cluster):
    """``otel-grpo demo --ray 2``: every executor run and judge request made in the workers is in the rows."""
    import io

    from rich.console import Console

    from otel_grpo.tools.demo import cli as demo_cli

    args = demo_cli.parse_args(["--steps", "2", "--eval-every", "2", "--ray", "2", "--wandb-mode", "disabled"])
    result = demo_cli.run_demo(args, console=Console(file=io.StringIO()), inconclusive_rate=0.45)
    assert ray.is_initialized(), "the session's cluster was reused, not shut down"
    latest = {}
    for row in result.rows:
        latest.update(row)
    steps, batch, k, val = 2, 14, 4, 28
    assert len(result.trainer.workers) == 2
    assert latest["cost/executor_calls"] == (steps + 1) * batch * k + val  # step 2 runs twice (simulated OOM)
    assert latest["cost/judge_calls"] == result.judge_stats["total"]  # every chat request the server answered
    assert latest["judge/total_calls"] > 0 and latest["train/step"] == steps
    out = io.StringIO()
    demo_cli.print_summary(result, Console(file=out, width=100))
    assert "Per-dataset results" in out.getvalue()


def test_worker_spans_join_the_drivers_step_trace(ray_cluster, shape_path, judge_server):
    """Each process exports OTLP with its own service.instance.id; a worker's spans are children of the step."""
    from plan import make_plan
    from ray_trainer import RayTaskTrainer

    from tests.test_otlp_export import Receiver, wait_until

    receiver = Receiver()
    try:
        endpoint = f"http://127.0.0.1:{receiver.port}"
        tel = otel_grpo.setup(
            None,
            wandb={"mode": "disabled"},
            judge={"ports": [judge_server.port]},
            otlp={"enabled": True, "endpoint": endpoint, "metrics": False},
        )
        trainer = RayTaskTrainer(make_plan(steps=1), judge_server.url, use_wandb=False, eval_every=5)
        otel_grpo.instrument_trainer(trainer)
        try:
            asyncio.run(trainer.train(1))
        finally:
            otel_grpo.uninstrument_trainer(trainer)
        tel.shutdown()

        def spans():
            found = []
            for request in receiver.traces:
                for rs in request.resource_spans:
                    resource = {kv.key: kv.value.string_value for kv in rs.resource.attributes}
                    for ss in rs.scope_spans:
                        found.extend((resource, span) for span in ss.spans)
            return found

        def worker_spans():
            return [(r, s) for r, s in spans() if s.name in ("grpo.execute_workflow", "grpo.compute_reward")]

        assert wait_until(lambda: len(worker_spans()) >= 2 * 14 - 2, timeout_s=30)  # workers flush every 5 s
        steps = [(r, s) for r, s in spans() if s.name == "grpo.train_step"]
        assert len(steps) == 1
        driver, step = steps[0]
        for resource, span in worker_spans():
            assert span.trace_id == step.trace_id, span.name
            assert resource["service.instance.id"] != driver["service.instance.id"]
            assert resource[semconv.ATTR_RUN_ID] == driver[semconv.ATTR_RUN_ID]
        assert any(span.parent_span_id == step.span_id for _r, span in worker_spans())
    finally:
        receiver.close()


# --- calls the trainer does not wait for, and calls whose records cannot come back -----------------
def _workflow_task():
    """A task recording one executed workflow (cost 0.01 per call, or ``cost``), a judge evaluation and request."""

    @ray.remote(num_cpus=0)
    def workflow(source, cost=0.01, delay=0.0):
        time.sleep(delay)
        otel_grpo.record_workflow(source, 1.0, cost=cost)
        otel_grpo.record_judge_evaluation("success", True, source=source)
        otel_grpo.record_judge_request(input_tokens=1_000_000, output_tokens=0, source=source)
        return source

    return workflow


class _StepTimer:
    """A step window whose end (the window close otel-grpo adds) is timed."""

    def __init__(self, tel, step):
        self.scope = tel.step(step)
        self.end_s = None

    def __enter__(self):
        self.scope.__enter__()
        return self

    def __exit__(self, *exc):
        started = time.perf_counter()
        self.scope.__exit__(*exc)
        self.end_s = time.perf_counter() - started
        return False


def test_a_step_end_never_waits_for_calls_the_trainer_did_not_wait_for(ray_cluster, monkeypatch):
    """Rule: a step's end takes the completed calls of the step and waits for none.

    A background task (20 s) runs through training; a straggler the trainer drops with
    ``ray.wait(timeout=...)`` completes two steps later: its spend and judge figures count
    then (cost/*, judge/*), its sample in no row, and it is counted once as late.
    ``OTEL_GRPO_RAY_WAIT_S`` bounds only the wait at exit: no step pays it.
    """
    monkeypatch.setenv("OTEL_GRPO_RAY_WAIT_S", "2")  # bounds the wait at exit only
    workflow = _workflow_task()
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"}, judge={"price_input_per_mtok": 1.0})
    rows: list[dict] = []
    tel.exporter.row_listeners.append(lambda row, window: rows.append(row))
    background = workflow.remote("background", delay=20.0)  # started before training, never awaited
    try:
        ends = []
        with _StepTimer(tel, 1) as step:
            for _ in range(2):
                ray.get(workflow.remote("gsm8k"))
            time.sleep(0.1)
        ends.append(step.end_s)
        with _StepTimer(tel, 2) as step:
            for _ in range(2):
                ray.get(workflow.remote("gsm8k"))
            straggler = workflow.remote("math", cost=0.25, delay=3.0)
            ready, _ = ray.wait([straggler], timeout=0.5)  # the trainer drops it
            assert not ready
        ends.append(step.end_s)
        ray.wait([straggler], timeout=30)  # between steps: it completes now, after its step
        for number in (3, 4):
            with _StepTimer(tel, number) as step:
                ray.get(workflow.remote("gsm8k"))
            ends.append(step.end_s)
    finally:
        ray.cancel(background, force=True)
    assert max(ends) < 1.5, ends  # with the calls above in flight: each end takes milliseconds
    assert [row["train/step"] for row in rows] == [1, 2, 3, 4]
    assert [row.get("dataset/gsm8k/count") for row in rows] == [2, 2, 1, 1], rows
    assert not any("dataset/math/count" in row or "dataset/background/count" in row for row in rows)
    by_step = {row["train/step"]: row for row in rows}
    assert by_step[2]["cost/executor_calls"] == 4 and by_step[2]["judge/total_calls"] == 4
    # the straggler's run, spend and judge figures count at the first step end after it completed
    assert by_step[3]["cost/executor_calls"] == 4 + 1 + 1
    assert by_step[3]["cost/total_cost"] == pytest.approx(5 * 0.01 + 0.25)
    assert by_step[3]["judge/total_calls"] == 6 and by_step[3]["cost/judge_calls"] == 6
    assert by_step[3]["cost/judge_cost"] == pytest.approx(6.0)
    assert "exporter/ray_calls_late" not in by_step[1]
    assert [by_step[n]["exporter/ray_calls_late"] for n in (2, 3, 4)] == [1, 1, 1]  # once, not at every close
    assert by_step[4]["exporter/late_samples"] == 1
    assert "exporter/ray_records_lost" not in by_step[4]


def test_calls_whose_records_cannot_come_back_are_counted_and_named(ray_cluster, caplog):
    """An actor created before otel-grpo started, a generator task (called by the driver, and by a
    tracked task): each call counted in exporter/ray_records_lost, one warning naming each."""

    class EarlyActor:
        def work(self, source):
            otel_grpo.record_workflow(source, 1.0, cost=0.01)
            return source

    @ray.remote(num_cpus=0)
    def numbers(n):
        for i in range(n):  # noqa: UP028 - Ray drives the generator with send(): a range iterator has none
            yield i

    @ray.remote(num_cpus=0)
    def consume_numbers(n):
        return sum(ray.get(list(numbers.remote(n))))

    early = ray.remote(num_cpus=0)(EarlyActor).remote()  # before otel-grpo started
    ray.get(early.__ray_ready__.remote())
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    rows: list[dict] = []
    tel.exporter.row_listeners.append(lambda row, window: rows.append(row))
    with caplog.at_level(logging.WARNING, logger="otel_grpo"):
        with tel.step(1):
            assert ray.get([early.work.remote("gsm8k") for _ in range(3)]) == ["gsm8k"] * 3
            assert ray.get(list(numbers.remote(3))) == [0, 1, 2]
            assert ray.get(list(numbers.remote(2))) == [0, 1]
            assert ray.get(consume_numbers.remote(4)) == 6
    (row,) = rows
    assert row["exporter/ray_records_lost"] == 3 + 2 + 1  # early actor calls, driver generators, nested generator
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum("EarlyActor" in w for w in warnings) == 1, warnings
    assert sum("numbers (a generator task)" in w for w in warnings) == 1, warnings


def _execute_then_score():
    """A task that runs each workflow in a nested task, then scores it itself (a judge call inside)."""

    @ray.remote
    def execute_then_score(executor, judge_url, spec, qid, problem_type, source):
        from ray_trainer import _reward_computers, execute_task
        from reward_computer import RewardComputer

        _answer, _cost, meta = ray.get(execute_task.remote(executor, spec, qid, problem_type, source))
        if not meta["success"]:
            return 0.0
        computer = _reward_computers.get(judge_url) or _reward_computers.setdefault(
            judge_url, RewardComputer(judge_url=judge_url)
        )
        return computer.compute_reward(qid, spec, "42", problem_type, metadata=meta, source=source)

    return execute_then_score


def test_a_workflow_run_by_a_nested_task_counts_exactly(ray_cluster, shape_path, judge_server):
    """Each workflow: a task whose execution is a nested task (it carries its parent's tag), and whose
    reward and judge call run in the parent: every key of every row equals the one-process plan."""
    from plan import make_plan
    from ray_trainer import RayTaskTrainer, _spec

    run = _execute_then_score()

    class NestedTaskTrainer(RayTaskTrainer):
        async def _run_one(self, sample):
            ptype = sample["problem_type"] or "math"
            async with one_at_a_time:  # two worker processes serve every workflow (few cold starts)
                try:
                    return await run.remote(
                        self.executor, self.judge_url, _spec(sample), sample["qid"], ptype, sample["source"]
                    )
                except Exception:  # noqa: BLE001 - the shape trainer's rule: a crashed workflow scores -10
                    return -10.0

    plan = make_plan(steps=STEPS, questions=2, val_questions=2)
    plan["train"][1][0]["kind"] = "exec_raise"  # the nested task raises: its records ride on the exception
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"}, judge={"ports": [judge_server.port]})
    rows: list[dict] = []
    tel.exporter.row_listeners.append(lambda row, window: rows.append(row))
    trainer = NestedTaskTrainer(plan, judge_server.url, use_wandb=False, eval_every=EVAL_EVERY)
    otel_grpo.instrument_trainer(trainer)
    one_at_a_time = asyncio.Semaphore(1)
    try:
        asyncio.run(trainer.train(STEPS))
    finally:
        otel_grpo.uninstrument_trainer(trainer)
    assert_rows_equal(rows, expected_rows(plan_windows(plan)), ignore_prefixes=IGNORED)
    assert rows[-1]["judge/total_calls"] > 0 and "exporter/ray_records_lost" not in rows[-1]


_AT_EXIT = textwrap.dedent(
    """
    import atexit, json, sys, time
    sys.path[:0] = [{root!r}]
    state = {{}}
    atexit.register(lambda: print(json.dumps({{**state, "exited": time.time()}}), flush=True))  # runs last
    import ray
    import otel_grpo

    ray.init(address={address!r}, _node_ip_address="127.0.0.1", log_to_driver=False)

    @ray.remote(num_cpus=0)
    def workflow(source, cost, delay):
        time.sleep(delay)
        otel_grpo.record_workflow(source, 1.0, cost=cost)
        return source

    tel = otel_grpo.setup(None, wandb={{"mode": "disabled"}},
                          otlp={{"enabled": True, "endpoint": {endpoint!r}, "traces": False}})
    state["health"] = tel.exporter.health  # read again at the very end
    with tel.step(1):
        # two calls at once: two warm workers, so the straggler below starts at once even on a loaded machine
        ray.get([workflow.remote("gsm8k", 0.01, 0.5), workflow.remote("gsm8k", 0.01, 0.5)])
        running = workflow.remote("background", 0.5, 60.0)  # still running at exit
        straggler = workflow.remote("math", 0.25, 1.0)  # completes while otel-grpo waits at exit
        started = time.perf_counter()
    state["step_end_s"] = time.perf_counter() - started
    state["rows"] = tel.rows
    state["ending"] = time.time()
    """
)


def test_at_exit_calls_still_running_get_at_most_the_wait_then_count_as_lost(ray_cluster, tmp_path):
    """A driver (connected to the session's cluster) exits with two calls running: it waits at most
    OTEL_GRPO_RAY_WAIT_S (5 s here, not the 60 s of the background call), replays the one that
    completes (its cost reaches the OTLP totals) and counts the other in exporter/ray_records_lost."""
    import json

    from tests.test_otlp_export import Receiver

    receiver = Receiver()
    try:
        script = tmp_path / "at_exit.py"
        script.write_text(
            _AT_EXIT.format(
                root=str(ROOT),
                address=ray.get_runtime_context().gcs_address,
                endpoint=f"http://127.0.0.1:{receiver.port}",
            )
        )
        env = {**os.environ, "OTEL_GRPO_RAY_WAIT_S": "5", _LOCAL_ONLY: "0"}
        proc = subprocess.run(
            [sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env
        )
        assert proc.returncode == 0, proc.stderr[-4000:]
        state = json.loads(proc.stdout.strip().splitlines()[-1])
        assert state["step_end_s"] < 1.5, state["step_end_s"]
        assert 4.5 <= state["exited"] - state["ending"] < 20, state
        (row,) = state["rows"]
        assert row["dataset/gsm8k/count"] == 2 and row["exporter/ray_calls_late"] == 2
        assert state["health"]["ray_records_lost"] == 1 and state["health"]["late_samples"] == 1
        assert "1 Ray call(s) had not completed when otel-grpo stopped after waiting 5 s" in proc.stderr
        costs = [point for _metric, point in receiver.metric_points("grpo.executor.cost")]
        assert sum(p.as_double for p in costs) == pytest.approx(0.02 + 0.25)  # the straggler's cost, in the totals
        lost = [
            point.as_int
            for _metric, point in receiver.metric_points("grpo.exporter.events")
            if any(kv.key == semconv.ATTR_HEALTH_EVENT and kv.value.string_value == "ray_records_lost"
                   for kv in point.attributes)
        ]  # fmt: skip
        assert lost and lost[-1] == 1
    finally:
        receiver.close()
