"""Turning whatever a trainer hands us into finite floats and booleans, with counted fallbacks.

Nothing here raises, whatever the input: ``10**400``, an object whose ``__float__``
raises, a numpy array, a string. A value that cannot be read, or whose magnitude is
above :data:`MAX_MAGNITUDE`, is *invalid*: the caller counts it (through
:class:`InvalidValueLog`, which warns once per kind) and uses its documented fallback.

Why a magnitude limit: sums are kept over the whole run, and the per-step figures are
differences of those sums. One reward of 1e308 would make a sum infinite (every later
average reads 0 or NaN), and one of 1e17 would swallow every later reward of 1 in
rounding. No reward, cost, duration or token count of a real run comes near 1e12.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

logger = logging.getLogger(__name__)

MAX_MAGNITUDE = 1e12
"""Largest absolute value accepted for anything that is summed (rewards, costs, durations, tokens)."""


class InvalidValueLog:
    """Counts invalid values per kind and warns once per kind."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def report(self, kind: str, raw: Any) -> None:
        """Count one invalid ``kind`` value; the first of each kind is logged."""
        with self._lock:
            first = kind not in self.counts
            self.counts[kind] = self.counts.get(kind, 0) + 1
        if first:
            logger.warning(
                "otel-grpo: invalid %s %s (type %s) counted as invalid; further invalid %s values are counted silently",
                kind,
                _short(raw),
                _type_name(raw),
                kind,
            )

    def total(self) -> int:
        """All invalid values seen, of every kind."""
        return sum(self.counts.values())


def _type_name(raw: Any) -> str:
    try:
        return type(raw).__name__
    except Exception:  # noqa: BLE001
        return "?"


def _short(raw: Any) -> str:
    try:
        text = repr(raw)
    except Exception:  # noqa: BLE001 - a __repr__ that raises
        return "<unprintable>"
    if len(text) > 40:
        text = text[:37] + "..."
    return text


def to_float(raw: Any, max_abs: float = MAX_MAGNITUDE) -> float | None:
    """Return ``raw`` as a finite float with ``|value| <= max_abs``, else None. Never raises.

    Accepts ints, floats, numpy/torch scalars and 0-d arrays, and numeric strings
    ("0.0125"); booleans count as 0/1. Arrays with a dimension are refused, even of one
    element: a batch passed where one value belongs is a bug worth counting.
    """
    if raw is None:
        return None
    try:
        if isinstance(raw, float):
            value = raw
        elif isinstance(raw, int):
            if not -max_abs <= raw <= max_abs:  # also keeps 10**400 away from float()
                return None
            value = float(raw)
        elif isinstance(raw, (str, bytes)):
            value = float(raw.strip())
        elif getattr(raw, "ndim", 0):  # numpy / torch arrays with one or more dimensions
            return None
        else:
            value = float(raw)  # numpy scalars, Decimal, 0-d arrays, torch scalars
    except Exception:  # noqa: BLE001 - ValueError, OverflowError, or a __float__ that raises
        return None
    if value != value or not -max_abs <= value <= max_abs:
        return None
    return value


def to_bool(raw: Any) -> bool | None:
    """``raw`` as a boolean (bool, 0/1, numpy bool, "true"/"false"), else None. Never raises."""
    if isinstance(raw, bool):
        return raw
    if raw is None:
        return None
    try:
        if isinstance(raw, str):
            text = raw.strip().lower()
            return {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}.get(text)
        if getattr(raw, "ndim", 0):  # an array: ambiguous
            return None
        if isinstance(raw, int) or type(raw).__name__.startswith(("bool", "int")):
            return bool(raw)
        value = float(raw)
    except Exception:  # noqa: BLE001
        return None
    if value in (0.0, 1.0):
        return value == 1.0
    return None


def to_step(raw: Any) -> int | None:
    """A step number (a non-negative integer, or an integral float/string), else None. Never raises."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw if 0 <= raw <= MAX_MAGNITUDE else None
    value = to_float(raw)
    if value is None or value < 0 or not value.is_integer():
        return None
    return int(value)


def to_cost(raw: Any, invalid: InvalidValueLog) -> tuple[float, bool]:
    """Return (cost in USD, was_invalid). Invalid, negative or absurd costs count as 0."""
    if type(raw) is float and 0.0 <= raw <= MAX_MAGNITUDE:
        return raw, False
    value = to_float(raw)
    if value is None or value < 0:
        invalid.report("cost", raw)
        return 0.0, True
    return value, False


def to_reward(raw: Any, invalid: InvalidValueLog, kind: str = "reward") -> tuple[float, bool]:
    """Return (value, was_invalid). A missing, non-numeric or absurd value counts as 0."""
    value = to_float(raw)
    if value is None:
        invalid.report(kind, raw)
        return 0.0, True
    return value, False


__all__ = ["MAX_MAGNITUDE", "InvalidValueLog", "to_bool", "to_cost", "to_float", "to_reward", "to_step"]
