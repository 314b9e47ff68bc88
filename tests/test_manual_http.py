"""The manual API records LLM requests: ``setup()`` installs the HTTP instrumentation.

A loop instrumented by hand (``setup()``, ``step()``, ``sample()``, ``record_*``) calls its judge
and its executor's LLM with the OpenAI client, against real OpenAI-compatible servers on
127.0.0.1. Each client keeps a ledger of the requests it made and the token usage it got back;
the rows read back from the offline WandB run and the spans a real OTLP receiver got are
compared with it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

import otel_grpo
from otel_grpo.instrumentation.llm_http import uninstrument_http
from otel_grpo.tools.demo.judge_server import JudgeServer
from otel_grpo.tools.runreader import read_run
from tests.test_otlp_export import Receiver, attributes

pytestmark = pytest.mark.slow  # starts real servers and WandB runs

SOURCES = ("gsm8k", "hotpotqa", "mmlu")
STEPS = 2
JUDGE_PAD_S = 0.45  # every judge evaluation lasts at least this: its latency lies in (0.432, 0.626]
JUDGE_BUCKET = (0.432, 0.626)


@pytest.fixture
def judge() -> Iterator[JudgeServer]:
    """The judge's server: its port is the one in judge.ports."""
    with JudgeServer() as server:
        yield server


@pytest.fixture
def elsewhere() -> Iterator[JudgeServer]:
    """Another OpenAI-compatible server, on a port that is not in judge.ports."""
    with JudgeServer() as server:
        yield server


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def unpatch_http() -> Iterator[None]:
    yield
    uninstrument_http()


def _ask(client: openai.OpenAI, ledger: list[dict], role: str, question: str) -> str:
    reply = client.chat.completions.create(
        model="gpt-oss-120b", messages=[{"role": "user", "content": question}], max_tokens=200
    )
    ledger.append({"role": role, "in": reply.usage.prompt_tokens, "out": reply.usage.completion_tokens})
    return reply.choices[0].message.content or ""


def test_a_hand_instrumented_loop_records_its_judge_and_executor_requests(tmp_path, judge, elsewhere, receiver):
    tel = otel_grpo.setup(
        None,
        wandb={"mode": "offline", "dir": str(tmp_path)},
        judge={"ports": [judge.port]},
        otlp={"enabled": True, "endpoint": f"http://127.0.0.1:{receiver.port}", "metrics": False},
    )
    on_judge_port = openai.OpenAI(base_url=judge.url, api_key="sk-dummy", max_retries=0)
    on_other_port = openai.OpenAI(base_url=elsewhere.url, api_key="sk-dummy", max_retries=0)
    ledger: list[dict] = []
    evaluations = 0
    for step in range(1, STEPS + 1):
        with otel_grpo.step(step):
            for source in SOURCES:
                with otel_grpo.sample(source):
                    # The executor's operator LLM on the judge's own port: an executor LLM request.
                    with otel_grpo.executor_run() as run:
                        run.answer = _ask(on_judge_port, ledger, "executor", f"solve {source} {step}")
                        run.cost = 0.01
                    # The judge on a port outside judge.ports: a judge request all the same.
                    started = time.perf_counter()
                    with otel_grpo.judge_evaluation() as evaluation:
                        content = _ask(on_other_port, ledger, "judge", f"Is 42 correct for {source}?")
                        evaluation.verdict = "true" in content.lower()
                        time.sleep(max(0.0, started + JUDGE_PAD_S - time.perf_counter()))
                    evaluations += 1
                    # A judge reached inline, with no evaluation open: the endpoint rule decides.
                    _ask(on_judge_port, ledger, "judge", f"inline check of {source}")
                    otel_grpo.record_sample(1.0)
    run_dir = Path(tel.run.dir).parent
    tel.shutdown()

    judge_requests = [e for e in ledger if e["role"] == "judge"]
    executor_requests = [e for e in ledger if e["role"] == "executor"]
    last = read_run(run_dir).history[-1]
    assert last["cost/judge_calls"] == len(judge_requests) == 2 * STEPS * len(SOURCES)
    assert last["executor/llm_requests"] == len(executor_requests) == STEPS * len(SOURCES)
    assert last["judge/input_tokens"] == sum(e["in"] for e in judge_requests)
    assert last["judge/output_tokens"] == sum(e["out"] for e in judge_requests)
    assert last["judge/total_calls"] == evaluations
    low, high = JUDGE_BUCKET
    assert last["judge/latency_p50_s"] == pytest.approx(low + (high - low) * 0.5)
    assert last["judge/latency_p95_s"] == pytest.approx(low + (high - low) * 0.95)

    # The GenAI client spans reach a real OTLP receiver, each with the role that made the request.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not receiver.traces:
        time.sleep(0.1)
    spans = [
        span
        for request in receiver.traces
        for rs in request.resource_spans
        for ss in rs.scope_spans
        for span in ss.spans
    ]
    chat = [s for s in spans if s.name == "chat gpt-oss-120b"]
    roles = [attributes(s).get("grpo.llm.role") for s in chat]
    assert roles.count("judge") == len(judge_requests) and roles.count("executor") == len(executor_requests)
    by_id = {s.span_id: s for s in spans}
    parents = {by_id[s.parent_span_id].name for s in chat if s.parent_span_id in by_id}
    assert {"grpo.judge.evaluate", "grpo.execute_workflow"} <= parents


_PROBE = textwrap.dedent(
    """
    import json, sys
    import httpx, requests, wrapt
    import otel_grpo
    from otel_grpo.instrumentation.llm_http import is_http_instrumented

    tel = otel_grpo.setup(None, wandb={"mode": "disabled"}, instrumentation={"http": sys.argv[1] == "on"})
    sends = {
        "httpx.Client": vars(httpx.Client)["send"],
        "httpx.AsyncClient": vars(httpx.AsyncClient)["send"],
        "requests.Session": vars(requests.Session)["send"],
    }
    patched = sorted(name for name, send in sends.items() if isinstance(send, wrapt.FunctionWrapper))
    with otel_grpo.step(1):
        with otel_grpo.judge_evaluation(source="gsm8k"):
            httpx.post(sys.argv[2] + "/chat/completions", json={"model": "m", "messages": []})
    tel.shutdown()
    calls = tel.rows[-1].get("cost/judge_calls", 0)
    print(json.dumps({"patched": patched, "active": is_http_instrumented(), "judge_calls": calls}))
    """
)


@pytest.mark.parametrize("switch", ["on", "off"])
def test_instrumentation_http_switch_decides_whether_any_http_client_is_patched(judge, switch):
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, switch, judge.url],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    found = json.loads(result.stdout.strip().splitlines()[-1])
    if switch == "on":
        assert found == {
            "patched": ["httpx.AsyncClient", "httpx.Client", "requests.Session"],
            "active": True,
            "judge_calls": 1,
        }
    else:
        assert found == {"patched": [], "active": False, "judge_calls": 0}
