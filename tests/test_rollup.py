"""The rollup on hand-built window summaries: every key family, empty denominators omitted, no WandB.

The summaries are built by hand, the way the recorder closes a window (per-series sums of the
window, a snapshot of the run totals), so every expected value below is worked out from the
numbers in this file. The rollup is pure: no tracker, no SDK, no recorder.
"""

from __future__ import annotations

import ast
import inspect
from types import MappingProxyType

import pytest

from otel_grpo import keys
from otel_grpo import semconv as sc
from otel_grpo.config import WandbConfig
from otel_grpo.exporters import rollup
from otel_grpo.exporters.rollup import SourceFigures, window_row
from otel_grpo.exporters.wandb_exporter import WandbStepExporter
from otel_grpo.summary import ExecStats, RunSnapshot, SampleStats, WindowSummary

HEALTH = {sc.HEALTH_ROWS_WRITTEN: 1, sc.HEALTH_ROWS_DROPPED: 0, sc.HEALTH_EXPORT_ERRORS: 0}
SCORER = {name: index for index, name in enumerate(sc.SCORERS)}


# --- hand-built summaries ------------------------------------------------------------------------
def stats(
    n: int, correct: int, reward_sum: float, correctness_sum: float, low: float, high: float, **by: tuple[int, int]
) -> SampleStats:
    """One series' sums; ``by``: scorer=(samples, correct) (default: all scored by rule)."""
    by = by or {sc.SCORED_BY_RULE: (n, correct)}
    by_scorer = [0] * (2 * len(sc.SCORERS))
    for scorer, (count, good) in by.items():
        by_scorer[SCORER[scorer]] = count
        by_scorer[len(sc.SCORERS) + SCORER[scorer]] = good
    return SampleStats(n, correct, reward_sum, correctness_sum, low, high, by_scorer)


def runs(ok: int, failed: int, cost: float, invalid: int = 0) -> ExecStats:
    return ExecStats(runs=ok + failed, ok=ok, cost=cost, invalid_cost=invalid)


def buckets(observations: list[float], bounds: tuple[float, ...] = sc.DURATION_BUCKETS_S) -> tuple:
    counts = [0] * (len(bounds) + 1)
    for value in observations:
        counts[next((i for i, bound in enumerate(bounds) if value <= bound), len(bounds))] += 1
    return bounds, tuple(counts)


def summary(
    split: str = sc.SPLIT_TRAIN,
    step: int = 1,
    *,
    ok: bool = True,
    samples: dict | None = None,
    executions: dict | None = None,
    judge_outcomes: dict | None = None,
    judge_cost: dict | None = None,
    groups: dict | None = None,
    scalars: dict | None = None,
    carried: tuple[float, bool] = (0.0, False),
    run: RunSnapshot | None = None,
) -> WindowSummary:
    return WindowSummary(
        split=split,
        step=step,
        ok=ok,
        samples=MappingProxyType(samples or {}),
        executions=MappingProxyType(executions or {}),
        judge_outcomes=MappingProxyType(judge_outcomes or {}),
        judge_cost=MappingProxyType(judge_cost or {}),
        groups=MappingProxyType(groups or {}),
        scalars=MappingProxyType(scalars or {}),
        sample_rows=(),
        carried_cost=carried,
        run=run or RunSnapshot(),
    )


def train_step_summary() -> WindowSummary:
    """Step 3: gsm8k/math/humaneval samples, executor runs, judge evaluations, groups, scalars, latencies.

    The run has had only this step, so its totals are this step's figures.
    """
    judge = {sc.OUTCOME_SUCCESS: 3, sc.OUTCOME_PARSE_FAILURE: 1, sc.OUTCOME_API_FAILURE: 1}
    return summary(
        step=3,
        samples={
            ("gsm8k", "math"): stats(4, 3, 3.2, 3.0, 0.2, 1.0, judge=(2, 2), rule=(1, 1), judge_failed=(1, 0)),
            ("math", "math"): stats(2, 0, 0.5, 0.4, 0.0, 0.5, not_scored=(1, 0), judge_failed=(1, 0)),
            ("humaneval", "code"): stats(2, 1, 1.0, 1.0, 0.0, 1.0, rule=(2, 1)),
        },
        executions={"gsm8k": runs(4, 0, 0.4), "math": runs(1, 1, 0.2, invalid=1), "humaneval": runs(2, 0, 0.6)},
        judge_outcomes=judge,
        judge_cost={"gsm8k": 0.05},
        groups={"gsm8k": (2, 1), "math": (1, 0)},
        scalars={"loss": 0.5, "kl_div": 0.01, "accuracy": 99.0},  # a computed name: never copied
        run=RunSnapshot(
            judge_outcomes=judge,
            judge_verdicts={sc.VERDICT_CORRECT: 2, sc.VERDICT_INCORRECT: 1},
            judge_by_source={"gsm8k": (3, 3), "math": (1, 0), "humaneval": (1, 0)},
            judge_requests=7,
            judge_cost=0.05,
            judge_tokens={"input": 300, "output": 40},
            judge_latency=buckets([0.05] * 4),  # all in (0.0465, 0.0674]
            executor_latency=buckets([0.2, 0.3]),  # in (0.142, 0.205] and (0.298, 0.432]
            executor_runs=8,
            executor_cost=1.2,
            invalid_costs=1,
            executor_llm_requests=3,
            train_cost=1.25,
            train_correct=4,
            judged_samples=5,
        ),
    )


def test_a_train_row_has_every_train_dataset_grpo_judge_cost_executor_and_exporter_key() -> None:
    written = window_row(train_step_summary(), HEALTH)
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
        "judge/latency_p50_s": 0.0465 + (0.0674 - 0.0465) * 2 / 4,
        "judge/latency_p95_s": 0.0465 + (0.0674 - 0.0465) * 3.8 / 4,
        "judge/input_tokens": 300,
        "judge/output_tokens": 40,
        "cost/total_cost": 1.2,
        "cost/executor_calls": 8,
        "cost/avg_cost_per_sample": 0.15,
        "cost/judge_calls": 7,
        "cost/judge_cost": 0.05,
        "cost/invalid_cost_count": 1,
        "executor/latency_p50_s": 0.142 + (0.205 - 0.142) * 1 / 1,  # rank 1 of 2: the first bucket's top
        "executor/latency_p95_s": 0.298 + (0.432 - 0.298) * 0.9 / 1,
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
    judge = {sc.OUTCOME_SUCCESS: 1}
    window = summary(
        sc.SPLIT_VAL,
        3,
        samples={
            ("gsm8k", "math"): stats(2, 1, 1.5, 1.4, 0.5, 1.0),
            ("mmlu", "qa"): stats(2, 2, 2.0, 2.0, 1.0, 1.0, judge=(2, 2)),
        },
        executions={"gsm8k": runs(2, 0, 0.02), "mmlu": runs(1, 1, 0.04)},
        judge_outcomes=judge,
        run=RunSnapshot(
            judge_outcomes=judge,
            judge_verdicts={sc.VERDICT_CORRECT: 1},
            judge_by_source={"mmlu": (1, 1)},
            executor_runs=4,
            executor_cost=0.06,
        ),
    )
    written = window_row(window, HEALTH)
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
    row = window_row(summary(step=1), HEALTH).data
    assert row == {"train/step": 1, "exporter/rows_written": 1, "exporter/rows_dropped": 0, "exporter/export_errors": 0}
    assert window_row(summary(sc.SPLIT_VAL), HEALTH) == rollup.WindowRow()  # a pass with no sample: no row

    # judge evaluations without a verdict: no correct_ratio; no groups: no grpo/ keys; a reward-only sample:
    # no execution or cost figure; judge requests alone: cost/judge_calls, no cost/total_cost
    window = summary(
        step=2,
        samples={("gsm8k", "math"): stats(1, 1, 1.0, 1.0, 1.0, 1.0)},
        judge_outcomes={sc.OUTCOME_API_FAILURE: 2},
        run=RunSnapshot(
            judge_outcomes={sc.OUTCOME_API_FAILURE: 2}, judge_by_source={"gsm8k": (2, 0)}, judge_requests=2
        ),
    )
    row = window_row(window, HEALTH).data
    assert "judge/correct_ratio" not in row and row["judge/correct_predictions"] == 0
    assert not [k for k in row if k.startswith("grpo/")]
    assert "cost/total_cost" not in row and "cost/avg_cost_per_sample" not in row and row["cost/judge_calls"] == 2
    assert not [k for k in row if "latency" in k or k.endswith("_tokens")]
    assert not [k for k in row if k.endswith(("avg_cost", "exec_success_rate", "cost_per_correct", "step_cost"))]
    assert row["judge/step_api_failure_rate"] == 1.0


def test_a_raised_step_writes_no_row() -> None:
    window = summary(step=1, ok=False, samples={("gsm8k", "math"): stats(5, 5, 5.0, 5.0, 1.0, 1.0)})
    assert window_row(window, HEALTH) == rollup.WindowRow()


def test_step_cost_counts_every_attempt_of_the_step_and_is_omitted_when_nothing_carried_a_cost() -> None:
    gsm8k = {("gsm8k", "math"): stats(2, 1, 1.0, 1.0, 0.0, 1.0)}
    window = summary(
        step=2,
        samples=gsm8k,
        executions={"gsm8k": runs(2, 0, 0.5)},
        judge_cost={"gsm8k": 0.01},
        carried=(0.3 + 0.02, True),  # an attempt of step 2 that raised
        run=RunSnapshot(executor_runs=4, executor_cost=0.8, train_cost=0.83, train_correct=1),
    )
    row = window_row(window, HEALTH).data
    assert row["cost/step_cost"] == pytest.approx(0.3 + 0.02 + 0.5 + 0.01)
    assert row["cost/cost_per_correct"] == pytest.approx(0.83)
    # this row's executor + priced judge cost (not the raised attempt's)
    assert row["dataset/gsm8k/cost_per_correct"] == pytest.approx(0.5 + 0.01)
    assert "train/judge_share" not in row  # no judge evaluation yet in the run
    reward_only = window_row(summary(step=3, samples=gsm8k), HEALTH).data
    assert "cost/step_cost" not in reward_only
    carried_only = window_row(summary(step=3, samples=gsm8k, carried=(0.0, True)), HEALTH).data
    assert carried_only["cost/step_cost"] == 0.0  # an attempt ran an executor (free): the step carried a cost


def test_latency_quantiles_are_bucket_estimates_and_none_without_values() -> None:
    assert rollup.quantile((1.0, 2.0), [0, 0, 0], 0.5) is None
    assert rollup.quantile((1.0, 2.0), [0, 2, 0], 0.5) == 1.5
    assert rollup.quantile((1.0, 2.0), [0, 0, 3], 0.95) == 2.0  # above the last bound: the last bound


@pytest.mark.parametrize("module", [rollup])
def test_the_rollup_imports_no_wandb_and_no_recorder(module: object) -> None:
    tree = ast.parse(inspect.getsource(module))  # type: ignore[arg-type]
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    forbidden = [name for name in imported if name.split(".")[0] == "wandb" or name.startswith("otel_grpo.recording")]
    assert imported and not forbidden, forbidden


# --- the write path: summary -> exporter ----------------------------------------------------------------
def test_the_exporter_writes_one_row_per_summary_and_counts_it() -> None:
    exporter = WandbStepExporter(WandbConfig(mode="disabled", log_frequency=2))
    pushed: list[tuple[int, WindowSummary]] = []
    exporter.row_listeners.append(lambda row, window: pushed.append((row["train/step"], window)))
    gsm8k = {("gsm8k", "math"): stats(1, 1, 1.0, 1.0, 1.0, 1.0)}
    for step in (1, 2, 3, 4):
        exporter.write(summary(step=step, samples=gsm8k, run=RunSnapshot(executor_runs=step)))
    exporter.write(summary(step=5, ok=False, samples=gsm8k))  # raised: no row
    exporter.write(summary(sc.SPLIT_VAL, 4, samples=gsm8k))
    assert [step for step, _ in pushed] == [2, 4, 4]  # log_frequency 2; validation rows always
    assert exporter.health[sc.HEALTH_ROWS_WRITTEN] == 3 and exporter.rows[-1]["exporter/rows_written"] == 3
    assert exporter.rows[1]["cost/executor_calls"] == 4
    assert list(SourceFigures.__dataclass_fields__) == ["source", *keys.DATASET_FIGURES]
