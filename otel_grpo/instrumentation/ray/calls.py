"""The driver side: tag each remote call, keep its records' reference, replay them at window close.

When the trainer calls ``f.remote(...)`` or ``actor.method.remote(...)`` inside a step or
validation window, :func:`submit` adds the tag keyword (see :mod:`.worker`), asks Ray for
one more return value than the caller gets, and files that extra reference under the
window, with a copy of the caller's context and the caller's :class:`~.replay.Lane`.
Nothing waits: the added cost is a few dictionary operations and Ray's own bookkeeping
for one more (small, inlined) return object.

Just before the window closes, :meth:`RayCalls.flush` waits (bounded by
:data:`WAIT_S`, normally not at all: the trainer awaited its calls) for the records of
every call the window made, fetches them in one ``ray.get`` and replays them in the
order the calls were made. A call still running at the bound is replayed when it
arrives, at a later window close, as anything recorded after its window closed would be.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
import os
import threading
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from otel_grpo.api import Telemetry
from otel_grpo.faults import report_fault
from otel_grpo.instrumentation.ray.replay import Lane, replay_call
from otel_grpo.instrumentation.ray.worker import RECORDS_ATTRIBUTE, TAG_PARAM, CallTag, WorkerSession, publish_session
from otel_grpo.recording.stats import Window

logger = logging.getLogger(__name__)

WAIT_S = float(os.environ.get("OTEL_GRPO_RAY_WAIT_S", "30"))
"""Longest a window close waits for the records of its calls (``OTEL_GRPO_RAY_WAIT_S``)."""

HEALTH_LOST = "ray_records_lost"
"""Exporter-health count: remote calls (or events) whose records never reached the driver."""
HEALTH_LATE = "ray_calls_late"
"""Exporter-health count: remote calls whose records arrived after their window closed."""

_lane_var: ContextVar[Lane | None] = ContextVar("otel_grpo_ray_lane", default=None)


@dataclass(eq=False, slots=True)
class PendingCall:
    """A tracked call whose records have not been replayed yet."""

    seq: int
    ref: Any  # ObjectRef of the records
    context: contextvars.Context
    lane: Lane
    window: Window | None


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
        self._orphans: list[PendingCall] = []  # made outside any window, or late
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
            if window is None or window.closed:
                self._orphans.append(pending)
            else:
                self._pending.setdefault(id(window), []).append(pending)

    # --- delivering -------------------------------------------------------------------------------
    def flush(self, window: Window | None) -> None:
        """Replay every call of ``window`` (and earlier stragglers), waiting at most :data:`WAIT_S`."""
        with self._lock:
            calls = self._orphans + (self._pending.pop(id(window), []) if window is not None else [])
            self._orphans = []
        if not calls:
            return
        import ray

        refs = [c.ref for c in calls]
        try:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=WAIT_S, fetch_local=True)
        except Exception as exc:  # noqa: BLE001
            report_fault("Ray records wait", exc)
            ready = []
        ready_set = set(ready)
        done = [c for c in calls if c.ref in ready_set]
        late = [c for c in calls if c.ref not in ready_set]
        payloads = self._fetch([c.ref for c in done])
        lost = 0
        recorder = self.telemetry.recorder
        for call, payload in zip(done, payloads, strict=True):
            if payload is None:
                lost += 1
                continue
            try:
                reported = replay_call(recorder, payload, call.context, call.lane)
            except Exception as exc:  # noqa: BLE001
                report_fault("Ray records replay", exc)
                reported = 1
            lost += 1 if reported is None else reported
        if late:
            self._count(HEALTH_LATE, len(late))
            with self._lock:
                self._orphans = late + self._orphans
        if lost:
            self._count(HEALTH_LOST, lost)

    @staticmethod
    def _fetch(refs: list) -> list[Any]:
        """The records behind ``refs``: one ``ray.get``; on an error, one by one."""
        if not refs:
            return []
        import ray

        try:
            return list(ray.get(refs))
        except Exception:  # noqa: BLE001 - some call raised: read each, records ride on its exception
            pass
        out = []
        for ref in refs:
            try:
                out.append(ray.get(ref))
            except Exception as exc:  # noqa: BLE001
                out.append(_records_of(exc))
        return out

    def _count(self, key: str, amount: int) -> None:
        health = self.telemetry.exporter.health
        health[key] = health.get(key, 0) + amount


def _records_of(exc: BaseException) -> Any:
    """The records a failed call sent on its exception, if any (a dead worker sends none)."""
    for candidate in (exc, getattr(exc, "cause", None)):
        payload = getattr(candidate, RECORDS_ATTRIBUTE, None) if candidate is not None else None
        if payload is not None:
            return payload
    return None


__all__ = ["HEALTH_LATE", "HEALTH_LOST", "PendingCall", "RayCalls", "TAG_PARAM", "current_lane"]
