"""The typed configuration: one pydantic model per section of ``config/telemetry.yaml``.

Every section forbids unknown keys and validates assignments. The defaults here are the
built-in defaults; the packaged ``otel_grpo/default_telemetry.yaml`` spells each of them
out (a test keeps the two in step).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from otel_grpo.redact import redact_url
from otel_grpo.semconv import DEFAULT_DATASETS

__all__ = [
    "IDENTIFIER_PATTERN",
    "ArgumentsConfig",
    "DashboardConfig",
    "InstrumentationConfig",
    "JudgeConfig",
    "MetricsConfig",
    "OtlpConfig",
    "PrometheusConfig",
    "TargetsConfig",
    "TelemetryConfig",
    "TrlConfig",
    "WandbConfig",
    "parse_target",
]

_TARGET_RE: Final = re.compile(r"^[\w.]+:[\w.]+$")
_HEADER_NAME_RE: Final = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


def parse_target(spec: str) -> tuple[str, str]:
    """Split a ``"module.path:Qualified.name"`` target into ``(module, qualname)``.

    Raises:
        ValueError: when ``spec`` does not match ``^[\\w.]+:[\\w.]+$``.
    """
    if not isinstance(spec, str) or not _TARGET_RE.fullmatch(spec):
        raise ValueError("expected 'module:Qualified.name', e.g. 'grpo_trainer:GRPOTrainer.train_step'")
    module, _, qualname = spec.partition(":")
    return module, qualname


class _Section(BaseModel):
    """Base for every config section: unknown keys are errors, assignments validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DashboardConfig(_Section):
    """What the WandB dashboard shows."""

    datasets: list[str] = Field(
        default_factory=lambda: list(DEFAULT_DATASETS),
        description="Data sources with their own panels (others are capped).",
    )
    table_every: int = Field(default=10, ge=0, description="Dataset Statistics table every N steps; 0 = off.")
    sample_table_rows: int = Field(
        default=0,
        ge=0,
        description="Max rows per step of the per-sample table; 0 = off.",
    )


class WandbConfig(_Section):
    """The WandB exporter."""

    enabled: bool = Field(default=True, description="Export to WandB at all.")
    project: str = Field(default="otel-grpo", description="WandB project.")
    entity: str | None = Field(default=None, description="WandB entity (user or team).")
    mode: Literal["online", "offline", "disabled"] = Field(default="offline", description="wandb.init mode.")
    run_name: str | None = Field(default=None, description="Run name; null = wandb's choice.")
    dir: str | None = Field(
        default=None,
        description="Where wandb writes runs; null = wandb's default (./wandb).",
    )
    tags: list[str] = Field(default_factory=list, description="Run tags.")
    log_frequency: int = Field(default=1, ge=1, description="Write a train row every Nth step.")
    debug_logging: bool = Field(default=False, description="Verbose exporter logging.")
    init_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="Bound for wandb.init in online mode before going offline.",
    )
    flush_interval_s: float = Field(default=1.0, gt=0, description="Transaction-log flush interval.")
    attach_to_active_run: bool = Field(
        default=True,
        description="Log into an already active wandb run instead of a new one.",
    )
    dashboard: DashboardConfig = Field(default_factory=DashboardConfig)


class MetricsConfig(_Section):
    """Metric derivation settings."""

    accuracy_threshold: float = Field(
        default=0.9,
        ge=0,
        le=1,
        description="Reward at or above which a sample is correct.",
    )
    max_sources: int = Field(
        default=32,
        ge=1,
        description="Cardinality limit for sources outside dashboard.datasets.",
    )


class OtlpConfig(_Section):
    """The OTLP exporter (to an OpenTelemetry Collector or compatible backend)."""

    enabled: bool = Field(default=False, description="Export over OTLP.")
    protocol: Literal["http/protobuf", "grpc"] = Field(default="http/protobuf", description="OTLP transport.")
    endpoint: str | None = Field(
        default=None,
        description="e.g. http://localhost:4318 (http/protobuf) or "
        "http://localhost:4317 "
        "(grpc); null = the SDK default.",
    )
    headers: dict[str, str] = Field(
        default_factory=dict,
        description='Request headers; values may reference env vars as "${ENV_NAME}".',
    )
    metrics: bool = Field(default=True, description="Export metrics over OTLP.")
    traces: bool = Field(default=True, description="Export traces over OTLP.")
    export_interval_s: float = Field(default=10.0, gt=0, description="Metric export interval.")
    timeout_s: float = Field(default=5.0, gt=0, description="Export timeout.")

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not value.strip() or any(ch.isspace() for ch in value):
            raise ValueError("expected a URL without whitespace, e.g. http://localhost:4318")
        protocol = info.data.get("protocol", "http/protobuf")
        if protocol == "http/protobuf" and not value.lower().startswith(("http://", "https://")):
            raise ValueError(
                "expected an http:// or https:// URL for protocol http/protobuf, e.g. http://localhost:4318"
            )
        return value

    @field_validator("headers")
    @classmethod
    def _check_headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, header_value in value.items():
            if not _HEADER_NAME_RE.fullmatch(name):
                raise ValueError(f"{name!r} is not a valid HTTP header name")
            if "\r" in header_value or "\n" in header_value:
                raise ValueError(f"the value of header {name!r} contains a line break")
        return value


class PrometheusConfig(_Section):
    """The in-process Prometheus scrape endpoint."""

    enabled: bool = Field(default=False, description="Serve /metrics for Prometheus.")
    host: str = Field(default="127.0.0.1", description="Bind address.")
    port: int = Field(default=9464, ge=0, le=65535, description="Bind port; 0 = any free port.")


_Port = Annotated[int, Field(ge=1, le=65535)]


class JudgeConfig(_Section):
    """How LLM-judge HTTP requests are recognised and described (GenAI conventions)."""

    ports: list[_Port] = Field(
        default_factory=lambda: [8002],
        description="HTTP requests to these ports are judge calls.",
    )
    hosts: list[str] = Field(default_factory=list, description="Or to these host names; empty = any host.")
    path_prefixes: list[str] = Field(
        default_factory=lambda: ["/v1/chat/completions", "/v1/completions"],
        description="URL path prefixes of judge calls.",
    )
    model: str = Field(default="gpt-oss-120b", description="gen_ai.request.model fallback.")
    provider: str = Field(default="vllm", description="gen_ai.provider.name.")
    price_input_per_mtok: float = Field(default=0.0, ge=0, description="USD per 1M input tokens.")
    price_output_per_mtok: float = Field(default=0.0, ge=0, description="USD per 1M output tokens.")
    capture_content: bool = Field(default=False, description="Record prompt/completion text on judge spans.")
    warn_after_failures: int = Field(
        default=5,
        ge=0,
        description="Warn once this many judge evaluations in a row end in api_failure "
        "(one warning per outage); 0 = never.",
    )


class TargetsConfig(_Section):
    """Functions to wrap, as ``"module:Qualified.name"``; null disables one."""

    train_step: str | None = Field(default="grpo_trainer:GRPOTrainer.train_step")
    evaluate: str | None = Field(default="grpo_trainer:GRPOTrainer.evaluate_on_val_set")
    execute: str | None = Field(default="aflow_executor:AFlowExecutor.execute_workflow")
    compute_reward: str | None = Field(default="reward_computer:RewardComputer.compute_reward")
    judge: str | None = Field(default="reward_computer:RewardComputer._llm_judge_compare")

    @field_validator("*")
    @classmethod
    def _check_target(cls, value: str | None) -> str | None:
        if value is not None:
            parse_target(value)
        return value

    def enabled_targets(self) -> dict[str, str]:
        """Return ``{role: "module:Qualified.name"}`` for every non-null target."""
        return {name: spec for name, spec in self.model_dump().items() if spec is not None}


IDENTIFIER_PATTERN: Final = r"^[A-Za-z_]\w*$"
"""The pattern of a Python identifier (argument and attribute names)."""

_Identifier = Annotated[str, Field(pattern=IDENTIFIER_PATTERN)]


class ArgumentsConfig(_Section):
    """Argument names read from the wrapped calls."""

    step: _Identifier = "step"
    source: _Identifier = "source"
    problem_type: _Identifier = "problem_type"
    prediction: _Identifier = "prediction"
    metadata: _Identifier = "metadata"
    workflow_kwargs_source: _Identifier = "source"


class TrlConfig(_Section):
    """How a TRL ``GRPOTrainer``'s completions, reward functions and judge are read."""

    enabled: bool = Field(default=True, description="Instrument trl.GRPOTrainer (and subclasses).")
    source_column: str = Field(
        default="source", description="Dataset column naming a completion's source (else data_source)."
    )
    problem_type_column: str = Field(default="problem_type", description="Dataset column naming the problem type.")
    correctness: str | None = Field(
        default=None, description="Reward function whose value is the correctness; null = the reward."
    )
    judge: list[str] | None = Field(
        default=None,
        description="Reward functions that are the judge; null = those that make a judge or GenAI request.",
    )
    judge_none: Literal["failed", "not_applicable"] = Field(
        default="failed", description="What a judge function's None means: a failed evaluation, or no evaluation."
    )


class InstrumentationConfig(_Section):
    """What gets wrapped in the training code, and how values are read from it."""

    enabled: bool = Field(default=True, description="Install the wrappers at all.")
    http: bool = Field(
        default=True,
        description="Instrument the HTTP clients (httpx, httpx2, requests) for judge and executor LLM requests; "
        "false leaves every HTTP client class alone.",
    )
    targets: TargetsConfig = Field(default_factory=TargetsConfig)
    arguments: ArgumentsConfig = Field(default_factory=ArgumentsConfig)
    scalars: list[str] = Field(
        default_factory=lambda: ["loss", "kl_div"],
        description="Numeric keys taken from train_step's returned dict.",
    )
    temperature_method: _Identifier | None = "get_current_temperature"
    eval_stats_attribute: _Identifier | None = "eval_stats"
    executor_attribute: _Identifier = "executor"
    reward_attribute: _Identifier = "reward_computer"
    trl: TrlConfig = Field(default_factory=TrlConfig)


class TelemetryConfig(_Section):
    """The whole otel-grpo configuration (root of ``config/telemetry.yaml``)."""

    service_name: str = Field(default="otel-grpo-trainer", description="service.name resource.")
    wandb: WandbConfig = Field(default_factory=WandbConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    otlp: OtlpConfig = Field(default_factory=OtlpConfig)
    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    instrumentation: InstrumentationConfig = Field(default_factory=InstrumentationConfig)
    announce: bool = Field(
        default=True,
        description="Say once, at the first row, what is recorded and where (one line on stderr); "
        "WANDB_SILENT=true turns it off.",
    )

    def redacted_dict(self) -> dict[str, Any]:
        """Return a JSON-safe dump fit for logs and the WandB run config.

        OTLP header values are replaced by ``"***"`` (their names are kept), and the
        OTLP endpoint goes through :func:`otel_grpo.redact.redact_url` (password and
        query values masked). The schema has no other secret fields.
        """
        data = self.model_dump(mode="json")
        otlp = data["otlp"]
        otlp["headers"] = {name: "***" for name in otlp["headers"]}
        if otlp["endpoint"]:
            otlp["endpoint"] = redact_url(otlp["endpoint"])
        return data
