"""The public handle returned by :func:`otel_grpo.setup` and the manual recording API."""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from contextvars import Token
from typing import Any, Literal

from opentelemetry import trace

from otel_grpo import semconv
from otel_grpo.config import TelemetryConfig
from otel_grpo.exporters.providers import Providers, build_providers
from otel_grpo.exporters.wandb_exporter import WandbStepExporter
from otel_grpo.faults import fault_guard, guarded, report_fault, set_fault_sink
from otel_grpo.recording.context import LabelGuard, SampleState, reset_sample, set_sample
from otel_grpo.recording.instruments import Histograms, TotalsPublisher
from otel_grpo.recording.recorder import Recorder
from otel_grpo.recording.stats import Window
from otel_grpo.recording.values import to_step
from otel_grpo.redact import current_span

logger = logging.getLogger(__name__)

_current: Telemetry | None = None
_current_lock = threading.Lock()
_train_windows_opened = 0


def train_windows_opened() -> int:
    """Training-step windows opened in this process, wrapped or by hand (for the typo warning)."""
    return _train_windows_opened


class _Scope:
    """A context manager usable with both ``with`` and ``async with``."""

    # The scopes are entered for every sample: inline guards (a guard's context manager costs a microsecond).
    def __enter__(self) -> _Scope:
        try:
            self.open()
        except Exception as err:  # noqa: BLE001 - never raise into the trainer
            report_fault(f"{type(self).__name__} enter", err)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        try:
            self.close(exc_type is None)
        except Exception as err:  # noqa: BLE001
            report_fault(f"{type(self).__name__} exit", err)
        return False

    async def __aenter__(self) -> _Scope:
        return self.__enter__()

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)

    def open(self) -> None:
        """Open the scope (what ``with`` does on entry)."""

    def close(self, ok: bool) -> None:
        """Close the scope; ``ok`` is False when its body raised (what ``with`` does on exit)."""


class NullScope(_Scope):
    """What the API returns when telemetry is not set up: does nothing."""


class WindowScope(_Scope):
    """A training step (``train``) or validation pass (``val``)."""

    def __init__(self, telemetry: Telemetry, split: str, step: int | None) -> None:
        self._tel = telemetry
        self.split = split
        self.step = step
        self._window: Window | None = None
        self._tokens: tuple[Any, ...] | None = None
        self._span_cm: AbstractContextManager[Any] | None = None

    def open(self) -> None:
        """Open the window (and its span) in this context."""
        global _train_windows_opened
        tel = self._tel
        self._window, self._tokens = tel.recorder.open_window(self.split, self.step)
        if self.split == semconv.SPLIT_TRAIN:
            _train_windows_opened += 1
        self.step = self._window.step
        if not tel.tracing:
            return
        name = "grpo.train_step" if self.split == semconv.SPLIT_TRAIN else "grpo.validation"
        self._span_cm = current_span(tel.tracer, name, {semconv.ATTR_STEP: self.step, semconv.ATTR_SPLIT: self.split})
        self._span_cm.__enter__()

    def close(self, ok: bool) -> None:
        """Close the window: commit (``ok``) or discard its samples, and write its row."""
        tel = self._tel
        if self._window is None:  # entering failed (reported): nothing to close
            return
        try:
            if self._span_cm is not None:
                self._span_cm.__exit__(None, None, None)
        except Exception:  # noqa: BLE001 - a span is never worth a trainer crash
            logger.debug("otel-grpo: span end failed", exc_info=True)
        tel.end_window(self._window, self._tokens, ok)


class SampleScope(_Scope):
    """One sample being served: everything recorded inside is attributed to it."""

    __slots__ = ("_recorder", "state", "_token")

    def __init__(self, recorder: Any, state: SampleState) -> None:
        self._recorder = recorder
        self.state = state
        self._token: Token[SampleState | None] | None = None

    def __enter__(self) -> SampleScope:
        self._token = set_sample(self.state)
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        try:
            reset_sample(self._token)
            if exc_type is not None and not self.state.recorded:  # the workflow raised: an incorrect sample
                self._recorder.record_sample(0.0, 0.0, state=self.state)
        except Exception as err:  # noqa: BLE001 - never raise into the trainer
            report_fault("sample exit", err)
        return False


class Telemetry:
    """A running otel-grpo: providers, recorder and WandB exporter. Use :meth:`shutdown`."""

    def __init__(
        self, config: TelemetryConfig, providers: Providers, recorder_class: type[Recorder] = Recorder
    ) -> None:
        self.config = config
        self.providers = providers
        meter = providers.meter_provider.get_meter(semconv.METER_NAME)
        tracer_provider = providers.tracer_provider
        self.tracing = tracer_provider is not None
        self.tracer: trace.Tracer = (
            tracer_provider.get_tracer(semconv.TRACER_NAME) if tracer_provider is not None else trace.NoOpTracer()
        )
        self.exporter = WandbStepExporter(
            config.wandb,
            run_config={"otel_grpo": {**config.redacted_dict(), "run_id": providers.run_id}},
            extra_health=self._otlp_health if config.otlp.enabled else None,
        )
        histograms = Histograms(meter, mirror=providers.mirror_histograms)
        self.recorder = recorder_class(
            histograms,
            accuracy_threshold=config.metrics.accuracy_threshold,
            labels=LabelGuard(config.wandb.dashboard.datasets, config.metrics.max_sources),
            judge_prices=(config.judge.price_input_per_mtok, config.judge.price_output_per_mtok),
            max_sample_rows=config.wandb.dashboard.sample_table_rows,
            count=self.count_health,
        )
        if providers.preaggregated is not None:
            for histogram in histograms.all():
                providers.preaggregated.add(histogram)
        TotalsPublisher(meter, self.recorder.totals, self.recorder.lock, self._published_health)
        self._closed = False
        self._pid = os.getpid()
        self.window_close_hooks: list[Callable[[Window], None]] = []
        """Called with a window just before it closes (e.g. to replay what Ray workers recorded in it)."""
        self.shutdown_hooks: list[Callable[[], None]] = []
        """Called as :meth:`shutdown` starts, before anything is flushed (e.g. the wait for Ray calls still running)."""
        self._first_row: Callable[[], None] | None = None
        self._first_row_set = False
        self._first_row_lock = threading.Lock()
        from otel_grpo.exporters.tables import attach_tables

        attach_tables(self)

    def _published_health(self) -> dict[str, int]:
        """The exporter-health counts the instruments publish, invalid values included."""
        counts = self.exporter.health_counts()
        counts[semconv.HEALTH_INVALID_VALUES] = self.recorder.invalid.total()
        return counts

    @staticmethod
    def _otlp_health() -> dict[str, int]:
        try:
            from otel_grpo.exporters.otlp import otlp_health
        except ImportError:
            return {}
        health = otlp_health()
        return {f"otlp_{k}": health.get(k, 0) for k in ("export_errors", "spans_dropped")}

    # --- windows and samples --------------------------------------------------------------
    @guarded("step", default=NullScope())
    def step(self, step: Any) -> WindowScope:
        """A training-step window: ``with tel.step(7): ...`` (or ``async with``).

        A step that is not a non-negative integer (None, "x", NaN, an array) is counted
        as an invalid value and the window takes the number after the latest step.
        """
        number = to_step(step)
        if number is None:
            self.recorder.invalid.report("step number", step)
            number = (self.recorder.last_step or 0) + 1
        return WindowScope(self, semconv.SPLIT_TRAIN, number)

    @guarded("validation", default=NullScope())
    def validation(self, step: Any = None) -> WindowScope:
        """A validation window, logged at ``step`` (default: the latest training step)."""
        number = to_step(step) if step is not None else None
        if step is not None and number is None:
            self.recorder.invalid.report("step number", step)
        return WindowScope(self, semconv.SPLIT_VAL, number)

    @guarded("sample", default=NullScope())
    def sample(self, source: Any = None, problem_type: Any = None, group: Any = None) -> SampleScope:
        """Serve one sample: records inside are attributed to its ``source``."""
        return SampleScope(self.recorder, self.recorder.new_sample(source, problem_type, group))

    def end_window(self, window: Any, tokens: Any, ok: bool) -> None:
        """Close a window and write its row. Never raises.

        The recorder closes the window and summarises it under its own lock (so a step ending at
        the same moment in another thread can never take this step's samples); the WandB writer
        makes the row from that summary alone.
        """
        for hook in list(self.window_close_hooks):
            with fault_guard("window close hook"):
                hook(window)
        try:
            summary = self.recorder.close_window(window, tokens, ok)
        except Exception as exc:  # noqa: BLE001 - the window is closed; its row cannot be made
            report_fault("window close", exc)
            if ok and not self._closed:
                self.count_health(semconv.HEALTH_ROWS_DROPPED)
            return
        if summary is not None and os.getpid() == self._pid and not self._closed:
            self.exporter.write(summary)
            if self._first_row is not None:
                self._after_first_row()

    def at_first_row(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` once, after the first row is written (the WandB run has started): the
        start-up line. The first hook given is the one; later calls change nothing."""
        with self._first_row_lock:
            if not self._first_row_set:
                self._first_row, self._first_row_set = hook, True

    def _after_first_row(self) -> None:
        with self._first_row_lock:
            hook, self._first_row = self._first_row, None
        if hook is not None:
            with fault_guard("start-up line"):
                hook()

    # --- recording ------------------------------------------------------------------------
    @guarded("record_sample")
    def record_sample(
        self, reward: Any, correctness: Any = None, *, source: Any = None, problem_type: Any = None, group: Any = None
    ) -> None:
        """Record one scored sample (see :meth:`Recorder.record_sample`)."""
        self.recorder.record_sample(reward, correctness, source=source, problem_type=problem_type, group=group)

    @guarded("record_executor_run")
    def record_executor_run(
        self,
        cost: Any = 0.0,
        duration_s: Any = None,
        success: Any = True,
        *,
        source: Any = None,
        problem_type: Any = None,
    ) -> None:
        """Record one workflow execution."""
        self.recorder.record_executor_run(cost, duration_s, success, source=source, problem_type=problem_type)

    @guarded("record_workflow")
    def record_workflow(self, source: Any, reward: Any, correctness: Any = None, **details: Any) -> None:
        """Record one executed workflow in one call (see :meth:`Recorder.record_workflow`)."""
        self.recorder.record_workflow(source, reward, correctness, **details)

    @guarded("record_judge_evaluation")
    def record_judge_evaluation(
        self,
        outcome: str,
        verdict: Any = None,
        duration_s: Any = None,
        *,
        error_type: str | None = None,
        source: Any = None,
        problem_type: Any = None,
    ) -> None:
        """Record one judge evaluation and its outcome."""
        self.recorder.record_judge_evaluation(
            outcome, verdict, duration_s, error_type=error_type, source=source, problem_type=problem_type
        )

    @guarded("record_judge_request")
    def record_judge_request(
        self, *, error_type: str | None = None, input_tokens: Any = None, output_tokens: Any = None, source: Any = None
    ) -> None:
        """Record one HTTP request to the judge."""
        self.recorder.record_judge_request(
            error_type=error_type, input_tokens=input_tokens, output_tokens=output_tokens, source=source
        )

    @guarded("record_scalars")
    def record_scalars(self, values: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        """Record trainer scalars (loss, kl_div, temperature, ...) for the current step."""
        self.recorder.record_scalars({**(values or {}), **kwargs})

    def count_health(self, event: str, amount: int = 1) -> None:
        """Add ``amount`` to the exporter-health count ``event`` (``exporter/{event}`` in the rows)."""
        self.exporter.count(event, amount)

    def count_fault(self) -> None:
        """One internal fault of otel-grpo (reported through :mod:`otel_grpo.faults`): counted in health."""
        self.exporter.count(semconv.HEALTH_EXPORT_ERRORS)

    # --- lifecycle ------------------------------------------------------------------------
    @property
    def run(self) -> Any:
        """The WandB run rows are written to (None before the first row)."""
        return self.exporter.run

    @property
    def rows(self) -> list[dict[str, Any]]:
        """The rows written so far (the last 100)."""
        return list(self.exporter.rows)

    @property
    def prometheus_url(self) -> str | None:
        """URL of the in-process Prometheus endpoint, when enabled."""
        return self.providers.prometheus.url if self.providers.prometheus is not None else None

    def shutdown(self, finish_run: bool = True) -> None:
        """Flush exports, finish otel-grpo's own WandB run, and stop recording."""
        global _current
        if self._closed:
            return
        if os.getpid() == self._pid:
            for hook in list(self.shutdown_hooks):  # while this telemetry is still the current one
                with fault_guard("shutdown hook"):
                    hook()
        self._closed = True
        with _current_lock:
            if _current is self:
                _current = None
                set_fault_sink(None)
        if os.getpid() != self._pid:
            return
        self.exporter.shutdown(finish_run=finish_run)
        self.providers.shutdown()

    def __enter__(self) -> Telemetry:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.shutdown()


def setup(
    config: Any = None,
    *,
    metric_readers: Any = (),
    span_processors: Any = (),
    meter_provider: Any = None,
    tracer_provider: Any = None,
    recorder_class: type[Recorder] = Recorder,
    **overrides: Any,
) -> Telemetry:
    """Start otel-grpo and make it current; returns a :class:`Telemetry` handle.

    ``config`` is a path to YAML, a dict, or None for ``config/telemetry.yaml`` (else
    the packaged defaults). A path that does not exist logs one warning naming it and
    the packaged defaults are used: a missing file never stops training (an invalid
    one raises :class:`~otel_grpo.config.ConfigError`, one line naming file and key).
    ``OTEL_*``/``WANDB_*`` variables win over the file; keyword overrides named after
    sections (``wandb={"mode": "disabled"}``) win over both. A previous current handle
    is shut down first. ``recorder_class`` (a Ray worker's capturing recorder) records instead
    of the ordinary one.

    ``OTEL_SDK_DISABLED=true`` wins over everything: the handle records nothing anywhere
    (no WandB rows, no OTLP, no Prometheus endpoint, no spans; the readers, processors
    and providers passed in are not used) and instruments nothing; one log line says so.
    """
    global _current
    from otel_grpo.config import load_config
    from otel_grpo.config.env import announce_sdk_disabled, sdk_disabled, sdk_disabled_config

    cfg = load_config(config, missing_file="defaults", **overrides)
    if sdk_disabled():
        announce_sdk_disabled()
        cfg = sdk_disabled_config(cfg)
        metric_readers, span_processors, meter_provider, tracer_provider = (), (), None, None
    if cfg.wandb.debug_logging:
        logging.getLogger("otel_grpo").setLevel(logging.DEBUG)
    with _current_lock:
        previous = _current
    if previous is not None:
        logger.warning(
            "otel-grpo: setup() was called again: this setup replaces the previous one, which is shut down "
            "(its WandB run, if otel-grpo started one, is finished; later rows go to the new setup's run). "
            "Call setup() once per process; otel_grpo.get_telemetry() returns the current one."
        )
        previous.shutdown()
    providers = build_providers(
        cfg,
        metric_readers=metric_readers,
        span_processors=span_processors,
        meter_provider=meter_provider,
        tracer_provider=tracer_provider,
    )
    telemetry = Telemetry(cfg, providers, recorder_class)
    with _current_lock:
        _current = telemetry
        set_fault_sink(telemetry.count_fault)
    atexit.register(telemetry.shutdown)
    return telemetry


def get_telemetry() -> Telemetry | None:
    """The current handle, or None when otel-grpo is not set up (or in a forked child)."""
    return _current


def _forget_in_child() -> None:
    global _current
    _current = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)
