"""What the recorder has committed so far, and the instruments that publish it.

The per-sample figures are plain Python sums under one lock; *observable* instruments
read them only when a reader collects (the step reader at a window end, the OTLP reader
on its period). Slow events (executor runs, judge evaluations and requests, GenAI
calls) go to ordinary SDK counters and histograms created here too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from opentelemetry.metrics import CallbackOptions, Meter, Observation

from otel_grpo import semconv
from otel_grpo.recording.stats import ExecKey, ExecStats, SampleStats, SeriesKey
from otel_grpo.recording.values import InvalidValueLog


class PublishedTotals:
    """Cumulative totals of one recorder and the instruments that publish them."""

    def __init__(self, meter: Meter, health: Callable[[], dict[str, int]] | None = None) -> None:
        self.invalid = InvalidValueLog()
        self._health = health or (lambda: {})
        self._lock = threading.Lock()
        self._samples: dict[SeriesKey, SampleStats] = {}
        self._exec: dict[ExecKey, ExecStats] = {}
        self._groups: dict[tuple[str, str], list[int]] = {}  # (split, source) -> [groups, zero_adv]
        self._sealed_minmax: dict[SeriesKey, tuple[float, float]] = {}
        self._sealed_scalars: dict[str, float] = {}
        self._steps = [0, 0, 0]  # completed, failed, val runs
        self._last_step: int | None = None
        self._create_instruments(meter)

    def _create_instruments(self, meter: Meter) -> None:
        def obs_counter(spec, cb, updown=False):
            name, unit, desc = spec
            make = meter.create_observable_up_down_counter if updown else meter.create_observable_counter
            return make(name, callbacks=[cb], unit=unit, description=desc)

        obs_counter(semconv.SAMPLES, self._observe_samples("samples"))
        obs_counter(semconv.SAMPLES_CORRECT, self._observe_samples("correct"))
        obs_counter(semconv.REWARD_SUM, self._observe_samples("reward_sum"), updown=True)
        obs_counter(semconv.CORRECTNESS_SUM, self._observe_samples("correctness_sum"), updown=True)
        obs_counter(semconv.EXECUTOR_RUNS, self._observe_exec("runs"))
        obs_counter(semconv.EXECUTOR_COST, self._observe_exec("cost"))
        obs_counter(semconv.EXECUTOR_COST_INVALID, self._observe_exec("invalid_cost"))
        obs_counter(semconv.GROUPS, self._observe_groups(0))
        obs_counter(semconv.GROUPS_ZERO_ADVANTAGE, self._observe_groups(1))
        obs_counter(semconv.TRAIN_STEPS, self._observe_steps(0))
        obs_counter(semconv.TRAIN_STEPS_FAILED, self._observe_steps(1))
        obs_counter(semconv.VAL_RUNS, self._observe_steps(2))
        obs_counter(semconv.EXPORTER_EVENTS, self._observe_health)
        for spec, idx in ((semconv.REWARD_MIN, 0), (semconv.REWARD_MAX, 1)):
            meter.create_observable_gauge(
                spec[0], callbacks=[self._observe_minmax(idx)], unit=spec[1], description=spec[2]
            )
        meter.create_observable_gauge(
            semconv.TRAIN_SCALAR[0],
            callbacks=[self._observe_scalars],
            unit=semconv.TRAIN_SCALAR[1],
            description=semconv.TRAIN_SCALAR[2],
        )
        meter.create_observable_gauge(
            semconv.TRAIN_STEP[0],
            callbacks=[self._observe_last_step],
            unit=semconv.TRAIN_STEP[1],
            description=semconv.TRAIN_STEP[2],
        )
        duration = semconv.DURATION_BUCKETS_S
        self._exec_duration = meter.create_histogram(
            semconv.EXECUTOR_DURATION[0],
            unit=semconv.EXECUTOR_DURATION[1],
            description=semconv.EXECUTOR_DURATION[2],
            explicit_bucket_boundaries_advisory=list(duration),
        )
        self._judge_evals = meter.create_counter(
            semconv.JUDGE_EVALUATIONS[0], unit=semconv.JUDGE_EVALUATIONS[1], description=semconv.JUDGE_EVALUATIONS[2]
        )
        self._judge_duration = meter.create_histogram(
            semconv.JUDGE_DURATION[0],
            unit=semconv.JUDGE_DURATION[1],
            description=semconv.JUDGE_DURATION[2],
            explicit_bucket_boundaries_advisory=list(duration),
        )
        self._judge_requests = meter.create_counter(
            semconv.JUDGE_REQUESTS[0], unit=semconv.JUDGE_REQUESTS[1], description=semconv.JUDGE_REQUESTS[2]
        )
        self._executor_llm_requests = meter.create_counter(
            semconv.EXECUTOR_LLM_REQUESTS[0],
            unit=semconv.EXECUTOR_LLM_REQUESTS[1],
            description=semconv.EXECUTOR_LLM_REQUESTS[2],
        )
        self._judge_cost = meter.create_counter(
            semconv.JUDGE_COST[0], unit=semconv.JUDGE_COST[1], description=semconv.JUDGE_COST[2]
        )
        self.genai_duration = meter.create_histogram(
            semconv.GEN_AI_OPERATION_DURATION[0],
            unit=semconv.GEN_AI_OPERATION_DURATION[1],
            description=semconv.GEN_AI_OPERATION_DURATION[2],
            explicit_bucket_boundaries_advisory=list(duration),
        )
        self.genai_tokens = meter.create_histogram(
            semconv.GEN_AI_TOKEN_USAGE[0],
            unit=semconv.GEN_AI_TOKEN_USAGE[1],
            description=semconv.GEN_AI_TOKEN_USAGE[2],
            explicit_bucket_boundaries_advisory=list(semconv.TOKEN_BUCKETS),
        )

    def _observe_samples(self, field_name: str) -> Callable[[CallbackOptions], Iterator[Observation]]:
        def callback(_options: CallbackOptions) -> Iterator[Observation]:
            with self._lock:
                items = [(k, getattr(v, field_name)) for k, v in self._samples.items()]
            for (split, source, ptype), value in items:
                yield Observation(
                    value, {semconv.ATTR_SPLIT: split, semconv.ATTR_SOURCE: source, semconv.ATTR_PROBLEM_TYPE: ptype}
                )

        return callback

    def _observe_exec(self, field_name: str) -> Callable[[CallbackOptions], Iterator[Observation]]:
        def callback(_options: CallbackOptions) -> Iterator[Observation]:
            with self._lock:
                items = [(k, getattr(v, field_name)) for k, v in self._exec.items()]
            merged: dict[tuple[str, ...], float] = {}
            for (split, source, ptype, ok), value in items:
                key: tuple[str, ...]
                if field_name == "runs":
                    key = (split, source, ptype, ok)
                elif field_name == "cost":
                    key = (split, source, ptype)
                else:
                    key = (split, source)
                merged[key] = merged.get(key, 0) + value
            for key, value in merged.items():
                attrs = {semconv.ATTR_SPLIT: key[0], semconv.ATTR_SOURCE: key[1]}
                if len(key) > 2:
                    attrs[semconv.ATTR_PROBLEM_TYPE] = key[2]
                if len(key) > 3:
                    attrs[semconv.ATTR_SUCCESS] = key[3]
                yield Observation(value, attrs)

        return callback

    def _observe_groups(self, idx: int) -> Callable[[CallbackOptions], Iterator[Observation]]:
        def callback(_options: CallbackOptions) -> Iterator[Observation]:
            with self._lock:
                items = [(k, v[idx]) for k, v in self._groups.items()]
            for (split, source), value in items:
                yield Observation(value, {semconv.ATTR_SPLIT: split, semconv.ATTR_SOURCE: source})

        return callback

    def _observe_steps(self, idx: int) -> Callable[[CallbackOptions], Iterator[Observation]]:
        def callback(_options: CallbackOptions) -> Iterator[Observation]:
            yield Observation(self._steps[idx])

        return callback

    def _observe_minmax(self, idx: int) -> Callable[[CallbackOptions], Iterator[Observation]]:
        def callback(_options: CallbackOptions) -> Iterator[Observation]:
            with self._lock:
                items = list(self._sealed_minmax.items())
            for (split, source, ptype), pair in items:
                yield Observation(
                    pair[idx],
                    {semconv.ATTR_SPLIT: split, semconv.ATTR_SOURCE: source, semconv.ATTR_PROBLEM_TYPE: ptype},
                )

        return callback

    def _observe_scalars(self, _options: CallbackOptions) -> Iterator[Observation]:
        with self._lock:
            items = list(self._sealed_scalars.items())
        for name, value in items:
            yield Observation(value, {semconv.ATTR_SCALAR_NAME: name})

    def _observe_last_step(self, _options: CallbackOptions) -> Iterator[Observation]:
        if self._last_step is not None:
            yield Observation(self._last_step)

    def _observe_health(self, _options: CallbackOptions) -> Iterator[Observation]:
        counts = dict(self._health())
        counts[semconv.HEALTH_INVALID_VALUES] = self.invalid.total()
        for event, value in counts.items():
            yield Observation(value, {semconv.ATTR_HEALTH_EVENT: event})
