"""Is the LLM judge answering? A warning once N judge evaluations in a row fail, one per outage.

A judge that cannot be reached (nothing listening, a wrong port, a proxy timing out) makes
every judge evaluation an ``api_failure``; each one may take the client's full retry
schedule, so a run slows down many times over while the rows only show it at the end.
:class:`JudgeHealth` follows the outcome of each judge evaluation: once
``judge.warn_after_failures`` (default 5) evaluations in a row end in ``api_failure``, it
logs one warning naming the URL the failing requests went to (passwords and query values
redacted) and the error class (``error.type``: ``connection``, ``timeout``, ``http_status``,
...). Any other outcome (a success, or a parse failure: the judge did answer) ends the
outage, and a new streak can warn again, once. ``0`` turns the warning off.

What to check is that URL: every request made inside the judge function is a judge request
whatever its host and port, so ``judge.ports`` / ``judge.hosts`` (which classify requests made
*outside* it) are not what decides where the judge is called, and the warning does not send
the reader there. When the judge function made no HTTP request otel-grpo could see (a client
it does not wrap, or ``instrumentation.http: false``), the warning says so.

The demo reads :meth:`JudgeHealth.snapshot` for its progress line (``judge ok 98%`` /
``judge DOWN (connection)``).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from otel_grpo import semconv
from otel_grpo.recording.context import JudgeAttempt
from otel_grpo.redact import redact_url

if TYPE_CHECKING:
    from otel_grpo.api import Telemetry

__all__ = ["DEFAULT_WARN_AFTER_FAILURES", "JudgeHealth", "JudgeHealthSnapshot", "judge_health", "judge_location"]

logger = logging.getLogger(__name__)

DEFAULT_WARN_AFTER_FAILURES = 5
"""Consecutive ``api_failure`` judge evaluations before the warning; ``judge.warn_after_failures`` overrides it."""


@dataclass(frozen=True)
class JudgeHealthSnapshot:
    """The judge's state so far, as one process saw it."""

    evaluations: int
    successes: int
    api_failures: int
    consecutive_api_failures: int
    down: bool
    """True while the current streak of ``api_failure`` evaluations has reached the threshold."""
    last_error_type: str | None
    location: str | None
    """The redacted URL the last failing judge request went to; None when no request was seen."""

    @property
    def success_rate(self) -> float | None:
        """Share of judge evaluations that succeeded (0-1); None before the first one."""
        return self.successes / self.evaluations if self.evaluations else None


class JudgeHealth:
    """Counts consecutive ``api_failure`` judge evaluations and warns once per outage (thread-safe)."""

    def __init__(
        self,
        warn_after: int = DEFAULT_WARN_AFTER_FAILURES,
        log: logging.Logger | None = None,
        *,
        http_instrumented: bool = True,
    ) -> None:
        self.warn_after = max(0, int(warn_after))
        self._log = log or logger
        self._http_instrumented = http_instrumented
        self._lock = threading.Lock()
        self._evaluations = 0
        self._successes = 0
        self._api_failures = 0
        self._streak = 0
        self._warned = False
        self._last_error: str | None = None
        self._location: str | None = None

    def observe(self, outcome: str, error_type: str | None = None, location: str | None = None) -> None:
        """Count one judge evaluation's outcome; warns when a streak of failures reaches the threshold."""
        warn: tuple[int, str, str | None] | None = None
        with self._lock:
            self._evaluations += 1
            if outcome == semconv.OUTCOME_API_FAILURE:
                self._api_failures += 1
                self._streak += 1
                self._last_error = error_type or semconv.ERROR_OTHER
                if location or self._streak == 1:  # the streak's last URL seen (a new streak forgets the old one)
                    self._location = location
                if self.warn_after and self._streak >= self.warn_after and not self._warned:
                    self._warned = True
                    warn = (self._streak, self._last_error, self._location)
            else:
                if outcome == semconv.OUTCOME_SUCCESS:
                    self._successes += 1
                self._streak = 0
                self._warned = False
        if warn is not None:
            self._log.warning("otel-grpo: %s", self._outage_text(*warn))

    def _outage_text(self, streak: int, error: str, where: str | None) -> str:
        """The warning: what failed, where the requests went (or that none was seen), what to check."""
        failed = f"the LLM judge failed {streak} evaluations in a row (error.type={error})"
        if where:
            check = (
                f"at {where}; is the judge server running there, and is that the URL your judge function should call?"
            )
        elif self._http_instrumented:
            check = (
                "and otel-grpo saw no HTTP request inside the judge function (a client it does not wrap?); "
                "check the URL it calls and that the judge server is running there."
            )
        else:
            check = (
                "(instrumentation.http is false, so its requests are not seen); "
                "check the URL your judge function calls and that the judge server is running there."
            )
        return f"{failed} {check} Rewards that need the judge are failing (no further warning until it answers again)"

    def snapshot(self) -> JudgeHealthSnapshot:
        """The counts so far."""
        with self._lock:
            return JudgeHealthSnapshot(
                evaluations=self._evaluations,
                successes=self._successes,
                api_failures=self._api_failures,
                consecutive_api_failures=self._streak,
                down=bool(self.warn_after) and self._streak >= self.warn_after,
                last_error_type=self._last_error,
                location=self._location,
            )


_registry: weakref.WeakKeyDictionary[Any, JudgeHealth] = weakref.WeakKeyDictionary()
_registry_lock = threading.Lock()


def judge_health(tel: Telemetry) -> JudgeHealth:
    """The :class:`JudgeHealth` of a telemetry session (one per :func:`otel_grpo.setup`)."""
    with _registry_lock:
        health = _registry.get(tel)
        if health is None:
            health = JudgeHealth(
                tel.config.judge.warn_after_failures, http_instrumented=tel.config.instrumentation.http
            )
            _registry[tel] = health
        return health


def judge_location(attempts: Sequence[JudgeAttempt]) -> str | None:
    """The redacted URL (:func:`~otel_grpo.redact.redact_url`: no password, no query values) the last
    HTTP request of a judge evaluation went to; None when it made none otel-grpo saw.

    Not the configured judge endpoint: the judge function's requests go where it sends them.
    """
    for attempt in reversed(attempts):
        if attempt.url:
            return redact_url(attempt.url)
    return None
