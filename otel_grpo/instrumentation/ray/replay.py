"""Replaying what a remote call recorded through the driver's recorder (driver side).

Each event of a call (see :mod:`.records`) becomes the same recorder call it was in the
worker, made in a copy of the driver's context taken when the call was submitted: the
same window, split and current sample. Sample references are resolved to the driver's
own :class:`~otel_grpo.recording.context.SampleState` objects, and a reward's search for
its execution (the worker leaves it open) is made here, against every execution the
driver's window holds, with the same rule as the reward wrapper in one process.

A :class:`Lane` stands for one driver task or thread: the sample a call leaves current
(an executor run does) is current for the next call of the same lane, as a contextvar
would be in one process.
"""

from __future__ import annotations

import logging
from contextvars import Context
from typing import Any

from otel_grpo import semconv
from otel_grpo.instrumentation.pairing import reward_scores
from otel_grpo.instrumentation.ray.records import EVENTS_VERSION, INHERIT
from otel_grpo.recording.context import SampleState, current_sample, reset_sample, set_sample
from otel_grpo.recording.recorder import Recorder

logger = logging.getLogger(__name__)


class Lane:
    """The remote calls one driver task (or thread) makes, and the sample they leave current."""

    __slots__ = ("owner", "parent", "current", "started")

    def __init__(self, owner: Any, parent: Lane | None = None) -> None:
        self.owner = owner
        self.parent = parent
        self.current: SampleState | None = None
        self.started = False


def replay_call(recorder: Recorder, payload: Any, context: Context, lane: Lane) -> int | None:
    """Replay one call's ``payload`` in ``context``.

    Returns how many events the worker reported lost, or None when the payload is not ours.
    """
    if not isinstance(payload, tuple) or len(payload) != 5 or payload[0] != EVENTS_VERSION:
        return None
    context.run(_replay, recorder, payload[2], payload[3], lane)
    return int(payload[4])


def _replay(recorder: Recorder, events: list, final: int, lane: Lane) -> None:
    if not lane.started:
        lane.started = True
        if lane.parent is not None and lane.current is None:
            lane.current = lane.parent.current
    inherited = lane.current if lane.current is not None else current_sample()
    states: list[SampleState | None] = []

    def resolve(ref: Any) -> SampleState | None:
        if ref is None or ref == INHERIT:
            return inherited
        return states[ref] if 0 <= ref < len(states) else None

    for event in events:
        kind = event[0]
        if kind == "new":
            _, _ref, _cur, source, ptype, group = event
            states.append(recorder.new_sample(source, ptype, group))
        elif kind == "claim":
            states.append(_claim(recorder, resolve(event[2]), *event[3:]))
        else:
            token = set_sample(resolve(event[1]))
            try:
                _record(recorder, kind, event, resolve)
            finally:
                reset_sample(token)
    if final != INHERIT:
        lane.current = resolve(final)


def _claim(
    recorder: Recorder, current: SampleState | None, source: str, ptype: str, group: Any, problem_key: Any, answer: Any
) -> SampleState:
    """The sample a reward scores: the one current, else this problem's pending execution, else a new one."""
    if reward_scores(current, recorder.current_window(), problem_key, answer):
        state: SampleState | None = current
    else:
        state = recorder.claim_pending(problem_key, answer)
    if state is None:
        state = recorder.new_sample(source, ptype, group)
    elif state.source == semconv.UNKNOWN and source != semconv.UNKNOWN:
        state.source = recorder.labels.source(source)
    state.rewarded = True
    return state


def _record(recorder: Recorder, kind: str, event: tuple, resolve: Any) -> None:
    if kind == "exec":
        _, cur, cost, duration, success, source, ptype, problem_key, answer_key = event
        state = resolve(cur)
        if state is not None:
            if problem_key is not None:
                state.problem_key = problem_key
            if answer_key is not None:
                state.answer_key = answer_key
        recorder.record_executor_run(cost, duration, success, source=source, problem_type=ptype)
    elif kind == "sample":
        _, _cur, ref, reward, correctness, source, ptype, group = event
        state = resolve(ref) if ref is not None else None
        recorder.record_sample(reward, correctness, source=source, problem_type=ptype, group=group, state=state)
    elif kind == "judge":
        _, _cur, outcome, verdict, duration, error_type, source, ptype = event
        recorder.record_judge_evaluation(
            outcome, verdict, duration, error_type=error_type, source=source, problem_type=ptype
        )
    elif kind == "judge_request":
        _, _cur, error_type, tokens_in, tokens_out, source = event
        recorder.record_judge_request(
            error_type=error_type, input_tokens=tokens_in, output_tokens=tokens_out, source=source
        )
    elif kind == "llm_request":
        _, _cur, error_type, source = event
        recorder.record_executor_llm_request(error_type=error_type, source=source)
    elif kind == "hist":
        _, _cur, name, value, attrs = event
        histogram = recorder.genai_duration if name == "duration" else recorder.genai_tokens
        histogram.record(value, attrs)
    elif kind == "workflow":
        _, _cur, source, reward, correctness, details = event
        recorder.record_workflow(source, reward, correctness, **details)
    elif kind == "scalars":
        recorder.record_scalars(event[2])
    else:
        logger.debug("otel-grpo: unknown Ray event %r", kind)
