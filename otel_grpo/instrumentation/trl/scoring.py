"""What one scoring call of TRL's reward functions means, completion by completion (pure functions).

TRL calls every reward function once for the whole local batch and keeps each function's
raw value per completion (``None``: "not applicable"). :func:`score_completions` turns
those values into one compact, picklable :data:`Completion` per completion, the unit that
crosses processes; :func:`scored_by` reads what scored it. No otel-grpo state is read or
written here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from otel_grpo import semconv

Evaluation = tuple[str, "bool | None", "str | None", "float | None"]
"""One judge evaluation: ``(outcome, verdict, error_type, duration_s)``."""

Completion = tuple[Any, Any, "float | None", "float | None", tuple[Evaluation, ...]]
"""``(source, problem_type, reward, correctness, evaluations)``; reward None: unscorable."""

_LABEL_TYPES = (type(None), str, int, float, bool)
_MAX_LABEL = 256


@dataclass(frozen=True)
class FunctionCall:
    """One reward function's call in a scoring call: its values and how its judge requests went."""

    name: str
    values: Sequence[Any]
    """The raw value per completion (None: not applicable), as the function returned them."""
    judge: bool = False
    """The function is the judge (named in the config, or it asked a judge during a call)."""
    failed_request: str | None = None
    """``error.type`` of a judge request of this call that failed; None when none failed."""
    duration_s: float | None = None
    """Wall time of the call (the latency of each judge evaluation it made)."""


def number(value: Any) -> float | None:
    """A raw reward value as a float; None for ``None``, NaN (what TRL's ``nansum`` skips) or unreadable."""
    if value is None or isinstance(value, bool | str):
        return float(value) if isinstance(value, bool) else None
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(result) else result


def label(value: Any) -> Any:
    """A dataset column value that crosses processes as it is (else its text, cut)."""
    if isinstance(value, _LABEL_TYPES):
        return value[:_MAX_LABEL] if isinstance(value, str) else value
    return str(value)[:_MAX_LABEL]


def judge_evaluation(call: FunctionCall, value: float | None, threshold: float, none_fails: bool) -> Evaluation | None:
    """The judge evaluation a judge function's value for one completion is (None: no evaluation).

    A number is a ``success`` whose verdict is ``value >= threshold``. ``None`` is a failed
    evaluation (``api_failure`` when a judge request of the call failed, else
    ``parse_failure``) unless ``none_fails`` is false (TRL's multi-task idiom: not applicable).
    """
    if value is not None:
        return (semconv.OUTCOME_SUCCESS, value >= threshold, None, call.duration_s)
    if not none_fails:
        return None
    if call.failed_request is not None:
        return (semconv.OUTCOME_API_FAILURE, None, call.failed_request, call.duration_s)
    return (semconv.OUTCOME_PARSE_FAILURE, None, None, call.duration_s)


def score_completions(
    calls: Sequence[FunctionCall],
    weights: Sequence[float],
    sources: Sequence[Any],
    problem_types: Sequence[Any],
    *,
    correctness: str | None = None,
    threshold: float = 0.9,
    none_fails: bool = True,
) -> list[Completion]:
    """One :data:`Completion` per completion of the batch.

    reward: the weighted sum of the values that are not None (whatever TRL's
    ``multi_objective_aggregation``); None when every function returned None (unscorable).
    correctness: the value of the function named ``correctness``, else the reward.
    """
    completions: list[Completion] = []
    for index, (source, ptype) in enumerate(zip(sources, problem_types, strict=True)):
        reward: float | None = None
        chosen: float | None = None
        evaluations: list[Evaluation] = []
        for call, weight in zip(calls, weights, strict=True):
            value = number(call.values[index]) if index < len(call.values) else None
            if value is not None:
                reward = (reward or 0.0) + weight * value
                if call.name == correctness:
                    chosen = value
            if call.judge:
                evaluation = judge_evaluation(call, value, threshold, none_fails)
                if evaluation is not None:
                    evaluations.append(evaluation)
        completions.append((label(source), label(ptype), reward, chosen, tuple(evaluations)))
    return completions


def scored_by(evaluations: Sequence[Evaluation]) -> str:
    """``rule`` (no judge evaluation), ``judge`` (one succeeded) or ``judge_failed`` (none did)."""
    if not evaluations:
        return semconv.SCORED_BY_RULE
    if any(e[0] == semconv.OUTCOME_SUCCESS for e in evaluations):
        return semconv.SCORED_BY_JUDGE
    return semconv.SCORED_BY_JUDGE_FAILED
