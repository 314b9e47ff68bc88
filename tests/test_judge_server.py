"""Tests for the local judge server, over real HTTP on 127.0.0.1 with the openai client."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import openai
import pytest

from otel_grpo.tools.demo.datasets import DATASETS, load_dataset
from otel_grpo.tools.demo.judge_protocol import extract_fields, judge
from otel_grpo.tools.demo.judge_server import OUTCOMES, FaultConfig, JudgeServer

MODEL = "gpt-oss-120b"
SYSTEM = {"role": "system", "content": "You are a strict grader. Reply with a verdict."}
VERDICT_RE = re.compile(r"<true_false>(True|False)</true_false>")


def user_prompt(prediction: str, ground_truth: str) -> list[dict[str, str]]:
    """The trainer-style prompt: labelled blocks in the user message."""
    content = (
        "Question: How many eggs does Janet sell?\n"
        f"Prediction: {prediction}\n"
        f"Ground truth: {ground_truth}\n"
        "Answer with <true_false>True</true_false> or <true_false>False</true_false>."
    )
    return [SYSTEM, {"role": "user", "content": content}]


def client_for(server: JudgeServer, timeout: float = 5.0) -> openai.OpenAI:
    return openai.OpenAI(base_url=server.url, api_key="sk-dummy", max_retries=0, timeout=timeout)


@pytest.fixture
def server() -> Iterator[JudgeServer]:
    with JudgeServer() as srv:
        yield srv


def ask(client: openai.OpenAI, messages: list[dict[str, str]], **kwargs: object):
    return client.chat.completions.create(model=MODEL, messages=messages, temperature=0.0, max_tokens=800, **kwargs)


def verdict_of(content: str | None) -> bool | None:
    match = VERDICT_RE.search(content or "")
    return None if match is None else match.group(1) == "True"


# --- verdicts -----------------------------------------------------------------------


def test_valid_verdicts(server: JudgeServer) -> None:
    client = client_for(server)
    cases = [
        ("The answer is 18.", "9 * 2 = <<9*2=18>>18\n#### 18", True),
        ("17", "#### 18", False),
        ("the Seine", "Seine", True),
        ("Eric Blair", "Eric Arthur Blair", True),  # token F1 = 0.8
        ("Paris", "London", False),
        ("The answer is (B).", "B", True),
        ("C", "B", False),
        (r"\boxed{\frac{3}{4}}", r"so the answer is \boxed{0.75}", True),
    ]
    for prediction, ground_truth, expected in cases:
        reply = ask(client, user_prompt(prediction, ground_truth))
        choice = reply.choices[0]
        assert choice.finish_reason == "stop"
        assert verdict_of(choice.message.content) is expected, (prediction, ground_truth)
        reasoning = choice.message.model_extra["reasoning_content"]
        assert isinstance(reasoning, str) and reasoning
        assert choice.message.tool_calls == []
        assert reply.id.startswith("chatcmpl-") and reply.object == "chat.completion"
        assert reply.model == MODEL
        usage = reply.usage
        assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


def test_reply_is_deterministic_and_usage_approximates_tokens(
    server: JudgeServer,
) -> None:
    client = client_for(server)
    messages = user_prompt("42", "#### 42")
    first, second = ask(client, messages), ask(client, messages)
    assert first.choices[0].message.content == second.choices[0].message.content
    assert first.usage == second.usage
    prompt = "\n".join(m["content"] for m in messages)
    assert first.usage.prompt_tokens == len(prompt) // 4 + 1
    message = first.choices[0].message
    produced = message.model_extra["reasoning_content"] + message.content
    assert first.usage.completion_tokens == len(produced) // 4 + 1


def test_tags_and_missing_fields(server: JudgeServer) -> None:
    client = client_for(server)
    tagged = [
        {
            "role": "user",
            "content": "Compare.\n<prediction>\ndef f():\n    return 1\n</prediction>\n"
            "<ground_truth>def f():\n    return 1</ground_truth>",
        }
    ]
    assert verdict_of(ask(client, tagged).choices[0].message.content) is True
    # The fallback template that never receives the prediction: verdict False.
    missing = [{"role": "user", "content": "Ground truth: 18\nIs it right?"}]
    assert verdict_of(ask(client, missing).choices[0].message.content) is False


def test_prompt_parsing_is_lenient() -> None:
    text = "**Question:** What is 2+2?\n**Prediction:** 4\nGROUND TRUTH:\n2 + 2 = 4\n#### 4\n"
    assert extract_fields(text) == ("4", "2 + 2 = 4\n#### 4")
    few_shot = "Prediction: 1\nGround truth: 2\n\nNow yours.\nPrediction: 7\nGround_truth: 7"
    assert extract_fields(few_shot) == ("7", "7")
    assert extract_fields("nothing here") == (None, None)
    paragraphs = (
        "Model's answer: 12\n\nThe following is the reference.\n"
        "Reference solution: \\boxed{12}\n\nIs the model's answer correct?"
    )
    assert extract_fields(paragraphs) == ("12", "\\boxed{12}")
    code = (
        "Prediction:\n```python\ndef f():\n\n    return 1\n```\n\n"
        "Ground truth:\ndef f():\n    return 1\n\n\ndef g():\n    return 2\n\nThanks."
    )
    assert extract_fields(code) == (
        "def f():\n\n    return 1",
        "def f():\n    return 1\n\n\ndef g():\n    return 2",
    )


@pytest.mark.parametrize("name", DATASETS)
def test_every_ground_truth_judged_equivalent_to_itself(name: str) -> None:
    for item in load_dataset(name):
        assert judge(item["ground_truth"], item["ground_truth"]).verdict is True


def test_small_max_tokens_gives_null_content(server: JudgeServer) -> None:
    reply = client_for(server).chat.completions.create(model=MODEL, messages=user_prompt("18", "#### 18"), max_tokens=5)
    choice = reply.choices[0]
    assert choice.message.content is None
    assert choice.finish_reason == "length"
    assert reply.usage.completion_tokens == 5


# --- fault schedule -----------------------------------------------------------------


def test_each_schedule_outcome_is_observable() -> None:
    schedule = ["ok", "http_500", "http_503", "timeout", "slow", "unparsable", "null_content"]
    faults = FaultConfig(schedule=schedule, hang_s=2.0, slow_s=0.3)
    messages = user_prompt("18", "#### 18")
    with JudgeServer(faults=faults) as srv:
        client = client_for(srv, timeout=1.0)

        ok = ask(client, messages)
        assert verdict_of(ok.choices[0].message.content) is True

        with pytest.raises(openai.InternalServerError) as err500:
            ask(client, messages)
        assert err500.value.status_code == 500
        body = err500.value.response.json()
        assert set(body["error"]) >= {"message", "type", "code"}
        assert body["error"]["code"] == 500

        with pytest.raises(openai.APIStatusError) as err503:
            ask(client, messages)
        assert err503.value.status_code == 503
        assert err503.value.response.json()["error"]["code"] == 503

        start = time.monotonic()
        with pytest.raises(openai.APITimeoutError):
            ask(client_for(srv, timeout=0.5), messages)
        assert time.monotonic() - start < 1.5

        start = time.monotonic()
        slow = ask(client, messages)
        assert time.monotonic() - start >= 0.3
        assert verdict_of(slow.choices[0].message.content) is True

        unparsable = ask(client, messages).choices[0]
        assert unparsable.message.content
        assert "<true_false>" not in unparsable.message.content
        assert unparsable.finish_reason == "stop"

        null = ask(client, messages).choices[0]
        assert null.message.content is None
        assert null.finish_reason == "length"
        assert null.message.model_extra["reasoning_content"]

        # The schedule is cyclic: request 7 is "ok" again.
        assert verdict_of(ask(client, messages).choices[0].message.content) is True

        stats = srv.stats
    assert stats["total"] == 8
    assert {k: stats[k] for k in schedule} == {
        "ok": 2,
        "http_500": 1,
        "http_503": 1,
        "timeout": 1,
        "slow": 1,
        "unparsable": 1,
        "null_content": 1,
    }
    assert stats["verdict_true"] == 3  # ok, slow, ok (timeout's reply was never read)


def test_header_overrides_the_schedule(server: JudgeServer) -> None:
    client = client_for(server)
    messages = user_prompt("18", "#### 18")
    with pytest.raises(openai.APIStatusError) as err:
        ask(client, messages, extra_headers={"X-Judge-Fault": "http_503"})
    assert err.value.status_code == 503
    reply = ask(client, messages, extra_headers={"X-Judge-Fault": "null_content"})
    assert reply.choices[0].message.content is None
    with pytest.raises(openai.BadRequestError):
        ask(client, messages, extra_headers={"X-Judge-Fault": "explode"})
    assert server.stats["http_503"] == 1 and server.stats["null_content"] == 1


def test_an_outage_fails_every_request_until_it_is_switched_off() -> None:
    """While the outage is on: 500, 503, null content in turn (500/503 with Retry-After-Ms); then verdicts again."""
    messages = user_prompt("18", "#### 18")
    with JudgeServer(faults=FaultConfig(schedule=["ok"])) as srv:
        client = client_for(srv)
        assert verdict_of(ask(client, messages).choices[0].message.content) is True
        srv.set_outage(True)
        assert srv.outage
        seen = []
        for _ in range(6):
            try:
                reply = ask(client, messages)
            except openai.APIStatusError as exc:
                seen.append(exc.status_code)
                assert exc.response.headers["retry-after-ms"] == "20"
                assert "outage" in exc.response.json()["error"]["message"]
            else:
                assert reply.choices[0].message.content is None and reply.choices[0].finish_reason == "length"
                seen.append("null")
        assert seen == [500, 503, "null"] * 2
        # the header still wins for one request
        assert verdict_of(ask(client, messages, extra_headers={"X-Judge-Fault": "ok"}).choices[0].message.content)
        srv.set_outage(False)
        assert not srv.outage
        assert verdict_of(ask(client, messages).choices[0].message.content) is True
        srv.set_outage(True)  # a new outage starts its cycle again
        with pytest.raises(openai.InternalServerError):
            ask(client, messages)
        stats = srv.stats
    assert stats["outage"] == 7 and stats["total"] == 10
    assert (stats["http_500"], stats["http_503"], stats["null_content"], stats["ok"]) == (3, 2, 2, 3)


def test_an_outage_fails_fast_through_the_clients_own_retries() -> None:
    """The OpenAI client's default two retries of a 5xx follow Retry-After-Ms: a failed call takes milliseconds."""
    with JudgeServer(faults=FaultConfig(outage_outcomes=("http_503",))) as srv:
        client = openai.OpenAI(base_url=srv.url, api_key="sk-dummy", timeout=5.0)  # max_retries=2
        srv.set_outage(True)
        start = time.monotonic()
        with pytest.raises(openai.APIStatusError):
            ask(client, user_prompt("18", "#### 18"))
        assert time.monotonic() - start < 0.5  # without the header: about 0.5 s + 1 s of backoff
        assert srv.stats["outage"] == srv.stats["http_503"] == 3


def test_outage_outcomes_must_be_failures() -> None:
    for bad in (("ok",), ("slow",), ("explode",), ()):
        with pytest.raises(ValueError, match="outage_outcomes"):
            FaultConfig(outage_outcomes=bad)
    assert FaultConfig(outage_outcomes=(" http_500 ", "unparsable")).outage_outcomes == ("http_500", "unparsable")


# --- protocol details ---------------------------------------------------------------


def test_models_endpoint_and_health(server: JudgeServer) -> None:
    models = client_for(server).models.list()
    assert [m.id for m in models.data] == [MODEL]
    assert models.data[0].owned_by == "vllm"
    base = server.url.removesuffix("/v1")
    assert httpx.get(f"{base}/health").status_code == 200
    assert httpx.get(f"{base}/v1/nope").status_code == 404


def test_unknown_model_and_bad_requests(server: JudgeServer) -> None:
    client = client_for(server)
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=user_prompt("1", "1"))
    bad = httpx.post(f"{server.url}/chat/completions", content=b"{not json")
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "BadRequestError"
    empty = httpx.post(f"{server.url}/chat/completions", json={"model": MODEL})
    assert empty.status_code == 400
    assert server.stats["bad_request"] == 3
    assert server.stats["total"] == 0  # rejected requests draw no outcome


def test_streaming_returns_the_same_content(server: JudgeServer) -> None:
    client = client_for(server)
    messages = user_prompt("The answer is 18", "#### 18")
    plain = ask(client, messages)
    stream = ask(client, messages, stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    content = "".join(c.choices[0].delta.content or "" for c in chunks)
    reasoning = "".join((c.choices[0].delta.model_extra or {}).get("reasoning_content") or "" for c in chunks)
    message = plain.choices[0].message
    assert content == message.content
    assert reasoning == message.model_extra["reasoning_content"]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert chunks[-1].usage is not None and chunks[-1].usage == plain.usage
    assert all(c.choices[0].finish_reason is None for c in chunks[:-1])


def test_streaming_without_usage_and_raw_sse(server: JudgeServer) -> None:
    response = httpx.post(
        f"{server.url}/chat/completions",
        json={"model": MODEL, "messages": user_prompt("x", "y"), "stream": True},
        headers={"X-Judge-Fault": "null_content"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [e for e in response.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events)
    assert events[-1] == "data: [DONE]"
    final = json.loads(events[-2].removeprefix("data: "))
    assert final["choices"][0]["finish_reason"] == "length"
    assert "usage" not in final
    deltas = [json.loads(e.removeprefix("data: "))["choices"][0]["delta"] for e in events[:-1]]
    assert not any(d.get("content") for d in deltas)
    assert any(d.get("reasoning_content") for d in deltas)


def test_concurrent_requests_are_counted_exactly() -> None:
    faults = FaultConfig(schedule=["ok", "http_500", "unparsable", "ok"])
    body = {"model": MODEL, "messages": user_prompt("5", "#### 5")}
    with JudgeServer(faults=faults) as srv, httpx.Client(timeout=5.0) as http:

        def post(_: int) -> int:
            return http.post(f"{srv.url}/chat/completions", json=body).status_code

        with ThreadPoolExecutor(max_workers=8) as pool:
            codes = list(pool.map(post, range(40)))
        stats = srv.stats
    assert Counter(codes) == {200: 30, 500: 10}
    assert (stats["total"], stats["ok"], stats["http_500"]) == (40, 20, 10)
    assert (stats["unparsable"], stats["verdict_true"]) == (10, 20)


# --- seeded rates -------------------------------------------------------------------


def _outcome_sequence(faults: FaultConfig, n: int) -> list[str]:
    """Send n raw requests and classify each reply by what a client observes."""
    seen = []
    with JudgeServer(faults=faults) as srv, httpx.Client(timeout=5.0) as http:
        body = {"model": MODEL, "messages": user_prompt("18", "#### 18")}
        for _ in range(n):
            response = http.post(f"{srv.url}/chat/completions", json=body)
            if response.status_code != 200:
                seen.append(f"http_{response.status_code}")
                continue
            content = response.json()["choices"][0]["message"]["content"]
            if content is None:
                seen.append("null_content")
            elif "<true_false>" not in content:
                seen.append("unparsable")
            else:
                seen.append("ok")
        stats = srv.stats
    assert stats["total"] == n
    assert Counter(seen) == Counter({k: stats[k] for k in OUTCOMES if stats[k]})
    return seen


def test_seeded_rates_are_reproducible_and_match_the_rates() -> None:
    def config(seed: int) -> FaultConfig:
        return FaultConfig(error_rate=0.2, error_status=503, unparsable_rate=0.1, null_content_rate=0.15, seed=seed)

    first = _outcome_sequence(config(7), 200)
    second = _outcome_sequence(config(7), 200)
    other = _outcome_sequence(config(8), 200)
    assert first == second
    assert first != other
    counts = Counter(first)
    assert set(counts) <= {"ok", "http_503", "unparsable", "null_content"}
    # Expected 40 / 20 / 30 / 110; binomial sd is at most ~7.
    assert abs(counts["http_503"] - 40) <= 20
    assert abs(counts["unparsable"] - 20) <= 15
    assert abs(counts["null_content"] - 30) <= 18
    assert abs(counts["ok"] - 110) <= 25


def test_fault_config_validation() -> None:
    with pytest.raises(ValueError):
        FaultConfig(error_rate=0.7, timeout_rate=0.5)
    with pytest.raises(ValueError):
        FaultConfig(error_rate=-0.1)
    with pytest.raises(ValueError):
        FaultConfig(error_status=200)
    with pytest.raises(ValueError):
        FaultConfig(schedule=["ok", "boom"])
    assert FaultConfig(schedule=[" ok ", "http_503"]).schedule == ["ok", "http_503"]
    draws = FaultConfig(error_rate=0.1, timeout_rate=0.1, slow_rate=0.1, unparsable_rate=0.1, null_content_rate=0.1)
    assert [draws.outcome_for_draw(u) for u in (0.05, 0.15, 0.25, 0.35, 0.45, 0.55)] == [
        "http_500",
        "timeout",
        "slow",
        "unparsable",
        "null_content",
        "ok",
    ]


# --- server lifecycle ---------------------------------------------------------------


def test_binds_to_loopback_by_default_and_stops() -> None:
    srv = JudgeServer().start()
    try:
        assert srv.host == "127.0.0.1"
        assert srv._httpd is not None
        assert srv._httpd.server_address[0] == "127.0.0.1"
        assert srv.port > 0
        assert srv.url == f"http://127.0.0.1:{srv.port}/v1"
        assert httpx.get(f"{srv.url}/models").status_code == 200
    finally:
        srv.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{srv.port}/health", timeout=1.0)
    srv.stop()  # idempotent


def test_stop_releases_a_hanging_request_quickly() -> None:
    srv = JudgeServer(faults=FaultConfig(schedule=["timeout"], hang_s=30)).start()
    with pytest.raises(openai.APITimeoutError):
        ask(client_for(srv, timeout=0.3), user_prompt("1", "1"))
    start = time.monotonic()
    srv.stop()
    assert time.monotonic() - start < 3


def test_cli_serves_until_interrupted() -> None:
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "otel_grpo.tools.demo.judge_server",
            "--port",
            "0",
            "--schedule",
            "ok,http_500",
            "--seed",
            "3",
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=repo,
    )
    try:
        assert proc.stderr is not None
        lines, match = [], None
        while match is None and len(lines) < 50:  # other modules may log first
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            match = re.search(r"listening on (http://127\.0\.0\.1:\d+/v1)", line)
        assert match, lines
        url = match.group(1)
        assert httpx.get(f"{url}/models").json()["data"][0]["id"] == MODEL
        body = {"model": MODEL, "messages": user_prompt("1", "1")}
        codes = [httpx.post(f"{url}/chat/completions", json=body).status_code for _ in range(2)]
        assert codes == [200, 500]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def test_cli_rejects_bad_options() -> None:
    from otel_grpo.tools.demo.judge_server import main

    with pytest.raises(SystemExit) as exc:
        main(["--schedule", "ok,nonsense"])
    assert exc.value.code == 2


def test_help_describes_every_option() -> None:
    """``otel-grpo judge-server --help`` has a description for each of its options."""
    proc = subprocess.run(
        [sys.executable, "-m", "otel_grpo.tools.cli", "judge-server", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    options = [
        "--host",
        "--port",
        "--model",
        "--error-rate",
        "--error-status",
        "--timeout-rate",
        "--hang-s",
        "--slow-rate",
        "--slow-s",
        "--unparsable-rate",
        "--null-content-rate",
        "--seed",
        "--schedule",
        "--log-level",
    ]
    # each option's entry: from its name at the start of a help line to the next option's entry
    entries = re.split(r"\n  (?=-)", proc.stdout.split("options:", 1)[1])
    described = {}
    for entry in filter(str.strip, entries):
        words = entry.split()
        # the description: what follows the option name and its metavar, without the default
        text = " ".join(w for w in words[1:] if not w.isupper() and w != words[0])
        described[words[0].rstrip(",")] = re.sub(r"\(default: [^)]*\)", "", text)
    for option in options:
        assert option in described, f"{option} missing from --help"
        assert len(described[option].split()) >= 3, (option, described[option])
    for outcome in OUTCOMES:
        assert outcome in proc.stdout.replace("\n", "").replace(" ", "")


def test_help_documents_the_prompt_format_and_its_example_is_true(server: JudgeServer) -> None:
    """``--help`` says where the judge looks (labels at the start of a line, or tags); what it
    says holds on the real server: its example is judged, a label inside a line is not read."""
    proc = subprocess.run(
        [sys.executable, "-m", "otel_grpo.tools.cli", "judge-server", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    help_text = proc.stdout.split("prompt format:", 1)[1]
    for said in ("START OF A LINE", "<prediction>...</prediction>", "<ground_truth>...</ground_truth>", "<true_false>"):
        assert said in help_text, said
    example = help_text.split("(**Prediction:**, - Ground truth:):\n", 1)[1].split("\n\n", 1)[0]
    lines = [line.strip() for line in example.splitlines()]
    assert [line.split(":", 1)[0] for line in lines] == ["Question", "Prediction", "Ground truth"]
    client = client_for(server)
    reply = ask(client, [SYSTEM, {"role": "user", "content": "\n".join(lines)}])
    assert verdict_of(reply.choices[0].message.content) is True
    inline = ask(client, [SYSTEM, {"role": "user", "content": "Is it right? the prediction: 18, the ground truth: 18"}])
    assert verdict_of(inline.choices[0].message.content) is False  # not read: the fields are missing
    assert "lacks a prediction or a ground truth" in inline.choices[0].message.content


def test_readme_documents_the_prompt_format() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("otel-grpo judge-server --port 8002", 1)[1].split("\n## ", 1)[0]
    for said in ("at the start of a line", "<prediction>", "<ground_truth>", "Ground truth:", "<true_false>"):
        assert said in section, said
