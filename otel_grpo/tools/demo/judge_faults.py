"""The judge server's fault schedule: which outcome each chat request is served with.

:class:`FaultConfig` says how often each fault happens (or gives a cyclic
``schedule``); :class:`FaultPicker` draws the outcome of each request, deterministically
for a seed, and serves an **outage** while one is switched on (every request fails, the
outcomes cycling through ``FaultConfig.outage_outcomes``); :class:`ServedCounts` counts
what was served.
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
#: What an outage serves by default, in a cycle: every request fails, as HTTP 500, HTTP 503
#: or a reply with null content (a reply the client reads as an API failure, not a verdict).
OUTAGE_OUTCOMES: tuple[str, ...] = ("http_500", "http_503", "null_content")
#: ``Retry-After-Ms`` of an HTTP error served during an outage: the gateway in front of the
#: failing judge asks the client to retry soon, so its retries fail fast instead of backing off.
OUTAGE_RETRY_AFTER_MS = 20


@dataclass
class FaultConfig:
    """Which faults the judge server injects, and how often.

    Rates are fractions of chat-completion requests in ``[0, 1]`` and must sum to at
    most 1. ``schedule``, when set, overrides the rates with a cyclic list of outcomes
    (values from :data:`OUTCOMES`) indexed by request number. ``outage_outcomes`` are
    served, in a cycle, while an outage is switched on (:meth:`FaultPicker.set_outage`):
    they must be failures (not ``ok`` or ``slow``).
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
    outage_outcomes: tuple[str, ...] = OUTAGE_OUTCOMES

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
        outage = tuple(str(s).strip() for s in self.outage_outcomes if str(s).strip())
        bad = [s for s in outage if s not in OUTCOMES or s in ("ok", "slow")]
        if bad or not outage:
            raise ValueError(f"outage_outcomes must be failures from {OUTCOMES[1:]}, got {list(self.outage_outcomes)}")
        self.outage_outcomes = outage

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
    """Thread-safe, seeded, deterministic outcome selection (one step per request).

    While an outage is on (:meth:`set_outage`), request *j* of the outage (counted from
    its start) is served ``outage_outcomes[j % len]``; the request counter and the seeded
    draw still advance, as for a request the ``X-Judge-Fault`` header overrides.
    """

    def __init__(self, faults: FaultConfig) -> None:
        self._faults = faults
        self._rng = random.Random(faults.seed)
        self._counter = 0
        self._outage = False
        self._outage_counter = 0
        self._lock = threading.Lock()

    @property
    def outage(self) -> bool:
        """Is an outage on?"""
        with self._lock:
            return self._outage

    def set_outage(self, on: bool) -> None:
        """Switch the outage on (every request fails) or off; switching it on restarts its cycle."""
        with self._lock:
            if on and not self._outage:
                self._outage_counter = 0
            self._outage = bool(on)

    def next(self) -> tuple[int, str]:
        """Return ``(request_index, outcome)`` for the next chat request."""
        index, outcome, _ = self.next_with_outage()
        return index, outcome

    def next_with_outage(self) -> tuple[int, str, bool]:
        """Return ``(request_index, outcome, served_by_the_outage)`` for the next chat request."""
        with self._lock:
            index = self._counter
            self._counter += 1
            schedule = self._faults.schedule
            drawn = schedule[index % len(schedule)] if schedule else self._faults.outcome_for_draw(self._rng.random())
            if self._outage:
                outage = self._faults.outage_outcomes
                outcome = outage[self._outage_counter % len(outage)]
                self._outage_counter += 1
                return index, outcome, True
            return index, drawn, False


class ServedCounts:
    """Thread-safe counters of served outcomes and verdicts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {"total": 0, "http_requests": 0}
        for outcome in OUTCOMES:
            self._counts[outcome] = 0
        self._counts.update(bad_request=0, verdict_true=0, verdict_false=0, outage=0)

    def add(self, key: str, n: int = 1) -> None:
        """Count ``n`` more of ``key``."""
        with self._lock:
            self._counts[key] = self._counts.get(key, 0) + n

    def snapshot(self) -> dict[str, int]:
        """A copy of every counter."""
        with self._lock:
            return dict(self._counts)
