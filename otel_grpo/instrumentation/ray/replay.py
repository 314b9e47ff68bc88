"""Replaying what a remote call recorded through the driver's recorder (driver side).

Each record of a call (see :mod:`.events`) becomes the same recorder call it was in the
worker, made in a copy of the driver's context taken when the call was submitted: the
same window, split and current sample. Sample references are resolved to the driver's
own :class:`~otel_grpo.recording.context.SampleState` objects, and a reward's search for
its execution (the worker leaves it open) is made here, against every execution the
driver's window holds, with the same rule as the reward wrapper in one process.

A :class:`Lane` stands for one driver task (or thread): the sample a call leaves current
(an executor run does) is current for the next call of the same lane, as a contextvar
would be in one process.

A call that arrives after its window closed (*late*) is replayed inside
``recorder.late_records()``: its spend and judge figures count toward the cumulative
figures, its samples go into no row; it neither reads nor changes its lane.

The records of a remote call made from inside a call (a *nested* call) are replayed
where the parent made it, when they are at hand (``resolved``); otherwise they are
returned as deferred, to be replayed when they arrive.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import Context
from dataclasses import dataclass, field
from typing import Any

from otel_grpo.instrumentation.ray.events import INHERIT, CallPayload, NestedCall
from otel_grpo.recording.context import SampleState, current_sample, reset_sample, set_sample
from otel_grpo.recording.recorder import Recorder


class Lane:
    """The remote calls one driver task (or thread) makes, and the sample they leave current."""

    __slots__ = ("owner", "parent", "current", "started")

    def __init__(self, owner: Any, parent: Lane | None = None) -> None:
        self.owner = owner
        self.parent = parent
        self.current: SampleState | None = None
        self.started = False

    def inherited(self) -> SampleState | None:
        """The sample a call of this lane inherits: the one the lane's last call left current,
        else (first call of a task) its parent's, else the one current where the call was made."""
        if not self.started:
            self.started = True
            if self.parent is not None and self.current is None:
                self.current = self.parent.current
        return self.current if self.current is not None else current_sample()


@dataclass
class Outcome:
    """What replaying one call found besides its records."""

    lost: int = 0  # events or calls the workers could not attribute (counted lost)
    untracked: set[str] = field(default_factory=set)  # remote calls named by the workers as untracked
    deferred: list[tuple[Any, SampleState | None]] = field(default_factory=list)  # (nested ref, its inherited)


class Replayer:
    """Replays one call's records (:class:`~.events.Replaying`)."""

    __slots__ = ("recorder", "late", "states", "_inherited", "_payload", "_resolved", "outcome")

    def __init__(
        self,
        recorder: Recorder,
        payload: CallPayload,
        inherited: SampleState | None,
        *,
        late: bool,
        resolved: Mapping[Any, Any],
        outcome: Outcome,
    ) -> None:
        self.recorder = recorder
        self.late = late
        self.states: list[SampleState | None] = []
        self._inherited = inherited
        self._payload = payload
        self._resolved = resolved
        self.outcome = outcome

    def resolve(self, ref: int | None) -> SampleState | None:
        """The driver's sample for a reference of this call."""
        if ref is None or ref == INHERIT:
            return self._inherited
        return self.states[ref] if 0 <= ref < len(self.states) else None

    def call(self, cur: int, method: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """``method(*args, **kwargs)`` with the sample ``cur`` current."""
        token = set_sample(self.resolve(cur))
        try:
            method(*args, **kwargs)
        finally:
            reset_sample(token)

    def run(self) -> None:
        """Replay every record, in order, then note what the worker reported lost."""
        payload = self._payload
        for event in payload.events:
            event.replay(self)
        self.outcome.lost += int(payload.lost)
        self.outcome.untracked.update(payload.untracked)

    def nested(self, event: NestedCall) -> None:
        """A nested call's records here (when at hand), else deferred; unreadable ones are lost."""
        try:
            ref = self._payload.nested[event.slot]
        except IndexError:
            self.outcome.lost += 1
            return
        inherited = self.resolve(event.cur)
        if isinstance(ref, CallPayload):  # its records came inline, with the parent's
            payload: Any = ref
        elif ref not in self._resolved:
            self.outcome.deferred.append((ref, inherited))
            return
        else:
            payload = self._resolved[ref]
        if not isinstance(payload, CallPayload):
            self.outcome.lost += 1
            return
        Replayer(self.recorder, payload, inherited, late=self.late, resolved=self._resolved, outcome=self.outcome).run()


def replay_call(
    recorder: Recorder,
    payload: Any,
    context: Context,
    lane: Lane | None,
    *,
    late: bool = False,
    resolved: Mapping[Any, Any] | None = None,
    inherited: SampleState | None = None,
) -> Outcome | None:
    """Replay one call's ``payload`` in ``context``; None when the payload is not ours.

    ``lane``: the caller's lane (None for a nested call, which inherits ``inherited``).
    ``late``: the call's window closed before it completed. ``resolved``: the records of
    nested calls fetched so far, by reference.
    """
    if not isinstance(payload, CallPayload):
        return None
    return context.run(_replay, recorder, payload, lane, late, resolved or {}, inherited)


def _replay(
    recorder: Recorder,
    payload: CallPayload,
    lane: Lane | None,
    late: bool,
    resolved: Mapping[Any, Any],
    inherited: SampleState | None,
) -> Outcome:
    outcome = Outcome()
    if late:
        if lane is not None:
            inherited = current_sample()  # the sample current where the call was made; the lane moved on
        with recorder.late_records():
            Replayer(recorder, payload, inherited, late=True, resolved=resolved, outcome=outcome).run()
        return outcome
    if lane is not None:
        inherited = lane.inherited()
    replayer = Replayer(recorder, payload, inherited, late=False, resolved=resolved, outcome=outcome)
    replayer.run()
    if lane is not None and payload.final != INHERIT:
        lane.current = replayer.resolve(payload.final)
    return outcome


__all__ = ["Lane", "Outcome", "Replayer", "replay_call"]
