"""Loading, validating and layering the otel-grpo telemetry configuration.

There is one YAML file, ``config/telemetry.yaml`` (relative to the current working
directory); when it does not exist the packaged copy
``otel_grpo/default_telemetry.yaml`` (identical content) is used. :func:`load_config`
builds the effective :class:`TelemetryConfig` in layers, each winning over the previous:

1. the file (or a ``dict`` / :class:`TelemetryConfig` passed in by code);
2. the standard ``WANDB_*`` and ``OTEL_*`` environment variables (see :data:`ENV_VARS`);
3. overrides passed by code, either as ``overrides={...}`` (a nested mapping, whose
   top-level keys may also be dotted paths such as ``"wandb.mode"``) or as keyword
   arguments named after top-level sections, e.g. ``load_config(wandb={"mode":
   "disabled"})``. Mappings are deep-merged; lists and scalars are replaced.

Secrets are never read from a config file: any key called ``api_key``, ``apikey``,
``token``, ``password`` or ``secret`` (any case, any depth) is dropped with a warning
that names the file and the key but never the value. OTLP header values may instead
reference environment variables as ``"${NAME}"``; :func:`resolve_headers` expands
them at use time.

Every problem is reported as a :class:`ConfigError` naming the file (or ``<dict>``,
``<env>``, ``<overrides>``) and the dotted key path, for example::

    config/telemetry.yaml: wandb.mode: must be one of online, offline, disabled
    (got 'onlin')

(one line in practice)
"""

from __future__ import annotations

import difflib
import logging
import os
import re
import stat
import sys
import types
import typing
from collections.abc import Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Final, Literal, Union
from urllib.parse import unquote

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.fields import FieldInfo

from otel_grpo.redact import redact_text, redact_url
from otel_grpo.semconv import DEFAULT_DATASETS

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "ENV_VARS",
    "MAX_CONFIG_BYTES",
    "MAX_YAML_ALIASES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "PACKAGED_CONFIG_NAME",
    "SECRET_KEY_NAMES",
    "ArgumentsConfig",
    "ConfigError",
    "DashboardConfig",
    "InstrumentationConfig",
    "JudgeConfig",
    "MetricsConfig",
    "OtlpConfig",
    "PrometheusConfig",
    "TargetsConfig",
    "TelemetryConfig",
    "WandbConfig",
    "check_config",
    "check_config_cli",
    "default_config_source",
    "load_config",
    "main_check",
    "parse_target",
    "resolve_headers",
]

logger = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH: Final = Path("config") / "telemetry.yaml"
"""Looked up relative to the current working directory when no source is given."""

PACKAGED_CONFIG_NAME: Final = "default_telemetry.yaml"
"""Packaged resource used when ``DEFAULT_CONFIG_PATH`` does not exist."""

SECRET_KEY_NAMES: Final = frozenset({"api_key", "apikey", "token", "password", "secret"})
"""Key names dropped from config input (case-insensitive, ``-`` read as ``_``)."""

ENV_VARS: Final = (
    "WANDB_PROJECT",
    "WANDB_ENTITY",
    "WANDB_MODE",
    "WANDB_NAME",
    "WANDB_DIR",
    "WANDB_DISABLED",
    "WANDB_TAGS",
    "OTEL_SERVICE_NAME",
    "OTEL_SDK_DISABLED",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_HEADERS",
    "OTEL_EXPORTER_OTLP_TIMEOUT",
    "OTEL_METRIC_EXPORT_INTERVAL",
    "OTEL_METRICS_EXPORTER",
    "OTEL_TRACES_EXPORTER",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
    "OTEL_EXPORTER_PROMETHEUS_HOST",
    "OTEL_EXPORTER_PROMETHEUS_PORT",
)
"""Variables :func:`load_config` reads (never secrets such as WANDB_API_KEY)."""

MAX_CONFIG_BYTES: Final = 1024 * 1024
"""Largest config file read (1 MiB; a real one is a few KB). Larger files are refused unread."""

MAX_YAML_ALIASES: Final = 32
"""Most YAML aliases (``*name``) a config file may use."""

MAX_YAML_NODES: Final = 10_000
"""Most values a config document may hold once its aliases are expanded."""

MAX_YAML_DEPTH: Final = 64
"""Deepest nesting of mappings and lists in a config file."""

_ENV_LABEL: Final = "<env>"
_DICT_LABEL: Final = "<dict>"
_OVERRIDES_LABEL: Final = "<overrides>"
_MODEL_LABEL: Final = "<TelemetryConfig>"

_TARGET_RE: Final = re.compile(r"^[\w.]+:[\w.]+$")
_IDENTIFIER_RE: Final = re.compile(r"^[A-Za-z_]\w*$")
_HEADER_NAME_RE: Final = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
_ENV_REF_RE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_EXPORTER_TOKEN_RE: Final = re.compile(r"^[a-z0-9_.\-/]+$")
_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})
_HIDDEN_PATHS: Final = (("otlp", "headers"),)
"""Key paths whose values are never echoed in error messages."""

# Files whose secret keys were already reported (warn once per file).
_warned_secret_files: set[tuple[str, tuple[str, ...]]] = set()
# (header, variable) pairs whose unset variable was already reported.
_warned_missing_header_vars: set[tuple[str, str]] = set()


# =====================================================================================
# Errors
# =====================================================================================
class ConfigError(ValueError):
    """An invalid telemetry configuration.

    ``str(err)`` always starts with the source (a file path, ``<dict>``, ``<env>``,
    ``<overrides>``) followed by one or more ``key.path: problem`` items joined by
    ``"; "``. For environment problems the location is the variable name, e.g.
    ``<env> WANDB_MODE: must be one of online, offline, disabled (got 'x')``.
    No message ever contains the value of a secret or of an OTLP header.

    Attributes:
        source: the file path or pseudo-source label.
        issues: ``(location, problem)`` pairs; ``location`` is a dotted key path, an
            environment variable name, or ``""`` for a problem with the whole source.
    """

    def __init__(self, source: str, issues: str | Iterable[tuple[str, str]]) -> None:
        self.source: str = source
        if isinstance(issues, str):
            self.issues: list[tuple[str, str]] = [("", issues)]
        else:
            self.issues = list(issues)
        items = "; ".join(f"{loc}: {msg}" if loc else msg for loc, msg in self.issues)
        separator = " " if source == _ENV_LABEL and all(loc for loc, _ in self.issues) else ": "
        super().__init__(f"{source}{separator}{items}")


# =====================================================================================
# Schema
# =====================================================================================
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
    def _check_endpoint(cls, value: str | None, info: Any) -> str | None:
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


_Identifier = Annotated[str, Field(pattern=r"^[A-Za-z_]\w*$")]


class ArgumentsConfig(_Section):
    """Argument names read from the wrapped calls."""

    step: _Identifier = "step"
    source: _Identifier = "source"
    problem_type: _Identifier = "problem_type"
    prediction: _Identifier = "prediction"
    metadata: _Identifier = "metadata"
    workflow_kwargs_source: _Identifier = "source"


class InstrumentationConfig(_Section):
    """What gets wrapped in the training code, and how values are read from it."""

    enabled: bool = Field(default=True, description="Install the wrappers at all.")
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


class TelemetryConfig(_Section):
    """The whole otel-grpo configuration (root of ``config/telemetry.yaml``)."""

    service_name: str = Field(default="otel-grpo-trainer", description="service.name resource.")
    wandb: WandbConfig = Field(default_factory=WandbConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    otlp: OtlpConfig = Field(default_factory=OtlpConfig)
    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig)
    judge: JudgeConfig = Field(default_factory=JudgeConfig)
    instrumentation: InstrumentationConfig = Field(default_factory=InstrumentationConfig)

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


# =====================================================================================
# Validation-error formatting
# =====================================================================================
def _format_path(loc: Iterable[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def _short_repr(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, with any URL secret masked."""
    try:
        text = repr(redact_text(value) if isinstance(value, str) else value)
    except Exception:  # noqa: BLE001 - e.g. an int too long to print; never echo it
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _strip_annotated(annotation: Any, metadata: list[Any]) -> tuple[Any, list[Any]]:
    while typing.get_origin(annotation) is Annotated:
        args = typing.get_args(annotation)
        annotation, metadata = args[0], [*metadata, *args[1:]]
    flat: list[Any] = []
    for item in metadata:  # a FieldInfo inside Annotated keeps constraints in .metadata
        flat.extend(item.metadata if isinstance(item, FieldInfo) else [item])
    return annotation, flat


def _strip_optional(annotation: Any) -> tuple[Any, bool]:
    if typing.get_origin(annotation) in (Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
    return annotation, False


def _annotation_at(loc: tuple[Any, ...]) -> tuple[Any, list[Any]] | None:
    """Walk the schema along a pydantic error location; ``None`` if it leaves it."""
    annotation: Any = TelemetryConfig
    metadata: list[Any] = []
    for part in loc:
        annotation, metadata = _strip_annotated(annotation, metadata)
        annotation, _ = _strip_optional(annotation)
        annotation, metadata = _strip_annotated(annotation, metadata)
        origin = typing.get_origin(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part) if isinstance(part, str) else None
            if field is None:
                return None
            annotation, metadata = field.annotation, list(field.metadata)
        elif origin is list and isinstance(part, int):
            annotation, metadata = typing.get_args(annotation)[0], []
        elif origin is dict and isinstance(part, str):
            annotation, metadata = typing.get_args(annotation)[1], []
        else:
            return None
    return _strip_annotated(annotation, metadata)


def _bounds(metadata: list[Any]) -> str:
    found: dict[str, Any] = {}
    for item in metadata:
        for attr in ("ge", "gt", "le", "lt"):
            value = getattr(item, attr, None)
            if value is not None:
                found[attr] = value

    def num(value: Any) -> str:
        return f"{value:g}" if isinstance(value, float) else str(value)

    if "ge" in found and "le" in found:
        return f" between {num(found['ge'])} and {num(found['le'])}"
    parts = [f"{sym} {num(found[key])}" for key, sym in (("gt", ">"), ("ge", ">=")) if key in found]
    parts += [f"{sym} {num(found[key])}" for key, sym in (("lt", "<"), ("le", "<=")) if key in found]
    return " " + " and ".join(parts) if parts else ""


_PLURALS: Final = {str: "strings", int: "integers", float: "numbers", bool: "booleans"}


def _describe(annotation: Any, metadata: list[Any]) -> str:
    """Human description of what a field expects, e.g. ``a number between 0 and 1``."""
    annotation, metadata = _strip_annotated(annotation, metadata)
    inner, optional = _strip_optional(annotation)
    if optional:
        return _describe(inner, metadata) + " or null"
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(str(a) for a in typing.get_args(annotation))
    if annotation is bool:
        return "true or false"
    if annotation is int:
        return "an integer" + _bounds(metadata)
    if annotation is float:
        return "a number" + _bounds(metadata)
    if annotation is str:
        if any(getattr(m, "pattern", None) == _IDENTIFIER_RE.pattern for m in metadata):
            return "a Python identifier"
        return "a string"
    if origin is list:
        item, _ = _strip_annotated(typing.get_args(annotation)[0], [])
        return f"a list of {_PLURALS.get(item, 'values')}"
    if origin is dict:
        return "a mapping of names to strings"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "a mapping"
    return "a valid value"


def _issue_from_pydantic(error: Mapping[str, Any]) -> tuple[str, str]:
    loc = tuple(error.get("loc", ()))
    path = _format_path(loc)
    kind = error.get("type", "")
    hidden = any(loc[: len(p)] == p for p in _HIDDEN_PATHS)
    got = " (value hidden)" if hidden else f" (got {_short_repr(error.get('input'))})"

    if kind == "extra_forbidden":
        parent = _annotation_at(loc[:-1])
        key = str(loc[-1]) if loc else ""
        valid: list[str] = []
        if parent is not None:
            model, _ = parent
            model, _ = _strip_optional(model)
            if isinstance(model, type) and issubclass(model, BaseModel):
                valid = list(model.model_fields)
        close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
        if close:
            return path, f"unknown key (did you mean {close[0]!r}?)"
        if valid:
            return path, f"unknown key (valid keys: {', '.join(valid)})"
        return path, "unknown key"

    resolved = _annotation_at(loc)
    if kind == "value_error":
        ctx = error.get("ctx") or {}
        message = str(ctx.get("error", error.get("msg", "invalid value")))
        return path, f"{message}{got}"
    if kind == "string_pattern_mismatch" and resolved is not None:
        return path, f"expected {_describe(*resolved)}{got}"
    if resolved is not None:
        annotation, metadata = resolved
        inner, _ = _strip_optional(annotation)
        if typing.get_origin(inner) is Literal and kind == "literal_error":
            choices = ", ".join(str(a) for a in typing.get_args(inner))
            return path, f"must be one of {choices}{got}"
        return path, f"expected {_describe(annotation, metadata)}{got}"
    return path, f"{error.get('msg', 'invalid value')}{got}"


def _validate(
    data: Any, label: str, env_paths: Mapping[tuple[str, ...], str] | None = None
) -> TelemetryConfig:
    """Validate ``data`` as a :class:`TelemetryConfig`; raise :class:`ConfigError`."""
    if not isinstance(data, Mapping):
        raise ConfigError(label, f"expected a mapping at the top level (got {type(data).__name__})")
    try:
        return TelemetryConfig.model_validate(dict(data))
    except ValidationError as exc:
        issues: list[tuple[str, str]] = []
        for error in exc.errors(include_url=False):
            path, message = _issue_from_pydantic(error)
            if env_paths:
                loc = tuple(str(p) for p in error.get("loc", ()))
                var = next((v for p, v in env_paths.items() if loc[: len(p)] == p), None)
                if var is not None:
                    path = var
            issues.append((path, message))
        raise ConfigError(label, issues) from None


# =====================================================================================
# Reading sources
# =====================================================================================
class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader for untrusted config text.

    * duplicate keys in a mapping are errors (PyYAML would keep the last);
    * at most :data:`MAX_YAML_ALIASES` aliases, and the document expanded through its
      aliases has at most :data:`MAX_YAML_NODES` nodes (no "billion laughs");
    * an alias inside the node it refers to (``a: &a [*a]``) is an error, not a
      recursive structure;
    * nesting deeper than :data:`MAX_YAML_DEPTH` is an error, not a ``RecursionError``.

    Every refusal is a ``ComposerError`` with the position of the offending node.
    """

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._alias_count = 0
        self._depth = 0
        self._open_anchors: list[str] = []
        self._expanded_size: dict[int, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            if event.anchor in self._open_anchors:
                raise yaml.composer.ComposerError(
                    None, None, f"recursive alias *{event.anchor} (it refers to a node that contains it)",
                    event.start_mark)
            self._alias_count += 1
            if self._alias_count > MAX_YAML_ALIASES:
                raise yaml.composer.ComposerError(
                    None, None, f"too many aliases (more than {MAX_YAML_ALIASES}; a config needs few)",
                    event.start_mark)
            return super().compose_node(parent, index)
        self._depth += 1
        if self._depth > MAX_YAML_DEPTH:
            raise yaml.composer.ComposerError(
                None, None, f"nested more than {MAX_YAML_DEPTH} levels deep", event.start_mark)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            self._open_anchors.append(anchor)
        try:
            node = super().compose_node(parent, index)
        finally:
            self._depth -= 1
            if anchor is not None:
                self._open_anchors.pop()
        self._check_expansion(node)
        return node

    def _check_expansion(self, node: yaml.Node) -> None:
        """Record the size of ``node`` with every alias expanded; refuse it when too large."""
        size = 1
        if isinstance(node, yaml.SequenceNode):
            size += sum(self._expanded_size.get(id(child), 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            size += sum(self._expanded_size.get(id(key), 1) + self._expanded_size.get(id(value), 1)
                        for key, value in node.value)
        if size > MAX_YAML_NODES:
            raise yaml.composer.ComposerError(
                None, None, f"aliases expand to more than {MAX_YAML_NODES} values (an alias bomb?)",
                node.start_mark)
        self._expanded_size[id(node)] = size


def _construct_unique_mapping(
    loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False
) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _value_node in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        try:
            duplicate = key in seen
        except TypeError:  # unhashable key; the base constructor reports it
            continue
        if duplicate:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {str(key)!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping)


def _load_yaml(text: str) -> Any:
    loader = _UniqueKeyLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


def _parse_yaml(text: str, label: str) -> dict[str, Any]:
    try:
        data = _load_yaml(text)
    except yaml.MarkedYAMLError as exc:
        # Problem + position only: PyYAML's source snippet could echo a secret.
        reason = exc.problem or exc.context or "invalid YAML"
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(label, f"invalid YAML: {reason}{where}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(label, f"invalid YAML: {type(exc).__name__}") from None
    except RecursionError:
        raise ConfigError(label, "invalid YAML: nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - e.g. an integer with 5000 digits (ValueError)
        # The message is not echoed: it may quote the offending (possibly secret) value.
        raise ConfigError(label, f"invalid YAML: a value cannot be read ({type(exc).__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(label, f"expected a mapping at the top level (got {type(data).__name__})")
    return data


_FILE_KINDS: Final = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def _check_file_stat(mode_and_size: os.stat_result, label: str) -> None:
    """Refuse anything but a regular file of at most :data:`MAX_CONFIG_BYTES` bytes."""
    mode = mode_and_size.st_mode
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
        raise ConfigError(label, f"cannot read file: it is {kind}, not a regular file")
    if mode_and_size.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(label, _too_large(mode_and_size.st_size))


def _too_large(size: int | None) -> str:
    got = f"{size} bytes" if size is not None else f"more than {MAX_CONFIG_BYTES} bytes"
    return f"file too large ({got}; a config file may have at most {MAX_CONFIG_BYTES} bytes)"


def _read_bounded(path: Path, label: str) -> bytes:
    """The bytes of ``path``, never blocking on a FIFO nor reading more than the bound.

    ``path`` is stat'ed first (a FIFO or device is never opened), then opened without
    blocking and checked again on the open descriptor, in case it was swapped between.
    """
    try:
        _check_file_stat(os.stat(path), label)
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise ConfigError(label, "file not found") from None
    except OSError as exc:
        raise ConfigError(label, f"cannot read file: {exc.strerror or type(exc).__name__}") from None
    except ConfigError:
        raise
    except ValueError:  # os.stat refuses a path with a NUL byte
        raise ConfigError(label, "cannot read file: the path contains a NUL byte") from None
    try:
        _check_file_stat(os.fstat(fd), label)
        chunks: list[bytes] = []
        total = 0
        while total <= MAX_CONFIG_BYTES:
            chunk = os.read(fd, MAX_CONFIG_BYTES + 1 - total)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
    except OSError as exc:
        raise ConfigError(label, f"cannot read file: {exc.strerror or type(exc).__name__}") from None
    finally:
        os.close(fd)
    if total > MAX_CONFIG_BYTES:  # the file grew after it was stat'ed
        raise ConfigError(label, _too_large(None))
    return b"".join(chunks)


def _read_file(path: Path, label: str) -> dict[str, Any]:
    data = _read_bounded(path, label)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(label, "cannot read file: not valid UTF-8") from None
    return _parse_yaml(text, label)


def _packaged_text() -> tuple[str, str]:
    resource = resources.files("otel_grpo").joinpath(PACKAGED_CONFIG_NAME)
    return resource.read_text(encoding="utf-8"), str(resource)


def default_config_source() -> str:
    """Return the label of the file :func:`load_config` reads when given no source.

    That is ``config/telemetry.yaml`` when it exists in the current directory (whatever
    it is: a FIFO or a directory there is an error, not silently skipped), else the
    path of the packaged ``otel_grpo/default_telemetry.yaml``.
    """
    if os.path.lexists(DEFAULT_CONFIG_PATH):
        return str(DEFAULT_CONFIG_PATH)
    return str(resources.files("otel_grpo").joinpath(PACKAGED_CONFIG_NAME))


def _plain(value: Any) -> Any:
    """Deep-copy config input into plain dicts/lists with string keys."""
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _is_secret_key(key: str) -> bool:
    return key.strip().lower().replace("-", "_") in SECRET_KEY_NAMES


def _strip_secrets(data: Any, prefix: tuple[str, ...] = ()) -> tuple[Any, list[str]]:
    """Remove secret-named keys at any depth; return cleaned data and removed paths."""
    removed: list[str] = []
    if isinstance(data, dict):
        cleaned: dict[str, Any] = {}
        for key, value in data.items():
            path = (*prefix, key)
            if _is_secret_key(key):
                removed.append(_format_path(path))
                continue
            cleaned[key], sub = _strip_secrets(value, path)
            removed += sub
        return cleaned, removed
    if isinstance(data, list):
        items = []
        for index, value in enumerate(data):
            item, sub = _strip_secrets(value, (*prefix, index))  # type: ignore[arg-type]
            items.append(item)
            removed += sub
        return items, removed
    return data, removed


def _secret_hint(paths: list[str]) -> str:
    hints: list[str] = []
    for path in paths:
        if path.startswith("wandb"):
            hint = "set WANDB_API_KEY in the environment instead"
        elif path.startswith("otlp"):
            hint = 'reference an environment variable as "${NAME}" in otlp.headers instead'
        else:
            hint = "set it in the environment instead"
        if hint not in hints:
            hints.append(hint)
    return "; ".join(hints)


def _drop_secrets(data: dict[str, Any], label: str, *, once_key: str | None) -> dict[str, Any]:
    cleaned, removed = _strip_secrets(data)
    if removed:
        marker = (once_key or "", tuple(removed))
        if once_key is None or marker not in _warned_secret_files:
            if once_key is not None:
                _warned_secret_files.add(marker)
            logger.warning(
                "%s: ignoring %s: secrets are never read from config files; %s",
                label,
                ", ".join(removed),
                _secret_hint(removed),
            )
    return cleaned


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = _plain(value)
    return merged


def _set_path(target: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    node = target
    for key in path[:-1]:
        node = node.setdefault(key, {})
    node[path[-1]] = value


# =====================================================================================
# Environment
# =====================================================================================
def _parse_bool(raw: str) -> bool | None:
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def _parse_w3c_headers(raw: str) -> tuple[dict[str, str], str | None]:
    """Parse ``k1=v1,k2=v2`` (URL-encoded) into ``(headers, problem-or-None)``.

    The problem text never contains a header value.
    """
    headers: dict[str, str] = {}
    for index, entry in enumerate(raw.split(","), start=1):
        if not entry.strip():
            continue
        if "=" not in entry:
            return {}, f"entry {index} is not of the form key=value"
        key, _, value = entry.partition("=")
        key = unquote(key.strip())
        if not key:
            return {}, f"entry {index} has an empty key"
        headers[key] = unquote(value.strip())
    return headers, None


def _exporter_list(raw: str) -> list[str] | None:
    tokens = [t.strip().lower() for t in raw.split(",") if t.strip()]
    if not tokens or not all(_EXPORTER_TOKEN_RE.fullmatch(t) for t in tokens):
        return None
    return tokens


def _env_patch(
    env: Mapping[str, str],
) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """Translate environment variables into a nested patch.

    Returns the patch and a map from each patched key path to the variable that set it.
    Raises :class:`ConfigError` (source ``<env>``) listing every malformed variable.
    """
    patch: dict[str, Any] = {}
    origin: dict[tuple[str, ...], str] = {}
    issues: list[tuple[str, str]] = []

    def get(name: str) -> str | None:
        value = env.get(name)
        if value is None or not value.strip():
            return None  # empty means unset, as in the OpenTelemetry spec
        return value.strip()

    def put(var: str, path: tuple[str, ...], value: Any) -> None:
        _set_path(patch, path, value)
        origin[path] = var

    def get_bool(name: str) -> bool | None:
        raw = get(name)
        if raw is None:
            return None
        parsed = _parse_bool(raw)
        if parsed is None:
            issues.append((name, f"expected true or false (got {_short_repr(raw)})"))
        return parsed

    def get_seconds_from_ms(name: str) -> float | None:
        raw = get(name)
        if raw is None:
            return None
        try:
            millis = float(raw)
        except ValueError:
            millis = -1.0
        if not millis > 0 or millis == float("inf"):
            got = _short_repr(raw)
            issues.append((name, f"expected a positive number of milliseconds (got {got})"))
            return None
        return millis / 1000.0

    # --- WandB ----------------------------------------------------------------------
    for var, key in (
        ("WANDB_PROJECT", "project"),
        ("WANDB_ENTITY", "entity"),
        ("WANDB_NAME", "run_name"),
        ("WANDB_DIR", "dir"),
    ):
        raw = get(var)
        if raw is not None:
            put(var, ("wandb", key), raw)

    raw = get("WANDB_MODE")
    if raw is not None:
        mode = {"dryrun": "offline", "run": "online"}.get(raw.lower(), raw.lower())
        if mode in ("online", "offline", "disabled"):
            put("WANDB_MODE", ("wandb", "mode"), mode)
        else:
            got = _short_repr(raw)
            problem = f"must be one of online, offline, disabled (got {got})"
            issues.append(("WANDB_MODE", problem))
    if get_bool("WANDB_DISABLED"):
        put("WANDB_DISABLED", ("wandb", "mode"), "disabled")

    raw = get("WANDB_TAGS")
    if raw is not None:
        put(
            "WANDB_TAGS",
            ("wandb", "tags"),
            [t.strip() for t in raw.split(",") if t.strip()],
        )

    # --- OpenTelemetry --------------------------------------------------------------
    raw = get("OTEL_SERVICE_NAME")
    if raw is not None:
        put("OTEL_SERVICE_NAME", ("service_name",), raw)

    raw = get("OTEL_EXPORTER_OTLP_PROTOCOL")
    if raw is not None:
        protocol = raw.lower()
        if protocol in ("http/protobuf", "grpc"):
            put("OTEL_EXPORTER_OTLP_PROTOCOL", ("otlp", "protocol"), protocol)
        elif protocol == "http/json":
            issues.append(
                (
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                    "http/json is not supported; use http/protobuf or grpc",
                )
            )
        else:
            issues.append(
                (
                    "OTEL_EXPORTER_OTLP_PROTOCOL",
                    f"must be one of http/protobuf, grpc (got {_short_repr(raw)})",
                )
            )

    raw = get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if raw is not None:
        put("OTEL_EXPORTER_OTLP_ENDPOINT", ("otlp", "endpoint"), raw)
        put("OTEL_EXPORTER_OTLP_ENDPOINT", ("otlp", "enabled"), True)

    raw = env.get("OTEL_EXPORTER_OTLP_HEADERS")
    if raw is not None and raw.strip():
        headers, problem = _parse_w3c_headers(raw)
        if problem:
            issues.append(("OTEL_EXPORTER_OTLP_HEADERS", problem))
        elif headers:
            put("OTEL_EXPORTER_OTLP_HEADERS", ("otlp", "headers"), headers)

    seconds = get_seconds_from_ms("OTEL_METRIC_EXPORT_INTERVAL")
    if seconds is not None:
        put("OTEL_METRIC_EXPORT_INTERVAL", ("otlp", "export_interval_s"), seconds)
    seconds = get_seconds_from_ms("OTEL_EXPORTER_OTLP_TIMEOUT")
    if seconds is not None:
        put("OTEL_EXPORTER_OTLP_TIMEOUT", ("otlp", "timeout_s"), seconds)

    for var, signal in (
        ("OTEL_METRICS_EXPORTER", "metrics"),
        ("OTEL_TRACES_EXPORTER", "traces"),
    ):
        raw = get(var)
        if raw is None:
            continue
        exporters = _exporter_list(raw)
        if exporters is None:
            problem = (
                "expected a comma-separated list of exporter names, e.g. "
                f"otlp,prometheus or none (got {_short_repr(raw)})"
            )
            issues.append((var, problem))
            continue
        put(var, ("otlp", signal), "otlp" in exporters)
        if signal == "metrics" and "prometheus" in exporters:
            put(var, ("prometheus", "enabled"), True)

    if get_bool("OTEL_SDK_DISABLED"):
        put("OTEL_SDK_DISABLED", ("instrumentation", "enabled"), False)
        put("OTEL_SDK_DISABLED", ("otlp", "enabled"), False)

    capture = get_bool("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
    if capture is not None:
        put(
            "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
            ("judge", "capture_content"),
            capture,
        )

    raw = get("OTEL_EXPORTER_PROMETHEUS_HOST")
    if raw is not None:
        put("OTEL_EXPORTER_PROMETHEUS_HOST", ("prometheus", "host"), raw)
    raw = get("OTEL_EXPORTER_PROMETHEUS_PORT")
    if raw is not None:
        if raw.isdigit() and 0 <= int(raw) <= 65535:
            put("OTEL_EXPORTER_PROMETHEUS_PORT", ("prometheus", "port"), int(raw))
        else:
            issues.append(
                (
                    "OTEL_EXPORTER_PROMETHEUS_PORT",
                    f"expected an integer between 0 and 65535 (got {_short_repr(raw)})",
                )
            )

    if issues:
        raise ConfigError(_ENV_LABEL, issues)
    return patch, origin


def _normalise_overrides(overrides: Mapping[str, Any] | None, sections: Mapping[str, Any]) -> dict[str, Any]:
    patch: dict[str, Any] = {}
    if overrides:
        for key, value in overrides.items():
            key = str(key)
            nested: dict[str, Any] = {}
            _set_path(nested, tuple(key.split(".")), _plain(value))
            patch = _deep_merge(patch, nested)
    if sections:
        patch = _deep_merge(patch, {str(k): _plain(v) for k, v in sections.items()})
    return patch


# =====================================================================================
# Public entry points
# =====================================================================================
def load_config(
    source: str | os.PathLike[str] | Mapping[str, Any] | TelemetryConfig | None = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
    **sections: Any,
) -> TelemetryConfig:
    """Build the effective configuration: source, then environment, then overrides.

    Args:
        source: ``None`` reads ``./config/telemetry.yaml`` if it exists, else the
            packaged default; a path reads that YAML file (it must exist); a mapping is
            used as the file content would be (errors name ``<dict>``); a
            :class:`TelemetryConfig` is taken as is.
        env: environment to read ``WANDB_*`` / ``OTEL_*`` variables from (defaults to
            ``os.environ``); pass ``{}`` to ignore the environment.
        overrides: nested mapping deep-merged last; its top-level keys may be dotted
            paths, e.g. ``{"wandb.mode": "disabled"}`` or ``{"wandb": {"mode": ...}}``.
        **sections: top-level keys, e.g. ``wandb={"mode": "disabled"}`` or
            ``service_name="x"``; applied after ``overrides``. Mappings are deep-merged
            into the section, other values replace it.

    Secret-named keys (``api_key``, ``token``, ...) in a file, mapping or override are
    dropped with a warning that never contains their value.

    Raises:
        ConfigError: on a missing/unreadable/invalid file, an invalid value anywhere, or
            a malformed environment variable.
    """
    try:
        return _load_layers(source, env, overrides, sections)
    except RecursionError:  # a self-referencing or absurdly deep mapping passed by code
        label = _DICT_LABEL if isinstance(source, Mapping) else _OVERRIDES_LABEL
        raise ConfigError(label, "nested too deeply (or contains itself)") from None


def _load_layers(
    source: str | os.PathLike[str] | Mapping[str, Any] | TelemetryConfig | None,
    env: Mapping[str, str] | None,
    overrides: Mapping[str, Any] | None,
    sections: Mapping[str, Any],
) -> TelemetryConfig:
    # 1. the base layer
    if isinstance(source, TelemetryConfig):
        label = _MODEL_LABEL
        base = source.model_copy(deep=True)
    else:
        if source is None:
            if os.path.lexists(DEFAULT_CONFIG_PATH):
                label = str(DEFAULT_CONFIG_PATH)
                raw = _read_file(DEFAULT_CONFIG_PATH, label)
                once_key: str | None = str(DEFAULT_CONFIG_PATH.resolve())
            else:
                try:
                    text, label = _packaged_text()
                except OSError as exc:
                    raise ConfigError(
                        f"otel_grpo/{PACKAGED_CONFIG_NAME}",
                        f"cannot read packaged default: {exc.strerror or type(exc).__name__}",
                    ) from None
                raw = _parse_yaml(text, label)
                once_key = label
        elif isinstance(source, Mapping):
            label, raw, once_key = _DICT_LABEL, _plain(source), None
        elif isinstance(source, (str, os.PathLike)):
            path = Path(os.fspath(source))
            label = os.fspath(source)
            raw = _read_file(path, label)
            once_key = str(path.resolve())
        else:
            raise TypeError(
                "load_config source must be None, a path, a mapping or a "
                "TelemetryConfig, "
                f"not {type(source).__name__}"
            )
        raw = _drop_secrets(_plain(raw), label, once_key=once_key)
        base = _validate(raw, label)

    # 2. the environment
    patch, origin = _env_patch(os.environ if env is None else env)
    if patch:
        base = _validate(_deep_merge(base.model_dump(), patch), _ENV_LABEL, env_paths=origin)

    # 3. code overrides
    override_patch = _normalise_overrides(overrides, sections)
    if override_patch:
        override_patch = _drop_secrets(override_patch, _OVERRIDES_LABEL, once_key=None)
        base = _validate(_deep_merge(base.model_dump(), override_patch), _OVERRIDES_LABEL)
    return base


def resolve_headers(
    otlp: OtlpConfig | Mapping[str, str],
    env: Mapping[str, str] | None = None,
    *,
    strict: bool = False,
) -> dict[str, str]:
    """Return the OTLP headers with every ``${NAME}`` replaced from the environment.

    ``otlp`` is the OTLP section (its ``headers`` are used) or the headers mapping
    itself. The OTLP exporters call this when they are built, so the file only ever
    holds references. A header whose variable is unset is left out with a warning
    (naming the header and the variable, never a value; once per process), or raises
    :class:`ConfigError` when ``strict``.
    """
    environ = os.environ if env is None else env
    headers = otlp if isinstance(otlp, Mapping) else otlp.headers
    resolved: dict[str, str] = {}
    for name, template in headers.items():
        template = str(template)
        missing = [m.group(1) for m in _ENV_REF_RE.finditer(template) if m.group(1) not in environ]
        if missing:
            problem = f"environment variable {missing[0]} is not set"
            if strict:
                raise ConfigError(_ENV_LABEL, [(f"otlp.headers.{name}", problem)])
            if (name, missing[0]) not in _warned_missing_header_vars:
                _warned_missing_header_vars.add((name, missing[0]))
                logger.warning("otlp.headers.%s: %s; header not sent", name, problem)
            continue
        resolved[str(name)] = _ENV_REF_RE.sub(lambda m: environ[m.group(1)], template)
    return resolved


def _summary(cfg: TelemetryConfig) -> list[str]:
    w, o, p, j = cfg.wandb, cfg.otlp, cfg.prometheus, cfg.judge
    targets = cfg.instrumentation.targets
    wandb_line = (
        f"wandb: {'enabled' if w.enabled else 'disabled'}, mode={w.mode}, "
        f"project={w.project}, "
        f"entity={w.entity or '-'}, log_frequency={w.log_frequency}"
    )
    if o.enabled:
        signals = [s for s, on in (("metrics", o.metrics), ("traces", o.traces)) if on]
        otlp_line = (
            f"otlp: enabled, {o.protocol} -> "
            f"{redact_url(o.endpoint) if o.endpoint else '(SDK default)'}"
            f", signals={','.join(signals) or 'none'}, headers={len(o.headers)}"
        )
    else:
        otlp_line = "otlp: disabled"
    prom_line = f"prometheus: enabled on {p.host}:{p.port}" if p.enabled else "prometheus: disabled"
    judge_line = (
        f"judge: ports={j.ports}, model={j.model}, provider={j.provider}, "
        f"capture_content={str(j.capture_content).lower()}"
    )
    enabled = targets.enabled_targets()
    instr_line = (
        f"instrumentation: {'enabled' if cfg.instrumentation.enabled else 'disabled'}, "
        f"{len(enabled)}/{len(TargetsConfig.model_fields)} targets"
    )
    return [
        f"service_name: {cfg.service_name}",
        wandb_line,
        otlp_line,
        prom_line,
        judge_line,
        instr_line,
    ]


def check_config(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> tuple[int, str]:
    """Validate a config file plus the environment without printing anything.

    Returns:
        ``(0, "OK: <file>\\n  <summary lines>")`` or ``(2, "<ConfigError message>")``.
    """
    label = default_config_source() if path is None else os.fspath(path)
    try:
        cfg = load_config(path, env=env)
    except ConfigError as exc:
        return 2, str(exc)
    return 0, "\n".join([f"OK: {label}", *(f"  {line}" for line in _summary(cfg))])


def check_config_cli(argv_path: str | None) -> int:
    """``otel-grpo check-config [FILE]``: print the verdict, return 0 (OK) or 2."""
    code, text = check_config(argv_path)
    print(text, file=sys.stdout if code == 0 else sys.stderr)
    return code


def main_check(path: str | None = None) -> int:
    """Alias of :func:`check_config_cli` for CLI wiring."""
    return check_config_cli(path)
