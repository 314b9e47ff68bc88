"""Turning whatever a trainer hands us into finite floats, with counted fallbacks."""

from __future__ import annotations

import logging
import math
import threading
from typing import Any

logger = logging.getLogger(__name__)


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
                "otel-grpo: invalid %s %r (type %s) counted as 0; further invalid %s values "
                "are counted silently", kind, _short(raw), type(raw).__name__, kind,
            )

    def total(self) -> int:
        """All invalid values seen, of every kind."""
        return sum(self.counts.values())


def _short(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 40 else text[:37] + "..."


def to_float(raw: Any) -> float | None:
    """Return ``raw`` as a finite float, or None when it is not a finite number.

    Accepts ints, floats, numpy scalars, 0-d arrays, and numeric strings ("0.0125").
    Booleans count as 0/1.
    """
    if raw is None:
        return None
    if isinstance(raw, float):
        return raw if math.isfinite(raw) else None
    if isinstance(raw, int):
        return float(raw)
    if isinstance(raw, (str, bytes)):
        try:
            value = float(raw.strip())
        except ValueError:
            return None
        return value if math.isfinite(value) else None
    try:
        value = float(raw)  # numpy scalars, Decimal, 0-d arrays, torch scalars
    except (TypeError, ValueError, OverflowError):
        return None
    return value if math.isfinite(value) else None


def to_cost(raw: Any, invalid: InvalidValueLog) -> tuple[float, bool]:
    """Return (cost in USD, was_invalid). Invalid or negative costs count as 0."""
    if type(raw) is float and 0.0 <= raw < math.inf:
        return raw, False
    value = to_float(raw)
    if value is None or value < 0:
        invalid.report("cost", raw)
        return 0.0, True
    return value, False


def to_reward(raw: Any, invalid: InvalidValueLog) -> tuple[float, bool]:
    """Return (reward, was_invalid). A missing or non-numeric reward counts as 0."""
    value = to_float(raw)
    if value is None:
        invalid.report("reward", raw)
        return 0.0, True
    return value, False
