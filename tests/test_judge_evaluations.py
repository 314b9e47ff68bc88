"""Judge evaluations under real faults: outcome, error.type, span tree, rates in WandB rows."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import openai
import pytest
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import otel_grpo
from otel_grpo.tools.demo.judge_server import FaultConfig, JudgeServer
from otel_grpo.tools.runreader import read_run

pytestmark = pytest.mark.slow  # starts real processes, servers or WandB runs

# fault -> (outcome, error.type, HTTP requests per evaluation) for the judge below
# (2 attempts per evaluation; the OpenAI client itself retries 5xx twice: max_retries=2).
EXPECTED = {
    "ok": ("success", None, 1),
    "http_500": ("api_failure", "http_status", 3),
    "http_503": ("api_failure", "http_status", 3),
    "timeout": ("api_failure", "timeout", 3),  # the client retries timeouts too
    "slow": ("success", None, 1),
    "unparsable": ("parse_failure", None, 1),
    "null_content": ("api_failure", "empty_content", 2),
}


class Judge:
    """The user's judge: up to 2 attempts, None content retried, eval_stats with their quirks."""

    def __init__(self, url: str, timeout: float = 2.0):
        self.client = openai.OpenAI(base_url=url, api_key="sk-dummy", timeout=timeout)
        self.eval_stats = {
            "total_evaluations": 0,
            "llm_judge_success": 0,
            "llm_judge_parse_failures": 0,
            "llm_judge_api_failures": 0,
            "correct_predictions": 0,
            "incorrect_predictions": 0,
        }

    def _llm_judge_compare(self, problem, prediction, ground_truth, problem_type, source=None, fault=None):
        self.eval_stats["total_evaluations"] += 1
        for _ in range(2):
            try:
                reply = self.client.chat.completions.create(
                    model="gpt-oss-120b",
                    temperature=0.0,
                    max_tokens=800,
                    messages=[
                        {"role": "system", "content": "Judge."},
                        {"role": "user", "content": f"Prediction: {prediction}\nGround truth: {ground_truth}"},
                    ],
                    extra_headers={"X-Judge-Fault": fault} if fault else None,
                )
            except Exception:  # noqa: BLE001 - the user's code: any exception is an API failure
                self.eval_stats["llm_judge_api_failures"] += 1
                return False
            content = reply.choices[0].message.content
            if content is None:
                self.eval_stats["llm_judge_api_failures"] += 1  # bumped per attempt (their quirk)
                continue
            match = re.search(r"<true_false>(True|False)</true_false>", content)
            if not match:
                self.eval_stats["llm_judge_parse_failures"] += 1
                return False
            self.eval_stats["llm_judge_success"] += 1
            return match.group(1) == "True"
        return False


@pytest.fixture
def server():
    with JudgeServer(faults=FaultConfig(hang_s=3.0, slow_s=0.3)) as srv:
        yield srv


def _setup(tmp_path: Path, port: int, spans: InMemorySpanExporter | None = None, **judge):
    processors = [SimpleSpanProcessor(spans)] if spans is not None else []
    return otel_grpo.setup(
        None,
        wandb={"mode": "offline", "dir": str(tmp_path)},
        judge={"ports": [port], **judge},
        span_processors=processors,
    )


@pytest.mark.parametrize("fault", sorted(EXPECTED))
def test_each_fault_gives_one_outcome_its_error_type_and_the_span_tree(tmp_path, server, fault):
    spans = InMemorySpanExporter()
    tel = _setup(tmp_path, server.port, spans)
    judge = otel_grpo.instrument_trainer(Judge(server.url, timeout=1.0))
    with otel_grpo.step(1):
        with otel_grpo.sample("gsm8k", "math"):
            verdict = judge._llm_judge_compare("q", "42", "42", "math", source="code_llm_judge", fault=fault)
            otel_grpo.record_sample(1.0 if verdict else 0.0)
    outcome, error_type, requests = EXPECTED[fault]
    row = tel.rows[-1]
    assert row["judge/total_calls"] == 1
    assert row[f"judge/{outcome}_rate"] == 1.0
    assert row["judge/step_" + outcome + "_rate"] == 1.0
    assert row["cost/judge_calls"] == requests
    assert row["judge/gsm8k_success_rate"] == (1.0 if outcome == "success" else 0.0)
    finished = spans.get_finished_spans()
    evaluation = [s for s in finished if s.name == "grpo.judge.evaluate"]
    attempts = [s for s in finished if s.name == "chat gpt-oss-120b"]
    assert len(evaluation) == 1 and len(attempts) == requests
    assert evaluation[0].attributes["grpo.judge.outcome"] == outcome
    assert evaluation[0].attributes.get("error.type") == error_type
    assert evaluation[0].attributes["grpo.source"] == "gsm8k"
    step_span = [s for s in finished if s.name == "grpo.train_step"][0]
    assert evaluation[0].parent.span_id == step_span.context.span_id
    for attempt in attempts:
        assert attempt.parent.span_id == evaluation[0].context.span_id
        assert attempt.attributes["server.port"] == server.port
        assert attempt.attributes["gen_ai.operation.name"] == "chat"
    if error_type in ("http_status", "empty_content", "timeout"):
        assert attempts[-1].attributes["error.type"] == error_type
    # The GenAI evaluation event, and what scored the sample.
    (event,) = [e for e in evaluation[0].events if e.name == "gen_ai.evaluation.result"]
    if outcome == "success":
        assert dict(event.attributes) == {
            "gen_ai.evaluation.name": "judge",
            "gen_ai.evaluation.score.label": "correct" if verdict else "incorrect",
            "gen_ai.evaluation.score.value": 1.0 if verdict else 0.0,
        }
    else:
        assert dict(event.attributes) == {
            "gen_ai.evaluation.name": "judge",
            "gen_ai.evaluation.score.label": "failed",
            "error.type": error_type or outcome,  # a parse failure has no transport error
        }
    assert row["train/judge_share"] == 1.0
    assert row["train/judge_failed_share"] == (0.0 if outcome == "success" else 1.0)
    assert row["dataset/gsm8k/judge_failed_share"] == (0.0 if outcome == "success" else 1.0)
    assert row["dataset/gsm8k/accuracy"] == (100.0 if verdict else 0.0)
    if outcome == "success":
        assert row["dataset/gsm8k/accuracy_excl_judge_failed"] == (100.0 if verdict else 0.0)
    else:  # the only sample was judge_failed: nothing left to rate
        assert "dataset/gsm8k/accuracy_excl_judge_failed" not in row


class Scorer(Judge):
    """compute_reward that asks the judge for code and scores math by rule."""

    def compute_reward(self, problem, prediction, ground_truth, problem_type="math", source=None, fault=None):
        if problem_type == "code":
            return 1.0 if self._llm_judge_compare(problem, prediction, ground_truth, problem_type, fault=fault) else 0.0
        return 1.0 if prediction == ground_truth else 0.0


def test_reward_spans_say_what_scored_the_sample(tmp_path, server):
    spans = InMemorySpanExporter()
    tel = _setup(tmp_path, server.port, spans)
    scorer = otel_grpo.instrument_trainer(Scorer(server.url, timeout=1.0))
    with otel_grpo.step(1):
        scorer.compute_reward("q", "42", "42", "math", source="gsm8k")
        scorer.compute_reward("q", "42", "42", "code", source="mbpp", fault="ok")
        scorer.compute_reward("q", "42", "42", "code", source="mbpp", fault="http_500")
    rewards = [s for s in spans.get_finished_spans() if s.name == "grpo.compute_reward"]
    assert [s.attributes["grpo.scored_by"] for s in rewards] == ["rule", "judge", "judge_failed"]
    row = tel.rows[-1]
    assert row["train/judge_share"] == 2 / 3 and row["train/judge_failed_share"] == 1 / 3
    assert row["dataset/gsm8k/judge_share"] == 0.0
    assert row["dataset/mbpp/judge_share"] == 1.0 and row["dataset/mbpp/judge_failed_share"] == 0.5
    assert row["dataset/mbpp/accuracy"] == 50.0
    assert row["dataset/mbpp/accuracy_excl_judge_failed"] == 100.0


def test_connection_refused_is_an_api_failure_of_type_connection(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    spans = InMemorySpanExporter()
    tel = _setup(tmp_path, port, spans)
    judge = otel_grpo.instrument_trainer(Judge(f"http://127.0.0.1:{port}/v1", timeout=1.0))
    with otel_grpo.step(1):
        with otel_grpo.sample("math"):
            assert judge._llm_judge_compare("q", "1", "1", "math") is False
    evaluation = [s for s in spans.get_finished_spans() if s.name == "grpo.judge.evaluate"][0]
    assert evaluation.attributes["grpo.judge.outcome"] == "api_failure"
    assert evaluation.attributes["error.type"] == "connection"
    assert tel.rows[-1]["judge/api_failure_rate"] == 1.0
    assert tel.rows[-1]["cost/judge_calls"] == 3  # the OpenAI client retried twice


def test_rates_in_wandb_rows_equal_the_injected_schedule_exactly(tmp_path):
    schedule = ["ok", "unparsable", "ok", "null_content", "null_content", "ok", "unparsable"]
    # evaluations (a null content is retried once): ok | unparsable | ok || null,null -> api | ok | unparsable
    with JudgeServer(faults=FaultConfig(schedule=schedule)) as srv:
        tel = _setup(tmp_path, srv.port, price_input_per_mtok=0.5, price_output_per_mtok=2.0)
        judge = otel_grpo.instrument_trainer(Judge(srv.url))
        for step in (1, 2):
            with otel_grpo.step(step):
                for _ in range(3):
                    with otel_grpo.sample("hotpotqa"):
                        judge._llm_judge_compare("q", "Paris", "Paris", "qa")
        stats = srv.stats
        run_dir = Path(tel.run.dir).parent
        tel.shutdown()
    rows = [r for r in read_run(run_dir).history if "train/step" in r]
    assert [r["judge/total_calls"] for r in rows] == [3, 6]
    assert rows[0]["judge/step_success_rate"] == pytest.approx(2 / 3)
    assert rows[0]["judge/step_parse_failure_rate"] == pytest.approx(1 / 3)
    assert rows[1]["judge/step_api_failure_rate"] == pytest.approx(1 / 3)
    assert rows[1]["judge/step_success_rate"] == pytest.approx(1 / 3)
    assert rows[1]["judge/success_rate"] == pytest.approx(3 / 6)
    assert rows[1]["judge/parse_failure_rate"] == pytest.approx(2 / 6)
    assert rows[1]["judge/api_failure_rate"] == pytest.approx(1 / 6)
    assert rows[1]["judge/correct_predictions"] == 3 and rows[1]["judge/correct_ratio"] == 1.0
    assert rows[1]["cost/judge_calls"] == stats["total"] == 7
    tokens_in, tokens_out = rows[1]["judge/input_tokens"], rows[1]["judge/output_tokens"]
    assert tokens_in > 0 and tokens_out > 0
    assert rows[1]["cost/judge_cost"] == pytest.approx((tokens_in * 0.5 + tokens_out * 2.0) / 1e6)
    assert 0 < rows[1]["judge/latency_p50_s"] <= rows[1]["judge/latency_p95_s"]


def test_judge_without_eval_stats_is_classified_from_http_attempts(tmp_path, server):
    class Bare:
        def __init__(self):
            self.client = openai.OpenAI(base_url=server.url, api_key="sk-dummy", max_retries=0, timeout=1.0)

        def _llm_judge_compare(self, problem, prediction, ground_truth, problem_type, source=None):
            reply = self.client.chat.completions.create(
                model="gpt-oss-120b",
                messages=[{"role": "user", "content": "Prediction: 1\nGround truth: 2"}],
                extra_headers={"X-Judge-Fault": problem},
            )
            return "<true_false>True" in (reply.choices[0].message.content or "")

    tel = _setup(tmp_path, server.port)
    judge = otel_grpo.instrument_trainer(Bare())
    with otel_grpo.step(1):
        for fault in ("ok", "unparsable", "http_500"):
            with otel_grpo.sample("mmlu"):
                try:
                    judge._llm_judge_compare(fault, "", "", "qa")
                except openai.InternalServerError:
                    pass
    row = tel.rows[-1]
    assert row["judge/total_calls"] == 3
    assert row["judge/success_rate"] == pytest.approx(1 / 3)
    assert row["judge/parse_failure_rate"] == pytest.approx(1 / 3)
    assert row["judge/api_failure_rate"] == pytest.approx(1 / 3)
    assert row["judge/incorrect_predictions"] == 1


def test_500_concurrent_async_judge_evaluations_exact_no_deadlock(tmp_path, server):
    class AsyncJudge:
        def __init__(self):
            self.client = openai.AsyncOpenAI(base_url=server.url, api_key="sk-dummy", max_retries=0, timeout=30.0)

        async def _llm_judge_compare(self, problem, prediction, ground_truth, problem_type, source=None):
            reply = await self.client.chat.completions.create(
                model="gpt-oss-120b",
                messages=[{"role": "user", "content": f"Prediction: {prediction}\nGround truth: {ground_truth}"}],
            )
            return "<true_false>True" in (reply.choices[0].message.content or "")

    tel = _setup(tmp_path, server.port)
    judge = otel_grpo.instrument_trainer(AsyncJudge())
    sources = ["gsm8k", "math", "hotpotqa", "commonsenseqa", "mmlu"]

    async def one(i: int) -> bool:
        with otel_grpo.sample(sources[i % 5]):
            return await judge._llm_judge_compare("q", str(i % 2), "1", "qa")

    async def many() -> list[bool]:
        return await asyncio.gather(*(one(i) for i in range(500)))

    with otel_grpo.step(1):
        verdicts = asyncio.run(asyncio.wait_for(many(), timeout=120))
    row = tel.rows[-1]
    assert sum(verdicts) == 250
    assert row["judge/total_calls"] == 500 and row["judge/success_rate"] == 1.0
    assert row["judge/correct_predictions"] == 250 and row["judge/incorrect_predictions"] == 250
    assert row["cost/judge_calls"] == 500
    for src in sources:
        assert row[f"judge/{src}_success_rate"] == 1.0
