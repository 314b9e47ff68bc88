"""Which execution a reward scores: problem and answer keys, and the rule that pairs them.

An executor run starts a sample; the reward computation for the same workflow scores it.
When both run in the same task, the sample the executor left current is the one. When they
run apart (a thread pool, a loop that scores every execution of the step after running them,
or two Ray calls), the reward looks for its own execution by the problem it was given and,
among a GRPO group's executions of that problem, by the answer it is scoring.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from otel_grpo.recording.context import SampleState

_key_hash: Callable[[Any], int] = hash


def set_key_hash(function: Callable[[Any], int] | None) -> None:
    """Use ``function`` (None: the built-in ``hash``) for the problem, answer and group keys.

    The built-in ``hash`` of a string differs from process to process; when executor runs
    and rewards are paired across processes (Ray), every process must use the same stable
    hash, e.g. :func:`stable_key_hash`.
    """
    global _key_hash
    _key_hash = function or hash


def stable_key_hash(value: Any) -> int:
    """A 64-bit hash of a string (or of a tuple of strings) that is the same in every process."""
    text = value if isinstance(value, str) else repr(value)
    return int.from_bytes(hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "little")


def problem_key(problem: Any) -> Any:
    """The key of a problem (or of an answer); None for None or an unhashable value."""
    if problem is None:
        return None
    try:
        return _key_hash(problem if isinstance(problem, str) else repr(problem)[:2048])
    except Exception:  # noqa: BLE001 - an unreadable value pairs with nothing
        return None


def group_key(problem: Any, source: Any) -> Any:
    """The key of a GRPO group: the K workflows generated for one question of one dataset."""
    if problem is None:
        return None
    try:
        return _key_hash((str(source), problem if isinstance(problem, str) else repr(problem)[:2048]))
    except Exception:  # noqa: BLE001
        return None


def reward_scores(state: SampleState | None, window: Any, problem: Any, answer: Any) -> bool:
    """Does a reward for (problem key, answer key) score ``state``, the execution this context ran last?"""
    if state is None or not state.executed or state.rewarded:
        return False
    if state.window is not None and state.window is not window:
        return False
    if problem is not None and state.problem_key is not None and state.problem_key != problem:
        return False
    return answer is None or state.answer_key is None or state.answer_key == answer


__all__ = ["group_key", "problem_key", "reward_scores", "set_key_hash", "stable_key_hash"]
