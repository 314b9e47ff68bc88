"""The OpenTelemetry instruments that publish the run's cumulative totals to metric readers.

Every per-sample and per-event figure is a plain sum in :class:`~otel_grpo.recording.totals.RunTotals`;
*observable* instruments read those sums only when a reader collects (the OTLP reader on its
period, a Prometheus scrape, any reader of yours), CUMULATIVE. Nothing here is on the hot
path: a sample costs no SDK call. The histograms are kept as bucket counts
(:mod:`otel_grpo.recording.histogram`) and merged by the readers otel-grpo builds, or mirrored
into SDK histograms when a reader of yours is attached.

The WandB rows do not come from here: they come from the closed window itself
(:class:`~otel_grpo.summary.WindowSummary`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation

from otel_grpo import semconv as sc
from otel_grpo.recording.histogram import AttributeHistogram, BucketHistogram
from otel_grpo.recording.totals import RunTotals
from otel_grpo.summary import SCORER_COUNT

Spec = tuple[str, str, str]  # (instrument name, unit, description), as in otel_grpo.semconv
Callback = Callable[[CallbackOptions], Iterator[Observation]]
Pairs = list[tuple[Any, float]]
Read = Callable[[], Pairs]  # (attributes, value) pairs, read under the recorder's lock


class Histograms:
    """The recorder's four histograms, kept as bucket counts (with SDK mirrors when ``mirror``)."""

    def __init__(self, meter: Meter, *, mirror: bool) -> None:
        def sdk(spec: Spec, buckets: Sequence[float]) -> Histogram | None:
            if not mirror:
                return None
            return meter.create_histogram(
                spec[0], unit=spec[1], description=spec[2], explicit_bucket_boundaries_advisory=list(buckets)
            )

        durations, tokens = sc.DURATION_BUCKETS_S, sc.TOKEN_BUCKETS
        genai_durations = sc.GEN_AI_DURATION_BUCKETS_S
        exec_attrs = (sc.ATTR_SPLIT, sc.ATTR_SOURCE, sc.ATTR_SUCCESS)
        judge_attrs = (sc.ATTR_SPLIT, sc.ATTR_SOURCE, sc.ATTR_JUDGE_OUTCOME)
        self.executor_duration = BucketHistogram(
            sc.EXECUTOR_DURATION, durations, exec_attrs, sdk(sc.EXECUTOR_DURATION, durations)
        )
        self.judge_duration = BucketHistogram(
            sc.JUDGE_DURATION, durations, judge_attrs, sdk(sc.JUDGE_DURATION, durations)
        )
        self.genai_duration = AttributeHistogram(
            sc.GEN_AI_OPERATION_DURATION, genai_durations, sdk(sc.GEN_AI_OPERATION_DURATION, genai_durations)
        )
        self.genai_tokens = AttributeHistogram(sc.GEN_AI_TOKEN_USAGE, tokens, sdk(sc.GEN_AI_TOKEN_USAGE, tokens))

    def all(self) -> list[BucketHistogram]:
        """Every histogram, for the readers that merge bucket counts."""
        return [self.executor_duration, self.judge_duration, self.genai_duration, self.genai_tokens]


def _attrs(split: str, source: str, ptype: str | None = None) -> dict[str, str]:
    attrs = {sc.ATTR_SPLIT: split, sc.ATTR_SOURCE: source}
    if ptype is not None:
        attrs[sc.ATTR_PROBLEM_TYPE] = ptype
    return attrs


def _with_error(attrs: dict[str, str], error_type: str) -> dict[str, str]:
    if error_type:
        attrs[sc.ATTR_ERROR_TYPE] = error_type
    return attrs


class TotalsPublisher:
    """Observable instruments over one :class:`RunTotals` (read under ``lock``)."""

    def __init__(self, meter: Meter, totals: RunTotals, lock: Any, health: Callable[[], dict[str, int]]) -> None:
        self._totals = totals
        self._lock = lock
        self._health = health
        self._create(meter)

    def _observe(self, read: Read) -> Callback:
        lock = self._lock

        def callback(_options: CallbackOptions) -> Iterator[Observation]:
            with lock:
                pairs = read()
            for attrs, value in pairs:
                yield Observation(value, attrs)

        return callback

    def _create(self, meter: Meter) -> None:
        def counter(spec: Spec, read: Read, updown: bool = False) -> None:
            make = meter.create_observable_up_down_counter if updown else meter.create_observable_counter
            make(spec[0], callbacks=[self._observe(read)], unit=spec[1], description=spec[2])

        def gauge(spec: Spec, read: Read) -> None:
            meter.create_observable_gauge(spec[0], callbacks=[self._observe(read)], unit=spec[1], description=spec[2])

        t = self._totals
        counter(sc.SAMPLES, lambda: [(_attrs(*k), v.samples) for k, v in t.samples.items()])
        counter(sc.SAMPLES_CORRECT, lambda: [(_attrs(*k), v.correct) for k, v in t.samples.items()])
        counter(sc.REWARD_SUM, lambda: [(_attrs(*k), v.reward_sum) for k, v in t.samples.items()], updown=True)
        counter(
            sc.CORRECTNESS_SUM, lambda: [(_attrs(*k), v.correctness_sum) for k, v in t.samples.items()], updown=True
        )
        counter(sc.SAMPLES_SCORED_BY, lambda: self._scored_by(0))
        counter(sc.SAMPLES_SCORED_BY_CORRECT, lambda: self._scored_by(SCORER_COUNT))
        counter(sc.EXECUTOR_RUNS, self._executor_runs)
        counter(sc.EXECUTOR_COST, lambda: [(_attrs(*k), v.cost) for k, v in t.executions.items()])
        counter(sc.EXECUTOR_COST_INVALID, self._invalid_costs)
        counter(sc.GROUPS, lambda: [(_attrs(*k), v[0]) for k, v in t.groups.items()])
        counter(sc.GROUPS_ZERO_ADVANTAGE, lambda: [(_attrs(*k), v[1]) for k, v in t.groups.items()])
        counter(sc.TRAIN_STEPS, lambda: [({}, t.steps[0])])
        counter(sc.TRAIN_STEPS_FAILED, lambda: [({}, t.steps[1])])
        counter(sc.VAL_RUNS, lambda: [({}, t.steps[2])])
        counter(sc.JUDGE_EVALUATIONS, self._judge_evaluations)
        counter(sc.JUDGE_REQUESTS, lambda: self._requests(t.judge.requests))
        counter(sc.EXECUTOR_LLM_REQUESTS, lambda: self._requests(t.judge.llm_requests))
        counter(sc.JUDGE_COST, lambda: [(_attrs(*k), v) for k, v in t.judge.cost.items()])
        counter(sc.EXPORTER_EVENTS, lambda: [({sc.ATTR_HEALTH_EVENT: e}, v) for e, v in self._health().items()])
        gauge(sc.REWARD_MIN, lambda: [(_attrs(*k), v[0]) for k, v in t.last_extremes.items()])
        gauge(sc.REWARD_MAX, lambda: [(_attrs(*k), v[1]) for k, v in t.last_extremes.items()])
        gauge(sc.TRAIN_SCALAR, lambda: [({sc.ATTR_SCALAR_NAME: n}, v) for n, v in t.last_scalars.items()])
        gauge(sc.TRAIN_STEP, lambda: [({}, t.last_step)] if t.last_step is not None else [])

    def _scored_by(self, offset: int) -> Pairs:
        """Samples (``offset`` 0) or correct samples (``offset`` SCORER_COUNT) per scorer; zeros omitted."""
        out: Pairs = []
        for key, stats in self._totals.samples.items():
            for scorer, value in zip(sc.SCORERS, stats.by_scorer[offset : offset + SCORER_COUNT], strict=True):
                if value:
                    out.append(({**_attrs(*key), sc.ATTR_SCORED_BY: scorer}, value))
        return out

    def _executor_runs(self) -> Pairs:
        out: Pairs = []
        for key, stats in self._totals.executions.items():
            if stats.ok:
                out.append(({**_attrs(*key), sc.ATTR_SUCCESS: "true"}, stats.ok))
            if stats.runs > stats.ok:
                out.append(({**_attrs(*key), sc.ATTR_SUCCESS: "false"}, stats.runs - stats.ok))
        return out

    def _invalid_costs(self) -> Pairs:
        merged: dict[tuple[str, str], int] = {}
        for (split, source, _ptype), stats in self._totals.executions.items():
            merged[(split, source)] = merged.get((split, source), 0) + stats.invalid_cost
        return [(_attrs(*k), v) for k, v in merged.items()]

    def _judge_evaluations(self) -> Pairs:
        out: Pairs = []
        for (split, source, ptype, outcome, verdict, error), count in self._totals.judge.evaluations.items():
            attrs = {**_attrs(split, source, ptype), sc.ATTR_JUDGE_OUTCOME: outcome, sc.ATTR_JUDGE_VERDICT: verdict}
            out.append((_with_error(attrs, error), count))
        return out

    @staticmethod
    def _requests(store: dict[tuple[str, str, str], int]) -> Pairs:
        return [(_with_error(_attrs(split, source), error), n) for (split, source, error), n in store.items()]


__all__ = ["Histograms", "TotalsPublisher"]
