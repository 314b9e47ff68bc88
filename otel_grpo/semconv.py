"""Every attribute key, instrument name, unit and bucket boundary otel-grpo uses.

Names follow OpenTelemetry conventions: lower-case dotted instrument names, UCUM
units (``s``, ``USD``, ``{sample}``), and the GenAI semantic conventions for the
judge's HTTP calls. The Collector's Prometheus exporter turns ``grpo.samples`` with
unit ``{sample}`` into ``grpo_samples_total`` and ``grpo.judge.duration`` (``s``)
into ``grpo_judge_duration_seconds_bucket``; :func:`prometheus_name` encodes that rule
and ``otel_grpo.tools.dashboards.grafana.prometheus_metric_names()`` lists it for every
instrument, so dashboards and tests share one table.

Names defined by OpenTelemetry's semantic conventions (GenAI, ``server.*``, ``error.type``,
``http.response.status_code``, the ``gen_ai.client.*`` instruments and their enumerated
values) are imported from ``opentelemetry-semantic-conventions``, never copied; only the
``grpo.*`` names and what the package does not define (bucket boundaries) are written here.
"""

from __future__ import annotations

from typing import Final

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as _gen_ai
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics as _gen_ai_metrics
from opentelemetry.semconv.attributes import error_attributes as _error
from opentelemetry.semconv.attributes import http_attributes as _http
from opentelemetry.semconv.attributes import server_attributes as _server

METER_NAME: Final = "otel_grpo"
TRACER_NAME: Final = "otel_grpo"

# --- attribute keys -----------------------------------------------------------------
ATTR_SOURCE: Final = "grpo.source"
ATTR_PROBLEM_TYPE: Final = "grpo.problem_type"
ATTR_SPLIT: Final = "grpo.split"
ATTR_STEP: Final = "grpo.step"
ATTR_SUCCESS: Final = "grpo.executor.success"
ATTR_JUDGE_OUTCOME: Final = "grpo.judge.outcome"
ATTR_JUDGE_VERDICT: Final = "grpo.judge.verdict"
ATTR_SCALAR_NAME: Final = "grpo.scalar.name"
ATTR_HEALTH_EVENT: Final = "grpo.exporter.event"
ATTR_ERROR_TYPE: Final = _error.ERROR_TYPE
ATTR_RUN_ID: Final = "grpo.run.id"
ATTR_LLM_ROLE: Final = "grpo.llm.role"  # judge | executor
ATTR_SCORED_BY: Final = "grpo.scored_by"  # one of SCORERS

# GenAI semantic conventions (judge HTTP requests), from opentelemetry-semantic-conventions.
GEN_AI_OPERATION_NAME: Final = _gen_ai.GEN_AI_OPERATION_NAME
GEN_AI_PROVIDER_NAME: Final = _gen_ai.GEN_AI_PROVIDER_NAME
GEN_AI_REQUEST_MODEL: Final = _gen_ai.GEN_AI_REQUEST_MODEL
GEN_AI_RESPONSE_MODEL: Final = _gen_ai.GEN_AI_RESPONSE_MODEL
GEN_AI_RESPONSE_ID: Final = _gen_ai.GEN_AI_RESPONSE_ID
GEN_AI_RESPONSE_FINISH_REASONS: Final = _gen_ai.GEN_AI_RESPONSE_FINISH_REASONS
GEN_AI_USAGE_INPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_INPUT_TOKENS
GEN_AI_USAGE_OUTPUT_TOKENS: Final = _gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
GEN_AI_TOKEN_TYPE: Final = _gen_ai.GEN_AI_TOKEN_TYPE
GEN_AI_REQUEST_TEMPERATURE: Final = _gen_ai.GEN_AI_REQUEST_TEMPERATURE
GEN_AI_REQUEST_MAX_TOKENS: Final = _gen_ai.GEN_AI_REQUEST_MAX_TOKENS
# Opt-in message content (JSON strings on spans, only when content capture is enabled).
GEN_AI_INPUT_MESSAGES: Final = _gen_ai.GEN_AI_INPUT_MESSAGES
GEN_AI_OUTPUT_MESSAGES: Final = _gen_ai.GEN_AI_OUTPUT_MESSAGES
SERVER_ADDRESS: Final = _server.SERVER_ADDRESS
SERVER_PORT: Final = _server.SERVER_PORT
HTTP_RESPONSE_STATUS_CODE: Final = _http.HTTP_RESPONSE_STATUS_CODE
# GenAI evaluation event (development status): one per judge evaluation, on its span.
# The package names the attributes; the event name is only in the conventions' text.
GEN_AI_EVALUATION_RESULT_EVENT: Final = "gen_ai.evaluation.result"
GEN_AI_EVALUATION_NAME: Final = _gen_ai.GEN_AI_EVALUATION_NAME
GEN_AI_EVALUATION_SCORE_LABEL: Final = _gen_ai.GEN_AI_EVALUATION_SCORE_LABEL
GEN_AI_EVALUATION_SCORE_VALUE: Final = _gen_ai.GEN_AI_EVALUATION_SCORE_VALUE
JUDGE_EVALUATION_NAME: Final = "judge"  # gen_ai.evaluation.name of the trainer's judge
EVALUATION_LABEL_FAILED: Final = "failed"  # score label of an evaluation with no verdict

# --- attribute values ----------------------------------------------------------------
SPLIT_TRAIN: Final = "train"
SPLIT_VAL: Final = "val"
UNKNOWN: Final = "unknown"
OTHER: Final = "other"

# gen_ai.operation.name and gen_ai.token.type values.
GEN_AI_OPERATION_CHAT: Final = _gen_ai.GenAiOperationNameValues.CHAT.value
GEN_AI_OPERATION_TEXT_COMPLETION: Final = _gen_ai.GenAiOperationNameValues.TEXT_COMPLETION.value
GEN_AI_TOKEN_TYPE_INPUT: Final = _gen_ai.GenAiTokenTypeValues.INPUT.value
GEN_AI_TOKEN_TYPE_OUTPUT: Final = _gen_ai.GenAiTokenTypeValues.OUTPUT.value

OUTCOME_SUCCESS: Final = "success"
OUTCOME_PARSE_FAILURE: Final = "parse_failure"
OUTCOME_API_FAILURE: Final = "api_failure"
JUDGE_OUTCOMES: Final = (OUTCOME_SUCCESS, OUTCOME_PARSE_FAILURE, OUTCOME_API_FAILURE)

VERDICT_CORRECT: Final = "correct"
VERDICT_INCORRECT: Final = "incorrect"
VERDICT_NONE: Final = "none"

# grpo.scored_by: what decided a sample's reward. A failed execution is not scored; a
# scored sample is scored by a rule (no judge evaluation), by the judge (at least one
# successful evaluation) or by the trainer's fallback after failed judge evaluations.
SCORED_BY_RULE: Final = "rule"
SCORED_BY_JUDGE: Final = "judge"
SCORED_BY_JUDGE_FAILED: Final = "judge_failed"
NOT_SCORED: Final = "not_scored"
SCORERS: Final = (SCORED_BY_RULE, SCORED_BY_JUDGE, SCORED_BY_JUDGE_FAILED, NOT_SCORED)

# error.type values for judge api failures.
ERROR_TIMEOUT: Final = "timeout"
ERROR_CONNECTION: Final = "connection"
ERROR_HTTP_STATUS: Final = "http_status"
ERROR_EMPTY_CONTENT: Final = "empty_content"
ERROR_OTHER: Final = _error.ErrorTypeValues.OTHER.value  # the conventions' fallback

# --- datasets ---------------------------------------------------------------------------
DEFAULT_DATASETS: Final = (
    "gsm8k",
    "math",
    "humaneval",
    "mbpp",
    "hotpotqa",
    "commonsenseqa",
    "mmlu",
)
PROBLEM_TYPE_BY_SOURCE: Final = {
    "gsm8k": "math",
    "math": "math",
    "humaneval": "code",
    "mbpp": "code",
    "hotpotqa": "qa",
    "commonsenseqa": "qa",
    "mmlu": "qa",
}

# --- instruments: name, unit, description -------------------------------------------------
# Pre-aggregated per-sample figures (observable; read from accumulators at collection).
SAMPLES = ("grpo.samples", "{sample}", "Samples scored (one executed workflow each)")
SAMPLES_CORRECT = ("grpo.samples.correct", "{sample}", "Samples with correctness >= threshold")
REWARD_SUM = ("grpo.reward.sum", "{reward}", "Sum of rewards of scored samples")
CORRECTNESS_SUM = ("grpo.correctness.sum", "{score}", "Sum of correctness scores of scored samples")
REWARD_MIN = ("grpo.reward.min", "{reward}", "Lowest reward in the last completed window")
REWARD_MAX = ("grpo.reward.max", "{reward}", "Highest reward in the last completed window")
EXECUTOR_RUNS = ("grpo.executor.runs", "{run}", "Workflow executions")
EXECUTOR_COST = ("grpo.executor.cost", "USD", "Executor cost")
EXECUTOR_COST_INVALID = (
    "grpo.executor.cost.invalid",
    "{run}",
    "Executor runs whose reported cost was not a valid number",
)
GROUPS = ("grpo.groups", "{group}", "GRPO groups (K samples of one question) completed")
GROUPS_ZERO_ADVANTAGE = (
    "grpo.groups.zero_advantage",
    "{group}",
    "GRPO groups whose rewards were all equal",
)
TRAIN_SCALAR = ("grpo.train.scalar", "{value}", "Last value the trainer reported in the step")
TRAIN_STEP = ("grpo.train.step", "{step}", "Last completed training step")
TRAIN_STEPS = ("grpo.train.steps", "{step}", "Training steps completed")
TRAIN_STEPS_FAILED = ("grpo.train.steps.failed", "{step}", "Training steps that raised")
VAL_RUNS = ("grpo.val.runs", "{run}", "Validation passes completed")
SAMPLES_SCORED_BY = (
    "grpo.samples.scored_by",
    "{sample}",
    "Samples by what scored them (grpo.scored_by: rule, judge, judge_failed, not_scored)",
)
SAMPLES_SCORED_BY_CORRECT = (
    "grpo.samples.scored_by.correct",
    "{sample}",
    "Correct samples by what scored them (grpo.scored_by)",
)

# Event instruments (SDK; recorded for slow events only).
EXECUTOR_DURATION = ("grpo.executor.duration", "s", "Workflow execution wall time")
JUDGE_EVALUATIONS = ("grpo.judge.evaluations", "{evaluation}", "Judge evaluations by outcome")
JUDGE_DURATION = ("grpo.judge.duration", "s", "Judge evaluation wall time, retries included")
JUDGE_REQUESTS = ("grpo.judge.requests", "{request}", "HTTP requests sent to the judge endpoint")
EXECUTOR_LLM_REQUESTS = (
    "grpo.executor.llm_requests",
    "{request}",
    "GenAI HTTP requests made inside executor runs (never judge requests)",
)
JUDGE_COST = ("grpo.judge.cost", "USD", "Judge token cost priced from config")
GEN_AI_OPERATION_DURATION = (_gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION, "s", "GenAI operation duration")
GEN_AI_TOKEN_USAGE = (
    _gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE,
    "{token}",
    "Measures number of input and output tokens used",
)
EXPORTER_EVENTS = ("grpo.exporter.events", "{event}", "Exporter health: rows written, dropped, errors")

# Bucket boundaries. Executor runs and judge evaluations: geometric, ratio <= 1.455 from 5 ms to
# 1060 s, so a p50 read from the buckets (linear interpolation, as Prometheus' histogram_quantile
# does) is within 23 % of a constant latency anywhere from 10 ms to 10 min (tests/test_buckets.py).
# The GenAI client metrics keep the GenAI conventions' advice for gen_ai.client.operation.duration
# and gen_ai.client.token.usage (opentelemetry-semantic-conventions carries only the names).
# fmt: off
DURATION_BUCKETS_S: Final = (
    0.005, 0.00725, 0.0105, 0.0152, 0.0221, 0.032, 0.0465, 0.0674, 0.0977, 0.142, 0.205, 0.298,
    0.432, 0.626, 0.908, 1.32, 1.91, 2.77, 4.01, 5.82, 8.44, 12.2, 17.7, 25.7, 37.3, 54.1, 78.4,
    114.0, 165.0, 239.0, 347.0, 503.0, 729.0, 1060.0,
)  # executor run and judge evaluation latency (grpo.executor.duration, grpo.judge.duration)
GEN_AI_DURATION_BUCKETS_S: Final = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # GenAI semantic conventions, gen_ai.client.operation.duration
TOKEN_BUCKETS: Final = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # GenAI semantic conventions, gen_ai.client.token.usage
# fmt: on

# Exporter health event values.
HEALTH_ROWS_WRITTEN: Final = "rows_written"
HEALTH_ROWS_DROPPED: Final = "rows_dropped"
HEALTH_EXPORT_ERRORS: Final = "export_errors"
HEALTH_INVALID_VALUES: Final = "invalid_values"


def prometheus_name(instrument: tuple[str, str, str], *, monotonic_sum: bool = False) -> str:
    """Return the base name the Collector's Prometheus exporter gives ``instrument``.

    Dots become underscores; a unit in braces (an annotation) is dropped; ``s``
    appends ``_seconds`` and ``USD`` appends ``_USD``; monotonic sums get ``_total``.
    Histograms are exposed as ``<base>_bucket``, ``<base>_sum`` and ``<base>_count``.
    """
    name, unit, _ = instrument
    base = name.replace(".", "_")
    suffix = {"s": "seconds", "USD": "USD"}.get(unit, "")
    if suffix and not base.endswith("_" + suffix):
        base = f"{base}_{suffix}"
    return base + "_total" if monotonic_sum else base
