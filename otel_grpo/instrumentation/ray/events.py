"""The typed records of one remote call: what a worker ships, and how the driver replays each.

Every recorder call made inside a tracked remote call becomes one small record (a
``NamedTuple``: compact and picklable, each kind a class of its own) holding the raw
arguments. On the driver, :meth:`replay` makes the same recorder call on the driver's
recorder, through a :class:`Replaying` (see :mod:`.replay`) that knows the call's
samples, the caller's current sample and whether the call arrived late.

Samples are referred to by a small integer: their index among the samples the call
created; :data:`INHERIT` stands for "the sample current in the caller's context",
which only the driver knows (for a nested call: the parent call's sample current when
it made the call).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from otel_grpo import semconv
from otel_grpo.instrumentation.pairing import reward_scores

if TYPE_CHECKING:
    from otel_grpo.recording.context import SampleState
    from otel_grpo.recording.recorder import Recorder

logger = logging.getLogger(__name__)

INHERIT = -1
"""Sample reference: the sample current in the caller's context when it made the call."""


class Replaying(Protocol):
    """What an event needs from the driver to replay itself."""

    recorder: Recorder
    late: bool
    states: list[SampleState | None]

    def resolve(self, ref: int | None) -> SampleState | None:
        """The driver's sample for a reference of this call."""

    def call(self, cur: int, method: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
        """``method(*args, **kwargs)`` with the sample ``cur`` current."""

    def nested(self, event: NestedCall) -> None:
        """Replay (or defer) the records of a remote call this call made."""


# --- samples --------------------------------------------------------------------------------------
class NewSample(NamedTuple):
    """A sample the call created (an executor run's, or a reward's with nothing to pair with)."""

    source: Any
    problem_type: Any
    group: Any

    def replay(self, r: Replaying) -> None:
        """A new driver sample, referred to by this call's next index."""
        r.states.append(r.recorder.new_sample(self.source, self.problem_type, self.group))


class ClaimedSample(NamedTuple):
    """A reward looked for its execution; the driver finds it (or makes a new sample)."""

    cur: int
    source: Any
    problem_type: Any
    group: Any
    problem_key: Any
    answer_key: Any

    def replay(self, r: Replaying) -> None:
        """The reward wrapper's rule: the current sample, else this problem's pending execution, else new.

        A late call's reward never claims an execution of the row being built now: its
        sample is a new one (it goes into no row).
        """
        recorder = r.recorder
        state: SampleState | None = None
        if not r.late:
            current = r.resolve(self.cur)
            if reward_scores(current, recorder.current_window(), self.problem_key, self.answer_key):
                state = current
            else:
                state = recorder.claim_pending(self.problem_key, self.answer_key)
        if state is None:
            state = recorder.new_sample(self.source, self.problem_type, self.group)
        elif state.source == semconv.UNKNOWN and self.source != semconv.UNKNOWN:
            state.source = recorder.labels.source(self.source)
        mark_rewarded(state)
        r.states.append(state)


def mark_rewarded(state: SampleState) -> None:
    """``state`` has its reward (no other reward claims it)."""
    state.rewarded = True


def remember_keys(state: SampleState, problem_key: Any, answer_key: Any) -> None:
    """The problem and answer an execution was for (a later reward claims it by them)."""
    if problem_key is not None:
        state.problem_key = problem_key
    if answer_key is not None:
        state.answer_key = answer_key


# --- recorder calls -------------------------------------------------------------------------------
class ExecutorRun(NamedTuple):
    """``record_executor_run`` (with the problem and answer keys of the running sample)."""

    cur: int
    cost: Any
    duration_s: Any
    success: Any
    source: Any
    problem_type: Any
    problem_key: Any
    answer_key: Any

    def replay(self, r: Replaying) -> None:
        """Record the run on the driver."""
        state = r.resolve(self.cur)
        if state is not None and not r.late:
            remember_keys(state, self.problem_key, self.answer_key)
        r.call(
            self.cur,
            r.recorder.record_executor_run,
            self.cost,
            self.duration_s,
            self.success,
            source=self.source,
            problem_type=self.problem_type,
        )


class ScoredSample(NamedTuple):
    """``record_sample`` (``state``: the call's sample it scores, None for the current one)."""

    cur: int
    state: int | None
    reward: Any
    correctness: Any
    source: Any
    problem_type: Any
    group: Any

    def replay(self, r: Replaying) -> None:
        """Record the sample on the driver."""
        state = r.resolve(self.state) if self.state is not None else None
        r.call(
            self.cur,
            r.recorder.record_sample,
            self.reward,
            self.correctness,
            source=self.source,
            problem_type=self.problem_type,
            group=self.group,
            state=state,
        )


class JudgeEvaluation(NamedTuple):
    """``record_judge_evaluation``."""

    cur: int
    outcome: Any
    verdict: Any
    duration_s: Any
    error_type: Any
    source: Any
    problem_type: Any

    def replay(self, r: Replaying) -> None:
        """Record the evaluation on the driver."""
        r.call(
            self.cur,
            r.recorder.record_judge_evaluation,
            self.outcome,
            self.verdict,
            self.duration_s,
            error_type=self.error_type,
            source=self.source,
            problem_type=self.problem_type,
        )


class JudgeRequest(NamedTuple):
    """``record_judge_request``."""

    cur: int
    error_type: Any
    input_tokens: Any
    output_tokens: Any
    source: Any

    def replay(self, r: Replaying) -> None:
        """Record the request on the driver."""
        r.call(
            self.cur,
            r.recorder.record_judge_request,
            error_type=self.error_type,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            source=self.source,
        )


class ExecutorLlmRequest(NamedTuple):
    """``record_executor_llm_request``."""

    cur: int
    error_type: Any
    source: Any

    def replay(self, r: Replaying) -> None:
        """Record the request on the driver."""
        r.call(self.cur, r.recorder.record_executor_llm_request, error_type=self.error_type, source=self.source)


class JudgeLatency(NamedTuple):
    """``record_judge_latency`` (a judge scored per batch: latency per request)."""

    cur: int
    seconds: Any
    source: Any
    outcome: Any

    def replay(self, r: Replaying) -> None:
        """Record the latency on the driver."""
        r.call(self.cur, r.recorder.record_judge_latency, self.seconds, source=self.source, outcome=self.outcome)


class HistogramValue(NamedTuple):
    """One value of a GenAI histogram (``duration`` or ``tokens``)."""

    cur: int
    name: str
    value: Any
    attributes: dict[str, Any]

    def replay(self, r: Replaying) -> None:
        """Record the value in the driver's histogram."""
        recorder = r.recorder
        histogram = recorder.genai_duration if self.name == "duration" else recorder.genai_tokens
        r.call(self.cur, histogram.record, self.value, self.attributes)


class Workflow(NamedTuple):
    """``record_workflow`` (one executed workflow in one call)."""

    cur: int
    source: Any
    reward: Any
    correctness: Any
    details: dict[str, Any]

    def replay(self, r: Replaying) -> None:
        """Record the workflow on the driver."""
        r.call(self.cur, r.recorder.record_workflow, self.source, self.reward, self.correctness, **self.details)


class Scalars(NamedTuple):
    """``record_scalars``: ``(name, value)`` pairs."""

    cur: int
    items: list[tuple[str, Any]]

    def replay(self, r: Replaying) -> None:
        """Record the scalars in the driver's step (a late call's scalars belong to no step: dropped)."""
        if r.late:
            logger.debug("otel-grpo: scalars of a late Ray call dropped: %s", [name for name, _ in self.items])
            return
        r.call(self.cur, r.recorder.record_scalars, self.items)


class NestedCall(NamedTuple):
    """A remote call this call made (``slot``: its records' place in :attr:`CallPayload.nested`)."""

    cur: int
    slot: int

    def replay(self, r: Replaying) -> None:
        """The nested call's records, here, in the order the calls were made."""
        r.nested(self)


Event = (
    NewSample
    | ClaimedSample
    | ExecutorRun
    | ScoredSample
    | JudgeEvaluation
    | JudgeRequest
    | JudgeLatency
    | ExecutorLlmRequest
    | HistogramValue
    | Workflow
    | Scalars
    | NestedCall
)
"""Any record of a call (each has ``replay(r)``)."""


class CallPayload(NamedTuple):
    """What travels back to the driver with a call's result (or on its exception)."""

    call_id: int
    events: tuple[Event, ...]
    final: int  # the sample the call left current (INHERIT: none of its own)
    lost: int = 0  # events this worker process could not attribute to any call since its last report
    untracked: tuple[str, ...] = ()  # what made them lost (remote calls named), for the driver's warning
    # The records of the remote calls this call made: inline when they had completed as it ended,
    # else their ObjectRefs.
    nested: tuple[Any, ...] = ()


EVENT_KINDS: tuple[type, ...] = (
    NewSample,
    ClaimedSample,
    ExecutorRun,
    ScoredSample,
    JudgeEvaluation,
    JudgeRequest,
    JudgeLatency,
    ExecutorLlmRequest,
    HistogramValue,
    Workflow,
    Scalars,
    NestedCall,
)
"""Every kind of record, in wire order (a record travels as ``[its index here, *its fields]``)."""
RECORDS_ATTRIBUTE = "_otel_grpo_records"
"""The attribute of a call's exception that carries its records."""
_KIND_INDEX = {kind: index for index, kind in enumerate(EVENT_KINDS)}
WIRE_MARK = "otel-grpo.records/1"


def to_wire(payload: CallPayload) -> list[Any]:
    """``payload`` as lists of plain values: Ray ships lists, numbers and strings with msgpack
    alone, where a tuple or a class instance costs a pickle on both sides of every call."""
    return [
        WIRE_MARK,
        payload.call_id,
        [[_KIND_INDEX[type(event)], *event] for event in payload.events],
        payload.final,
        payload.lost,
        list(payload.untracked),
        list(payload.nested),
    ]


def is_wire(data: Any) -> bool:
    """Whether ``data`` is a payload in its wire form."""
    return isinstance(data, list) and len(data) == 7 and data[0] == WIRE_MARK


def from_wire(data: Any) -> Any:
    """The :class:`CallPayload` ``data`` carries (a payload passes as it is), its nested calls' records that
    travelled inside it read too; anything else unchanged."""
    if is_wire(data):
        _, call_id, events, final, lost, untracked, nested = data
        data = CallPayload(
            call_id,
            tuple(EVENT_KINDS[event[0]](*event[1:]) for event in events),
            final,
            lost,
            tuple(untracked),
            tuple(nested),
        )
    elif not isinstance(data, CallPayload):
        return data
    if any(is_wire(item) for item in data.nested):
        data = data._replace(nested=tuple(from_wire(item) if is_wire(item) else item for item in data.nested))
    return data


__all__ = [
    "EVENT_KINDS",
    "INHERIT",
    "RECORDS_ATTRIBUTE",
    "WIRE_MARK",
    "CallPayload",
    "ClaimedSample",
    "Event",
    "ExecutorLlmRequest",
    "ExecutorRun",
    "HistogramValue",
    "JudgeEvaluation",
    "JudgeRequest",
    "NestedCall",
    "NewSample",
    "Replaying",
    "Scalars",
    "ScoredSample",
    "Workflow",
    "from_wire",
    "is_wire",
    "to_wire",
]
