"""Who makes an HTTP request decides whether it is a judge request (docs/terms.md, "judge request").

The user's config runs the AFlow executor's operator LLM (an ``openai.AsyncOpenAI``
client) on the same gpt-oss-120b server and port as the judge (``openai.OpenAI``). Here
one real loopback server answers both, a small trainer of the user's shape (async
``train_step`` gathering tasks: ``execute_workflow`` then ``compute_reward``, the reward
calling the judge for some samples) is instrumented with ``instrument_trainer``, and
every key of every row read back from the offline WandB run is compared with values
computed here: each client keeps a ledger of the requests it made and the token usage
it was sent back, and :func:`tests.oracle.request_role` (an independent restatement of
the rule) says what each of them is.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import openai
import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_grpo
from otel_grpo.instrumentation.llm_http import uninstrument_http
from otel_grpo.tools.demo.judge_server import JudgeServer
from otel_grpo.tools.runreader import read_run
from tests.oracle import assert_rows_equal, expected_rows, request_role

pytestmark = pytest.mark.slow  # starts real processes, servers or WandB runs

MODEL = "gpt-oss-120b"
STEPS = 3
CHAT_PATH = "/chat/completions"
EXEC_TIME_S = 0.05  # every execution reports this: executor latency lies in the (0.0465, 0.0674] bucket
JUDGE_PAD_S = 0.45  # every judge evaluation lasts at least this: judge latency lies in (0.432, 0.626]
EXEC_BUCKET = (0.0465, 0.0674)
JUDGE_BUCKET = (0.432, 0.626)

# (source, problem_type) of the samples of one step: two GRPO groups of K=2, and one single sample.
SAMPLES = [("gsm8k", "math"), ("gsm8k", "math"), ("hotpotqa", "qa"), ("hotpotqa", "qa"), ("mbpp", "code")]


def make_plan(steps: int = STEPS) -> dict[int, list[dict[str, Any]]]:
    """Per step: the samples, how many LLM calls each execution makes and how many requests its judge makes."""
    plan = {}
    for step in range(1, steps + 1):
        samples = []
        for i, (source, ptype) in enumerate(SAMPLES):
            ok = not (step == 2 and i == 4)  # one failed execution: no reward computation, no judge
            judge_calls = (0, 1, 2, 1, 0)[(i + step) % 5] if ok else 0
            samples.append(
                {
                    "sid": f"{step}-{i}",
                    "qid": f"q{step}-{i // 2}",
                    "source": source,
                    "problem_type": ptype,
                    "llm_calls": 1 + (i + step) % 3,
                    "judge_calls": judge_calls,
                    "ok": ok,
                    "answer": "42" if (i + step) % 3 else "41",
                    "reward": (1.0, 0.5, 0.0)[(i * step) % 3],
                    "cost": round(0.01 * (i + 1) * step, 4),
                }
            )
        plan[step] = samples
    return plan


# --- a trainer of the user's shape -------------------------------------------------------------
def _ledger_entry(ledger: list[dict[str, Any]], sid: str, who: str | None, client: Any, reply: Any) -> None:
    """What one client request was, as the client itself saw it."""
    url = client.base_url
    ledger.append(
        {
            "sid": sid,
            "who": who,
            "port": url.port,
            "path": url.path.rstrip("/") + CHAT_PATH,
            "in": reply.usage.prompt_tokens,
            "out": reply.usage.completion_tokens,
        }
    )


class AFlowExecutor:
    """``execute_workflow`` whose operators call an LLM with AFlow's async OpenAI client."""

    def __init__(self, llm_url: str, ledger: list[dict[str, Any]]) -> None:
        self.llm = openai.AsyncOpenAI(base_url=llm_url, api_key="sk-dummy", max_retries=0, timeout=10.0)
        self.ledger = ledger

    async def execute_workflow(
        self,
        workflow_code: str,
        problem: str,
        problem_type: str = "math",
        entry_point: Any = None,
        test: Any = None,
        source: Any = None,
        context: Any = None,
        **kwargs: Any,
    ) -> tuple[str, float, dict[str, Any]]:
        spec = json.loads(workflow_code)
        for call in range(spec["llm_calls"]):
            reply = await self.llm.chat.completions.create(
                model=MODEL,
                temperature=0.7,
                max_tokens=400,
                messages=[{"role": "user", "content": f"Operator {call}: solve {problem}"}],
            )
            _ledger_entry(self.ledger, spec["sid"], "executor", self.llm, reply)
        return spec["answer"], spec["cost"], {"success": spec["ok"], "execution_time": EXEC_TIME_S}


class _JudgeClient:
    """The judge's sync ``openai.OpenAI`` client and the user's ``eval_stats`` counters."""

    def __init__(self, judge_url: str, ledger: list[dict[str, Any]]) -> None:
        self.client = openai.OpenAI(base_url=judge_url, api_key="sk-dummy", max_retries=0, timeout=10.0)
        self.ledger = ledger
        self.eval_stats = {
            "total_evaluations": 0,
            "llm_judge_success": 0,
            "llm_judge_parse_failures": 0,
            "llm_judge_api_failures": 0,
        }

    def _ask_judge(self, spec: dict[str, Any], ground_truth: str, who: str | None) -> bool:
        """``judge_calls`` requests: the first ones come back with null content (gpt-oss out of tokens)."""
        for attempt in range(spec["judge_calls"]):
            fault = "null_content" if attempt < spec["judge_calls"] - 1 else "ok"
            reply = self.client.chat.completions.create(
                model=MODEL,
                temperature=0.0,
                max_tokens=800,
                extra_headers={"X-Judge-Fault": fault},
                messages=[
                    {"role": "system", "content": "You judge answers."},
                    {"role": "user", "content": f"Prediction: {spec['answer']}\nGround truth: {ground_truth}"},
                ],
            )
            _ledger_entry(self.ledger, spec["sid"], who, self.client, reply)
            content = reply.choices[0].message.content
            if content is None:
                self.eval_stats["llm_judge_api_failures"] += 1
                continue
            self.eval_stats["llm_judge_success"] += 1
            return "<true_false>True</true_false>" in content
        return False


class RewardComputer(_JudgeClient):
    """``compute_reward`` falling back to the judge function ``_llm_judge_compare``."""

    def compute_reward(
        self,
        problem: str,
        prediction: str,
        ground_truth: str,
        problem_type: str = "math",
        metadata: Any = None,
        source: Any = None,
    ) -> float:
        spec = json.loads(prediction)
        self.eval_stats["total_evaluations"] += 1
        if spec["judge_calls"]:
            return (
                1.0 if self._llm_judge_compare(problem, prediction, ground_truth, problem_type, source=source) else 0.0
            )
        return spec["reward"]

    def _llm_judge_compare(
        self, problem: str, prediction: str, ground_truth: str, problem_type: str, source: Any = None
    ) -> bool:
        started = time.perf_counter()
        verdict = self._ask_judge(json.loads(prediction), ground_truth, who="judge")
        time.sleep(max(0.0, started + JUDGE_PAD_S - time.perf_counter()))
        return verdict


class InlineRewardComputer(_JudgeClient):
    """The judge reached inline from ``compute_reward``: no judge function to wrap."""

    def compute_reward(
        self,
        problem: str,
        prediction: str,
        ground_truth: str,
        problem_type: str = "math",
        metadata: Any = None,
        source: Any = None,
    ) -> float:
        spec = json.loads(prediction)
        if spec["judge_calls"]:
            return 1.0 if self._ask_judge(spec, ground_truth, who=None) else 0.0
        return spec["reward"]


class GRPOTrainer:
    """async ``train_step`` gathering one task per sample: execute, then reward only when it succeeded."""

    def __init__(
        self, plan: dict[int, list[dict[str, Any]]], llm_url: str, judge_url: str, inline_judge: bool = False
    ) -> None:
        self.plan = plan
        self.ledger: list[dict[str, Any]] = []
        self.executor = AFlowExecutor(llm_url, self.ledger)
        self.reward_computer = (InlineRewardComputer if inline_judge else RewardComputer)(judge_url, self.ledger)

    async def _run_one(self, sample: dict[str, Any]) -> float:
        spec = json.dumps(sample)
        _answer, _cost, meta = await self.executor.execute_workflow(
            spec,
            sample["qid"],
            sample["problem_type"],
            entry_point=None,
            test=None,
            source=sample["source"],
            context=None,
        )
        if not meta["success"]:
            return 0.0
        return self.reward_computer.compute_reward(
            sample["qid"], spec, "42", sample["problem_type"], metadata=meta, source=sample["source"]
        )

    async def train_step(self, step: int) -> dict[str, float]:
        rewards = await asyncio.gather(*(self._run_one(s) for s in self.plan[step]))
        return {"loss": 1.0 / step, "kl_div": 0.01 * step, "avg_reward": sum(rewards) / len(rewards)}

    async def train(self, steps: int) -> None:
        for step in range(1, steps + 1):
            await self.train_step(step)
        await self.executor.llm.close()
        self.reward_computer.client.close()


# --- what the rows must say, from the plan and the clients' ledgers ----------------------------
def role_of(entry: dict[str, Any], judge_ports: tuple[int, ...]) -> str | None:
    return request_role(entry["who"], "POST", entry["port"], entry["path"], judge_ports)


def bucket_quantile(bucket: tuple[float, float], q: float) -> float:
    """Prometheus' histogram_quantile when every observation lies in one bucket."""
    lower, upper = bucket
    return lower + (upper - lower) * q


def expected_history(
    plan: dict[int, list[dict[str, Any]]], ledger: list[dict[str, Any]], judge_ports: tuple[int, ...]
) -> list[dict[str, Any]]:
    """Every row docs/keys.md asks for: the oracle's keys, plus latency percentiles and judge tokens."""
    windows = []
    for step, samples in plan.items():
        events, inline = [], 0
        for s in samples:
            mine = [e for e in ledger if e["sid"] == s["sid"]]
            executor_requests = sum(role_of(e, judge_ports) == "executor" for e in mine)
            judge_requests = sum(e["who"] == "judge" and role_of(e, judge_ports) == "judge" for e in mine)
            inline += sum(e["who"] is None and role_of(e, judge_ports) == "judge" for e in mine)
            reward = s["reward"]
            sample_judges = []  # evaluations made while serving this sample: they decide its scorer
            if s["judge_calls"]:
                reward = 1.0 if s["answer"] == "42" else 0.0
                if any(e["who"] == "judge" for e in mine):
                    sample_judges.append(
                        {
                            "source": s["source"],
                            "outcome": "success",
                            "verdict": s["answer"] == "42",
                            "requests": judge_requests,
                        }
                    )
            events.append(
                {
                    "source": s["source"],
                    "ptype": s["problem_type"],
                    "reward": reward,
                    "cost": s["cost"],
                    "exec": "ok" if s["ok"] else "fail",
                    "group": f"{s['source']}/{s['qid']}",
                    "llm_requests": executor_requests,
                    "judges": sample_judges,
                }
            )
        windows.append(
            {
                "split": "train",
                "step": step,
                "samples": events,
                "judges": [],
                "scalars": {"loss": 1.0 / step, "kl_div": 0.01 * step},
                "judge_requests": inline,
            }
        )
    rows = expected_rows(windows)
    evaluations, tokens = 0, {"input": 0, "output": 0}
    for step, row in zip(plan, rows, strict=True):
        evaluations += sum(len(e["judges"]) for e in windows[step - 1]["samples"])
        for e in ledger:
            if e["sid"].startswith(f"{step}-") and role_of(e, judge_ports) == "judge":
                tokens["input"] += e["in"]
                tokens["output"] += e["out"]
        row["executor/latency_p50_s"] = bucket_quantile(EXEC_BUCKET, 0.5)
        row["executor/latency_p95_s"] = bucket_quantile(EXEC_BUCKET, 0.95)
        if evaluations:
            row["judge/latency_p50_s"] = bucket_quantile(JUDGE_BUCKET, 0.5)
            row["judge/latency_p95_s"] = bucket_quantile(JUDGE_BUCKET, 0.95)
            row["judge/input_tokens"] = tokens["input"]
            row["judge/output_tokens"] = tokens["output"]
    return rows


# --- fixtures and the run -------------------------------------------------------------------------
@pytest.fixture
def llm_server() -> Iterator[JudgeServer]:
    """The gpt-oss-120b server of the user's config (the judge's port)."""
    with JudgeServer() as server:
        yield server


@pytest.fixture
def other_server() -> Iterator[JudgeServer]:
    """A second OpenAI-compatible server, on a port that is not in judge.ports."""
    with JudgeServer() as server:
        yield server


@pytest.fixture
def uninstrument() -> Iterator[None]:
    yield
    otel_grpo.uninstrument_trainer(None)
    uninstrument_http()


def train(
    tmp_path: Path, plan: dict, llm_url: str, judge_url: str, judge_ports: list[int], inline_judge: bool = False
) -> SimpleNamespace:
    """Run the instrumented trainer; the rows read back, its ledger, spans and metric points."""
    spans, reader = InMemorySpanExporter(), InMemoryMetricReader()
    tel = otel_grpo.setup(
        None,
        wandb={"mode": "offline", "dir": str(tmp_path)},
        judge={"ports": judge_ports},
        span_processors=[SimpleSpanProcessor(spans)],
        metric_readers=[reader],
    )
    trainer = GRPOTrainer(plan, llm_url, judge_url, inline_judge=inline_judge)
    otel_grpo.instrument_trainer(trainer)
    asyncio.run(trainer.train(STEPS))
    run_dir = Path(tel.run.dir).parent
    metrics = reader.get_metrics_data()
    tel.shutdown()
    history = [r for r in read_run(run_dir).history if "train/step" in r]
    return SimpleNamespace(history=history, ledger=trainer.ledger, spans=spans.get_finished_spans(), metrics=metrics)


def metric_sums(metrics: Any, name: str, *keys: str) -> dict[tuple, float]:
    """Sum of a counter's values (or a histogram's sums) by the given attribute keys."""
    out: dict[tuple, float] = {}
    for rm in metrics.resource_metrics if metrics else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name != name:
                    continue
                for dp in metric.data.data_points:
                    key = tuple(dp.attributes.get(k) for k in keys)
                    out[key] = out.get(key, 0) + (dp.sum if hasattr(dp, "bucket_counts") else dp.value)
    return out


def check_spans(run: SimpleNamespace, judge_ports: tuple[int, ...]) -> None:
    """Executor LLM spans are children of grpo.execute_workflow, judge ones of grpo.judge.evaluate."""
    by_id = {s.context.span_id: s for s in run.spans}
    chats = [s for s in run.spans if s.name == f"chat {MODEL}"]
    roles = [role_of(e, judge_ports) for e in run.ledger]
    assert len(chats) == len(run.ledger)  # one span per request, whoever made it
    parents = {"executor": "grpo.execute_workflow", "judge": "grpo.judge.evaluate"}
    seen: dict[str, int] = {}
    for span in chats:
        role = span.attributes["grpo.llm.role"]
        seen[role] = seen.get(role, 0) + 1
        parent = by_id[span.parent.span_id]
        assert parent.name == parents[role], (role, parent.name)
        assert span.attributes["grpo.source"] == parent.attributes["grpo.source"]
    assert seen == {role: roles.count(role) for role in set(roles)}


# --- the tests ------------------------------------------------------------------------------------
def test_one_server_for_executor_and_judge_counts_each_by_who_calls(tmp_path, llm_server, uninstrument):
    """The user's config: executor (async client) and judge (sync client) on the judge's port."""
    plan = make_plan()
    run = train(tmp_path, plan, llm_server.url, llm_server.url, [llm_server.port])
    ports = (llm_server.port,)

    executor_calls = sum(s["llm_calls"] for samples in plan.values() for s in samples)
    judge_calls = sum(s["judge_calls"] for samples in plan.values() for s in samples)
    assert [e["who"] for e in run.ledger].count("executor") == executor_calls
    assert [e["who"] for e in run.ledger].count("judge") == judge_calls
    assert llm_server.stats["total"] == executor_calls + judge_calls  # one server answered both

    assert_rows_equal(run.history, expected_history(plan, run.ledger, ports))
    last = run.history[-1]
    assert last["cost/judge_calls"] == judge_calls  # not executor_calls + judge_calls
    assert last["executor/llm_requests"] == executor_calls
    assert last["judge/input_tokens"] == sum(e["in"] for e in run.ledger if e["who"] == "judge")
    per_step = [sum(s["judge_calls"] for s in plan[step]) for step in plan]
    assert [r["cost/judge_calls"] for r in run.history] == [sum(per_step[: i + 1]) for i in range(STEPS)]

    check_spans(run, ports)
    requests = metric_sums(run.metrics, "grpo.executor.llm_requests", "grpo.split")
    assert requests == {("train",): executor_calls}
    assert metric_sums(run.metrics, "grpo.judge.requests", "grpo.split") == {("train",): judge_calls}
    tokens = metric_sums(run.metrics, "gen_ai.client.token.usage", "grpo.llm.role", "gen_ai.token.type")
    for role in ("executor", "judge"):
        mine = [e for e in run.ledger if e["who"] == role]
        assert tokens[(role, "input")] == sum(e["in"] for e in mine)
        assert tokens[(role, "output")] == sum(e["out"] for e in mine)


def test_judge_on_another_port_at_a_url_without_v1_is_still_the_judge(tmp_path, llm_server, other_server, uninstrument):
    """judge.ports names only the executor's server; the judge's base URL has no /v1."""
    plan = make_plan()
    judge_url = f"http://127.0.0.1:{other_server.port}"
    run = train(tmp_path, plan, llm_server.url, judge_url, [llm_server.port])
    ports = (llm_server.port,)
    judge_calls = sum(s["judge_calls"] for samples in plan.values() for s in samples)
    assert other_server.stats["total"] == judge_calls
    assert all(e["path"] == CHAT_PATH for e in run.ledger if e["who"] == "judge")

    assert_rows_equal(run.history, expected_history(plan, run.ledger, ports))
    last = run.history[-1]
    assert last["judge/total_calls"] > 0
    assert last["cost/judge_calls"] == judge_calls > 0
    assert last["judge/output_tokens"] == sum(e["out"] for e in run.ledger if e["who"] == "judge") > 0
    check_spans(run, ports)
    judge_spans = [s for s in run.spans if s.attributes.get("grpo.llm.role") == "judge"]
    assert {s.attributes["server.port"] for s in judge_spans} == {other_server.port}


@pytest.mark.parametrize("judge_in_ports", [True, False])
def test_a_judge_reached_inline_follows_the_endpoint_rule(
    tmp_path, llm_server, other_server, uninstrument, judge_in_ports
):
    """No wrapped judge function: the configured judge endpoint decides; the executor is still the executor."""
    plan = make_plan()
    ports = [llm_server.port, other_server.port] if judge_in_ports else [llm_server.port]
    run = train(tmp_path, plan, llm_server.url, other_server.url, ports, inline_judge=True)
    inline_calls = sum(s["judge_calls"] for samples in plan.values() for s in samples)
    assert [e["who"] for e in run.ledger].count(None) == inline_calls == other_server.stats["total"]

    assert_rows_equal(run.history, expected_history(plan, run.ledger, tuple(ports)))
    last = run.history[-1]
    assert last["cost/judge_calls"] == (inline_calls if judge_in_ports else 0)
    assert last["executor/llm_requests"] == sum(s["llm_calls"] for samples in plan.values() for s in samples)
    assert not any(k.startswith("judge/") for k in last)  # no judge evaluation was ever made
    roles = {s.attributes["server.port"]: s.attributes["grpo.llm.role"] for s in run.spans if s.name.startswith("chat")}
    assert roles == {llm_server.port: "executor", other_server.port: "judge" if judge_in_ports else "executor"}
    executor_spans = [s for s in run.spans if s.attributes.get("server.port") == llm_server.port]
    by_id = {s.context.span_id: s for s in run.spans}
    assert all(by_id[s.parent.span_id].name == "grpo.execute_workflow" for s in executor_spans)
