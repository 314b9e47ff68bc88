"""Who is being served right now: step, split and sample, carried in contextvars.

asyncio tasks inherit a copy of the context they were created in, so the per-sample
tasks a trainer gathers each see their own sample. Threads that were not given a
context fall back to the process-wide window (one trainer per process).

Also home of the label normalisation: lower-cased sources, problem types derived
from the dataset table, and a cardinality guard that folds unexpected sources into
``other`` once the limit is reached, so a typo cannot explode Prometheus or WandB.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import unicodedata
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from otel_grpo import semconv

logger = logging.getLogger(__name__)

_LABEL_UNSAFE = re.compile(r"[^a-z0-9_.\-]+")
_MAX_LABEL_LEN = 64
_SUFFIX_LEN = 8  # hex digits of the hash that keeps a rewritten name distinct


def _clean_label(value: Any) -> str:
    """A WandB-key- and Prometheus-label-safe form of ``value``; distinct inputs stay distinct.

    Sources are lower-cased and stripped. A name that is already safe (``[a-z0-9_.-]``,
    at most 64 characters) is kept as it is. Any other name is rewritten (accents
    folded to ASCII, other characters to ``_``, cut to length) and gets a short hash
    of the full original name, so ``émath`` never becomes ``math`` and two long names
    with a common prefix never merge.
    """
    if value is None:
        return ""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    elif isinstance(value, bool):
        value = "true" if value else "false"
    text = value if isinstance(value, str) else str(value)
    text = text.strip().lower()
    if not text:
        return ""
    safe = _LABEL_UNSAFE.sub("_", text)
    if safe == text and len(text) <= _MAX_LABEL_LEN:
        return text
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    base = _LABEL_UNSAFE.sub("_", folded).strip("_")[: _MAX_LABEL_LEN - _SUFFIX_LEN - 1].rstrip("_")
    digest = hashlib.blake2s(text.encode("utf-8", "surrogatepass"), digest_size=_SUFFIX_LEN // 2).hexdigest()
    return f"{base}_{digest}" if base else f"x_{digest}"


class LabelGuard:
    """Normalises ``source`` and ``problem_type`` labels with a cardinality limit.

    Known sources always pass. Up to ``max_sources`` other distinct sources are kept
    as they are; after that they become ``other`` with a single warning.
    """

    _MAX_PROBLEM_TYPES = 16

    def __init__(self, known_sources: Iterable[str] = semconv.DEFAULT_DATASETS, max_sources: int = 32) -> None:
        self._known = {_clean_label(s) for s in known_sources} | {semconv.UNKNOWN, semconv.OTHER}
        self._max_extra = max_sources
        self._extra: set[str] = set()
        self._ptypes: set[str] = {"math", "code", "qa", semconv.UNKNOWN}
        self._lock = threading.Lock()
        self._warned_source = False
        self._warned_ptype = False
        self._cache: dict[tuple[type, Any], str] = {}
        self._ptype_cache: dict[tuple[type, Any, str], str] = {}

    def source(self, raw: Any) -> str:
        """Return the normalised source label for ``raw``."""
        cache_key = (type(raw), raw)  # 1 == True == 1.0 hash alike, but are different names
        try:
            return self._cache[cache_key]
        except (KeyError, TypeError):
            pass
        label = _clean_label(raw) or semconv.UNKNOWN
        if label not in self._known and label not in self._extra:
            with self._lock:
                if len(self._extra) < self._max_extra:
                    self._extra.add(label)
                else:
                    if not self._warned_source:
                        self._warned_source = True
                        logger.warning(
                            "otel-grpo: more than %d distinct unexpected dataset sources; "
                            "source %r and any further new ones are recorded as 'other' "
                            "(raise metrics.max_sources or list them in wandb.dashboard.datasets)",
                            self._max_extra,
                            label,
                        )
                    label = semconv.OTHER
        try:
            if len(self._cache) < 4096:
                self._cache[cache_key] = label
        except TypeError:
            pass
        return label

    def problem_type(self, raw: Any, source: str) -> str:
        """Return the normalised problem type, derived from ``source`` when missing."""
        cache_key = (type(raw), raw, source)
        try:
            return self._ptype_cache[cache_key]
        except (KeyError, TypeError):
            pass
        label = self._problem_type(raw, source)
        try:
            if len(self._ptype_cache) < 4096:
                self._ptype_cache[cache_key] = label
        except TypeError:
            pass
        return label

    def _problem_type(self, raw: Any, source: str) -> str:
        label = _clean_label(raw)
        if not label:
            return semconv.PROBLEM_TYPE_BY_SOURCE.get(source, semconv.UNKNOWN)
        if label not in self._ptypes:
            with self._lock:
                if len(self._ptypes) < self._MAX_PROBLEM_TYPES:
                    self._ptypes.add(label)
                else:
                    if not self._warned_ptype:
                        self._warned_ptype = True
                        logger.warning("otel-grpo: too many distinct problem types; %r recorded as 'other'", label)
                    return semconv.OTHER
        return label


@dataclass(eq=False, slots=True)
class SampleState:
    """What has been recorded so far for the sample served in this context."""

    source: str
    problem_type: str
    group: Any = None
    executed: bool = False
    execution_ok: bool = True
    recorded: bool = False  # counted (scored, or unscored at its window's close): never counted again
    rewarded: bool = False  # a reward computation claimed it
    window: Any = None  # the window its execution is pending in
    judge_evaluations: int = 0  # judge evaluations made while serving this sample
    judge_succeeded: bool = False  # at least one of them read a verdict
    judge_outcome: str | None = None  # the last one's outcome (for the per-sample table)
    problem_key: Any = None  # stable hash of the problem its executor run was given
    answer_key: Any = None  # stable hash of the answer its executor run returned
    cost: float | None = None  # its executor run's cost (for the per-sample table)
    latency: float | None = None  # its executor run's wall time (for the per-sample table)

    def scorer(self) -> int:
        """Index into ``semconv.SCORERS`` of what scored this sample.

        A failed execution is not scored; otherwise a rule scored it (no judge
        evaluation), the judge (one evaluation read a verdict) or the trainer's fallback
        after judge evaluations that all failed (``judge_failed``).
        """
        if self.executed and not self.execution_ok:
            return SCORER_NOT_SCORED
        if not self.judge_evaluations:
            return SCORER_RULE
        return SCORER_JUDGE if self.judge_succeeded else SCORER_JUDGE_FAILED


# Indexes into semconv.SCORERS (the order SampleStats.by_scorer keeps).
SCORER_RULE, SCORER_JUDGE, SCORER_JUDGE_FAILED, SCORER_NOT_SCORED = range(len(semconv.SCORERS))


_sample_var: ContextVar[SampleState | None] = ContextVar("otel_grpo_sample", default=None)
_split_var: ContextVar[str | None] = ContextVar("otel_grpo_split", default=None)
_window_var: ContextVar[Any] = ContextVar("otel_grpo_window", default=None)


current_sample = _sample_var.get
"""Return the sample being served in this context, if any (a bound ``ContextVar.get``)."""


set_sample = _sample_var.set
"""Make a :class:`SampleState` the current sample; returns a token for :func:`reset_sample`."""


def reset_sample(token) -> None:
    """Restore the sample that was current before :func:`set_sample`."""
    try:
        _sample_var.reset(token)
    except ValueError:  # token created in another context (e.g. across a thread hop)
        _sample_var.set(None)


def current_window_var() -> ContextVar[Any]:
    """The contextvar holding the innermost open window in this context."""
    return _window_var


def current_split_var() -> ContextVar[str | None]:
    """The contextvar holding the split (train|val) of this context."""
    return _split_var


@dataclass(eq=False)
class JudgeAttempt:
    """One HTTP request made while a judge evaluation runs."""

    error_type: str | None = None  # None: a reply with content came back
    status_code: int | None = None
    content: str | None = None  # kept in memory only, to classify parse failures
    finish_reason: str | None = None
    url: str | None = None  # scheme://host:port/path of the request (redact before showing)


@dataclass(eq=False)
class JudgeEvaluationState:
    """The judge evaluation running in this context and the HTTP attempts it made."""

    source: str
    problem_type: str
    attempts: list[JudgeAttempt] = field(default_factory=list)


_judge_var: ContextVar[JudgeEvaluationState | None] = ContextVar("otel_grpo_judge", default=None)


def current_judge_evaluation() -> JudgeEvaluationState | None:
    """The judge evaluation running in this context, if any (HTTP attempts attach to it)."""
    return _judge_var.get()


def judge_evaluation_var() -> ContextVar[JudgeEvaluationState | None]:
    """The contextvar holding the running judge evaluation."""
    return _judge_var


# --- the innermost open call: who makes an HTTP request -----------------------------------
CALL_JUDGE = "judge"
CALL_EXECUTOR = "executor"


_call_var: ContextVar[tuple[str, Any] | None] = ContextVar("otel_grpo_innermost_call", default=None)


def innermost_call() -> tuple[str, Any] | None:
    """``(CALL_JUDGE, JudgeEvaluationState)`` or ``(CALL_EXECUTOR, SampleState)`` (the run's sample) for the
    innermost judge evaluation or executor run open in this context, else None.

    The LLM HTTP instrumentation asks this to decide what a request is: inside a judge
    evaluation every request is a judge request; inside an executor run a GenAI request
    is an executor LLM request, even when it goes to the judge's server.
    """
    return _call_var.get()


def enter_call(kind: str, state: Any) -> Any:
    """Make ``(kind, state)`` the innermost open call; returns a token for :func:`exit_call`."""
    return _call_var.set((kind, state))


def exit_call(token: Any) -> None:
    """Restore the call that was innermost before :func:`enter_call`."""
    try:
        _call_var.reset(token)
    except ValueError:  # token made in another context
        _call_var.set(None)
