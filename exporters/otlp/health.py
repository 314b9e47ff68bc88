"""This process's OTLP export counters, and the log-once-per-outage rule.

Every exporter counts into one set of process-wide counters (:func:`otlp_health`);
an :class:`ExportState` per exporter turns a run of failures into one warning when
the outage starts and one info line when it ends.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Sequence

from otel_grpo import redact

# One logger for the whole OTLP stage, named after the package (otel_grpo.exporters.otlp):
# users and tests filter its outage lines by that name.
_logger = logging.getLogger(__package__)

#: A new outage is logged at WARNING at most this often; others go to DEBUG.
RELOG_INTERVAL_S = 600.0

_HEALTH_KEYS = (
    "export_successes",
    "export_errors",
    "metrics_export_successes",
    "metrics_export_errors",
    "metrics_snapshots_superseded",
    "traces_export_successes",
    "traces_export_errors",
    "spans_exported",
    "spans_dropped",
    "consecutive_errors",
)
_health_lock = threading.Lock()
_health: dict[str, int] = dict.fromkeys(_HEALTH_KEYS, 0)
_consecutive: dict[str, int] = {"metrics": 0, "traces": 0}


def _reinit_health_lock() -> None:
    # A lock held by another thread at fork time would stay locked in the child.
    global _health_lock
    _health_lock = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reinit_health_lock)


def bump(key: str, amount: int = 1) -> None:
    """Add ``amount`` to the counter ``key`` (one of :func:`otlp_health`'s keys)."""
    with _health_lock:
        _health[key] += amount


def otlp_health() -> dict[str, int]:
    """Return this process's OTLP export counters (a copy; all keys always present).

    ``export_successes``/``export_errors`` count export calls of both signals;
    ``metrics_snapshots_superseded`` counts metric snapshots replaced by a newer one
    before they could be sent (no count is lost: the stream is cumulative) or still
    unsent when shutdown's wait ran out;
    ``spans_dropped`` counts spans lost to a full queue or a failed export;
    ``consecutive_errors`` is the current run of failed exports (0 when healthy).
    """
    with _health_lock:
        snapshot = dict(_health)
        snapshot["consecutive_errors"] = sum(_consecutive.values())
    return snapshot


class ExportState:
    """Counts one exporter's outcomes and logs an outage once, a recovery once."""

    def __init__(self, signal: str, endpoint: str, secrets: Sequence[str] = ()) -> None:
        self.signal = signal
        self.endpoint = redact.redact_url(endpoint)
        # Header values and the endpoint's own secrets (password, query values): never
        # allowed into a log line, even inside an error message.
        self.secrets: tuple[str, ...] = tuple({*secrets, *redact.url_secrets(endpoint)})
        self.failing = False
        self._failures_in_outage = 0
        self._last_warning = -math.inf

    @property
    def healthy(self) -> bool:
        """False from a failed export until the next successful one."""
        return not self.failing

    def success(self, items: int = 0) -> None:
        """Count a delivered export (``items`` spans); log the recovery that ends an outage."""
        bump("export_successes")
        bump(f"{self.signal}_export_successes")
        if self.signal == "traces" and items:
            bump("spans_exported", items)
        with _health_lock:
            _consecutive[self.signal] = 0
        if self.failing:
            self.failing = False
            _logger.info(
                "OTLP %s export to %s recovered after %d failed export(s).",
                self.signal,
                self.endpoint,
                self._failures_in_outage,
            )
            self._failures_in_outage = 0

    def scrub(self, text: str) -> str:
        """Remove header values, URL credentials and query values from ``text``."""
        return redact.redact_text(text, self.secrets)

    def failure(self, reason: str, items: int = 0) -> None:
        """Count a failed export (``items`` spans lost); log the first failure of an outage."""
        reason = self.scrub(reason)
        bump("export_errors")
        bump(f"{self.signal}_export_errors")
        if self.signal == "traces" and items:
            bump("spans_dropped", items)
        with _health_lock:
            _consecutive[self.signal] += 1
        self._failures_in_outage += 1
        if self.failing:
            _logger.debug("OTLP %s export to %s failed again: %s", self.signal, self.endpoint, reason)
            return
        self.failing = True
        now = time.monotonic()
        level = logging.WARNING if now - self._last_warning >= RELOG_INTERVAL_S else logging.DEBUG
        if level == logging.WARNING:
            self._last_warning = now
        _logger.log(
            level,
            "OTLP %s export to %s failed (%s). Telemetry keeps being recorded; further failures "
            "are counted in otel_grpo.exporters.otlp.otlp_health() and not logged until the export recovers.",
            self.signal,
            self.endpoint,
            reason,
        )
