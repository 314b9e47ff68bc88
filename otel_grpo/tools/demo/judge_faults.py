"""The judge server's fault schedule: which outcome each chat request is served with.

:class:`FaultConfig` says how often each fault happens (or gives a cyclic
``schedule``); :class:`FaultPicker` draws the outcome of each request, deterministically
for a seed; :class:`ServedCounts` counts what was served.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

#: Every outcome a request can be served with (schedule values and header values).
OUTCOMES: tuple[str, ...] = (
    "ok",
    "http_500",
    "http_503",
    "timeout",
    "slow",
    "unparsable",
    "null_content",
)


@dataclass
class FaultConfig:
    """Which faults the judge server injects, and how often.

    Rates are fractions of chat-completion requests in ``[0, 1]`` and must sum to at
    most 1. ``schedule``, when set, overrides the rates with a cyclic list of outcomes
    (values from :data:`OUTCOMES`) indexed by request number.
    """

    error_rate: float = 0.0
    error_status: int = 500
    timeout_rate: float = 0.0
    hang_s: float = 30.0
    slow_rate: float = 0.0
    slow_s: float = 2.0
    unparsable_rate: float = 0.0
    null_content_rate: float = 0.0
    seed: int = 0
    schedule: list[str] | None = None

    def __post_init__(self) -> None:
        """Validate rates, status, delays and schedule."""
        rates = self._rates()
        for name, rate in rates:
            if not 0.0 <= rate <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {rate}")
        if sum(rate for _, rate in rates) > 1.0 + 1e-9:
            raise ValueError("fault rates must sum to at most 1")
        if not 400 <= int(self.error_status) <= 599:
            raise ValueError(f"error_status must be an HTTP error, got {self.error_status}")
        if self.hang_s < 0 or self.slow_s < 0:
            raise ValueError("hang_s and slow_s must be >= 0")
        if self.schedule is not None:
            self.schedule = [str(s).strip() for s in self.schedule if str(s).strip()]
            bad = [s for s in self.schedule if s not in OUTCOMES]
            if bad:
                raise ValueError(f"unknown schedule outcomes {bad}; expected {OUTCOMES}")
            if not self.schedule:
                self.schedule = None

    def _rates(self) -> list[tuple[str, float]]:
        """(name, rate) pairs in the order the cumulative draw uses."""
        return [
            ("error_rate", float(self.error_rate)),
            ("timeout_rate", float(self.timeout_rate)),
            ("slow_rate", float(self.slow_rate)),
            ("unparsable_rate", float(self.unparsable_rate)),
            ("null_content_rate", float(self.null_content_rate)),
        ]

    def outcome_for_draw(self, u: float) -> str:
        """Map a uniform draw in ``[0, 1)`` to an outcome by cumulative rates."""
        error_outcome = f"http_{int(self.error_status)}"
        names = [error_outcome, "timeout", "slow", "unparsable", "null_content"]
        edge = 0.0
        for outcome, (_, rate) in zip(names, self._rates(), strict=True):
            edge += rate
            if u < edge:
                return outcome
        return "ok"


class FaultPicker:
    """Thread-safe, seeded, deterministic outcome selection (one step per request)."""

    def __init__(self, faults: FaultConfig) -> None:
        self._faults = faults
        self._rng = random.Random(faults.seed)
        self._counter = 0
        self._lock = threading.Lock()

    def next(self) -> tuple[int, str]:
        """Return ``(request_index, outcome)`` for the next chat request."""
        with self._lock:
            index = self._counter
            self._counter += 1
            schedule = self._faults.schedule
            if schedule:
                return index, schedule[index % len(schedule)]
            return index, self._faults.outcome_for_draw(self._rng.random())


class ServedCounts:
    """Thread-safe counters of served outcomes and verdicts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {"total": 0, "http_requests": 0}
        for outcome in OUTCOMES:
            self._counts[outcome] = 0
        self._counts.update(bad_request=0, verdict_true=0, verdict_false=0)

    def add(self, key: str, n: int = 1) -> None:
        """Count ``n`` more of ``key``."""
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + n

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter."""
        with self._lock:
            return dict(self._counts)
