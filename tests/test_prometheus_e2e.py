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
  the training-stalled and exporter alerts, and the run-wide judge-failure alert (13 %
  of evaluations fail, under its 20 %), must be empty (no false alarm). The cost
  burn-rate condition is not asserted: a run of a few seconds extrapolates to an
  arbitrary USD/hour figure.
* reward integrity: gsm8k's judge fails on ``step`` samples of training step ``step``
  (one on each validation pass), mmlu's on 1 of 21. Every query of the Reward integrity
  row, run over exactly one step's window (from the scrape after step k-1 to the scrape
  after step k, so ``increase`` is that step's exact count), equals the WandB row of
  that step (``dataset/{source}/judge_share``, ``judge_failed_share``, ``accuracy``,
  ``accuracy_excl_judge_failed``, ``cost_per_correct``, ``train/judge_share``, ...) and
  the hand-counted plan; the since-start cost per correct answer equals the last row's
  ``cost/cost_per_correct``. The judge-failed-share alert's expression, over the same
  windows, equals the hand-counted share of train and validation samples per source;
  as written (5m) its condition holds for gsm8k only (25-50 %), not for mmlu (4.8 %),
  humaneval (rule-scored) or mbpp (nothing scored), and Prometheus has it pending.

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
    SCRAPE_JOB,
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

# (source, problem_type, reward, correctness, executor cost USD, executor succeeded,
#  the sample's judge evaluations). What scored each sample: no evaluation -> rule; one
#  success -> judge; evaluations that all failed -> judge_failed; failed execution -> not scored.
OK, API, PARSE = "success", "api_failure", "parse_failure"
SAMPLES = [
    ("gsm8k", "math", 1.0, 1.0, 0.0010, True, (OK,)),
    ("gsm8k", "math", 0.5, 0.95, 0.0015, True, (PARSE, OK)),  # a retry: two evaluations, scored by the judge
    ("gsm8k", "math", 1.0, 1.0, 0.0005, True, ()),  # the numeric match decided
    ("math", "math", 1.0, 1.0, 0.0030, True, (OK,)),
    ("math", "math", 0.2, 0.2, 0.0010, True, (OK,)),
    ("humaneval", "code", 1.0, 1.0, 0.0025, True, ()),
    ("mbpp", "code", 0.0, 0.0, 0.0005, False, ()),
    ("hotpotqa", "qa", 0.8, 0.8, 0.0012, True, (OK,)),
    ("commonsenseqa", "qa", 1.0, 1.0, 0.0008, True, (OK,)),
    ("mmlu", "qa", 0.0, 0.0, 0.0007, True, (API,)),  # 1 judge_failed of 21 mmlu samples: under 10 %
    *[("mmlu", "qa", float(i % 2), float(i % 2), 0.0009, True, (OK,)) for i in range(20)],
]
# The judge outage: gsm8k samples whose evaluations all fail (the trainer falls back to 0).
OUTAGE_SAMPLE = ("gsm8k", "math", 0.0, 0.0, 0.0020, True, (API,))
PLAN_SOURCES = sorted({s[0] for s in SAMPLES})
STEPS = 4
THRESHOLD = 0.9  # the default accuracy_threshold
PRICES = {"price_input_per_mtok": 0.5, "price_output_per_mtok": 2.0}  # -> judge cost
JUDGE_TOKENS = (400, 20)  # per successful judge request
JUDGE_REQUEST_COST = (
    JUDGE_TOKENS[0] * PRICES["price_input_per_mtok"] + JUDGE_TOKENS[1] * PRICES["price_output_per_mtok"]
) / 1e6


def plan(split: str, step: int) -> list[tuple]:
    """The samples of one window: training step ``step`` has ``step`` outage samples, validation one."""
    return SAMPLES + [OUTAGE_SAMPLE] * (step if split == "train" else 1)


def scored_by(sample: tuple) -> str:
    evaluations, executed_ok = sample[6], sample[5]
    if not executed_ok:
        return "not_scored"
    if not evaluations:
        return "rule"
    return "judge" if OK in evaluations else "judge_failed"


# Metrics this run must produce, so the panels reading them must show data.
MUST_HAVE_SIGNAL = {
    gd.SAMPLES,
    gd.CORRECT,
    gd.SCORED_BY,
    gd.SCORED_BY_CORRECT,
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
    "grpo:judge_failed_share:rate5m",
    "grpo:cost_usd_per_hour:rate30m",
    "grpo:train_steps:increase15m",
}
ALERTS_QUIET_FOR_A_HEALTHY_RUN = {"GrpoJudgeFailureRateHigh", "GrpoTrainingStalled", "GrpoExporterDroppingData"}
INTEGRITY_ALERT = "GrpoJudgeFailedShareHigh"
INTEGRITY_RECORD = "grpo:judge_failed_share:rate5m"


def record_samples(otel_grpo, samples: list[tuple]) -> None:
    for source, ptype, reward, correctness, cost, ok, evaluations in samples:
        # One GRPO group per dataset and window (gsm8k's rewards differ; a lone sample's don't).
        with otel_grpo.sample(source=source, problem_type=ptype, group=source):
            otel_grpo.record_executor_run(cost=cost, duration_s=0.2, success=ok)
            for outcome in evaluations:
                if outcome == OK:
                    otel_grpo.record_judge_request(input_tokens=JUDGE_TOKENS[0], output_tokens=JUDGE_TOKENS[1])
                    otel_grpo.record_judge_evaluation(outcome="success", verdict=correctness >= 0.5, duration_s=0.3)
                else:
                    otel_grpo.record_judge_request(error_type="http_status")
                    otel_grpo.record_judge_evaluation(outcome=outcome, duration_s=0.3)
            otel_grpo.record_sample(reward=reward, correctness=correctness)


def ground_truth() -> tuple[Counter, Counter]:
    samples, correct = Counter(), Counter()
    for split in ("train", "val"):
        for step in range(1, STEPS + 1):
            for source, _, _, correctness, _, _, _ in plan(split, step):
                samples[(split, source)] += 1
                if correctness >= THRESHOLD:
                    correct[(split, source)] += 1
    return samples, correct


def integrity_truth(windows: list[list[tuple]]) -> dict[str, dict[str, float]]:
    """Hand-counted per-source figures of the samples of ``windows`` (keys omitted on an empty denominator)."""
    figures: dict[str, dict[str, float]] = {}
    for source in sorted({s[0] for w in windows for s in w}):
        mine = [s for w in windows for s in w if s[0] == source]
        scored = [s for s in mine if scored_by(s) != "not_scored"]
        kept = [s for s in mine if scored_by(s) != "judge_failed"]
        correct = [s for s in mine if s[3] >= THRESHOLD]
        found = {}
        if scored:
            found["judge_share"] = sum(scored_by(s) in ("judge", "judge_failed") for s in scored) / len(scored)
            found["judge_failed_share"] = sum(scored_by(s) == "judge_failed" for s in scored) / len(scored)
        if kept:
            found["accuracy_excl_judge_failed"] = 100 * sum(s[3] >= THRESHOLD for s in kept) / len(kept)
        found["accuracy"] = 100 * len(correct) / len(mine)
        if correct:  # executor + priced judge cost (every judge request that returned tokens)
            judge_cost = JUDGE_REQUEST_COST * sum(s[6].count(OK) for s in mine)
            found["cost_per_correct"] = (sum(s[4] for s in mine) + judge_cost) / len(correct)
        figures[source] = found
    return figures


def last_scrape_ms(api_url: str) -> int:
    """The time (ms) of the target's latest scrape: every series it carries has a sample there."""
    (row,) = query(api_url, f'timestamp(up{{job="{SCRAPE_JOB}"}})')
    return round(float(row["value"][1]) * 1000)


def step_window(scrapes: dict[int, int], step: int) -> tuple[dict[str, str], float]:
    """(dashboard variables, evaluation time) whose ``increase`` is exactly step ``step``'s count.

    The window runs from the scrape after step-1 to the scrape after step, both included
    (every series has a sample at both ends, so ``increase`` extrapolates no series, or
    all by the same factor, and every share is exact).
    """
    width = scrapes[step] - scrapes[step - 1]
    return {"window": f"{width}ms"}, scrapes[step] / 1000


def integrity_targets(variables: dict[str, str]) -> dict[tuple[str, str], str]:
    """{(panel title, legend or table column): executable PromQL} of the Reward integrity row."""
    found, inside = {}, False
    for panel in gd.build_dashboard()["panels"]:
        if panel["type"] == "row":
            inside = panel["title"] == "Reward integrity"
            continue
        if inside:
            for target in panel["targets"]:
                found[(panel["title"], target["legendFormat"])] = gd.substitute_variables(target["expr"], variables)
    return found


SOURCE_LEGEND = "{{grpo_source}}"


def by_source(result: list[dict]) -> dict[str, float]:
    return {source: value for (source,), value in values_by(result, "grpo_source").items()}


def single(result: list[dict]) -> float:
    (row,) = result
    assert row["metric"] == {}, row
    return float(row["value"][1])


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
            "judge": PRICES,
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
    scrapes = {}  # step -> time (ms) of a scrape after its train and validation windows closed
    for step in range(1, STEPS + 1):
        with otel_grpo.step(step):
            record_samples(otel_grpo, plan("train", step))
            otel_grpo.record_scalars(loss=0.5 / step, kl_div=0.01 * step, temperature=0.7)
        with otel_grpo.validation():
            record_samples(otel_grpo, plan("val", step))
        # Every step is seen by its own scrape, so rate()/increase() have something to see.
        wait_for_scrape(api_url, time.time())
        scrapes[step] = last_scrape_ms(api_url)

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

    # --- reward integrity: the new row and alert -------------------------------------------------
    train_rows = {row["train/step"]: row for row in tel.rows if "train/accuracy" in row}
    val_rows = {row["train/step"]: row for row in tel.rows if "val/accuracy" in row}
    assert sorted(train_rows) == sorted(val_rows) == list(range(1, STEPS + 1))
    seen = check_integrity_per_step(api_url, scrapes, train_rows, val_rows)
    # Non-trivial: judge-failed shares of 0 and above; accuracy excluding them differs.
    gsm8k = [v for (_, source), v in sorted(seen["Judge-failed share"].items()) if source == "gsm8k"]
    assert gsm8k == pytest.approx([2 / 5, 3 / 6, 4 / 7])  # steps 2-4: 2, 3, 4 failed of 5, 6, 7 scored
    assert seen["Judge-failed share"][(STEPS, "humaneval")] == 0
    assert seen["Accuracy (%)"][(STEPS, "gsm8k")] < seen["Accuracy excl. judge-failed (%)"][(STEPS, "gsm8k")] == 100
    check_cost_per_correct_since_start(api_url, scrapes[STEPS] / 1000, train_rows[STEPS])

    # The alert as written (5m window, Prometheus's own evaluation): gsm8k only, pending (for: 10m).
    alert_rule = integrity_rule("alert", INTEGRITY_ALERT)
    assert set(by_source(query(api_url, alert_rule["expr"]))) == {"gsm8k"}
    pending = wait_for_series(api_url, f'ALERTS{{alertname="{INTEGRITY_ALERT}"}}', timeout_s=10)
    assert [(r["metric"]["grpo_source"], r["metric"]["alertstate"]) for r in pending] == [("gsm8k", "pending")]


def integrity_rule(kind: str, name: str) -> dict:
    """The rule of alerts.yml whose ``record`` or ``alert`` (``kind``) is ``name``."""
    groups = yaml.safe_load(ALERTS_FILE.read_text())["groups"]
    return next(r for g in groups for r in g["rules"] if r.get(kind) == name)


TABLE = "Reward integrity per dataset (train), last $window"
TABLE_COLUMNS = (
    ("Judge share", "judge_share"),
    ("Judge-failed share", "judge_failed_share"),
    ("Accuracy (%)", "accuracy"),
    ("Accuracy excl. judge-failed (%)", "accuracy_excl_judge_failed"),
    ("Cost per correct (USD)", "cost_per_correct"),
)


def check_integrity_per_step(
    api_url: str, scrapes: dict[int, int], train_rows: dict[int, dict], val_rows: dict[int, dict]
) -> dict[str, dict[tuple[int, str], float]]:
    """Every Reward integrity query and the alert's expression over each step's exact window.

    Returns ``{table column: {(step, source): value}}`` as Prometheus computed it.
    """
    record_expr = integrity_rule("record", INTEGRITY_RECORD)["expr"]
    alert_expr = integrity_rule("alert", INTEGRITY_ALERT)["expr"]
    seen: dict[str, dict[tuple[int, str], float]] = {}
    for step in range(2, STEPS + 1):  # step 1 has no scrape before it that carries every series
        variables, at = step_window(scrapes, step)
        targets = integrity_targets(variables)
        row, val_row = train_rows[step], val_rows[step]
        train_truth = integrity_truth([plan("train", step)])

        def panel(title: str, legend: str, at: float = at, targets: dict = targets) -> list[dict]:
            return query(api_url, targets[(title, legend)], at=at)

        def from_row(figure: str, row: dict = row, prefix: str = "dataset") -> dict[str, float]:
            return {s: row[f"{prefix}/{s}/{figure}"] for s in PLAN_SOURCES if f"{prefix}/{s}/{figure}" in row}

        # The WandB rows are the hand-counted plan, so the comparisons below are with both.
        for _, figure in TABLE_COLUMNS:
            truth = {s: f[figure] for s, f in train_truth.items() if figure in f}
            assert from_row(figure) == pytest.approx(truth, rel=1e-9), (step, figure)
            if figure != "accuracy":  # val/{source}/accuracy is the plain one; the others have a val/ form
                val_truth = {s: f[figure] for s, f in integrity_truth([plan("val", step)]).items() if figure in f}
                assert from_row(figure, val_row, "val") == pytest.approx(val_truth, rel=1e-9), (step, figure)
        assert row["dataset/gsm8k/judge_failed_share"] == pytest.approx(step / (step + 3))

        shares = "Judge share & judge-failed share (train), last $window"
        assert single(panel(shares, "judge share")) == pytest.approx(row["train/judge_share"], rel=1e-9)
        assert single(panel(shares, "judge-failed share")) == pytest.approx(row["train/judge_failed_share"], rel=1e-9)
        assert by_source(panel("Judge-failed share per dataset (train), last $window", SOURCE_LEGEND)) == pytest.approx(
            from_row("judge_failed_share"), rel=1e-9
        )
        accuracy = "Accuracy with and without judge-failed samples (train, %), last $window"
        assert single(panel(accuracy, "all samples")) == pytest.approx(row["train/accuracy"], rel=1e-9)
        kept = [s for s in plan("train", step) if scored_by(s) != "judge_failed"]  # no train-wide key: the plan
        assert single(panel(accuracy, "excluding judge-failed")) == pytest.approx(
            100 * sum(s[3] >= THRESHOLD for s in kept) / len(kept), rel=1e-9
        )
        for column, figure in TABLE_COLUMNS:
            got = by_source(panel(TABLE, column))
            assert got == pytest.approx(from_row(figure), rel=1e-9), (step, column, got)
            seen.setdefault(column, {}).update({(step, s): v for s, v in got.items()})
        assert by_source(
            panel("Cost per correct answer per dataset (train, USD), last $window", SOURCE_LEGEND)
        ) == pytest.approx(from_row("cost_per_correct"), rel=1e-9)

        # The alert's quantity over the same window: train and validation samples per source.
        expr = record_expr.replace("[5m]", f"[{variables['window']}]")
        got = by_source(query(api_url, expr, at=at))
        both = integrity_truth([plan("train", step), plan("val", step)])
        assert got == pytest.approx({s: f["judge_failed_share"] for s, f in both.items() if "judge_failed_share" in f})
        assert "mbpp" not in got and got["humaneval"] == 0  # nothing scored: no value; rule-scored: 0
        condition = alert_expr.replace(INTEGRITY_RECORD, f"({expr})")
        assert set(by_source(query(api_url, condition, at=at))) == {"gsm8k"}  # mmlu's 1/21 stays under 10 %
    return seen


def check_cost_per_correct_since_start(api_url: str, at: float, last_row: dict) -> None:
    """Train executor + judge cost / correct train samples since the start: the stat, the row, the plan."""
    title = "Cost per correct answer (train, USD), since the run started"
    stat = integrity_targets({})[(title, title)]
    assert single(query(api_url, stat, at=at)) == pytest.approx(last_row["cost/cost_per_correct"], rel=1e-9)
    train = [s for step in range(1, STEPS + 1) for s in plan("train", step)]
    judge_cost = JUDGE_REQUEST_COST * sum(s[6].count(OK) for s in train)
    correct = sum(s[3] >= THRESHOLD for s in train)
    assert last_row["cost/cost_per_correct"] == pytest.approx((sum(s[4] for s in train) + judge_cost) / correct)
