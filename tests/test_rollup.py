"""The rollup on synthetic ``MetricsData``: every SPEC key family, empty denominators omitted, no WandB.

The data points are built by hand, the way the recorder's instruments publish them (the
attribute keys and instrument names of :mod:`otel_grpo.semconv`), so every expected
value below is worked out from the numbers in this file.
"""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterable, Sequence

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope

from otel_grpo import keys
from otel_grpo import semconv as sc
from otel_grpo.config import WandbConfig
from otel_grpo.exporters import rollup, totals
from otel_grpo.exporters.rollup import RunTotals, SourceFigures, WindowEnd, accumulate, flatten, window_row
from otel_grpo.exporters.step_reader import StepMetricReader
from otel_grpo.exporters.wandb_exporter import WandbStepExporter

GAUGES = {sc.REWARD_MIN[0], sc.REWARD_MAX[0], sc.TRAIN_SCALAR[0]}
HEALTH = {sc.HEALTH_ROWS_WRITTEN: 1, sc.HEALTH_ROWS_DROPPED: 0, sc.HEALTH_EXPORT_ERRORS: 0}


# --- synthetic MetricsData ---------------------------------------------------------------------
def _hist_point(attrs: dict, observations: Sequence[float]) -> HistogramDataPoint:
    bounds = sc.DURATION_BUCKETS_S if max(observations) < 100 else sc.TOKEN_BUCKETS
    counts = [0] * (len(bounds) + 1)
    for value in observations:
        counts[next((i for i, bound in enumerate(bounds) if value <= bound), len(bounds))] += 1
    return HistogramDataPoint(
        attributes=attrs,
        start_time_unix_nano=0,
        time_unix_nano=1,
        count=len(observations),
        sum=sum(observations),
        bucket_counts=counts,
        explicit_bounds=bounds,
        min=min(observations),
        max=max(observations),
    )


def metrics_data(points: Iterable[tuple[tuple[str, str, str], dict, float | list[float]]]) -> MetricsData:
    """``(instrument, attributes, value)`` -> one ``MetricsData``: a list value is a histogram's observations."""
    by_name: dict[str, list] = {}
    for instrument, attrs, value in points:
        by_name.setdefault(instrument[0], []).append((attrs, value))
    metrics = []
    for name, items in by_name.items():
        data: Sum | Gauge | Histogram
        if isinstance(items[0][1], list):
            data = Histogram([_hist_point(a, v) for a, v in items], AggregationTemporality.DELTA)
        else:
            numbers = [
                NumberDataPoint(attributes=a, start_time_unix_nano=0, time_unix_nano=1, value=v) for a, v in items
            ]
            data = Gauge(numbers) if name in GAUGES else Sum(numbers, AggregationTemporality.DELTA, True)
        metrics.append(Metric(name=name, description=None, unit=None, data=data))
    scope = ScopeMetrics(InstrumentationScope(sc.METER_NAME), metrics, "")
    return MetricsData([ResourceMetrics(Resource.create({}), [scope], "")])


def at(split: str, source: str, ptype: str | None = None, **extra: str) -> dict:
    attrs = {sc.ATTR_SPLIT: split, sc.ATTR_SOURCE: source, **extra}
    if ptype is not None:
        attrs[sc.ATTR_PROBLEM_TYPE] = ptype
    return attrs


def samples(
    split: str,
    source: str,
    ptype: str,
    n: int,
    correct: int,
    reward_sum: float,
    correctness_sum: float,
    low: float | None = None,
    high: float | None = None,
) -> list:
    a = at(split, source, ptype)
    out = [
        (sc.SAMPLES, a, n),
        (sc.SAMPLES_CORRECT, a, correct),
        (sc.REWARD_SUM, a, reward_sum),
        (sc.CORRECTNESS_SUM, a, correctness_sum),
    ]
    if low is not None:
        out += [(sc.REWARD_MIN, a, low), (sc.REWARD_MAX, a, high)]
    return out


def scored(split: str, source: str, ptype: str, **by: tuple[int, int]) -> list:
    """grpo.samples.scored_by points: scorer=(samples, correct)."""
    out = []
    for scorer, (n, correct) in by.items():
        a = at(split, source, ptype, **{sc.ATTR_SCORED_BY: scorer})
        out += [(sc.SAMPLES_SCORED_BY, a, n), (sc.SAMPLES_SCORED_BY_CORRECT, a, correct)]
    return out


def runs(split: str, source: str, ok: int, failed: int, cost: float) -> list:
    return [
        (sc.EXECUTOR_RUNS, at(split, source, **{sc.ATTR_SUCCESS: "true"}), ok),
        (sc.EXECUTOR_RUNS, at(split, source, **{sc.ATTR_SUCCESS: "false"}), failed),
        (sc.EXECUTOR_COST, at(split, source), cost),
    ]


def judged(source: str, outcome: str, verdict: str, n: int, split: str = sc.SPLIT_TRAIN) -> tuple:
    return (
        sc.JUDGE_EVALUATIONS,
        at(split, source, **{sc.ATTR_JUDGE_OUTCOME: outcome, sc.ATTR_JUDGE_VERDICT: verdict}),
        n,
    )


def train_step_points() -> list:
    """Step 3: gsm8k/math/humaneval samples, executor runs, judge evaluations, groups, scalars, latencies."""
    t = sc.SPLIT_TRAIN
    return [
        *samples(t, "gsm8k", "math", 4, 3, 3.2, 3.0, 0.2, 1.0),
        *samples(t, "math", "math", 2, 0, 0.5, 0.4, 0.0, 0.5),
        *samples(t, "humaneval", "code", 2, 1, 1.0, 1.0, 0.0, 1.0),
        *scored(t, "gsm8k", "math", judge=(2, 2), rule=(1, 1), judge_failed=(1, 0)),
        *scored(t, "math", "math", not_scored=(1, 0), judge_failed=(1, 0)),
        *scored(t, "humaneval", "code", rule=(2, 1)),
        *runs(t, "gsm8k", 4, 0, 0.4),
        *runs(t, "math", 1, 1, 0.2),
        *runs(t, "humaneval", 2, 0, 0.6),
        (sc.EXECUTOR_COST_INVALID, at(t, "math"), 1),
        (sc.GROUPS, at(t, "gsm8k"), 2),
        (sc.GROUPS_ZERO_ADVANTAGE, at(t, "gsm8k"), 1),
        (sc.GROUPS, at(t, "math"), 1),
        (sc.GROUPS_ZERO_ADVANTAGE, at(t, "math"), 0),
        judged("gsm8k", sc.OUTCOME_SUCCESS, sc.VERDICT_CORRECT, 2),
        judged("gsm8k", sc.OUTCOME_SUCCESS, sc.VERDICT_INCORRECT, 1),
        judged("math", sc.OUTCOME_PARSE_FAILURE, sc.VERDICT_NONE, 1),
        judged("humaneval", sc.OUTCOME_API_FAILURE, sc.VERDICT_NONE, 1),
        (sc.JUDGE_REQUESTS, at(t, "humaneval"), 7),
        (sc.JUDGE_COST, at(t, "gsm8k"), 0.05),
        (sc.EXECUTOR_LLM_REQUESTS, at(t, "gsm8k"), 3),
        (sc.JUDGE_DURATION, at(t, "gsm8k"), [0.05] * 4),  # all in (0.04, 0.08]
        (sc.EXECUTOR_DURATION, at(t, "gsm8k"), [0.2, 0.3]),  # both in (0.16, 0.32]
        (sc.GEN_AI_TOKEN_USAGE, {sc.GEN_AI_TOKEN_TYPE: "input", sc.ATTR_LLM_ROLE: "judge"}, [100.0, 200.0]),
        (sc.GEN_AI_TOKEN_USAGE, {sc.GEN_AI_TOKEN_TYPE: "output", sc.ATTR_LLM_ROLE: "judge"}, [40.0]),
        (sc.GEN_AI_TOKEN_USAGE, {sc.GEN_AI_TOKEN_TYPE: "input", sc.ATTR_LLM_ROLE: "executor"}, [1000.0]),
        (sc.TRAIN_SCALAR, {sc.ATTR_SCALAR_NAME: "loss"}, 0.5),
        (sc.TRAIN_SCALAR, {sc.ATTR_SCALAR_NAME: "kl_div"}, 0.01),
        (sc.TRAIN_SCALAR, {sc.ATTR_SCALAR_NAME: "accuracy"}, 99.0),  # a computed name: never copied
    ]


def row_of(points: list, window: WindowEnd, totals: RunTotals | None = None) -> rollup.WindowRow:
    totals = totals if totals is not None else RunTotals()
    accumulate(totals, flatten(metrics_data(points)))
    return window_row(totals, window, HEALTH)


# --- the key families -------------------------------------------------------------------------
def test_a_train_row_has_every_train_dataset_grpo_judge_cost_executor_and_exporter_key() -> None:
    written = row_of(train_step_points(), WindowEnd(sc.SPLIT_TRAIN, 3))
    row = written.data
    expected = {
        "train/step": 3,
        "train/loss": 0.5,
        "train/kl_div": 0.01,
        "train/avg_reward": 4.7 / 8,
        "train/min_reward": 0.0,
        "train/max_reward": 1.0,
        "train/accuracy": 50.0,
        "train/accuracy_math": 50.0,
        "train/avg_score_math": 3.4 / 6,
        "train/count_math": 6,
        "train/accuracy_code": 50.0,
        "train/avg_score_code": 0.5,
        "train/count_code": 2,
        "dataset/gsm8k/accuracy": 75.0,
        "dataset/gsm8k/count": 4,
        "dataset/gsm8k/avg_reward": 0.8,
        "dataset/gsm8k/avg_cost": 0.1,
        "dataset/math/accuracy": 0.0,
        "dataset/math/count": 2,
        "dataset/math/avg_reward": 0.25,
        "dataset/math/avg_cost": 0.1,
        "dataset/humaneval/accuracy": 50.0,
        "dataset/humaneval/count": 2,
        "dataset/humaneval/avg_reward": 0.5,
        "dataset/humaneval/avg_cost": 0.3,
        "grpo/gsm8k/zero_advantage_rate": 0.5,
        "grpo/math/zero_advantage_rate": 0.0,
        "grpo/zero_advantage_rate": 1 / 3,
        "judge/step_success_rate": 0.6,
        "judge/step_parse_failure_rate": 0.2,
        "judge/step_api_failure_rate": 0.2,
        "judge/total_calls": 5,
        "judge/success_rate": 0.6,
        "judge/parse_failure_rate": 0.2,
        "judge/api_failure_rate": 0.2,
        "judge/correct_predictions": 2,
        "judge/incorrect_predictions": 1,
        "judge/correct_ratio": 2 / 3,
        "judge/gsm8k_success_rate": 1.0,
        "judge/math_success_rate": 0.0,
        "judge/humaneval_success_rate": 0.0,
        "judge/latency_p50_s": 0.04 + 0.04 * 2 / 4,
        "judge/latency_p95_s": 0.04 + 0.04 * 3.8 / 4,
        "judge/input_tokens": 300,
        "judge/output_tokens": 40,
        "cost/total_cost": 1.2,
        "cost/executor_calls": 8,
        "cost/avg_cost_per_sample": 0.15,
        "cost/judge_calls": 7,
        "cost/judge_cost": 0.05,
        "cost/invalid_cost_count": 1,
        "executor/latency_p50_s": 0.16 + 0.16 * 1 / 2,
        "executor/latency_p95_s": 0.16 + 0.16 * 1.9 / 2,
        "executor/llm_requests": 3,
        "exporter/rows_written": 1,
        "exporter/rows_dropped": 0,
        "exporter/export_errors": 0,
        # reward integrity: scored = 4 + 1 + 2 (math's failed execution is not scored)
        "train/judge_share": 4 / 7,
        "train/judge_failed_share": 2 / 7,
        "train/accuracy_excl_judge_failed": 100.0 * 4 / 6,  # gsm8k 3/3, math 0/1, humaneval 1/2
        "dataset/gsm8k/judge_share": 3 / 4,
        "dataset/gsm8k/judge_failed_share": 1 / 4,
        "dataset/gsm8k/accuracy_excl_judge_failed": 100.0,
        "dataset/gsm8k/exec_success_rate": 100.0,
        "dataset/gsm8k/cost_per_correct": (0.4 + 0.05) / 3,  # executor + priced judge cost
        "dataset/math/judge_share": 1.0,
        "dataset/math/judge_failed_share": 1.0,
        "dataset/math/accuracy_excl_judge_failed": 0.0,  # the failed execution stays in
        "dataset/math/exec_success_rate": 50.0,  # no correct sample: no cost_per_correct
        "dataset/humaneval/judge_share": 0.0,
        "dataset/humaneval/judge_failed_share": 0.0,
        "dataset/humaneval/accuracy_excl_judge_failed": 50.0,
        "dataset/humaneval/exec_success_rate": 100.0,
        "dataset/humaneval/cost_per_correct": 0.6,
        "cost/step_cost": 1.2 + 0.05,
        "cost/cost_per_correct": 1.25 / 4,
    }
    assert set(row) == set(expected)
    assert row == pytest.approx(expected)
    counts = [
        k
        for k in row
        if k.endswith(("count", "_calls", "_predictions", "_tokens", "llm_requests"))
        or k.startswith(("exporter/", "train/count_"))
        or k == "train/step"
    ]
    assert all(isinstance(row[k], int) for k in counts), {k: row[k] for k in counts}
    # The per-source figures handed to the tables are the dataset/{source}/* keys of the row.
    assert [f.source for f in written.sources] == ["gsm8k", "humaneval", "math"]
    for f in written.sources:
        assert (f.accuracy, f.count, f.avg_reward, f.avg_cost) == tuple(
            row[keys.dataset(f.source, figure)] for figure in keys.DATASET_FIGURES
        )


def test_a_validation_row_has_the_val_keys_and_no_train_step_keys() -> None:
    v = sc.SPLIT_VAL
    points = [
        *samples(v, "gsm8k", "math", 2, 1, 1.5, 1.4),
        *samples(v, "mmlu", "qa", 2, 2, 2.0, 2.0),
        *scored(v, "gsm8k", "math", rule=(2, 1)),
        *scored(v, "mmlu", "qa", judge=(2, 2)),
        *runs(v, "gsm8k", 2, 0, 0.02),
        *runs(v, "mmlu", 1, 1, 0.04),
        judged("mmlu", sc.OUTCOME_SUCCESS, sc.VERDICT_CORRECT, 1, split=v),
    ]
    written = row_of(points, WindowEnd(v, 3))
    row = written.data
    assert row == pytest.approx(
        {
            "train/step": 3,
            "val/accuracy": 75.0,
            "val/avg_correctness": 0.85,
            "val/success_rate": 75.0,
            "val/avg_cost": 0.015,
            "val/gsm8k/accuracy": 50.0,
            "val/gsm8k/count": 2,
            "val/gsm8k/avg_cost": 0.01,
            "val/mmlu/accuracy": 100.0,
            "val/mmlu/count": 2,
            "val/mmlu/avg_cost": 0.02,
            "val/judge_share": 0.5,
            "val/judge_failed_share": 0.0,
            "val/accuracy_excl_judge_failed": 75.0,
            "val/gsm8k/judge_share": 0.0,
            "val/gsm8k/judge_failed_share": 0.0,
            "val/gsm8k/accuracy_excl_judge_failed": 50.0,
            "val/gsm8k/cost_per_correct": 0.02,
            "val/mmlu/judge_share": 1.0,
            "val/mmlu/judge_failed_share": 0.0,
            "val/mmlu/accuracy_excl_judge_failed": 100.0,
            "val/mmlu/cost_per_correct": 0.02,
            # cumulative families ride along; the train step's judge rates do not
            "judge/total_calls": 1,
            "judge/success_rate": 1.0,
            "judge/parse_failure_rate": 0.0,
            "judge/api_failure_rate": 0.0,
            "judge/correct_predictions": 1,
            "judge/incorrect_predictions": 0,
            "judge/correct_ratio": 1.0,
            "judge/mmlu_success_rate": 1.0,
            "cost/total_cost": 0.06,
            "cost/executor_calls": 4,
            "cost/avg_cost_per_sample": 0.015,
            "cost/judge_calls": 0,
            "cost/judge_cost": 0.0,
            "cost/invalid_cost_count": 0,
            "executor/llm_requests": 0,
            "exporter/rows_written": 1,
            "exporter/rows_dropped": 0,
            "exporter/export_errors": 0,
        }
    )
    assert written.sources == ()


# --- empty denominators -------------------------------------------------------------------------
def test_keys_with_an_empty_denominator_are_omitted_never_zero() -> None:
    row = row_of([], WindowEnd(sc.SPLIT_TRAIN, 1)).data
    assert row == {"train/step": 1, "exporter/rows_written": 1, "exporter/rows_dropped": 0, "exporter/export_errors": 0}
    assert row_of([], WindowEnd(sc.SPLIT_VAL, 1)) == rollup.WindowRow()  # a pass with no sample: no row

    # judge evaluations without a verdict: no correct_ratio; groups that never closed: no grpo/ keys;
    # samples with no min/max gauge: no min/max; judge requests alone: cost/judge_calls, no cost/total_cost
    t = sc.SPLIT_TRAIN
    points = [
        *samples(t, "gsm8k", "math", 1, 1, 1.0, 1.0),
        judged("gsm8k", sc.OUTCOME_API_FAILURE, sc.VERDICT_NONE, 2),
        (sc.JUDGE_REQUESTS, at(t, "gsm8k"), 2),
        (sc.GROUPS, at(t, "gsm8k"), 0),
    ]
    row = row_of(points, WindowEnd(t, 2)).data
    assert "judge/correct_ratio" not in row and row["judge/correct_predictions"] == 0
    assert not [k for k in row if k.startswith("grpo/")]
    assert "train/min_reward" not in row and "train/max_reward" not in row
    assert "cost/total_cost" not in row and "cost/avg_cost_per_sample" not in row and row["cost/judge_calls"] == 2
    assert not [k for k in row if "latency" in k or k.endswith("_tokens")]
    assert row["judge/step_api_failure_rate"] == 1.0


# --- windows and running totals ---------------------------------------------------------------------
def test_cumulative_families_add_up_across_windows_and_step_families_do_not() -> None:
    totals = RunTotals()
    t = sc.SPLIT_TRAIN
    first = row_of(
        [
            judged("gsm8k", sc.OUTCOME_SUCCESS, sc.VERDICT_CORRECT, 3),
            *runs(t, "gsm8k", 3, 0, 0.3),
            *samples(t, "gsm8k", "math", 3, 3, 3.0, 3.0),
        ],
        WindowEnd(t, 1),
        totals,
    ).data
    second = row_of(
        [
            judged("math", sc.OUTCOME_PARSE_FAILURE, sc.VERDICT_NONE, 1),
            *runs(t, "math", 1, 0, 0.1),
            *samples(t, "math", "math", 1, 0, 0.0, 0.0),
        ],
        WindowEnd(t, 2),
        totals,
    ).data
    assert first["judge/total_calls"] == 3 and second["judge/total_calls"] == 4
    assert second["judge/success_rate"] == 0.75 and second["judge/step_success_rate"] == 0.0
    assert second["judge/gsm8k_success_rate"] == 1.0 and second["judge/math_success_rate"] == 0.0
    assert second["cost/total_cost"] == pytest.approx(0.4) and second["cost/executor_calls"] == 4
    assert "dataset/gsm8k/count" not in second and second["dataset/math/count"] == 1


def test_a_raised_or_skipped_step_writes_nothing_but_its_cost_and_judge_calls_count() -> None:
    totals = RunTotals()
    t = sc.SPLIT_TRAIN
    raised = row_of(
        [
            *samples(t, "gsm8k", "math", 5, 5, 5.0, 5.0),
            *runs(t, "gsm8k", 5, 0, 0.5),
            judged("gsm8k", sc.OUTCOME_API_FAILURE, sc.VERDICT_NONE, 1),
        ],
        WindowEnd(t, 1, ok=False),
        totals,
    )
    assert raised == rollup.WindowRow()
    skipped = row_of([*samples(t, "gsm8k", "math", 1, 1, 1.0, 1.0)], WindowEnd(t, 1, write=False), totals)
    assert skipped == rollup.WindowRow()
    row = row_of([*samples(t, "math", "math", 2, 1, 1.0, 1.0)], WindowEnd(t, 2), totals).data
    assert row["train/count_math"] == 2 and "dataset/gsm8k/count" not in row  # no leak from either
    assert row["cost/total_cost"] == 0.5 and row["judge/total_calls"] == 1
    assert "judge/step_api_failure_rate" not in row


def test_gauges_report_the_last_window_and_are_replaced_not_added() -> None:
    totals = RunTotals()
    t = sc.SPLIT_TRAIN
    loss = (sc.TRAIN_SCALAR, {sc.ATTR_SCALAR_NAME: "loss"}, 2.0)
    row_of([*samples(t, "gsm8k", "math", 1, 1, 1.0, 1.0, 1.0, 1.0), loss], WindowEnd(t, 1), totals)
    row = row_of([*samples(t, "gsm8k", "math", 1, 0, 0.0, 0.0)], WindowEnd(t, 2), totals).data
    assert "train/loss" not in row and "train/min_reward" not in row


def test_flatten_turns_sdk_points_into_numbers_and_buckets() -> None:
    points = flatten(
        metrics_data(
            [(sc.SAMPLES, at("train", "gsm8k", "math"), 2), (sc.JUDGE_DURATION, at("train", "gsm8k"), [0.05, 0.5])]
        )
    )
    by_name = {p.name: p for p in points}
    assert by_name[sc.SAMPLES[0]].value == 2
    hist = by_name[sc.JUDGE_DURATION[0]].value
    assert isinstance(hist, rollup.Hist) and hist.count == 2 and hist.total == pytest.approx(0.55)
    assert hist.bounds == sc.DURATION_BUCKETS_S and sum(hist.counts) == 2
    assert flatten(None) == []
    assert rollup.quantile((1.0, 2.0), [0, 0, 0], 0.5) is None


@pytest.mark.parametrize("module", [rollup, totals])
def test_the_rollup_imports_no_wandb(module: object) -> None:
    tree = ast.parse(inspect.getsource(module))  # type: ignore[arg-type]
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    forbidden = [name for name in imported if name.split(".")[0] == "wandb" or name.startswith("otel_grpo.recording")]
    assert imported and not forbidden, forbidden


# --- the push path: reader -> exporter ------------------------------------------------------------------
def test_the_step_reader_pushes_each_window_to_the_exporter_which_writes_its_row() -> None:
    reader = StepMetricReader()
    provider = MeterProvider(metric_readers=[reader], resource=Resource.create({}))
    exporter = WandbStepExporter(reader, WandbConfig(mode="disabled"))
    pushed: list[tuple[float, WindowEnd]] = []
    exporter.row_listeners.append(lambda row, window: pushed.append((row["cost/total_cost"], window)))
    meter = provider.get_meter("test")
    cost = meter.create_counter(sc.EXECUTOR_COST[0])
    executor_runs = meter.create_counter(sc.EXECUTOR_RUNS[0])
    try:
        for step in (1, 2):
            cost.add(0.25, at("train", "gsm8k"))
            executor_runs.add(1, at("train", "gsm8k", **{sc.ATTR_SUCCESS: "true"}))
            exporter.on_window_end(sc.SPLIT_TRAIN, step, True, samples=[("gsm8k", "math", 1.0)])
        # data pushed with no window end (another reader's export) is in the totals of the next row
        exporter.export(metrics_data(runs("train", "gsm8k", 1, 0, 1.0)))
        exporter.on_window_end(sc.SPLIT_TRAIN, 3, True)
    finally:
        provider.shutdown()
    assert [(c, w.step) for c, w in pushed] == [(0.25, 1), (0.5, 2), (1.5, 3)]
    assert pushed[0][1].samples == (("gsm8k", "math", 1.0),)
    assert exporter.health[sc.HEALTH_ROWS_WRITTEN] == 3 and exporter.rows[-1]["cost/executor_calls"] == 3
    assert list(SourceFigures.__dataclass_fields__) == ["source", *keys.DATASET_FIGURES]


def test_step_cost_counts_every_attempt_of_the_step_and_cost_per_correct_all_train_spend() -> None:
    t = sc.SPLIT_TRAIN
    totals = RunTotals()
    attempt = [*runs(t, "gsm8k", 2, 0, 0.3), (sc.JUDGE_COST, at(t, "gsm8k"), 0.02)]
    assert row_of(attempt, WindowEnd(t, 2, ok=False), totals).data == {}  # the attempt that raised: no row
    retried = [
        *samples(t, "gsm8k", "math", 2, 1, 1.0, 1.0, 0.0, 1.0),
        *scored(t, "gsm8k", "math", rule=(2, 1)),
        *runs(t, "gsm8k", 2, 0, 0.5),
        (sc.JUDGE_COST, at(t, "gsm8k"), 0.01),
        (sc.JUDGE_COST, at(sc.SPLIT_VAL, "gsm8k"), 9.0),  # validation spend stays in val/*
        (sc.EXECUTOR_COST, at(sc.SPLIT_VAL, "gsm8k"), 7.0),
    ]
    row = row_of(retried, WindowEnd(t, 2), totals).data
    assert row["cost/step_cost"] == pytest.approx(0.3 + 0.02 + 0.5 + 0.01)
    assert row["cost/cost_per_correct"] == pytest.approx((0.3 + 0.02 + 0.5 + 0.01) / 1)
    # this row's executor + priced judge cost (not the raised attempt's, not validation's)
    assert row["dataset/gsm8k/cost_per_correct"] == pytest.approx(0.5 + 0.01)
    assert "train/judge_share" not in row  # no judge evaluation yet in the run
    nxt = row_of([*runs(t, "gsm8k", 1, 0, 0.1)], WindowEnd(t, 3), totals).data
    assert nxt["cost/step_cost"] == pytest.approx(0.1)  # nothing carried twice
