"""The driver side: tag each remote call, keep its records' reference, replay them when they arrive.

When the trainer calls ``f.remote(...)`` or ``actor.method.remote(...)``, the tag keyword
is added (see :mod:`.worker`), Ray is asked for one more return value than the caller
gets, and that extra reference is filed under the window the call was made in, with a
copy of the caller's context and the caller's :class:`~.replay.Lane`. Nothing waits:
the added cost is a few dictionary operations and Ray's own bookkeeping for one more
(small, inlined) return object.

Just before a window closes, :meth:`RayCalls.flush` asks Ray which of the window's calls
have completed, without waiting and without fetching, reads those in one ``ray.get``
and replays them in the order the calls were made. A call that has not completed is
never waited for: it is *late* (counted once in ``exporter/ray_calls_late``) and is
replayed at a later window close once it has completed, inside
``recorder.late_records()`` (its spend and judge figures count, its samples go into no
row). Calls made outside any window are replayed, as they are, once they completed.
At exit, :meth:`RayCalls.close` waits at most :func:`exit_wait_s` for calls still
running, then counts them in ``exporter/ray_records_lost``.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from otel_grpo.api import Telemetry
from otel_grpo.faults import report_fault
from otel_grpo.instrumentation.ray.delivery import completed, fetch, resolve_nested
from otel_grpo.instrumentation.ray.replay import Lane, Outcome, replay_call
from otel_grpo.instrumentation.ray.worker import TAG_PARAM, CallTag, WorkerSession, publish_session
from otel_grpo.recording.context import SampleState
from otel_grpo.recording.recorder import Recorder
from otel_grpo.recording.stats import Window

logger = logging.getLogger(__name__)

WAIT_ENV = "OTEL_GRPO_RAY_WAIT_S"
WAIT_S_DEFAULT = 5.0
"""Longest otel-grpo waits at exit for Ray calls still running (``OTEL_GRPO_RAY_WAIT_S``)."""

HEALTH_LOST = "ray_records_lost"
"""Exporter-health count: remote calls (or events) whose records never reached the driver."""
HEALTH_LATE = "ray_calls_late"
"""Exporter-health count: remote calls that completed after their window closed (each counted once)."""


def exit_wait_s() -> float:
    """``OTEL_GRPO_RAY_WAIT_S`` (seconds, >= 0), else :data:`WAIT_S_DEFAULT`."""
    raw = os.environ.get(WAIT_ENV, "").strip()
    if not raw:
        return WAIT_S_DEFAULT
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value < math.inf:
        logger.warning("otel-grpo: %s=%r is not a number of seconds; using %g", WAIT_ENV, raw, WAIT_S_DEFAULT)
        return WAIT_S_DEFAULT
    return value


_lane_var: ContextVar[Lane | None] = ContextVar("otel_grpo_ray_lane", default=None)


@dataclass(eq=False, slots=True)
class PendingCall:
    """A tracked call whose records have not been replayed yet."""

    seq: int
    ref: Any  # ObjectRef of the records
    context: contextvars.Context
    lane: Lane | None  # None: a nested call (made by another call), which inherits ``inherited``
    window: Window | None  # None: made outside any window
    late: bool = False  # its window closed before it completed (counted once)
    inherited: SampleState | None = None


def _owner() -> Any:
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    return task if task is not None else threading.get_ident()


def current_lane() -> Lane:
    """The lane of the calling task or thread (created on its first remote call)."""
    lane = _lane_var.get()
    owner = _owner()
    if lane is None or lane.owner != owner:
        lane = Lane(owner, parent=lane)
        _lane_var.set(lane)
    return lane


class RayCalls:
    """The tracked calls of one telemetry session, filed by window."""

    def __init__(self, telemetry: Telemetry, methods: Callable[[], list[tuple[str, str, str]]]) -> None:
        self.telemetry = telemetry
        self.session_id = uuid.uuid4().hex
        self._methods = methods
        self._session_methods: tuple = ()
        self._session_ref: Any = None
        self._published = False
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._pending: dict[int, list[PendingCall]] = {}  # id(window) -> calls, in order
        self._carried: list[PendingCall] = []  # made outside any window, or late: replayed once completed
        self._warned: set[str] = set()
        telemetry.window_close_hooks.append(self.flush)

    # --- submitting -----------------------------------------------------------------------------
    def session(self) -> tuple[str, Any]:
        """(session id, where workers read the :class:`WorkerSession`), published once
        (again when ``instrument_trainer`` wrapped more methods since)."""
        methods = tuple(self._methods())
        if not self._published or methods != self._session_methods:
            tel = self.telemetry
            spec = WorkerSession(
                session_id=uuid.uuid4().hex,
                config=tel.config.redacted_dict(),
                run_id=tel.providers.run_id,
                driver_pid=os.getpid(),
                methods=list(methods),
            )
            self._session_ref = publish_session(spec)
            self._published = True
            self._session_methods = methods
            self.session_id = spec.session_id
        return self.session_id, self._session_ref

    def tag(self, returns: int) -> tuple[CallTag, PendingCall]:
        """A tag for a call about to be submitted, and its (not yet filed) pending entry."""
        tel = self.telemetry
        recorder = tel.recorder
        window = recorder.current_window()
        split = recorder.current_split()
        step = window.step if window is not None else (recorder.last_step or 0)
        carrier: dict[str, str] | None = None
        if tel.tracing:
            from opentelemetry import propagate

            carrier = {}
            propagate.inject(carrier)
        call_id = next(self._ids)
        tag = CallTag(call_id, split, step, carrier, returns, self.session())
        pending = PendingCall(call_id, None, contextvars.copy_context(), current_lane(), window)
        return tag, pending

    def file(self, pending: PendingCall, ref: Any) -> None:
        """File a submitted call's records reference under its window."""
        pending.ref = ref
        window = pending.window
        with self._lock:
            if window is not None and not window.closed:
                self._pending.setdefault(id(window), []).append(pending)
                return
            self._carried.append(pending)
        self._mark_late([pending])  # its window closed while it was being submitted

    @staticmethod
    def blocked() -> str | None:
        """Every call the driver makes can be tracked (the hooks' tracker protocol)."""
        return None

    def untracked(self, what: str) -> None:
        """A remote call that cannot be tracked (``what`` names it and says why): counted lost."""
        self._count(HEALTH_LOST, 1)
        self.warn_untracked(what)

    def warn_untracked(self, what: str) -> None:
        """One warning per kind of call that cannot be tracked."""
        with self._lock:
            if what in self._warned:
                return
            self._warned.add(what)
        logger.warning(
            "otel-grpo: Ray calls to %s are not tracked: what they record cannot reach the rows; "
            "each such call is counted in exporter/ray_records_lost",
            what,
        )

    # --- delivering -------------------------------------------------------------------------------
    def flush(self, window: Window | None) -> None:
        """Replay every completed call of ``window`` (and earlier calls completed since); never waits."""
        calls = self._take(window)
        if not calls:
            return
        running = self._deliver(calls, deadline=None)
        self._mark_late(running)
        if running:
            with self._lock:
                self._carried = running + self._carried

    def close(self, wait_s: float | None) -> None:
        """At exit: wait at most ``wait_s`` for calls still running, replay what completed, count the rest lost.

        ``wait_s`` None: Ray or the telemetry is gone; nothing can be read, everything left is lost.
        """
        try:
            self.telemetry.window_close_hooks.remove(self.flush)
        except ValueError:
            pass
        calls = self._take(None, everything=True)
        if not calls:
            return
        self._mark_late(calls)  # their windows wrote their rows (or never will)
        running = calls if wait_s is None else self._deliver(calls, deadline=time.monotonic() + wait_s)
        if running:
            self._count(HEALTH_LOST, len(running))
            waited = "(its telemetry was shut down)" if wait_s is None else f"after waiting {wait_s:g} s ({WAIT_ENV})"
            logger.warning(
                "otel-grpo: %d Ray call(s) had not completed when otel-grpo stopped %s; "
                "counted in exporter/ray_records_lost",
                len(running),
                waited,
            )

    def _take(self, window: Window | None, everything: bool = False) -> list[PendingCall]:
        """The calls to look at now, in the order they were made: ``window``'s, and every carried one."""
        with self._lock:
            calls, self._carried = self._carried, []
            if window is not None:
                calls += self._pending.pop(id(window), [])
            # calls filed under a window after its flush (a thread racing its close): late
            for key in [k for k, v in self._pending.items() if everything or v[0].window.closed]:  # type: ignore[union-attr]
                calls += self._pending.pop(key)
        stale = [c for c in calls if c.window is not None and c.window.closed]
        self._mark_late(stale)
        calls.sort(key=lambda c: c.seq)
        return calls

    def _deliver(self, calls: list[PendingCall], deadline: float | None) -> list[PendingCall]:
        """Replay the completed calls (waiting until ``deadline`` at most); returns those still running."""
        ready = completed([c.ref for c in calls], deadline)
        done = [c for c in calls if c.ref in ready]
        running = [c for c in calls if c.ref not in ready]
        payloads = fetch([c.ref for c in done])
        resolved = resolve_nested(payloads, deadline)
        running += self._replay(done, payloads, resolved)
        return running

    def _replay(self, done: list[PendingCall], payloads: list[Any], resolved: dict[Any, Any]) -> list[PendingCall]:
        """Replay each completed call; returns its nested calls that have not completed."""
        recorder = self.telemetry.recorder
        lost = 0
        untracked: set[str] = set()
        deferred: list[PendingCall] = []
        for call, payload in zip(done, payloads, strict=True):
            outcome = _replay_one(recorder, call, payload, resolved)
            if outcome is None:
                lost += 1
                continue
            lost += outcome.lost
            untracked |= outcome.untracked
            deferred += [
                PendingCall(call.seq, ref, call.context, None, call.window, call.late, inherited)
                for ref, inherited in outcome.deferred
            ]
        if lost:
            self._count(HEALTH_LOST, lost)
        for what in sorted(untracked):
            self.warn_untracked(what)
        return deferred

    def _mark_late(self, calls: list[PendingCall]) -> None:
        """Calls of a window that closed before they completed: late, each counted once."""
        late = 0
        for call in calls:
            if call.window is not None and not call.late:
                call.late = True
                late += 1
        if late:
            self._count(HEALTH_LATE, late)

    def _count(self, key: str, amount: int) -> None:
        self.telemetry.count_health(key, amount)


def _replay_one(recorder: Recorder, call: PendingCall, payload: Any, resolved: dict[Any, Any]) -> Outcome | None:
    """Replay one call; None when its records are missing or unreadable (counted lost)."""
    if payload is None:
        return None
    try:
        return replay_call(
            recorder, payload, call.context, call.lane, late=call.late, resolved=resolved, inherited=call.inherited
        )
    except Exception as exc:  # noqa: BLE001
        report_fault("Ray records replay", exc)
        return None


__all__ = [
    "HEALTH_LATE",
    "HEALTH_LOST",
    "WAIT_S_DEFAULT",
    "PendingCall",
    "RayCalls",
    "TAG_PARAM",
    "current_lane",
    "exit_wait_s",
]
