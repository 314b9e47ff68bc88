"""One instrumented ``GRPOTrainer``: its scoring calls, their merge across processes, and its windows.

:meth:`TrlSession.score` runs around TRL's ``_calculate_rewards`` on every process. The
main process records what all processes scored into the window open then: the training
step ``state.global_step + 1`` (opened by :mod:`.callback`) or, for completions scored
by TRL's evaluation, a validation window logged at ``state.global_step``.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any

from otel_grpo import semconv
from otel_grpo.api import Telemetry, WindowScope, get_telemetry
from otel_grpo.config import TrlConfig
from otel_grpo.faults import fault_guard, report_fault
from otel_grpo.instrumentation.judge_health import judge_health
from otel_grpo.instrumentation.llm_http.call import EndedRequest, replay_request
from otel_grpo.instrumentation.llm_http.classify import ROLE_JUDGE
from otel_grpo.instrumentation.trl.calls import ScoringCall
from otel_grpo.instrumentation.trl.processes import Payload, RequestBuffer, gather
from otel_grpo.instrumentation.trl.scoring import Completion, number, score_completions, scored_by

logger = logging.getLogger(__name__)

HEALTH_UNSCORABLE = "unscorable"
"""Exporter-health count: completions every reward function returned None for (not samples)."""

_FAULT = "TRL scoring"


class TrlSession:
    """What otel-grpo keeps for one ``GRPOTrainer`` (nothing is stored on the trainer itself)."""

    def __init__(self, trainer: Any, options: TrlConfig) -> None:
        self.options = options
        self.judges: set[str] = set(options.judge or ())
        self._calls = itertools.count()
        self.step_window: WindowScope | None = None
        self.val_window: WindowScope | None = None
        accelerator = getattr(trainer, "accelerator", None)
        self.num_processes = int(getattr(accelerator, "num_processes", 1) or 1)
        self.process_index = int(getattr(accelerator, "process_index", 0) or 0)
        self.is_main = bool(getattr(accelerator, "is_main_process", True))
        self.requests = RequestBuffer()
        self.requests.listen()  # every process: its judge requests' latency (and, off the main one, the rest)
        tel = get_telemetry()
        if tel is not None and self.is_main:
            tel.count_health(HEALTH_UNSCORABLE, 0)

    # --- windows (main process only) ------------------------------------------------------
    def open_step(self, step: int) -> None:
        """Open the window of training step ``step`` (``state.global_step + 1``)."""
        self.close_validation()
        self.close_step(ok=False)  # a step left open: its attempt did not finish
        tel = get_telemetry()
        if tel is not None and self.is_main:
            window = tel.step(step)
            window.open()
            self.step_window = window

    def close_step(self, ok: bool = True) -> None:
        """Close the training step's window: its row is written."""
        window, self.step_window = self.step_window, None
        if window is not None:
            window.close(ok)

    def open_validation(self, step: int) -> None:
        """Open a validation window logged at ``step`` unless one is open."""
        tel = get_telemetry()
        if self.val_window is None and tel is not None and self.is_main:
            window = tel.validation(step)
            window.open()
            self.val_window = window

    def close_validation(self) -> None:
        """Close the validation window, if one is open: its row is written."""
        window, self.val_window = self.val_window, None
        if window is not None:
            window.close(True)

    # --- scoring (every process) ----------------------------------------------------------
    def score(self, trainer: Any, wrapped: Any, args: tuple, kwargs: dict) -> Any:
        """Run TRL's ``_calculate_rewards`` with the reward functions observed; return its result unchanged."""
        scoring = None
        original = trainer.reward_funcs
        training = bool(getattr(getattr(trainer, "model", None), "training", True))  # TRL's own test of the mode
        with fault_guard(_FAULT):  # on a fault TRL scores as it would without us
            if not training:  # TRL's evaluation: a validation window, open before its judge requests are made
                self.open_validation(int(getattr(trainer.state, "global_step", 0) or 0))
            candidate = ScoringCall(trainer.reward_func_names, self.judges, self._call_labels)
            trainer.reward_funcs = candidate.wrap(original)
            scoring = candidate
        try:
            result = wrapped(*args, **kwargs)
        finally:
            trainer.reward_funcs = original
        self._after(trainer, scoring, result, args, kwargs, training)
        return result

    def _after(
        self, trainer: Any, scoring: ScoringCall | None, result: Any, args: tuple, kwargs: dict, training: bool
    ) -> None:
        """Merge this call's completions on the main process (every process takes part) and record them."""
        completions: list[Completion] = []
        with fault_guard(_FAULT):
            if scoring is not None:
                completions = self._completions(trainer, scoring, result, _inputs(args, kwargs))
        own = self.requests.drain()
        payload: Payload = (completions, own if not self.is_main else [])
        try:
            payloads = gather(payload, self.num_processes)
        except Exception as exc:  # noqa: BLE001
            report_fault(_FAULT, exc)
            return
        call_id = next(self._calls)
        if not self.is_main:
            return
        tel = get_telemetry()
        if tel is None:
            return
        with fault_guard(_FAULT):
            generations = _num_generations(trainer, training)
            self._record(tel, payloads, call_id, generations, own)

    def _completions(self, trainer: Any, scoring: ScoringCall, result: Any, inputs: Sequence[Any]) -> list[Completion]:
        count = len(inputs)
        first = inputs[0] if count and isinstance(inputs[0], dict) else {}
        source_column = self._source_column(first)
        sources = [_column(row, source_column) for row in inputs]
        ptypes = [_column(row, self.options.problem_type_column) for row in inputs]
        start = self.process_index * count

        def local_values(index: int) -> list[Any]:  # a reward model's column of TRL's gathered result
            return [number(v) for v in result[start : start + count, index].tolist()]

        tel = get_telemetry()
        threshold = tel.config.metrics.accuracy_threshold if tel is not None else 0.9
        return score_completions(
            scoring.function_calls(local_values),
            _weights(trainer),
            sources,
            ptypes,
            correctness=self.options.correctness,
            threshold=threshold,
            none_fails=self.options.judge_none == "failed",
        )

    def _source_column(self, row: dict) -> str:
        column = self.options.source_column
        if column not in row and "data_source" in row:
            return "data_source"
        return column

    def _call_labels(self, kwargs: dict[str, Any]) -> tuple[str, str]:
        """(source, problem_type) of a reward call: the one its completions share, else unknown."""
        tel = get_telemetry()
        sources = kwargs.get(self._source_column(kwargs))
        ptypes = kwargs.get(self.options.problem_type_column)
        source = _shared(sources)
        ptype = _shared(ptypes) if source is not None else None
        if tel is None:
            return semconv.UNKNOWN, semconv.UNKNOWN
        return tel.recorder.resolve_labels(source, ptype)

    def _record(
        self, tel: Telemetry, payloads: list[Payload], call_id: int, generations: int, own: list[EndedRequest]
    ) -> None:
        """Record every process's judge requests and completions in the current window (main process).

        Judge latency is per judge request (a reward function scores a whole batch in one call):
        this process's own requests (``own``, already counted) and the other processes' ones.
        """
        recorder = tel.recorder
        health = judge_health(tel)  # warns once when judge evaluations keep failing (judge.warn_after_failures)
        for _completions, requests in payloads:
            for request in requests:
                replay_request(tel, request)
                _judge_latency(tel, request)
        for request in own:
            _judge_latency(tel, request)
        index = 0
        unscorable = 0
        for completions, _requests in payloads:
            for source, ptype, reward, correctness, evaluations in completions:
                group = (call_id, index // generations) if generations > 0 else None
                index += 1
                for outcome, verdict, error_type, _call_duration in evaluations:
                    recorder.record_judge_evaluation(
                        outcome, verdict, None, error_type=error_type, source=source, problem_type=ptype
                    )
                    health.observe(outcome, error_type)
                if reward is None:
                    unscorable += 1
                    continue
                recorder.record_workflow(
                    source,
                    reward,
                    correctness,
                    problem_type=ptype,
                    group=group,
                    scored_by=scored_by(evaluations),
                    executed=False,
                )
        if unscorable:
            tel.count_health(HEALTH_UNSCORABLE, unscorable)

    def close(self) -> None:
        """Close what is still open (the end of training)."""
        self.close_validation()
        self.close_step(ok=True)


def _judge_latency(tel: Telemetry, request: EndedRequest) -> None:
    """One judge request's latency, as ``judge/latency_*`` reads it for TRL (per request, not per batch)."""
    if request.role == ROLE_JUDGE:
        outcome = semconv.OUTCOME_API_FAILURE if request.error_type else semconv.OUTCOME_SUCCESS
        tel.recorder.record_judge_latency(request.duration_s, source=request.source, outcome=outcome)


def _inputs(args: tuple, kwargs: dict) -> Sequence[Any]:
    """The ``inputs`` argument of ``_calculate_rewards(inputs, prompts, completions, completion_ids_list)``."""
    inputs = kwargs.get("inputs", args[0] if args else ())
    return inputs if isinstance(inputs, Sequence) else list(inputs)


def _column(row: Any, column: str) -> Any:
    return row.get(column) if isinstance(row, dict) else None


def _shared(values: Any) -> Any:
    """The one value every completion of a call has, else None."""
    if not isinstance(values, Sequence) or isinstance(values, str) or not values:
        return None
    first = values[0]
    try:
        return first if all(v == first for v in values) else None
    except Exception:  # noqa: BLE001 - values that do not compare
        return None


def _weights(trainer: Any) -> list[float]:
    """The reward weights as the user gave them (``args.reward_weights``), else TRL's tensor."""
    tensor = [float(w) for w in trainer.reward_weights.tolist()]
    given = getattr(getattr(trainer, "args", None), "reward_weights", None)
    if given is not None and len(given) <= len(tensor):
        return [float(w) for w in given] + tensor[len(given) :]
    return tensor


def _num_generations(trainer: Any, training: bool) -> int:
    if training:
        return int(getattr(trainer, "num_generations", 0) or 0)
    return int(getattr(trainer, "num_generations_eval", None) or getattr(trainer, "num_generations", 0) or 0)
