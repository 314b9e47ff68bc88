"""What one remote call recorded, as typed records the driver can replay (worker side).

Inside a Ray worker the role wrappers run unchanged; their recorder is a
:class:`CapturingRecorder`. It does what the ordinary recorder does to the call's own
sample states (so the wrappers pair an executor run with its reward inside the call
exactly as in one process), and it also writes every recording call, with its raw
arguments, as one record of :mod:`.events` into the :class:`CallRecords` of the remote
call it happens in. The driver replays those records through its own recorder
(:mod:`.replay`), so every sum, count and pairing is decided by the one recorder that
writes the rows.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from contextvars import ContextVar
from typing import Any

from otel_grpo.instrumentation.ray.events import (
    INHERIT,
    CallPayload,
    ClaimedSample,
    Event,
    ExecutorLlmRequest,
    ExecutorRun,
    HistogramValue,
    JudgeEvaluation,
    JudgeLatency,
    JudgeRequest,
    NestedCall,
    NewSample,
    Scalars,
    ScoredSample,
    Workflow,
)
from otel_grpo.recording.context import SampleState, current_sample, current_window_var
from otel_grpo.recording.instruments import Histograms
from otel_grpo.recording.recorder import Recorder
from otel_grpo.recording.values import to_float

_PORTABLE = (type(None), bool, int, float, str)
_MAX_TEXT = 256


def portable(value: Any) -> Any:
    """``value`` if it crosses processes as it is, else a number or an unreadable marker.

    Numbers, strings, booleans and None travel unchanged so that the driver's recorder
    judges them (an invalid cost is counted invalid there). Any other object is sent as
    the float it reads as, or as a string no reader accepts (counted invalid likewise).
    """
    if isinstance(value, _PORTABLE):
        return value[:_MAX_TEXT] if isinstance(value, str) else value
    number = to_float(value)
    if number is not None:
        return number
    return f"<unreadable {type(value).__name__:.40}>"


class CallRecords:
    """The records of one remote call, in the order they were recorded.

    ``tag`` is the call's tag from the driver (a nested remote call this call makes
    carries it on, see :mod:`.nested`).
    """

    __slots__ = ("call_id", "tag", "events", "nested", "_refs", "_states", "_claim", "lock")

    def __init__(self, call_id: int, tag: Any = None) -> None:
        self.call_id = call_id
        self.tag = tag
        self.events: list[Event] = []
        self.nested: list[Any] = []  # ObjectRefs of the records of the remote calls this call made
        self._refs: dict[int, int] = {}  # id(SampleState) -> reference
        self._states: list[SampleState] = []  # keeps them alive, so ids stay unique
        self._claim: tuple[Any, Any] | None = None
        self.lock = threading.Lock()

    def ref(self, state: SampleState | None) -> int:
        """The reference of ``state``: its index if this call created it, else :data:`INHERIT`."""
        if state is None:
            return INHERIT
        return self._refs.get(id(state), INHERIT)

    def current(self) -> int:
        """The reference of the sample current in this context."""
        return self.ref(current_sample())

    def claim_requested(self, problem_key: Any, answer_key: Any) -> None:
        """A reward looked for its execution; the next new sample is its fallback."""
        self._claim = (problem_key, answer_key)

    def new_sample(self, state: SampleState) -> None:
        """A sample created in this call (an executor run, a reward, or a claim's fallback)."""
        with self.lock:
            self._refs[id(state)] = len(self._states)
            self._states.append(state)
            claim, self._claim = self._claim, None
            if claim is None:
                self.events.append(NewSample(state.source, state.problem_type, state.group))
            else:
                self.events.append(ClaimedSample(self.current(), state.source, state.problem_type, state.group, *claim))

    def add(self, event: Event) -> None:
        """Append one record."""
        with self.lock:
            self._claim = None
            self.events.append(event)

    def add_nested(self, cur: int, ref: Any) -> None:
        """A remote call this call made: its records travel back with this call's."""
        with self.lock:
            self._claim = None
            self.events.append(NestedCall(cur, len(self.nested)))
            self.nested.append(ref)

    def payload(self, final: SampleState | None, lost: int = 0, untracked: Iterable[str] = ()) -> CallPayload:
        """What travels to the driver: the records, the sample left current, and how many
        events this process could not attribute to any call since its last report (and why)."""
        with self.lock:
            return CallPayload(
                self.call_id, tuple(self.events), self.ref(final), lost, tuple(untracked), tuple(self.nested)
            )


_records_var: ContextVar[CallRecords | None] = ContextVar("otel_grpo_ray_call", default=None)
_active: list[CallRecords] = []  # calls running in this process, latest last (threads without a context)
_active_lock = threading.Lock()


class LostRecords:
    """What a worker recorded outside any tracked remote call (it cannot reach a row).

    Counted per event, and per remote call made here that could not be tracked (named
    in :attr:`untracked`); reported to the driver with the next call's records.
    """

    lock = threading.Lock()
    count = 0
    reported = 0
    untracked: set[str] = set()

    @classmethod
    def add(cls, amount: int = 1) -> None:
        """``amount`` more events lost."""
        with cls.lock:
            cls.count += amount

    @classmethod
    def note(cls, name: str) -> None:
        """One remote call made here that cannot be tracked (``name`` says which, and why)."""
        with cls.lock:
            cls.count += 1
            cls.untracked.add(name)

    @classmethod
    def take(cls) -> tuple[int, tuple[str, ...]]:
        """What was lost since the last call to :meth:`take` (sent with the next call's records)."""
        with cls.lock:
            count = cls.count
            lost, cls.reported = count - cls.reported, count
            names, cls.untracked = tuple(sorted(cls.untracked)), set()
        return lost, names


def empty_payload(call_id: int, lost: int, untracked: Iterable[str] = ()) -> CallPayload:
    """The records of a call that recorded nothing (or whose recording could not start)."""
    return CallPayload(call_id, (), INHERIT, lost, tuple(untracked))


def records_var() -> ContextVar[CallRecords | None]:
    """The contextvar holding the remote call served in this context."""
    return _records_var


def begin_call(records: CallRecords) -> Any:
    """Make ``records`` the current call in this context; returns a token for :func:`end_call`."""
    with _active_lock:
        _active.append(records)
    return _records_var.set(records)


def end_call(records: CallRecords, token: Any) -> None:
    """Stop recording into ``records``."""
    with _active_lock:
        try:
            _active.remove(records)
        except ValueError:
            pass
    try:
        _records_var.reset(token)
    except ValueError:
        _records_var.set(None)


def current_records() -> CallRecords | None:
    """The tracked call being served here: this context's, else the latest in this process
    (a thread the call started, like the recorder's process-wide window)."""
    records = _records_var.get()
    if records is not None:
        return records
    with _active_lock:
        return _active[-1] if _active else None


def _ship(kind: type, *fields: Any) -> None:
    """Ship a record of ``kind`` for the current call: the reference of the sample current here, then ``fields``."""
    records = current_records()
    if records is None:
        LostRecords.add()
    else:
        records.add(kind(records.current(), *fields))


class _CapturedHistogram:
    """Stands in for a GenAI histogram: each value is replayed into the driver's histogram."""

    def __init__(self, name: str) -> None:
        self._name = name

    def record(self, amount: Any, attributes: Any = None, context: Any = None) -> None:
        """Record ``amount`` with ``attributes`` (replayed on the driver)."""
        _ship(HistogramValue, self._name, portable(amount), dict(attributes or {}))


class CapturingRecorder(Recorder):
    """A recorder for a Ray worker: keeps the call's sample states, ships every event.

    Its own totals are never published (it has no meter); the driver's recorder decides
    what each event counts for. A reward's search for its execution
    (:meth:`claim_pending`) is left to the driver, which holds every pending execution.
    """

    def __init__(self, histograms: Histograms | None = None, **options: Any) -> None:
        super().__init__(histograms, **options)
        self.genai_duration = _CapturedHistogram("duration")  # type: ignore[assignment]
        self.genai_tokens = _CapturedHistogram("tokens")  # type: ignore[assignment]

    @property
    def last_step(self) -> int | None:
        """The step of the driver's window the current call was made in."""
        window = current_window_var().get()
        return window.step if window is not None else self.totals.last_step

    def new_sample(self, source: Any = None, problem_type: Any = None, group: Any = None) -> SampleState:
        """A sample state, also announced to the driver."""
        state = super().new_sample(source, problem_type, group)
        records = current_records()
        if records is not None:
            records.new_sample(state)
        return state

    def has_pending(self) -> bool:
        """Always true here: only the driver knows the executions a reward may claim."""
        return True

    def claim_pending(self, problem_key: Any, answer_key: Any = None) -> SampleState | None:
        """Always None here; the driver makes the claim when it replays the call."""
        records = current_records()
        if records is not None:
            records.claim_requested(problem_key, answer_key)
        return None

    def record_sample(
        self,
        reward: Any,
        correctness: Any = None,
        *,
        source: Any = None,
        problem_type: Any = None,
        group: Any = None,
        state: SampleState | None = None,
    ) -> None:
        """Record one scored sample (replayed on the driver)."""
        records = current_records()
        if records is None:
            LostRecords.add()
        else:
            ref = records.ref(state) if state is not None else None
            records.add(
                ScoredSample(
                    records.current(),
                    ref,
                    portable(reward),
                    portable(correctness),
                    portable(source),
                    portable(problem_type),
                    portable(group),
                )
            )
        super().record_sample(reward, correctness, source=source, problem_type=problem_type, group=group, state=state)

    def record_executor_run(
        self,
        cost: Any = 0.0,
        duration_s: Any = None,
        success: Any = True,
        *,
        source: Any = None,
        problem_type: Any = None,
    ) -> None:
        """Record one workflow execution (replayed on the driver)."""
        state = current_sample()
        _ship(
            ExecutorRun,
            portable(cost),
            portable(duration_s),
            portable(success),
            portable(source),
            portable(problem_type),
            state.problem_key if state is not None else None,
            state.answer_key if state is not None else None,
        )
        super().record_executor_run(cost, duration_s, success, source=source, problem_type=problem_type)

    def record_judge_evaluation(
        self,
        outcome: str,
        verdict: Any = None,
        duration_s: Any = None,
        *,
        error_type: str | None = None,
        source: Any = None,
        problem_type: Any = None,
    ) -> None:
        """Record one judge evaluation (replayed on the driver)."""
        _ship(
            JudgeEvaluation,
            portable(outcome),
            portable(verdict),
            portable(duration_s),
            portable(error_type),
            portable(source),
            portable(problem_type),
        )
        super().record_judge_evaluation(
            outcome, verdict, duration_s, error_type=error_type, source=source, problem_type=problem_type
        )

    def record_judge_request(
        self, *, error_type: str | None = None, input_tokens: Any = None, output_tokens: Any = None, source: Any = None
    ) -> None:
        """Record one judge HTTP request (replayed on the driver)."""
        _ship(JudgeRequest, portable(error_type), portable(input_tokens), portable(output_tokens), portable(source))
        super().record_judge_request(
            error_type=error_type, input_tokens=input_tokens, output_tokens=output_tokens, source=source
        )

    def record_executor_llm_request(self, *, error_type: str | None = None, source: Any = None) -> None:
        """Record one executor LLM request (replayed on the driver)."""
        _ship(ExecutorLlmRequest, portable(error_type), portable(source))
        super().record_executor_llm_request(error_type=error_type, source=source)

    def record_judge_latency(self, seconds: Any, *, source: Any = None, outcome: str = "success") -> None:
        """Record one judge latency (replayed on the driver)."""
        _ship(JudgeLatency, portable(seconds), portable(source), portable(outcome))
        super().record_judge_latency(seconds, source=source, outcome=outcome)

    def record_workflow(self, source: Any, reward: Any, correctness: Any = None, **details: Any) -> None:
        """Record one executed workflow in one call (replayed on the driver)."""
        _ship(
            Workflow,
            portable(source),
            portable(reward),
            portable(correctness),
            {name: portable(value) for name, value in details.items()},
        )
        super().record_workflow(source, reward, correctness, **details)

    def record_scalars(self, values: dict[str, Any] | Iterable[tuple[str, Any]]) -> None:
        """Record trainer scalars (replayed on the driver)."""
        items = list(values.items() if isinstance(values, dict) else values)
        _ship(Scalars, [(str(name), portable(raw)) for name, raw in items])
        super().record_scalars(items)


RECORDED_METHODS = (
    "new_sample",
    "claim_pending",
    "record_sample",
    "record_executor_run",
    "record_judge_evaluation",
    "record_judge_request",
    "record_judge_latency",
    "record_executor_llm_request",
    "record_workflow",
    "record_scalars",
)
"""Every recorder method the capturing recorder ships (a test checks none is missing)."""
