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
import os
import subprocess
import sys
import textwrap
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
    """One local Ray cluster for the session: 2 CPUs, no dashboard, bound to 127.0.0.1."""
    kill_dir = tmp_path_factory.mktemp("ray-kill")
    previous = os.environ.get(_LOCAL_ONLY)
    os.environ[_LOCAL_ONLY] = "0"
    ray.init(
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
