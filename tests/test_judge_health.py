"""An unreachable judge is reported: one warning per outage, after N evaluations in a row fail."""

from __future__ import annotations

import logging
import re
import socket

import openai
import pytest

import otel_grpo
from otel_grpo.instrumentation.judge_health import JudgeHealth, judge_health
from otel_grpo.tools.demo.judge_server import JudgeServer

HEALTH_LOGGER = "otel_grpo.instrumentation.judge_health"


class Judge:
    """The user's judge method: any exception is an API failure, counted in eval_stats."""

    def __init__(self, url: str):
        self.client = openai.OpenAI(base_url=url, api_key="sk-dummy", timeout=2.0, max_retries=0)
        self.eval_stats = {"llm_judge_success": 0, "llm_judge_parse_failures": 0, "llm_judge_api_failures": 0}

    def _llm_judge_compare(self, problem, prediction, ground_truth, problem_type, source=None):
        try:
            reply = self.client.chat.completions.create(
                model="gpt-oss-120b",
                messages=[{"role": "user", "content": f"Prediction: {prediction}\nGround truth: {ground_truth}"}],
            )
        except Exception:  # noqa: BLE001 - the user's code: any exception is an API failure
            self.eval_stats["llm_judge_api_failures"] += 1
            return False
        match = re.search(r"<true_false>(True|False)</true_false>", reply.choices[0].message.content or "")
        if not match:
            self.eval_stats["llm_judge_parse_failures"] += 1
            return False
        self.eval_stats["llm_judge_success"] += 1
        return match.group(1) == "True"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == HEALTH_LOGGER and r.levelno == logging.WARNING]


def _evaluate(judge: Judge, n: int) -> None:
    for _ in range(n):
        with otel_grpo.sample("gsm8k", "math"):
            judge._llm_judge_compare("q", "42", "42", "math")


def test_one_warning_per_outage_naming_the_endpoint_and_error_class(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=HEALTH_LOGGER)
    port = _closed_port()
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"}, judge={"ports": [port]})
    judge = otel_grpo.instrument_trainer(Judge(f"http://user:s3cret@127.0.0.1:{port}/v1"))
    with otel_grpo.step(1):
        _evaluate(judge, 4)
        assert _warnings(caplog) == []  # 4 in a row: not yet
        assert judge_health(tel).snapshot().down is False
        _evaluate(judge, 1)
        warnings = _warnings(caplog)
        assert len(warnings) == 1, warnings
        assert warnings[0] == (
            f"otel-grpo: the LLM judge failed 5 evaluations in a row (error.type=connection) at "
            f"http://127.0.0.1:{port}/v1/chat/completions; is the judge server running there, "
            "and is that the URL your judge function should call? Rewards that need the judge are failing "
            "(no further warning until it answers again)"
        )
        assert "judge.ports" not in warnings[0] and "judge.hosts" not in warnings[0]
        _evaluate(judge, 10)  # the same outage: no second warning
        assert len(_warnings(caplog)) == 1
        state = judge_health(tel).snapshot()
        assert state.down and state.last_error_type == "connection" and state.consecutive_api_failures == 15

        with JudgeServer(host="127.0.0.1", port=port):  # the judge comes back: one success ends the outage
            _evaluate(judge, 1)
        judge.client.close()  # the stopped server would still answer on a kept-alive connection
        judge.client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="sk-dummy", max_retries=0)
        state = judge_health(tel).snapshot()
        assert not state.down and state.successes == 1 and state.consecutive_api_failures == 0

        _evaluate(judge, 4)  # a new outage, not yet long enough
        assert len(_warnings(caplog)) == 1
        _evaluate(judge, 1)
        warnings = _warnings(caplog)
        assert len(warnings) == 2 and "error.type=connection" in warnings[1]
    assert judge.eval_stats["llm_judge_api_failures"] == 20


def test_threshold_is_configurable_and_zero_turns_the_warning_off(caplog):
    caplog.set_level(logging.WARNING, logger=HEALTH_LOGGER)
    health = JudgeHealth(warn_after=2)
    health.observe("api_failure", "timeout", "http://judge:8002/v1/chat/completions")
    assert _warnings(caplog) == []
    health.observe("parse_failure")  # the judge answered: the streak ends
    health.observe("api_failure", "timeout", "http://judge:8002/v1/chat/completions")
    assert _warnings(caplog) == []
    health.observe("api_failure", "http_status", "http://judge:8002/v1/chat/completions")
    assert len(_warnings(caplog)) == 1
    assert (
        "2 evaluations in a row (error.type=http_status) at http://judge:8002/v1/chat/completions"
        in (_warnings(caplog)[0])
    )

    off = JudgeHealth(warn_after=0)
    for _ in range(20):
        off.observe("api_failure", "connection", None)
    assert len(_warnings(caplog)) == 1
    assert off.snapshot().down is False and off.snapshot().api_failures == 20


def test_the_url_the_judge_function_calls_is_named_whatever_judge_ports_say(caplog):
    """judge.ports (8002 by default) only classifies requests made outside the judge function: a judge
    called on another port is named by its URL, and the warning does not point at judge.ports."""
    caplog.set_level(logging.WARNING, logger=HEALTH_LOGGER)
    port = _closed_port()
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    assert port not in tel.config.judge.ports
    judge = otel_grpo.instrument_trainer(Judge(f"http://127.0.0.1:{port}/v1"))
    with otel_grpo.step(1):
        _evaluate(judge, 5)
    (warning,) = _warnings(caplog)
    assert f"at http://127.0.0.1:{port}/v1/chat/completions; is the judge server running there" in warning
    assert "judge.ports" not in warning and "8002" not in warning
    assert judge_health(tel).snapshot().location == f"http://127.0.0.1:{port}/v1/chat/completions"


class SocketJudge:
    """A judge function that fails before any HTTP request otel-grpo could see (a raw socket)."""

    def __init__(self, port: int):
        self.port = port

    def _llm_judge_compare(self, problem, prediction, ground_truth, problem_type, source=None):
        with socket.create_connection(("127.0.0.1", self.port), timeout=1):  # refused: raises
            return True


@pytest.mark.parametrize("http", [True, False])
def test_no_request_seen_is_said_and_no_configured_endpoint_is_named(caplog, http):
    caplog.set_level(logging.WARNING, logger=HEALTH_LOGGER)
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"}, instrumentation={"http": http})
    judge = otel_grpo.instrument_trainer(SocketJudge(_closed_port()))
    with otel_grpo.step(1):
        for _ in range(5):
            with otel_grpo.sample("gsm8k", "math"), pytest.raises(ConnectionRefusedError):
                judge._llm_judge_compare("q", "42", "42", "math")
    (warning,) = _warnings(caplog)
    assert warning.startswith("otel-grpo: the LLM judge failed 5 evaluations in a row (error.type=")
    if http:
        assert "otel-grpo saw no HTTP request inside the judge function (a client it does not wrap?)" in warning
    else:
        assert "(instrumentation.http is false, so its requests are not seen)" in warning
    assert "check the URL" in warning and "judge.ports" not in warning and "configured" not in warning
    assert judge_health(tel).snapshot().location is None
