"""The TRL module's pure parts, without TRL: completions from values, launchers, request roles."""

from __future__ import annotations

import math

import pytest

from otel_grpo.config import JudgeConfig
from otel_grpo.instrumentation.launch import is_launcher, worker_overrides
from otel_grpo.instrumentation.llm_http.classify import CALL_REWARD, ROLE_JUDGE, JudgeEndpoint, classify_request
from otel_grpo.instrumentation.trl.scoring import FunctionCall, score_completions, scored_by
from otel_grpo.recording.context import JudgeEvaluationState, enter_call, exit_call


def test_reward_is_the_weighted_sum_of_the_values_that_are_not_none():
    calls = [
        FunctionCall("rule", [1.0, None, None, 0.5, float("nan")]),
        FunctionCall("judge", [0.0, 1.0, None, None, 1.0], judge=True, failed_request=None, duration_s=0.2),
    ]
    out = score_completions(calls, [2.0, 0.5], ["gsm8k"] * 5, ["math"] * 5, correctness="judge")
    assert [c[2] for c in out] == [2.0, 0.5, None, 1.0, 0.5]  # NaN is skipped like None (TRL's nansum)
    assert [c[3] for c in out] == [0.0, 1.0, None, None, 1.0]  # the judge's value, else (None) the reward
    assert out[0][4] == (("success", False, None, 0.2),) and out[1][4] == (("success", True, None, 0.2),)
    assert out[2][4] == (("parse_failure", None, None, 0.2),)  # a None with no failed request
    assert scored_by(out[0][4]) == "judge" and scored_by(out[2][4]) == "judge_failed" and scored_by(()) == "rule"


def test_a_none_after_a_failed_request_is_an_api_failure_unless_none_means_not_applicable():
    calls = [FunctionCall("judge", [None, 1.0], judge=True, failed_request="500")]
    failed = score_completions(calls, [1.0], ["a", "b"], [None, None])
    assert failed[0][4] == (("api_failure", None, "500", None),) and failed[0][2] is None
    not_applicable = score_completions(calls, [1.0], ["a", "b"], [None, None], none_fails=False)
    assert not_applicable[0][4] == () and not_applicable[1][4][0][0] == "success"


def test_odd_values_and_labels():
    calls = [FunctionCall("r", [True, "x", 3, math.inf])]
    out = score_completions(calls, [1.0], [object(), None, 7, "GSM8K"], ["", None, None, None])
    assert [c[2] for c in out] == [1.0, None, 3.0, math.inf]
    assert isinstance(out[0][0], str) and out[1][0] is None and out[2][0] == 7


@pytest.mark.parametrize(
    ("argv", "launcher"),
    [
        (["/v/bin/python", "/v/bin/accelerate", "launch", "--multi_gpu", "t.py"], True),
        (["/v/bin/python", "/v/bin/accelerate", "config"], False),
        (["/v/bin/python", "/v/bin/torchrun", "--nproc_per_node", "2", "t.py"], True),
        (["python", "-m", "torch.distributed.run", "t.py"], True),
        (["python", "-m", "accelerate.commands.launch", "t.py"], True),
        (["python", "train.py", "accelerate"], False),
        (["python", "-m", "mypkg.train"], False),
    ],
)
def test_launchers_are_told_apart_from_training_processes(argv, launcher):
    assert is_launcher(argv) is launcher


def test_only_the_main_process_writes_serves_and_exports(monkeypatch):
    monkeypatch.delenv("RANK", raising=False)
    assert worker_overrides() == {}
    monkeypatch.setenv("RANK", "0")
    assert worker_overrides() == {}
    monkeypatch.setenv("RANK", "1")
    assert worker_overrides() == {
        "wandb": {"mode": "disabled"},
        "prometheus": {"enabled": False},
        "otlp": {"enabled": False},
    }


def test_a_reward_call_makes_judge_requests_of_genai_and_judge_endpoint_requests_only():
    endpoint = JudgeEndpoint(JudgeConfig(ports=[8002]))
    state = JudgeEvaluationState(source="gsm8k", problem_type="math")
    token = enter_call(CALL_REWARD, state)
    try:
        genai = classify_request(endpoint, "POST", "127.0.0.1", 9000, "/v1/chat/completions")
        rule = classify_request(endpoint, "POST", "127.0.0.1", 8002, "/v1/completions")
        other = classify_request(endpoint, "GET", "127.0.0.1", 8002, "/health")
        sandbox = classify_request(endpoint, "POST", "127.0.0.1", 9000, "/run")
    finally:
        exit_call(token)
    assert genai is not None and genai.role == ROLE_JUDGE and genai.judge_state is state
    assert rule is not None and rule.role == ROLE_JUDGE and rule.judge_state is state
    assert other is None and sandbox is None
