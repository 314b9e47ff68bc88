"""One scoring call on this process: TRL's reward functions, each called through a thin wrapper.

While TRL's ``_calculate_rewards`` runs, its ``reward_funcs`` list is swapped for a new
list of wrappers (:meth:`ScoringCall.wrap`); TRL's own list is never changed and is put
back when the call ends. Each wrapper calls the user's function with the very arguments
TRL gives it and returns its very result; around the call it:

* opens an innermost call, so that the HTTP requests made during it reach this call:
  a judge function's (named in ``instrumentation.trl.judge``, or one that already asked a
  judge) as a judge evaluation (every request is a judge request), any other one as a
  *reward call* (``CALL_REWARD``: only its GenAI and judge-endpoint requests are judge
  requests, and making one is what makes the function a judge);
* keeps the values it returned, and the wall time of the call.

A synchronous function gets a synchronous wrapper and an async one an async wrapper, so
TRL runs each exactly as before (async ones together on its event loop). A reward model
(``torch.nn.Module``) is left as it is: its values are read from TRL's result.
"""

from __future__ import annotations

import inspect
import time
from collections.abc import Callable, Sequence
from typing import Any

from otel_grpo.instrumentation.llm_http.classify import CALL_REWARD
from otel_grpo.instrumentation.trl.scoring import FunctionCall
from otel_grpo.recording.context import CALL_JUDGE, JudgeEvaluationState, enter_call, exit_call


def is_async(func: Any) -> bool:
    """What TRL's ``is_async_callable`` says of ``func`` (its own function when it has one)."""
    try:
        from trl.trainer.utils import is_async_callable
    except ImportError:  # an older TRL: the same test, by hand
        call = getattr(func, "__call__", None)  # noqa: B004 - an async callable instance
        return inspect.iscoroutinefunction(func) or inspect.iscoroutinefunction(call)
    return bool(is_async_callable(func))


def is_module(func: Any) -> bool:
    """True for a reward model (TRL calls it with tokenised inputs, not with completions)."""
    try:
        from torch import nn
    except ImportError:
        return False
    return isinstance(func, nn.Module)


class _Observed:
    """What one wrapper saw: the result, the call's wall time and its judge requests."""

    __slots__ = ("result", "duration_s", "state", "judge")

    def __init__(self) -> None:
        self.result: Any = None
        self.duration_s: float | None = None
        self.state: JudgeEvaluationState | None = None
        self.judge = False


class ScoringCall:
    """The reward functions' calls of one ``_calculate_rewards`` call on this process."""

    def __init__(self, names: Sequence[str], judges: set[str], labels: Callable[[Any], tuple[str, str]]) -> None:
        self.names = list(names)
        self.judges = judges
        """Names of the functions known to be the judge (configured, or seen asking one); updated here."""
        self._labels = labels
        self.observed: dict[int, _Observed] = {}

    def wrap(self, funcs: Sequence[Any]) -> list[Any]:
        """A new list: each reward function wrapped, reward models as they are."""
        return [self._wrap_one(index, func) for index, func in enumerate(funcs)]

    def _wrap_one(self, index: int, func: Any) -> Any:
        if is_module(func) or index >= len(self.names):
            return func
        observed = self.observed[index] = _Observed()
        name = self.names[index]
        begin, end = self._hooks(observed, name)

        if is_async(func):

            async def async_reward(*args: Any, **kwargs: Any) -> Any:
                token, started = begin(kwargs)
                try:
                    result = await func(*args, **kwargs)
                finally:
                    end(token, started)
                observed.result = result
                return result

            return async_reward

        def reward(*args: Any, **kwargs: Any) -> Any:
            token, started = begin(kwargs)
            try:
                result = func(*args, **kwargs)
            finally:
                end(token, started)
            observed.result = result
            return result

        return reward

    def _hooks(self, observed: _Observed, name: str) -> tuple[Callable, Callable]:
        def begin(kwargs: dict[str, Any]) -> tuple[Any, float]:
            try:
                source, ptype = self._labels(kwargs)
                state = observed.state = JudgeEvaluationState(source=source, problem_type=ptype)
                observed.judge = name in self.judges
                token = enter_call(CALL_JUDGE if observed.judge else CALL_REWARD, state)
            except Exception:  # noqa: BLE001 - never in the way of the reward function
                token = None
            return token, time.perf_counter()

        def end(token: Any, started: float) -> None:
            observed.duration_s = time.perf_counter() - started
            if token is not None:
                exit_call(token)
            if observed.state is not None and observed.state.attempts and not observed.judge:
                observed.judge = True  # it asked a judge: it is the judge, from now on too
                self.judges.add(name)

        return begin, end

    def function_calls(self, local_values: Callable[[int], Sequence[Any]]) -> list[FunctionCall]:
        """One :class:`FunctionCall` per reward function; ``local_values(i)`` reads a reward model's values."""
        calls = []
        for index, name in enumerate(self.names):
            observed = self.observed.get(index)
            if observed is None:  # a reward model: its column of TRL's result
                calls.append(FunctionCall(name, local_values(index), judge=name in self.judges))
                continue
            values = observed.result
            if not (hasattr(values, "__len__") and hasattr(values, "__getitem__")):
                values = ()  # an iterator TRL consumed: nothing to read
            attempts = observed.state.attempts if observed.state is not None else []
            failed = next((a.error_type for a in reversed(attempts) if a.error_type), None)
            calls.append(FunctionCall(name, values, observed.judge, failed, observed.duration_s))
        return calls
