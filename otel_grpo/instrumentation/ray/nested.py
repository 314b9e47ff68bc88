"""Remote calls made inside a worker: a tracked call passes its tag on; its records carry theirs.

A task that calls another task (or an actor method) makes a *nested* call. When it is
made while a tracked call is being served in this worker (its own context, or a thread
that call started), it is tagged like the driver tags its calls, with the parent's step,
split and session and the trace context current here, and its records' reference
travels back inside the parent's records (:attr:`~.events.CallPayload.nested`), at the
place the parent made it. The driver replays it there once it has completed.

A remote call made in a worker outside any tracked call (an actor's ``__init__``, a
thread that outlived its call) cannot carry a step: it is counted lost and named to the
driver with the next call's records.
"""

from __future__ import annotations

from typing import Any

from otel_grpo.instrumentation.ray.records import CallRecords, LostRecords, current_records
from otel_grpo.instrumentation.ray.worker import CallTag, is_worker_process

OUTSIDE = "made in a Ray worker outside any tracked call"


class NestedCalls:
    """Where a worker files the remote calls it makes (the tracker of :mod:`.hooks`)."""

    __slots__ = ("_records",)

    def __init__(self, records: CallRecords | None) -> None:
        self._records = records

    def blocked(self) -> str | None:
        """Why a call made here cannot be tracked (None: it can)."""
        records = self._records
        return OUTSIDE if records is None or records.tag is None else None

    def tag(self, returns: int) -> tuple[CallTag, int]:
        """The tag of a nested call (the parent's, with this call's trace context), and the
        parent's current sample reference (what the nested call inherits)."""
        records = self._records
        if records is None or records.tag is None:
            raise LookupError("no tracked call is being served here")
        parent: CallTag = records.tag
        carrier: dict[str, str] | None = None
        if parent.carrier is not None:  # the driver traces
            from opentelemetry import propagate

            carrier = {}
            propagate.inject(carrier)
        tag = CallTag(parent.call_id, parent.split, parent.step, carrier, returns, parent.session)
        return tag, records.current()

    def file(self, cur: int, ref: Any) -> None:
        """The nested call's records travel back with the parent's."""
        if self._records is not None:
            self._records.add_nested(cur, ref)

    def untracked(self, what: str) -> None:
        """A remote call that cannot be tracked: counted lost, named to the driver."""
        LostRecords.note(what)


def worker_tracker() -> NestedCalls | None:
    """The tracker of a worker that serves the driver's calls (None anywhere else)."""
    if not is_worker_process():
        return None
    return NestedCalls(current_records())


__all__ = ["OUTSIDE", "NestedCalls", "worker_tracker"]
