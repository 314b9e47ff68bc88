"""The environment layer: standard ``WANDB_*`` / ``OTEL_*`` variables, and ``${NAME}`` in OTLP headers.

:func:`env_settings` turns the variables listed in :data:`ENV_VARS` into the config keys
they set; ``load_config`` applies them over the file. An empty variable counts as unset,
as in the OpenTelemetry specification. :func:`resolve_headers` expands ``"${NAME}"``
references in OTLP header values when an exporter is built, so a file only ever holds
references, never the secrets themselves.

The switches, exactly:

- ``OTEL_SDK_DISABLED=true``: nothing is patched, served or written (no targets or HTTP
  clients wrapped, no Prometheus endpoint, no OTLP, no WandB rows);
  :func:`sdk_disabled_config` turns everything off even over code overrides, and
  :func:`announce_sdk_disabled` says so in one log line.
- ``WANDB_SILENT=true``: no start-up line (``announce: false``), as wandb prints none of its own.
- ``OTEL_METRICS_EXPORTER`` naming ``otlp``, ``prometheus`` or ``none``: OTLP metric
  export runs only if it names ``otlp`` and the Prometheus endpoint only if it names
  ``prometheus`` (file settings included); other names (``grpo_wandb``, ``console``) change
  neither. ``OTEL_TRACES_EXPORTER`` decides span export over OTLP the same way. Naming
  ``otlp`` turns OTLP on; when the file (or ``OTEL_EXPORTER_OTLP_ENDPOINT``) had not, only
  the signals named are exported.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Final, NamedTuple, Union
from urllib.parse import unquote

from otel_grpo.config.errors import ENV_LABEL, ConfigError, short_repr
from otel_grpo.config.schema import OtlpConfig, TelemetryConfig

__all__ = [
    "ENV_VARS",
    "EnvSetting",
    "EnvValue",
    "announce_sdk_disabled",
    "env_settings",
    "resolve_headers",
    "sdk_disabled",
    "sdk_disabled_config",
]

logger = logging.getLogger(__name__)

ENV_VARS: Final = (
    "WANDB_PROJECT",
    "WANDB_ENTITY",
    "WANDB_MODE",
    "WANDB_NAME",
    "WANDB_DIR",
    "WANDB_DISABLED",
    "WANDB_TAGS",
    "WANDB_SILENT",
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
"""Variables ``load_config`` reads (never secrets such as WANDB_API_KEY)."""

_WANDB_STRING_VARS: Final = (
    ("WANDB_PROJECT", "project"),
    ("WANDB_ENTITY", "entity"),
    ("WANDB_NAME", "run_name"),
    ("WANDB_DIR", "dir"),
)
"""Variables copied as they are into a key of the ``wandb`` section."""

_MILLISECOND_VARS: Final = (
    ("OTEL_METRIC_EXPORT_INTERVAL", ("otlp", "export_interval_s")),
    ("OTEL_EXPORTER_OTLP_TIMEOUT", ("otlp", "timeout_s")),
)
"""Variables in milliseconds (the specification's unit) for keys in seconds."""

_WANDB_MODES: Final = {
    "dryrun": "offline",
    "run": "online",
    "online": "online",
    "offline": "offline",
    "disabled": "disabled",
}
_TRUE: Final = frozenset({"true", "1", "yes", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "off"})
_EXPORTER_TOKEN_RE: Final = re.compile(r"^[a-z0-9_.\-/]+$")
_OTLP: Final = "otlp"
_PROMETHEUS: Final = "prometheus"
_DECIDING_EXPORTERS: Final = frozenset({_OTLP, _PROMETHEUS, "none"})
"""Exporter names that decide what runs; any other name (``grpo_wandb``, ``console``) changes nothing."""
_EXPORTER_VARS: Final = (("OTEL_METRICS_EXPORTER", "metrics"), ("OTEL_TRACES_EXPORTER", "traces"))
SDK_DISABLED_MESSAGE: Final = (
    "otel-grpo: OTEL_SDK_DISABLED=true: nothing is instrumented, served or written "
    "(no WandB rows, no OTLP, no Prometheus endpoint)"
)
_ENV_REF_RE: Final = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

# (header, variable) pairs whose unset variable was already reported.
_warned_missing_header_vars: set[tuple[str, str]] = set()


EnvValue = Union[str, int, float, bool, list[str], dict[str, str]]
"""A value an environment variable gives a config key."""


class EnvSetting(NamedTuple):
    """One config key set by one environment variable."""

    variable: str
    path: tuple[str, ...]
    value: EnvValue


def env_settings(env: Mapping[str, str], base: TelemetryConfig | None = None) -> list[EnvSetting]:
    """The config keys the variables of ``env`` set, in the order they apply (later wins).

    ``base`` is the configuration the variables apply over (the file): whether it already
    exports over OTLP decides which signals an ``OTEL_*_EXPORTER`` naming ``otlp`` turns on.

    Raises:
        ConfigError: source ``<env>``, listing every malformed variable by name.
    """
    reader = _EnvReader(env, otlp_on=base is not None and base.otlp.enabled)
    reader.read_wandb()
    reader.read_otel()
    if reader.issues:
        raise ConfigError(ENV_LABEL, reader.issues)
    return reader.settings


class _EnvReader:
    """Reads the variables one by one, collecting settings and problems."""

    def __init__(self, env: Mapping[str, str], otlp_on: bool = False) -> None:
        self.env = env
        self.otlp_on = otlp_on  # the base configuration already exports over OTLP
        self.settings: list[EnvSetting] = []
        self.issues: list[tuple[str, str]] = []

    def get(self, name: str) -> str | None:
        """The stripped value of ``name``; ``None`` when unset or empty."""
        value = self.env.get(name)
        return value.strip() if value is not None and value.strip() else None

    def put(self, variable: str, path: tuple[str, ...], value: EnvValue) -> None:
        """Record that ``variable`` sets the key at ``path``."""
        self.settings.append(EnvSetting(variable, path, value))

    def problem(self, variable: str, text: str) -> None:
        self.issues.append((variable, text))

    def get_bool(self, name: str) -> bool | None:
        raw = self.get(name)
        if raw is None:
            return None
        value = raw.lower()
        if value in _TRUE or value in _FALSE:
            return value in _TRUE
        self.problem(name, f"expected true or false (got {short_repr(raw)})")
        return None

    def read_wandb(self) -> None:
        for variable, key in _WANDB_STRING_VARS:
            raw = self.get(variable)
            if raw is not None:
                self.put(variable, ("wandb", key), raw)
        raw = self.get("WANDB_MODE")
        if raw is not None:
            mode = _WANDB_MODES.get(raw.lower())
            if mode is None:
                self.problem("WANDB_MODE", f"must be one of online, offline, disabled (got {short_repr(raw)})")
            else:
                self.put("WANDB_MODE", ("wandb", "mode"), mode)
        if self.get_bool("WANDB_DISABLED"):
            self.put("WANDB_DISABLED", ("wandb", "mode"), "disabled")
        raw = self.get("WANDB_TAGS")
        if raw is not None:
            self.put("WANDB_TAGS", ("wandb", "tags"), [tag.strip() for tag in raw.split(",") if tag.strip()])
        raw = self.get("WANDB_SILENT")  # wandb's own switch: read as leniently as wandb reads it
        if raw is not None and raw.strip().lower() in _TRUE:
            self.put("WANDB_SILENT", ("announce",), False)

    def read_otel(self) -> None:
        raw = self.get("OTEL_SERVICE_NAME")
        if raw is not None:
            self.put("OTEL_SERVICE_NAME", ("service_name",), raw)
        self.read_otlp()
        self.read_exporters()
        capture = self.get_bool("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT")
        if capture is not None:
            self.put("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", ("judge", "capture_content"), capture)
        self.read_prometheus()
        if self.get_bool("OTEL_SDK_DISABLED"):  # last: it wins over every other variable
            for section, key, value in _SDK_DISABLED_SETTINGS:
                self.put("OTEL_SDK_DISABLED", (section, key), value)

    def read_otlp(self) -> None:
        raw = self.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        if raw is not None:
            protocol = raw.lower()
            if protocol in ("http/protobuf", "grpc"):
                self.put("OTEL_EXPORTER_OTLP_PROTOCOL", ("otlp", "protocol"), protocol)
            elif protocol == "http/json":
                self.problem("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json is not supported; use http/protobuf or grpc")
            else:
                got = short_repr(raw)
                self.problem("OTEL_EXPORTER_OTLP_PROTOCOL", f"must be one of http/protobuf, grpc (got {got})")
        raw = self.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        if raw is not None:
            self.put("OTEL_EXPORTER_OTLP_ENDPOINT", ("otlp", "endpoint"), raw)
            self.put("OTEL_EXPORTER_OTLP_ENDPOINT", ("otlp", "enabled"), True)
        raw = self.get("OTEL_EXPORTER_OTLP_HEADERS")
        if raw is not None:
            headers, problem = _parse_w3c_headers(raw)
            if problem:
                self.problem("OTEL_EXPORTER_OTLP_HEADERS", problem)
            elif headers:
                self.put("OTEL_EXPORTER_OTLP_HEADERS", ("otlp", "headers"), headers)
        for variable, path in _MILLISECOND_VARS:
            raw = self.get(variable)
            if raw is None:
                continue
            try:
                millis = float(raw)
            except ValueError:
                millis = -1.0
            if 0 < millis < float("inf"):
                self.put(variable, path, millis / 1000.0)
            else:
                self.problem(variable, f"expected a positive number of milliseconds (got {short_repr(raw)})")

    def exporter_names(self, variable: str) -> set[str] | None:
        """The exporter names ``variable`` lists; None when unset or malformed (reported)."""
        raw = self.get(variable)
        if raw is None:
            return None
        names = [token.strip().lower() for token in raw.split(",") if token.strip()]
        if not names or not all(_EXPORTER_TOKEN_RE.fullmatch(name) for name in names):
            self.problem(
                variable,
                "expected a comma-separated list of exporter names, e.g. "
                f"otlp,prometheus or none (got {short_repr(raw)})",
            )
            return None
        return set(names)

    def read_exporters(self) -> None:
        """``OTEL_METRICS_EXPORTER`` / ``OTEL_TRACES_EXPORTER``: which exporters run (see the module doc)."""
        decided: set[str] = set()
        turned_on_by: str | None = None
        for variable, signal in _EXPORTER_VARS:
            names = self.exporter_names(variable)
            if names is None or not names & _DECIDING_EXPORTERS:
                continue  # unset, malformed, or only names that are not ours to decide
            decided.add(signal)
            self.put(variable, ("otlp", signal), _OTLP in names)
            if signal == "metrics":
                self.put(variable, ("prometheus", "enabled"), _PROMETHEUS in names)
            if _OTLP in names:
                turned_on_by = turned_on_by or variable
        if turned_on_by is None:
            return
        if not (self.otlp_on or self.get("OTEL_EXPORTER_OTLP_ENDPOINT")):
            for _, signal in _EXPORTER_VARS:  # OTLP was off: export only the signals named
                if signal not in decided:
                    self.put(turned_on_by, ("otlp", signal), False)
        self.put(turned_on_by, ("otlp", "enabled"), True)

    def read_prometheus(self) -> None:
        raw = self.get("OTEL_EXPORTER_PROMETHEUS_HOST")
        if raw is not None:
            self.put("OTEL_EXPORTER_PROMETHEUS_HOST", ("prometheus", "host"), raw)
        raw = self.get("OTEL_EXPORTER_PROMETHEUS_PORT")
        if raw is None:
            return
        if raw.isdigit() and 0 <= int(raw) <= 65535:
            self.put("OTEL_EXPORTER_PROMETHEUS_PORT", ("prometheus", "port"), int(raw))
        else:
            self.problem(
                "OTEL_EXPORTER_PROMETHEUS_PORT", f"expected an integer between 0 and 65535 (got {short_repr(raw)})"
            )


_SDK_DISABLED_SETTINGS: Final[tuple[tuple[str, str, EnvValue], ...]] = (
    ("instrumentation", "enabled", False),
    ("otlp", "enabled", False),
    ("prometheus", "enabled", False),
    ("wandb", "mode", "disabled"),
)
"""What ``OTEL_SDK_DISABLED=true`` sets: nothing patched, served or written."""

_announced = False


def sdk_disabled(env: Mapping[str, str] | None = None) -> bool:
    """True when ``OTEL_SDK_DISABLED`` (in ``env``, default ``os.environ``) is true."""
    raw = (os.environ if env is None else env).get("OTEL_SDK_DISABLED")
    return raw is not None and raw.strip().lower() in _TRUE


def sdk_disabled_config(config: TelemetryConfig) -> TelemetryConfig:
    """``config`` with everything ``OTEL_SDK_DISABLED=true`` turns off turned off, whatever set it on."""
    sections: dict[str, dict[str, EnvValue]] = {}
    for section, key, value in _SDK_DISABLED_SETTINGS:
        sections.setdefault(section, {})[key] = value
    update = {name: getattr(config, name).model_copy(update=values) for name, values in sections.items()}
    return config.model_copy(update=update)


def announce_sdk_disabled() -> None:
    """Say once per process, in one log line, that ``OTEL_SDK_DISABLED=true`` turned otel-grpo off."""
    global _announced
    if not _announced:
        _announced = True
        logger.warning(SDK_DISABLED_MESSAGE)


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
                raise ConfigError(ENV_LABEL, [(f"otlp.headers.{name}", problem)])
            if (name, missing[0]) not in _warned_missing_header_vars:
                _warned_missing_header_vars.add((name, missing[0]))
                logger.warning("otlp.headers.%s: %s; header not sent", name, problem)
            continue
        resolved[str(name)] = _ENV_REF_RE.sub(lambda m: environ[m.group(1)], template)
    return resolved
