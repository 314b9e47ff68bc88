"""What the recorder has committed so far, and the instruments that publish it.

The per-sample figures are plain Python sums under one lock; *observable* instruments
read them only when a reader collects (the step reader at a window end, the OTLP reader
on its period). Slow events (executor runs, judge evaluations and requests, GenAI
calls) go to ordinary SDK counters and histograms created here too.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from opentelemetry.metrics import CallbackOptions, Counter, Histogram, Meter, Observation

from otel_grpo import semconv
from otel_grpo.recording.histogram import (
    AttributeHistogram,
    BucketHistogram,
    CounterStore,
    LatencyHistogram,
    SdkHistogram,
)
from otel_grpo.recording.stats import SCORER_COUNT, ExecKey, ExecStats, SampleStats, SeriesKey
from otel_grpo.recording.values import InvalidValueLog

Spec = tuple[str, str, str]  # (instrument name, unit, description), as in otel_grpo.semconv
Callback = Callable[[CallbackOptions], Iterator[Observation]]


class PublishedTotals:
    """Cumulative totals of one recorder and the instruments that publish them."""

    def __init__(
        self, meter: Meter, health: Callable[[], dict[str, int]] | None = None, *, preaggregate: bool = False
    ) -> None:
        self.invalid = InvalidValueLog()
        self._health = health or (lambda: {})
        # Re-entrant: a step-end collection holds it across every instrument's callback (each of which
        # takes it too), so the figures of one collection are one consistent snapshot.
        self._lock = threading.RLock()
        self._samples: dict[SeriesKey, SampleStats] = {}
        self._exec: dict[ExecKey, ExecStats] = {}
        self._groups: dict[tuple[str, str], list[int]] = {}  # (split, source) -> [groups, zero_adv]
        self._sealed_minmax: dict[SeriesKey, tuple[float, float]] = {}
        self._sealed_scalars: dict[str, float] = {}
        self._steps = [0, 0, 0]  # completed, failed, val runs
        self._last_step: int | None = None
        #: Histograms kept as plain bucket counts (with ``preaggregate``): the readers merge them.
        self.preaggregated: list[BucketHistogram] = []
        self._delta_collection = threading.local()
        # Every observable instrument's callback, for :meth:`delta_points` (name, is a sum, callback).
        self._callbacks: list[tuple[str, bool, Callback]] = []
        self._direct_last: dict[tuple[str, tuple], float] = {}
        self._direct_lock = threading.Lock()
        self._create_instruments(meter, preaggregate)

    def delta_points(self) -> list[tuple[str, dict, float]]:
        """What changed since the previous call, as ``(instrument, attributes, value)``, with no SDK collection.

        Sums (counters, up-down counters) give the change of each series since the previous call,
        and only series that changed; gauges give every series' current value. The same figures a
        DELTA reader collects through the SDK, for the step reader when every reader of the
        provider is otel-grpo's (the histograms come from :attr:`preaggregated` the same way).
        """
        out: list[tuple[str, dict, float]] = []
        options = CallbackOptions()
        with self._direct_lock, self._lock:  # one consistent snapshot of every figure
            last = self._direct_last
            for name, is_sum, callback in self._callbacks:
                for observation in callback(options):
                    attrs = dict(observation.attributes or {})
                    if not is_sum:
                        out.append((name, attrs, observation.value))
                        continue
                    key = (name, tuple(attrs.items()))
                    before = last.get(key, 0)
                    if observation.value != before:
                        last[key] = observation.value
                        out.append((name, attrs, observation.value - before))
        return out

    @contextmanager
    def delta_collection(self) -> Iterator[None]:
        """Collections in this block (on this thread) observe only counter series that changed since
        the previous such collection.

        For a DELTA reader (the step reader) a series left out is a delta of 0: the SDK keeps each
        asynchronous series' last value and computes the next delta from it. Readers collecting
        outside the block (CUMULATIVE: OTLP, Prometheus) always observe every series.
        """
        self._delta_collection.active = True
        try:
            with self._lock:  # one consistent snapshot of every figure, whatever other threads record
                yield
        finally:
            self._delta_collection.active = False

    def _changed_only(self, callback: Callback) -> Callback:
        """``callback``, filtered to changed series inside :meth:`delta_collection`."""
        last: dict[tuple, float] = {}
        local = self._delta_collection

        def observe(options: CallbackOptions) -> Iterator[Observation]:
            if not getattr(local, "active", False):
                yield from callback(options)
                return
            for observation in callback(options):
                key = tuple(observation.attributes.items()) if observation.attributes else ()
                if last.get(key) != observation.value:
                    last[key] = observation.value
                    yield observation

        return observe

    def _create_instruments(self, meter: Meter, preaggregate: bool) -> None:
        def obs_counter(spec: Spec, callback: Callback, updown: bool = False) -> None:
            make = meter.create_observable_up_down_counter if updown else meter.create_observable_counter
            make(spec[0], callbacks=[self._changed_only(callback)], unit=spec[1], description=spec[2])
            self._callbacks.append((spec[0], True, callback))

        def obs_gauge(spec: Spec, callback: Callback) -> None:
            meter.create_observable_gauge(spec[0], callbacks=[callback], unit=spec[1], description=spec[2])
            self._callbacks.append((spec[0], False, callback))

        def counter(spec: Spec) -> Counter:
            return meter.create_counter(spec[0], unit=spec[1], description=spec[2])

        def histogram(spec: Spec, buckets: Sequence[float]) -> Histogram:
            return meter.create_histogram(
                spec[0], unit=spec[1], description=spec[2], explicit_bucket_boundaries_advisory=list(buckets)
            )

        def counter_store(spec: Spec) -> CounterStore:
            store = CounterStore()
            obs_counter(spec, store.observe)
            return store

        def any_histogram(spec: Spec, buckets: Sequence[float]) -> Histogram | AttributeHistogram:
            if not preaggregate:
                return histogram(spec, buckets)
            store = AttributeHistogram(spec, buckets)
            self.preaggregated.append(store)
            return store

        obs_counter(semconv.SAMPLES, self._observe_samples("samples"))
        obs_counter(semconv.SAMPLES_CORRECT, self._observe_samples("correct"))
        obs_counter(semconv.REWARD_SUM, self._observe_samples("reward_sum"), updown=True)
        obs_counter(semconv.CORRECTNESS_SUM, self._observe_samples("correctness_sum"), updown=True)
        obs_counter(semconv.SAMPLES_SCORED_BY, self._observe_scored_by(0))
        obs_counter(semconv.SAMPLES_SCORED_BY_CORRECT, self._observe_scored_by(SCORER_COUNT))
        obs_counter(semconv.EXECUTOR_RUNS, self._observe_exec("runs"))
        obs_counter(semconv.EXECUTOR_COST, self._observe_exec("cost"))
        obs_counter(semconv.EXECUTOR_COST_INVALID, self._observe_exec("invalid_cost"))
        obs_counter(semconv.GROUPS, self._observe_groups(0))
        obs_counter(semconv.GROUPS_ZERO_ADVANTAGE, self._observe_groups(1))
        obs_counter(semconv.TRAIN_STEPS, self._observe_steps(0))
        obs_counter(semconv.TRAIN_STEPS_FAILED, self._observe_steps(1))
        obs_counter(semconv.VAL_RUNS, self._observe_steps(2))
        obs_counter(semconv.EXPORTER_EVENTS, self._observe_health)
        obs_gauge(semconv.REWARD_MIN, self._observe_minmax(0))
        obs_gauge(semconv.REWARD_MAX, self._observe_minmax(1))
        obs_gauge(semconv.TRAIN_SCALAR, self._observe_scalars)
        obs_gauge(semconv.TRAIN_STEP, self._observe_last_step)
        durations = semconv.DURATION_BUCKETS_S
        # One value per executor run: pre-aggregated when the readers can merge it.
        exec_attrs = (semconv.ATTR_SPLIT, semconv.ATTR_SOURCE, semconv.ATTR_SUCCESS)
        self._exec_duration: LatencyHistogram
        if preaggregate:
            exec_duration = BucketHistogram(semconv.EXECUTOR_DURATION, durations, exec_attrs)
            self.preaggregated.append(exec_duration)
            self._exec_duration = exec_duration
        else:
            self._exec_duration = SdkHistogram(histogram(semconv.EXECUTOR_DURATION, durations), exec_attrs)
        # Event counters: plain sums published by observable counters (no SDK ``add`` per event).
        self._judge_evals = counter_store(semconv.JUDGE_EVALUATIONS)
        self._judge_requests = counter_store(semconv.JUDGE_REQUESTS)
        self._executor_llm_requests = counter_store(semconv.EXECUTOR_LLM_REQUESTS)
        self._judge_cost = counter_store(semconv.JUDGE_COST)
        # Event histograms (``record(amount, attributes)`` either way).
        self._judge_duration = any_histogram(semconv.JUDGE_DURATION, durations)
        self.genai_duration = any_histogram(semconv.GEN_AI_OPERATION_DURATION, durations)
        self.genai_tokens = any_histogram(semconv.GEN_AI_TOKEN_USAGE, semconv.TOKEN_BUCKETS)

    def _observe_samples(self, field_name: str) -> Callable[[CallbackOptions], Iterator[Observation]]:
        def callback(_options: CallbackOptions) -> Iterator[Observation]:
            with self._lock:
                items = [(k, getattr(v, field_name)) for k, v in self._samples.items()]
            for (split, source, ptype), value in items:
                yield Observation(
                    value, {semconv.ATTR_SPLIT: split, semconv.ATTR_SOURCE: source, semconv.ATTR_PROBLEM_TYPE: ptype}
                )

        return callback

    def _observe_scored_by(self, offset: int) -> Callable[[CallbackOptions], Iterator[Observation]]:
        """Samples (``offset`` 0) or correct samples (``offset`` SCORER_COUNT) per scorer; zeros omitted."""

        def callback(_options: CallbackOptions) -> Iterator[Observation]:
            with self._lock:
                items = [(k, v.by_scorer[offset : offset + SCORER_COUNT]) for k, v in self._samples.items()]
            for (split, source, ptype), counts in items:
                for scorer, value in zip(semconv.SCORERS, counts, strict=True):
                    if value:
                        yield Observation(
                            value,
                            {
                                semconv.ATTR_SPLIT: split,
                                semconv.ATTR_SOURCE: source,
                                semconv.ATTR_PROBLEM_TYPE: ptype,
                                semconv.ATTR_SCORED_BY: scorer,
                            },
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
