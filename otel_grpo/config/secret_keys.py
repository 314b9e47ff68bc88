"""Secrets are never read from config input: secret-named keys are dropped with a warning.

Any key called ``api_key``, ``apikey``, ``token``, ``password`` or ``secret`` (any case,
``-`` read as ``_``, at any depth) is removed before validation. The warning names the
source and the key paths, never a value, and says where the secret belongs instead.
"""

from __future__ import annotations

import logging
from typing import Final

from otel_grpo.config.errors import format_path

__all__ = ["SECRET_KEY_NAMES", "drop_secrets"]

logger = logging.getLogger(__name__)

SECRET_KEY_NAMES: Final = frozenset({"api_key", "apikey", "token", "password", "secret"})
"""Key names dropped from config input (case-insensitive, ``-`` read as ``_``)."""

# Files whose secret keys were already reported (warn once per file).
_warned_secret_files: set[tuple[str, tuple[str, ...]]] = set()


def drop_secrets(data: dict[str, object], label: str, *, once_key: str | None) -> dict[str, object]:
    """Return ``data`` without its secret-named keys, warning about them.

    Args:
        data: plain config data (string keys).
        label: the source named in the warning.
        once_key: identifies a file, so that reading it again does not warn again;
            ``None`` warns every time (mappings and overrides from code).
    """
    cleaned, removed = _strip_secrets(data, ())
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
    return cleaned if isinstance(cleaned, dict) else data


def _is_secret_key(key: str) -> bool:
    return key.strip().lower().replace("-", "_") in SECRET_KEY_NAMES


def _strip_secrets(data: object, prefix: tuple[str | int, ...]) -> tuple[object, list[str]]:
    """Remove secret-named keys at any depth; return the cleaned data and the removed paths."""
    removed: list[str] = []
    if isinstance(data, dict):
        cleaned: dict[str, object] = {}
        for key, value in data.items():
            path = (*prefix, key)
            if _is_secret_key(key):
                removed.append(format_path(path))
                continue
            cleaned[key], found = _strip_secrets(value, path)
            removed += found
        return cleaned, removed
    if isinstance(data, list):
        items: list[object] = []
        for index, value in enumerate(data):
            item, found = _strip_secrets(value, (*prefix, index))
            items.append(item)
            removed += found
        return items, removed
    return data, removed


def _secret_hint(paths: list[str]) -> str:
    """Where the secrets at ``paths`` belong instead."""
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
