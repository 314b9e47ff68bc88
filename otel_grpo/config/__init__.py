"""Loading, validating and layering the otel-grpo telemetry configuration.

There is one YAML file, ``config/telemetry.yaml`` (relative to the current working
directory); when it does not exist the packaged copy
``otel_grpo/default_telemetry.yaml`` (identical content) is used. ``otel-grpo init``
writes that commented copy into a project (:mod:`otel_grpo.tools.init_config`). A path
given explicitly that does not exist is a one-line :class:`ConfigError` saying how to
write one, or, with ``missing_file="defaults"`` (what :func:`otel_grpo.setup` asks
for, so that a missing file never stops training), one warning and the packaged
defaults. :func:`load_config` builds the effective :class:`TelemetryConfig` in layers,
each winning over the previous:

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

Every problem is reported as a one-line :class:`ConfigError` naming the file (or
``<dict>``, ``<env>``, ``<overrides>``) and the dotted key path, for example
``config/telemetry.yaml: wandb.mode: must be one of online, offline, disabled (got 'onlin')``.

The package, one concern per module:

- :mod:`~otel_grpo.config.schema`: the typed sections (pydantic models) and their defaults;
- :mod:`~otel_grpo.config.loader`: the layers (file, environment, overrides) and merging;
- :mod:`~otel_grpo.config.env`: what each ``WANDB_*`` / ``OTEL_*`` variable sets; header ``${NAME}``;
- :mod:`~otel_grpo.config.safe_yaml`: reading a possibly hostile file (size, aliases, depth);
- :mod:`~otel_grpo.config.secret_keys`: dropping secret-named keys;
- :mod:`~otel_grpo.config.errors`: :class:`ConfigError` and one precise line per problem;
- :mod:`~otel_grpo.config.summary`: ``otel-grpo check-config``.
"""

from __future__ import annotations

from otel_grpo.config.env import ENV_VARS, resolve_headers
from otel_grpo.config.errors import ConfigError
from otel_grpo.config.loader import (
    DEFAULT_CONFIG_PATH,
    PACKAGED_CONFIG_NAME,
    ConfigSource,
    MissingFile,
    default_config_source,
    load_config,
    missing_file_hint,
    packaged_config_text,
)
from otel_grpo.config.safe_yaml import MAX_CONFIG_BYTES, MAX_YAML_ALIASES, MAX_YAML_DEPTH, MAX_YAML_NODES
from otel_grpo.config.schema import (
    ArgumentsConfig,
    DashboardConfig,
    InstrumentationConfig,
    JudgeConfig,
    MetricsConfig,
    OtlpConfig,
    PrometheusConfig,
    TargetsConfig,
    TelemetryConfig,
    TrlConfig,
    WandbConfig,
    parse_target,
)
from otel_grpo.config.secret_keys import SECRET_KEY_NAMES
from otel_grpo.config.summary import check_config

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
    "ConfigSource",
    "DashboardConfig",
    "InstrumentationConfig",
    "JudgeConfig",
    "MetricsConfig",
    "MissingFile",
    "OtlpConfig",
    "PrometheusConfig",
    "TargetsConfig",
    "TelemetryConfig",
    "TrlConfig",
    "WandbConfig",
    "check_config",
    "default_config_source",
    "load_config",
    "missing_file_hint",
    "packaged_config_text",
    "parse_target",
    "resolve_headers",
]
