"""Configuration errors: :class:`ConfigError`, and validation with one precise line per problem.

A problem is reported as ``<source>: <dotted.key.path>: <what is expected> (got <value>)``.
What a key expects is read from the schema pydantic generates for :class:`TelemetryConfig`
(type, bounds, choices), so the wording follows the schema without restating it.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable, Mapping
from typing import Any, Final

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from otel_grpo.config.schema import IDENTIFIER_PATTERN, TelemetryConfig
from otel_grpo.redact import redact_text

__all__ = [
    "DICT_LABEL",
    "ENV_LABEL",
    "OVERRIDES_LABEL",
    "ConfigError",
    "format_path",
    "short_repr",
    "validate",
]

ENV_LABEL: Final = "<env>"
"""Source label of problems found in ``WANDB_*`` / ``OTEL_*`` environment variables."""

DICT_LABEL: Final = "<dict>"
"""Source label of a mapping passed to ``load_config`` instead of a file."""

OVERRIDES_LABEL: Final = "<overrides>"
"""Source label of overrides passed to ``load_config`` in code."""

_HIDDEN_PATHS: Final = (("otlp", "headers"),)
"""Key paths whose values are never echoed in error messages."""

_PLURALS: Final = {"string": "strings", "integer": "integers", "number": "numbers", "boolean": "booleans"}

JsonSchema = dict[str, Any]
"""A node of the JSON schema pydantic generates for the configuration."""


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
        self.issues: list[tuple[str, str]] = [("", issues)] if isinstance(issues, str) else list(issues)
        items = "; ".join(f"{loc}: {msg}" if loc else msg for loc, msg in self.issues)
        separator = " " if source == ENV_LABEL and all(loc for loc, _ in self.issues) else ": "
        super().__init__(f"{source}{separator}{items}")


def format_path(loc: Iterable[str | int]) -> str:
    """Render a key path as written in messages: ``("wandb", "tags", 0)`` -> ``wandb.tags[0]``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters, with any URL secret masked."""
    try:
        text = repr(redact_text(value) if isinstance(value, str) else value)
    except Exception:  # noqa: BLE001 - e.g. an int too long to print; never echo it
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate(data: object, label: str, env_paths: Mapping[tuple[str, ...], str] | None = None) -> TelemetryConfig:
    """Validate plain ``data`` as a :class:`TelemetryConfig`.

    Args:
        data: the layered config as plain mappings, lists and scalars.
        label: the source named in errors (a file path or a ``<...>`` label).
        env_paths: for the environment layer, which variable set which key path, so a
            problem is reported under the variable's name.

    Raises:
        ConfigError: listing every problem, one ``location: problem`` item each.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(label, f"expected a mapping at the top level (got {type(data).__name__})")
    try:
        return TelemetryConfig.model_validate(dict(data))
    except ValidationError as exc:
        issues = [_issue(error, env_paths or {}) for error in exc.errors(include_url=False)]
        raise ConfigError(label, issues) from None


def _issue(error: ErrorDetails, env_paths: Mapping[tuple[str, ...], str]) -> tuple[str, str]:
    """One pydantic error as ``(location, problem)``."""
    loc = tuple(error["loc"])
    location = format_path(loc)
    names = tuple(str(part) for part in loc)
    variable = next((var for path, var in env_paths.items() if names[: len(path)] == path), None)
    return (variable or location), _problem(error, loc)


def _problem(error: ErrorDetails, loc: tuple[str | int, ...]) -> str:
    kind = error["type"]
    if kind == "extra_forbidden":
        return _unknown_key(loc)
    hidden = any(loc[: len(path)] == path for path in _HIDDEN_PATHS)
    got = " (value hidden)" if hidden else f" (got {short_repr(error['input'])})"
    if kind == "value_error":  # a validator of ours: its message already says what is expected
        return f"{error.get('ctx', {}).get('error', error['msg'])}{got}"
    schema = _schema_at(loc)
    if schema is None:
        return f"{error['msg']}{got}"
    if kind == "literal_error":
        return f"must be one of {', '.join(map(str, schema.get('enum', ())))}{got}"
    return f"expected {_describe(schema)}{got}"


def _unknown_key(loc: tuple[str | int, ...]) -> str:
    parent = _schema_at(loc[:-1])
    valid = list(_non_null(parent)[0].get("properties", {})) if parent is not None else []
    close = difflib.get_close_matches(str(loc[-1]), valid, n=1, cutoff=0.6) if loc else []
    if close:
        return f"unknown key (did you mean {close[0]!r}?)"
    if valid:
        return f"unknown key (valid keys: {', '.join(valid)})"
    return "unknown key"


@functools.lru_cache(maxsize=1)
def _root_schema() -> JsonSchema:
    return TelemetryConfig.model_json_schema()


def _resolve(node: JsonSchema) -> JsonSchema:
    """Follow a ``$ref`` to its definition."""
    ref = node.get("$ref")
    if isinstance(ref, str):
        definition: JsonSchema = _root_schema()["$defs"][ref.rsplit("/", 1)[-1]]
        return definition
    return node


def _non_null(node: JsonSchema) -> tuple[JsonSchema, bool]:
    """``(the schema without its null alternative, whether null is allowed)``."""
    choices = node.get("anyOf")
    if isinstance(choices, list):
        others = [choice for choice in choices if choice.get("type") != "null"]
        if len(others) == 1 and len(others) < len(choices):
            return _resolve(others[0]), True
    return _resolve(node), False


def _schema_at(loc: tuple[str | int, ...]) -> JsonSchema | None:
    """The schema of the value at a pydantic error location; ``None`` if it leaves the schema."""
    node = _root_schema()
    for part in loc:
        node, _ = _non_null(node)
        items, values = node.get("items"), node.get("additionalProperties")
        if isinstance(part, int) and isinstance(items, dict):
            node = items
        elif isinstance(part, str) and part in node.get("properties", {}):
            node = node["properties"][part]
        elif isinstance(part, str) and isinstance(values, dict):
            node = values
        else:
            return None
    return node


def _describe(node: JsonSchema) -> str:
    """What a schema node accepts, in words: ``a number between 0 and 1``, ``true or false``."""
    node, nullable = _non_null(node)
    if nullable:
        return _describe(node) + " or null"
    kind = node.get("type")
    if "enum" in node:
        return "one of " + ", ".join(map(str, node["enum"]))
    if kind == "boolean":
        return "true or false"
    if kind in ("integer", "number"):
        return ("an integer" if kind == "integer" else "a number") + _bounds(node)
    if kind == "string":
        return "a Python identifier" if node.get("pattern") == IDENTIFIER_PATTERN else "a string"
    if kind == "array":
        item_kind = _non_null(node.get("items", {}))[0].get("type")
        return f"a list of {_PLURALS.get(str(item_kind), 'values')}"
    if kind == "object" and "properties" in node:
        return "a mapping"
    if kind == "object":
        return "a mapping of names to strings"
    return "a valid value"


def _bounds(node: JsonSchema) -> str:
    """`` between 0 and 1``, `` >= 1``, `` > 0``... from a numeric schema's limits."""

    def num(value: float) -> str:
        return f"{value:g}" if isinstance(value, float) else str(value)

    if "minimum" in node and "maximum" in node:
        return f" between {num(node['minimum'])} and {num(node['maximum'])}"
    limits = (("exclusiveMinimum", ">"), ("minimum", ">="), ("exclusiveMaximum", "<"), ("maximum", "<="))
    parts = [f"{symbol} {num(node[key])}" for key, symbol in limits if key in node]
    return " " + " and ".join(parts) if parts else ""
