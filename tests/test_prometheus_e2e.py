"""End to end: an instrumented run -> in-process /metrics -> a real Prometheus server.

A short run (3 training steps, each followed by a validation pass) records through the
public API while Debian's Prometheus scrapes otel-grpo's endpoint every second and
evaluates config/prometheus/alerts.yml. Then:

* per-source ``grpo_samples_total`` (and ``grpo_samples_correct_total``) equal the
  hand-counted ground truth of the run;
* every Grafana panel query (``all_promql_expressions()``) is accepted by Prometheus,
  and returns data unless it reads a metric this run never produces (GenAI token usage
  comes only from the judge HTTP instrumentation; such queries are reported in the
  failure message if they ever hide a real gap);
* every rule expression in alerts.yml is accepted; the recording rules fed by this run
  return data, both when queried and as recorded by Prometheus's own rule evaluation,
  and every rule evaluates without error. Alert conditions are evaluated as written:
  for this healthy run the judge-failure, training-stalled and exporter alerts must be
  empty (no false alarm). The cost burn-rate condition is not asserted: a run of a few
  seconds extrapolates to an arbitrary USD/hour figure.

Loopback only; the whole test takes ~10-15 s.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.request
from collections import Counter
from urllib.parse import urlsplit

import pytest
import yaml

from otel_grpo.tools.dashboards import grafana as gd
from tests.prom_harness import (
    ALERTS_FILE,
    PrometheusError,
    prometheus_available,
    query,
    start_prometheus,
    stop_prometheus,
    values_by,
    wait_for_scrape,
    wait_for_series,
)

pytestmark = pytest.mark.slow  # starts real processes, servers or WandB runs

if not prometheus_available():
    if os.environ.get("CI"):
        raise RuntimeError("the Prometheus server is required in CI (apt-get install prometheus)")
    pytest.skip("prometheus not installed (apt-get install prometheus)", allow_module_level=True)

# (source, problem_type, reward, correctness, executor cost USD, executor succeeded)
SAMPLES = [
    ("gsm8k", "math", 1.0, 1.0, 0.0010, True),
    ("gsm8k", "math", 0.0, 0.0, 0.0020, True),
    ("gsm8k", "math", 0.5, 0.95, 0.0015, True),
    ("math", "math", 1.0, 1.0, 0.0030, True),
    ("math", "math", 0.2, 0.2, 0.0010, True),
    ("humaneval", "code", 1.0, 1.0, 0.0025, True),
    ("mbpp", "code", 0.0, 0.0, 0.0005, False),
    ("hotpotqa", "qa", 0.8, 0.8, 0.0012, True),
    ("commonsenseqa", "qa", 1.0, 1.0, 0.0008, True),
    ("mmlu", "qa", 0.25, 0.25, 0.0009, True),
]
STEPS = 3
THRESHOLD = 0.9  # the default accuracy_threshold

# Metrics this run must produce, so the panels reading them must show data.
MUST_HAVE_SIGNAL = {
    gd.SAMPLES,
    gd.CORRECT,
    gd.REWARD_SUM,
    gd.EXEC_COST,
    gd.EXEC_RUNS,
    gd.JUDGE_EVALS,
    gd.JUDGE_REQUESTS,
    gd.JUDGE_COST,
    gd.GROUPS,
    gd.TRAIN_SCALAR,
    gd.TRAIN_STEP,
    gd.JUDGE_DURATION + "_bucket",
    gd.EXEC_DURATION + "_bucket",
}
RECORDS_FED_BY_THIS_RUN = {
    "grpo:judge_failure_ratio:rate5m",
    "grpo:cost_usd_per_hour:rate30m",
    "grpo:train_steps:increase15m",
}
ALERTS_QUIET_FOR_A_HEALTHY_RUN = {"GrpoJudgeFailureRateHigh", "GrpoTrainingStalled", "GrpoExporterDroppingData"}


def record_samples(otel_grpo) -> None:
    for source, ptype, reward, correctness, cost, ok in SAMPLES:
        # One GRPO group per dataset and window (gsm8k's rewards differ; a lone sample's don't).
        with otel_grpo.sample(source=source, problem_type=ptype, group=source):
            otel_grpo.record_executor_run(cost=cost, duration_s=0.2, success=ok)
            otel_grpo.record_sample(reward=reward, correctness=correctness)
            otel_grpo.record_judge_request(input_tokens=400, output_tokens=20)
            otel_grpo.record_judge_evaluation(outcome="success", verdict=True, duration_s=0.3)


def ground_truth() -> tuple[Counter, Counter]:
    samples, correct = Counter(), Counter()
    for split in ("train", "val"):
        for source, _, _, correctness, _, _ in SAMPLES:
            samples[(split, source)] += STEPS
            if correctness >= THRESHOLD:
                correct[(split, source)] += STEPS
    return samples, correct


def has_signal(api_url: str, metric: str) -> bool:
    return bool(query(api_url, f"count({metric} != 0)"))


def rules_health(api_url: str) -> list[tuple[str, str, str]]:
    with urllib.request.urlopen(f"{api_url}/api/v1/rules", timeout=10) as response:
        groups = json.loads(response.read())["data"]["groups"]
    return [(r["name"], r["health"], r.get("lastError", "")) for g in groups for r in g["rules"]]


@pytest.fixture
def instrumented_run():
    """Set otel-grpo up with its Prometheus endpoint and a Prometheus scraping it."""
    import otel_grpo

    tel = otel_grpo.setup(
        {
            "wandb": {"mode": "disabled"},
            "prometheus": {"enabled": True, "port": 0},
            "judge": {"price_input_per_mtok": 0.5, "price_output_per_mtok": 2.0},  # -> judge cost
        }
    )
    proc = None
    try:
        url = tel.prometheus_url
        assert url and url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
        proc, api_url = start_prometheus(urlsplit(url).netloc, scrape_interval="1s")
        yield otel_grpo, tel, api_url
    finally:
        if proc is not None:
            stop_prometheus(proc)
        tel.shutdown()  # after Prometheus scraped: the endpoint goes away with it


def test_dashboard_and_rules_against_a_real_run(instrumented_run):
    otel_grpo, tel, api_url = instrumented_run
    wait_for_scrape(api_url, time.time())  # a first scrape before anything is recorded
    for step in range(1, STEPS + 1):
        with otel_grpo.step(step):
            record_samples(otel_grpo)
            otel_grpo.record_scalars(loss=0.5 / step, kl_div=0.01 * step, temperature=0.7)
        with otel_grpo.validation():
            record_samples(otel_grpo)
        # Every step is seen by its own scrape, so rate()/increase() have something to see.
        wait_for_scrape(api_url, time.time())

    samples, correct = ground_truth()
    result = wait_for_series(
        api_url,
        f"sum by (grpo_split, grpo_source) ({gd.SAMPLES})",
        predicate=lambda r: values_by(r, "grpo_split", "grpo_source") == samples,
        timeout_s=15,
    )
    assert values_by(result, "grpo_split", "grpo_source") == samples
    got_correct = values_by(
        query(api_url, f"sum by (grpo_split, grpo_source) ({gd.CORRECT})"), "grpo_split", "grpo_source"
    )
    assert {k: v for k, v in got_correct.items() if v} == dict(correct)
    # The run's resource attributes are labels, so the dashboard's run filter works.
    run_ids = {r["metric"].get("grpo_run_id") for r in query(api_url, gd.SAMPLES)}
    assert run_ids == {tel.providers.run_id}

    # --- every dashboard query -------------------------------------------------------------
    missing_signal = {m for m in gd.prometheus_series_names() if not has_signal(api_url, m)}
    assert not (MUST_HAVE_SIGNAL & missing_signal), f"the run produced no {MUST_HAVE_SIGNAL & missing_signal}"
    empty, exempt = [], []
    for title, expr in gd.all_promql_expressions():
        rows = query(api_url, expr)  # raises PrometheusError if Prometheus rejects it
        inputs = set(re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\{", expr))
        if rows:
            continue
        if inputs & missing_signal:
            exempt.append((title, sorted(inputs & missing_signal)))
        else:
            empty.append((title, expr))
    assert not empty, f"dashboard queries without data although their inputs exist: {empty}"
    assert len(exempt) <= 2, exempt

    # --- every rule in alerts.yml ------------------------------------------------------------
    rules = [r for g in yaml.safe_load(ALERTS_FILE.read_text())["groups"] for r in g["rules"]]
    for rule in rules:
        try:
            rows = query(api_url, rule["expr"])
        except PrometheusError as exc:
            pytest.fail(f"rule {rule.get('record') or rule.get('alert')} rejected: {exc}")
        if rule.get("record") in RECORDS_FED_BY_THIS_RUN:
            assert rows, f"recording rule {rule['record']} returned nothing"
        if rule.get("alert") in ALERTS_QUIET_FOR_A_HEALTHY_RUN:
            assert rows == [], f"{rule['alert']} would fire for a healthy run: {rows}"
    # Prometheus evaluates the rule file itself (evaluation_interval 1s): recorded series
    # appear, and no rule reports an evaluation error.
    for record in RECORDS_FED_BY_THIS_RUN:
        wait_for_series(api_url, record, timeout_s=10)
    deadline = time.monotonic() + 10
    while any(health != "ok" for _, health, _ in rules_health(api_url)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert all(health == "ok" for _, health, _ in rules_health(api_url)), rules_health(api_url)
