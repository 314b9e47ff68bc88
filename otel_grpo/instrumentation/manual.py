"""``with otel_grpo.judge_evaluation(...)`` and ``with otel_grpo.executor_run(...)``: the roles, by hand.

For a loop that calls its judge or its executor inline (no method to wrap), these open the same
typed calls the role wrappers start (:class:`~otel_grpo.instrumentation.judge_call.JudgeEvaluationCall`,
:class:`~otel_grpo.instrumentation.calls.ExecutorRunCall`), so what happens inside is recorded
exactly as inside a wrapped judge function or executor:

* inside ``judge_evaluation()``, every HTTP request (any host, port or path) is a judge request of
  that evaluation, and its one outcome is decided as the judge wrapper decides it: from an
  exception leaving the block (``api_failure``), the verdict you set (``evaluation.verdict = True``),
  or else the HTTP attempts it made;
* inside ``executor_run()``, a request to ``.../chat/completions`` or ``.../completions`` is an
  executor LLM request, never a judge request, even on the judge's port; the run's cost and
  success are what you set (``run.cost = 0.01``, ``run.success = False``; default: 0.0 and
  success), its wall time the block's.

Both work with ``with`` and ``async with``, never raise into your code, and do nothing when
otel-grpo is not set up. An exception in the block propagates unchanged.
"""

from __future__ import annotations

from typing import Any, Literal

from otel_grpo.api import Telemetry, get_telemetry
from otel_grpo.faults import fault_guard
from otel_grpo.instrumentation.calls import ExecutorRunCall
from otel_grpo.instrumentation.judge_call import JudgeEvaluationCall
from otel_grpo.recording.context import current_sample


class _ManualCall:
    """A block around one role call: starts it on entry, stops or fails it on exit. Never raises."""

    _kind = "manual call"

    def __init__(self) -> None:
        self._call: Any = None

    def _start(self, tel: Telemetry) -> Any:
        raise NotImplementedError

    def _result(self) -> Any:
        raise NotImplementedError

    def __enter__(self) -> Any:
        with fault_guard(f"{self._kind} start"):
            tel = get_telemetry()
            if tel is not None:
                self._call = self._start(tel)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        call, self._call = self._call, None
        if call is None:
            return False
        with fault_guard(f"{self._kind} end"):
            if exc is None:
                call.stop(self._result())
            else:
                call.fail(exc)
        return False

    async def __aenter__(self) -> Any:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)


class JudgeEvaluationScope(_ManualCall):
    """One judge evaluation made inline: ``with otel_grpo.judge_evaluation(source="gsm8k") as evaluation:``."""

    _kind = "judge_evaluation"

    def __init__(self, source: Any = None, problem_type: Any = None) -> None:
        super().__init__()
        self.source = source
        self.problem_type = problem_type
        self.verdict: bool | None = None
        """The verdict the judge gave (True: correct), if the block read one; None: the HTTP attempts decide."""

    def _start(self, tel: Telemetry) -> JudgeEvaluationCall:
        return JudgeEvaluationCall.start(tel, self.source, self.problem_type)

    def _result(self) -> Any:
        return self.verdict


class ExecutorRunScope(_ManualCall):
    """One workflow execution made inline: ``with otel_grpo.executor_run(source="gsm8k") as run:``.

    Inside ``with otel_grpo.sample(...)`` it is that sample's executor run; otherwise it starts a
    sample of its own for the block (score it inside the block with ``record_sample``).
    """

    _kind = "executor_run"

    def __init__(self, source: Any = None, problem_type: Any = None, problem: Any = None) -> None:
        super().__init__()
        self.source = source
        self.problem_type = problem_type
        self.problem = problem
        self.cost: Any = 0.0
        """Its cost in USD (a number, or a numeric string)."""
        self.success: Any = True
        """Whether the execution worked; False: an incorrect sample with reward 0."""
        self.answer: Any = None
        """What it returned (pairs a later reward computation with this run)."""

    def _start(self, tel: Telemetry) -> ExecutorRunCall:
        sample = current_sample()
        if sample is not None and sample.executed:
            sample = None  # that sample has run already: this run starts a new one
        return ExecutorRunCall.start(
            tel, self.source, self.problem_type, self.problem, sample=sample, scoped=sample is None
        )

    def _result(self) -> Any:
        return self.answer, self.cost, {"success": self.success}


def judge_evaluation(source: Any = None, problem_type: Any = None) -> JudgeEvaluationScope:
    """A judge evaluation around an inline judge call (see :mod:`otel_grpo.instrumentation.manual`)."""
    return JudgeEvaluationScope(source, problem_type)


def executor_run(source: Any = None, problem_type: Any = None, problem: Any = None) -> ExecutorRunScope:
    """An executor run around an inline workflow execution (see :mod:`otel_grpo.instrumentation.manual`)."""
    return ExecutorRunScope(source, problem_type, problem)


__all__ = ["ExecutorRunScope", "JudgeEvaluationScope", "executor_run", "judge_evaluation"]
