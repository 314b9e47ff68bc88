"""Building the effective configuration: file (or mapping), then environment, then code overrides.

Each layer is deep-merged over the one before (mappings merge; lists and scalars are
replaced) and the result validated, so a problem is reported against the layer that
introduced it: the file path, ``<dict>``, ``<env>`` (by variable) or ``<overrides>``.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Final, Literal, Union

from pydantic import BaseModel

from otel_grpo.config.env import env_settings
from otel_grpo.config.errors import (
    DICT_LABEL,
    ENV_LABEL,
    OVERRIDES_LABEL,
    ConfigError,
    validate,
)
from otel_grpo.config.safe_yaml import parse_config_yaml, read_config_file
from otel_grpo.config.schema import TelemetryConfig
from otel_grpo.config.secret_keys import drop_secrets

__all__ = [
    "DEFAULT_CONFIG_PATH",
    "PACKAGED_CONFIG_NAME",
    "ConfigSource",
    "MissingFile",
    "default_config_source",
    "load_config",
    "missing_file_hint",
    "packaged_config_text",
]

logger = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH: Final = Path("config") / "telemetry.yaml"
"""Looked up relative to the current working directory when no source is given."""

PACKAGED_CONFIG_NAME: Final = "default_telemetry.yaml"
"""Packaged resource used when ``DEFAULT_CONFIG_PATH`` does not exist."""

ConfigSource = Union[str, os.PathLike[str], Mapping[str, object], TelemetryConfig, None]
"""What :func:`load_config` builds on: a file path, a mapping, a config, or ``None`` (the default file)."""

MissingFile = Literal["error", "defaults"]
"""What :func:`load_config` does with a path that does not exist: raise, or warn and use the packaged defaults."""

_PlainDict = dict[str, object]


def load_config(
    source: ConfigSource = None,
    *,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, object] | None = None,
    missing_file: MissingFile = "error",
    **sections: object,
) -> TelemetryConfig:
    """Build the effective configuration: source, then environment, then overrides.

    Args:
        source: ``None`` reads ``./config/telemetry.yaml`` if it exists, else the
            packaged default; a path reads that YAML file (see ``missing_file``); a mapping is
            used as the file content would be (errors name ``<dict>``); a
            :class:`TelemetryConfig` is taken as is.
        env: environment to read ``WANDB_*`` / ``OTEL_*`` variables from (defaults to
            ``os.environ``); pass ``{}`` to ignore the environment.
        overrides: nested mapping deep-merged last; its top-level keys may be dotted
            paths, e.g. ``{"wandb.mode": "disabled"}`` or ``{"wandb": {"mode": ...}}``.
        missing_file: when ``source`` is a path that does not exist: ``"error"`` raises
            a one-line :class:`ConfigError` that says how to write one (``otel-grpo
            init``); ``"defaults"`` logs one warning naming the path and uses the
            packaged defaults (what :func:`otel_grpo.setup` does, so that a missing
            file never stops a training script). A file that exists but is invalid is
            an error either way.
        **sections: top-level keys, e.g. ``wandb={"mode": "disabled"}`` or
            ``service_name="x"``; applied after ``overrides``. Mappings are deep-merged
            into the section, other values replace it.

    Secret-named keys (``api_key``, ``token``, ...) in a file, mapping or override are
    dropped with a warning that never contains their value.

    Raises:
        ConfigError: on a missing (with ``missing_file="error"``), unreadable or invalid
            file, an invalid value anywhere, or a malformed environment variable.
        TypeError: when ``source`` is none of the accepted kinds.
    """
    try:
        config = _base_layer(source, missing_file)
        config = _apply_env(config, os.environ if env is None else env)
        return _apply_overrides(config, overrides, sections)
    except RecursionError:  # a self-referencing or absurdly deep mapping passed by code
        label = DICT_LABEL if isinstance(source, Mapping) else OVERRIDES_LABEL
        raise ConfigError(label, "nested too deeply (or contains itself)") from None


def default_config_source() -> str:
    """Return the label of the file :func:`load_config` reads when given no source.

    That is ``config/telemetry.yaml`` when it exists in the current directory (whatever
    it is: a FIFO or a directory there is an error, not silently skipped), else the
    path of the packaged ``otel_grpo/default_telemetry.yaml``.
    """
    if os.path.lexists(DEFAULT_CONFIG_PATH):
        return str(DEFAULT_CONFIG_PATH)
    return str(resources.files("otel_grpo").joinpath(PACKAGED_CONFIG_NAME))


def missing_file_hint(label: str) -> str:
    """What to do about a config path that does not exist (the end of the error and warning)."""
    return f"write one with `otel-grpo init {shlex.quote(label)}`, or give no path to use the packaged defaults"


def packaged_config_text() -> str:
    """The text of the packaged ``otel_grpo/default_telemetry.yaml`` (every default, commented)."""
    resource = resources.files("otel_grpo").joinpath(PACKAGED_CONFIG_NAME)
    try:
        return resource.read_text(encoding="utf-8")
    except OSError as exc:
        problem = f"cannot read packaged default: {exc.strerror or type(exc).__name__}"
        raise ConfigError(f"otel_grpo/{PACKAGED_CONFIG_NAME}", problem) from None


def _base_layer(source: ConfigSource, missing_file: MissingFile = "error") -> TelemetryConfig:
    """The first layer: the file, mapping or config ``source`` names, secrets dropped."""
    if isinstance(source, TelemetryConfig):
        return source.model_copy(deep=True)
    raw: Mapping[str, object]
    if isinstance(source, (str, os.PathLike)) and not _exists(source):
        label = os.fspath(source)
        if missing_file != "defaults":
            raise ConfigError(label, f"file not found ({missing_file_hint(label)})")
        logger.warning(
            "otel-grpo: config file %s not found (current directory %s): using the packaged defaults; "
            "write one with `otel-grpo init %s`",
            label,
            os.getcwd(),
            shlex.quote(label),
        )
        raw, label = _packaged_default()
        once_key: str | None = label
    elif source is None and not os.path.lexists(DEFAULT_CONFIG_PATH):
        raw, label = _packaged_default()
        once_key = label
    elif source is None or isinstance(source, (str, os.PathLike)):
        path = DEFAULT_CONFIG_PATH if source is None else Path(os.fspath(source))
        label = os.fspath(path if source is None else source)
        raw, once_key = read_config_file(path, label), str(path.resolve())
    elif isinstance(source, Mapping):
        raw, label, once_key = source, DICT_LABEL, None
    else:
        raise TypeError(
            f"load_config source must be None, a path, a mapping or a TelemetryConfig, not {type(source).__name__}"
        )
    return validate(drop_secrets(_plain_dict(raw), label, once_key=once_key), label)


def _exists(path: str | os.PathLike[str]) -> bool:
    """Whether anything is at ``path`` (a dangling symlink, FIFO or directory counts: reading says why it fails)."""
    try:
        return os.path.lexists(path)
    except ValueError:  # a NUL byte: reading it reports that
        return True


def _packaged_default() -> tuple[dict[str, object], str]:
    """The parsed packaged default file and its label (its path)."""
    label = str(resources.files("otel_grpo").joinpath(PACKAGED_CONFIG_NAME))
    return parse_config_yaml(packaged_config_text(), label), label


def _apply_env(config: TelemetryConfig, env: Mapping[str, str]) -> TelemetryConfig:
    """The second layer: ``WANDB_*`` / ``OTEL_*`` variables; problems name the variable."""
    patch: _PlainDict = {}
    origin: dict[tuple[str, ...], str] = {}
    for setting in env_settings(env, config):
        _set_path(patch, setting.path, setting.value)
        origin[setting.path] = setting.variable
    if not patch:
        return config
    return validate(_deep_merge(config.model_dump(), patch), ENV_LABEL, env_paths=origin)


def _apply_overrides(
    config: TelemetryConfig, overrides: Mapping[str, object] | None, sections: Mapping[str, object]
) -> TelemetryConfig:
    """The last layer: ``overrides`` (dotted keys allowed), then keyword ``sections``."""
    patch: _PlainDict = {}
    for key, value in (overrides or {}).items():
        nested: _PlainDict = {}
        _set_path(nested, tuple(str(key).split(".")), _plain(value))
        patch = _deep_merge(patch, nested)
    if sections:
        patch = _deep_merge(patch, _plain_dict(sections))
    if not patch:
        return config
    patch = drop_secrets(patch, OVERRIDES_LABEL, once_key=None)
    return validate(_deep_merge(config.model_dump(), patch), OVERRIDES_LABEL)


def _plain(value: object) -> object:
    """Deep-copy config input into plain dicts/lists with string keys."""
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def _plain_dict(value: Mapping[str, object]) -> _PlainDict:
    """:func:`_plain` of a mapping, typed as the dict it is."""
    return {str(key): _plain(item) for key, item in value.items()}


def _deep_merge(base: Mapping[str, object], over: Mapping[str, object]) -> _PlainDict:
    """``base`` with ``over`` merged in: mappings merge key by key, anything else replaces."""
    merged = dict(base)
    for key, value in over.items():
        current = merged.get(key)
        if isinstance(value, Mapping) and isinstance(current, Mapping):
            merged[key] = _deep_merge(current, value)
        else:
            merged[key] = _plain(value)
    return merged


def _set_path(target: _PlainDict, path: tuple[str, ...], value: object) -> None:
    """Set ``target[path[0]][path[1]]... = value``, creating the mappings in between."""
    node = target
    for key in path[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            child = node[key] = {}
        node = child
    node[path[-1]] = value
