"""The WandB key contract (docs/keys.md): every key otel-grpo writes is built here.

The rollup (:mod:`otel_grpo.exporters.rollup`) writes these keys, the tables
(:mod:`otel_grpo.exporters.tables`) name their tables and columns with them, and the
workspace, the offline report and ``otel-grpo inspect`` read them back by the same
names and groups. Nothing else spells a key, and nothing parses one back.

Units: every ``accuracy`` and ``success_rate`` under ``train/``, ``dataset/`` and ``val/``
is a percentage (0-100); every ``judge/`` rate or ratio is a fraction (0-1). Every key
is plotted against :data:`STEP`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from otel_grpo import semconv

# --- namespaces: the first segment of every key ---------------------------------------------
TRAIN: Final = "train"
DATASET: Final = "dataset"
JUDGE: Final = "judge"
VAL: Final = "val"
COST: Final = "cost"
GRPO: Final = "grpo"
EXECUTOR: Final = "executor"
EXPORTER: Final = "exporter"
NAMESPACES: Final = (TRAIN, DATASET, JUDGE, VAL, COST, GRPO, EXECUTOR, EXPORTER)

STEP: Final = "train/step"
DEFAULT_DATASETS: Final = semconv.DEFAULT_DATASETS

# Percentiles written for latency histograms: (quantile, label).
QUANTILES: Final = ((0.5, "p50"), (0.95, "p95"))


def prefix(namespace: str) -> str:
    """``"train"`` -> ``"train/"``: what every key of ``namespace`` starts with."""
    return f"{namespace}/"


# --- train/ (window = the step) -------------------------------------------------------------
def train(name: str) -> str:
    """``train/{name}``: a computed figure of the step, or a scalar the trainer reported (loss, ...)."""
    return f"{TRAIN}/{name}"


TRAIN_LOSS: Final = train("loss")  # scalars the trainer reports (docs/keys.md: loss, kl_div, temperature)
TRAIN_KL_DIV: Final = train("kl_div")
TRAIN_AVG_REWARD: Final = train("avg_reward")
TRAIN_MIN_REWARD: Final = train("min_reward")
TRAIN_MAX_REWARD: Final = train("max_reward")
TRAIN_ACCURACY: Final = train("accuracy")  # percent
# Reward integrity of the step (fractions 0-1 of scored samples; see INTEGRITY_FIGURES).
TRAIN_JUDGE_SHARE: Final = train("judge_share")
TRAIN_JUDGE_FAILED_SHARE: Final = train("judge_failed_share")
TRAIN_ACCURACY_EXCL_JUDGE_FAILED: Final = train("accuracy_excl_judge_failed")  # percent
# Names of figures the rollup computes: a trainer scalar with one of these names is not copied.
COMPUTED_TRAIN_NAMES: Final = frozenset(
    {
        "step",
        "avg_reward",
        "max_reward",
        "min_reward",
        "accuracy",
        "judge_share",
        "judge_failed_share",
        "accuracy_excl_judge_failed",
    }
)


def train_by_problem_type(figure: str, problem_type: str) -> str:
    """``train/{figure}_{problem_type}``; ``figure`` is one of :data:`PROBLEM_TYPE_FIGURES`."""
    return f"{TRAIN}/{figure}_{problem_type}"


PROBLEM_TYPE_FIGURES: Final = ("accuracy", "avg_score", "count")  # percent, mean correctness, samples


# --- dataset/{source}/ (train samples of the step) -------------------------------------------
def dataset(source: str, figure: str) -> str:
    """``dataset/{source}/{figure}``; ``figure`` is one of :data:`DATASET_FIGURES`."""
    return f"{DATASET}/{source}/{figure}"


DATASET_FIGURES: Final = ("accuracy", "count", "avg_reward", "avg_cost")  # percent, samples, mean, USD

# --- reward integrity and cost insight ------------------------------------------------------------
# judge_share: scored samples with a judge evaluation / scored samples (fraction);
# judge_failed_share: samples scored ``judge_failed`` / scored samples (fraction);
# accuracy_excl_judge_failed: accuracy (percent) over samples not scored ``judge_failed``;
# exec_success_rate: 100 x executions that succeeded / samples; cost_per_correct: USD.
JUDGE_SHARE: Final = "judge_share"
JUDGE_FAILED_SHARE: Final = "judge_failed_share"
ACCURACY_EXCL_JUDGE_FAILED: Final = "accuracy_excl_judge_failed"
EXEC_SUCCESS_RATE: Final = "exec_success_rate"
COST_PER_CORRECT: Final = "cost_per_correct"
STEP_COST: Final = "step_cost"
DATASET_INTEGRITY_FIGURES: Final = (
    JUDGE_SHARE,
    JUDGE_FAILED_SHARE,
    ACCURACY_EXCL_JUDGE_FAILED,
    EXEC_SUCCESS_RATE,
    COST_PER_CORRECT,
)
# Figures with a val/ form (val/{figure} for the shares, val/{source}/{figure} for all four).
VAL_INTEGRITY_FIGURES: Final = (JUDGE_SHARE, JUDGE_FAILED_SHARE, ACCURACY_EXCL_JUDGE_FAILED, COST_PER_CORRECT)
INTEGRITY_FIGURES: Final = (*DATASET_INTEGRITY_FIGURES, STEP_COST)
INTEGRITY_GROUP: Final = "Reward integrity"


def is_integrity_key(key: str) -> bool:
    """Is ``key`` one of the reward-integrity and cost-insight keys (its last segment names the figure)?"""
    return key.rsplit("/", 1)[-1] in INTEGRITY_FIGURES


# --- grpo/ (signal health of the step) ---------------------------------------------------------
def grpo_zero_advantage_rate(source: str | None = None) -> str:
    """``grpo/zero_advantage_rate`` or ``grpo/{source}/zero_advantage_rate`` (fraction of groups)."""
    return f"{GRPO}/zero_advantage_rate" if source is None else f"{GRPO}/{source}/zero_advantage_rate"


# --- judge/ (cumulative since the run started, except the step_ rates) --------------------------
def judge(name: str) -> str:
    """``judge/{name}``."""
    return f"{JUDGE}/{name}"


JUDGE_TOTAL_CALLS: Final = judge("total_calls")
JUDGE_CORRECT_PREDICTIONS: Final = judge("correct_predictions")
JUDGE_INCORRECT_PREDICTIONS: Final = judge("incorrect_predictions")
JUDGE_CORRECT_RATIO: Final = judge("correct_ratio")
JUDGE_OUTCOMES: Final = semconv.JUDGE_OUTCOMES
JUDGE_TOKEN_KINDS: Final = ("input", "output")


def judge_outcome_rate(outcome: str, *, step: bool = False) -> str:
    """``judge/{outcome}_rate`` (cumulative) or ``judge/step_{outcome}_rate`` (this step only)."""
    return f"{JUDGE}/step_{outcome}_rate" if step else f"{JUDGE}/{outcome}_rate"


def judge_source_success_rate(source: str) -> str:
    """``judge/{source}_success_rate``: successful evaluations / evaluations of ``source``."""
    return f"{JUDGE}/{source}_success_rate"


def judge_latency(label: str) -> str:
    """``judge/latency_{label}_s``, ``label`` from :data:`QUANTILES`."""
    return f"{JUDGE}/latency_{label}_s"


def judge_tokens(kind: str) -> str:
    """``judge/{kind}_tokens``, ``kind`` from :data:`JUDGE_TOKEN_KINDS`."""
    return f"{JUDGE}/{kind}_tokens"


# --- val/ (window = one validation pass) ---------------------------------------------------------
def val(figure: str, source: str | None = None) -> str:
    """``val/{figure}`` or, per source, ``val/{source}/{figure}``."""
    return f"{VAL}/{figure}" if source is None else f"{VAL}/{source}/{figure}"


VAL_ACCURACY: Final = val("accuracy")  # percent
VAL_AVG_CORRECTNESS: Final = val("avg_correctness")
VAL_SUCCESS_RATE: Final = val("success_rate")  # percent
VAL_AVG_COST: Final = val("avg_cost")
VAL_SOURCE_FIGURES: Final = ("accuracy", "count", "avg_cost")


# --- cost/ and executor/ (cumulative since the run started, all splits) ---------------------------
def cost(name: str) -> str:
    """``cost/{name}``."""
    return f"{COST}/{name}"


COST_TOTAL: Final = cost("total_cost")
COST_EXECUTOR_CALLS: Final = cost("executor_calls")
COST_AVG_PER_SAMPLE: Final = cost("avg_cost_per_sample")
COST_JUDGE_CALLS: Final = cost("judge_calls")
COST_JUDGE_COST: Final = cost("judge_cost")
COST_INVALID_COUNT: Final = cost("invalid_cost_count")
COST_STEP: Final = cost(STEP_COST)  # this training step, every attempt of it
COST_PER_CORRECT_TOTAL: Final = cost(COST_PER_CORRECT)  # train cost / correct train samples, since the start


def executor_latency(label: str) -> str:
    """``executor/latency_{label}_s``, ``label`` from :data:`QUANTILES`."""
    return f"{EXECUTOR}/latency_{label}_s"


EXECUTOR_LLM_REQUESTS: Final = f"{EXECUTOR}/llm_requests"


# --- exporter/ (health) ----------------------------------------------------------------------------
def exporter(event: str) -> str:
    """``exporter/{event}``: rows_written, rows_dropped, export_errors, ..."""
    return f"{EXPORTER}/{event}"


# --- what a key's value covers (its window) --------------------------------------------------------
WINDOW_STEP: Final = "step"  # its row's training step (train/, dataset/, grpo/, judge/step_*, cost/step_cost)
WINDOW_VALIDATION: Final = "validation"  # one validation pass (val/)
WINDOW_RUN: Final = "run"  # everything since the run started: cumulative


def window_of(key: str) -> str:
    """What ``key``'s value covers: :data:`WINDOW_RUN` for judge/ (but its ``step_`` rates), cost/ (but
    ``step_cost``), executor/ and exporter/; :data:`WINDOW_VALIDATION` for val/; else :data:`WINDOW_STEP`."""
    namespace, _, name = key.partition("/")
    if namespace == VAL:
        return WINDOW_VALIDATION
    if (namespace == JUDGE and not name.startswith("step_")) or (namespace == COST and key != COST_STEP):
        return WINDOW_RUN
    return WINDOW_RUN if namespace in (EXECUTOR, EXPORTER) else WINDOW_STEP


def sources_in(row_keys: Iterable[str]) -> list[str]:
    """The sources a run's keys name (``dataset/{source}/count``, ``val/{source}/count``), sorted.

    The inverse of :func:`dataset` and :func:`val` for a run read back from disk; the
    exporter's own tables never need it (they get the rollup's per-source figures).
    """
    found: set[str] = set()
    for key in row_keys:
        parts = key.split("/")
        if len(parts) == 3 and parts[0] in (DATASET, VAL) and parts[2] == "count":
            found.add(parts[1])
    return sorted(found)


# --- run.summary: what the runs table and a run's overview show ------------------------------------
# WandB copies every logged key into the run summary, in a summary record written next to every
# history row: each key written twice. otel-grpo keeps in the summary only the latest values a
# user reads there (plain values, as WandB's default), and defines every other key of its
# namespaces with ``summary="none"``: history only.
SUMMARY_KEYS: Final = (
    STEP,
    TRAIN_ACCURACY,
    TRAIN_AVG_REWARD,
    TRAIN_LOSS,
    TRAIN_JUDGE_FAILED_SHARE,
    VAL_ACCURACY,
    VAL_AVG_COST,  # the workspace's scatter of validation cost vs accuracy reads the summary
    JUDGE_TOTAL_CALLS,
    judge_outcome_rate(semconv.OUTCOME_SUCCESS),
    JUDGE_CORRECT_PREDICTIONS,  # the verdict distribution bar
    JUDGE_INCORRECT_PREDICTIONS,
    COST_TOTAL,
    COST_PER_CORRECT_TOTAL,
)
SUMMARY_DATASET_FIGURES: Final = ("accuracy", "count", JUDGE_FAILED_SHARE, COST_PER_CORRECT)
SUMMARY_VAL_FIGURES: Final = ("accuracy",)


def summary_keys_of(source: str) -> tuple[str, ...]:
    """The per-source keys whose latest value stays in ``run.summary`` (the workspace's bars read them)."""
    return (
        *(dataset(source, figure) for figure in SUMMARY_DATASET_FIGURES),
        *(val(figure, source) for figure in SUMMARY_VAL_FIGURES),
        judge_source_success_rate(source),
    )


# --- tables (logged in the row's own call, so they carry its train/step) ---------------------------
DATASET_STATISTICS_TABLE: Final = "dataset_statistics"
DATASET_STATISTICS_COLUMNS: Final = ("source", *DATASET_FIGURES)
SAMPLES_TABLE: Final = "samples"
SAMPLE_FIELDS: Final = ("source", "problem_type", "reward", "correctness", "cost", "judge_outcome", "latency_s")
SAMPLES_COLUMNS: Final = ("step", *SAMPLE_FIELDS)

# --- panel groups (the design document's four, plus cost and exporter health) ----------------------
PANEL_GROUPS: Final = (
    ("Training overview", (TRAIN,)),
    ("Datasets", (DATASET, GRPO)),
    ("Judge", (JUDGE,)),
    ("Validation", (VAL,)),
    ("Cost", (COST, EXECUTOR)),
    ("Exporter health", (EXPORTER,)),
)
# The sections of the WandB workspace and the offline report (exporter health has no panel).
WORKSPACE_SECTIONS: Final = tuple(title for title, _ in PANEL_GROUPS[:5])
