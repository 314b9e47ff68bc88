"""Step-driven WandB writer: one row per training step (and per validation pass).

At each window end it collects the :class:`~otel_grpo.exporters.step_reader.StepMetricReader`,
rolls the delta up into the SPEC.md keys and writes one row with ``train/step`` in it.
It is the only writer of those keys. Rows are logged *without* ``step=`` so they are
never dropped when the host trainer also calls ``wandb.log`` (with or without
``step=``); every key is plotted against ``train/step`` through ``define_metric``.

Faults never reach the trainer: an exception while collecting, rolling up or writing
is logged once per kind and counted in the exporter-health keys.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from otel_grpo import semconv
from otel_grpo.exporters.rollup import RunTotals, WindowEnd, accumulate, flatten, window_row
from otel_grpo.exporters.step_reader import StepMetricReader

logger = logging.getLogger(__name__)

KEY_PREFIXES = ("train", "dataset", "judge", "val", "cost", "grpo", "executor", "exporter")
_FLUSH_ENV = "WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL"


class WandbStepExporter:
    """Collects, rolls up and writes one WandB row per window end."""

    def __init__(self, reader: StepMetricReader, wandb_config: Any, *,
                 run_config: dict[str, Any] | None = None,
                 extra_health: Callable[[], dict[str, int]] | None = None,
                 keep_rows: int = 100) -> None:
        self._reader = reader
        self._cfg = wandb_config
        self._run_config = run_config or {}
        self._extra_health = extra_health or (lambda: {})
        self._lock = threading.RLock()
        self.totals = RunTotals()
        self.health = {semconv.HEALTH_ROWS_WRITTEN: 0, semconv.HEALTH_ROWS_DROPPED: 0,
                       semconv.HEALTH_EXPORT_ERRORS: 0}
        self.rows: deque[dict[str, Any]] = deque(maxlen=keep_rows)
        self._warned: set[str] = set()
        self._run: Any = None
        self._own_run = False
        self._run_failed = False
        self._disabled = not getattr(wandb_config, "enabled", True) or \
            getattr(wandb_config, "mode", "offline") == "disabled"
        self._train_steps_seen = 0
        self._pid = os.getpid()
        # Called with every row after it is written (an extension point: alerts, custom sinks).
        self.row_listeners: list[Callable[[dict[str, Any], WindowEnd], None]] = []
        # Extras (e.g. wandb.Table objects) logged in the same call as the row they belong to.
        self.row_extras: list[Callable[[dict[str, Any], WindowEnd], dict[str, Any] | None]] = []
        if not self._disabled:
            os.environ.setdefault(_FLUSH_ENV, str(getattr(wandb_config, "flush_interval_s", 1.0)))

    # --- faults ----------------------------------------------------------------------------
    def _fault(self, kind: str, exc: BaseException) -> None:
        self.health[semconv.HEALTH_EXPORT_ERRORS] += 1
        if kind not in self._warned:
            self._warned.add(kind)
            logger.warning("otel-grpo: %s failed (%s: %s); training continues, further %s "
                           "errors are counted in exporter/export_errors", kind,
                           type(exc).__qualname__, exc, kind)

    def health_counts(self) -> dict[str, int]:
        """Rows written/dropped and export errors so far."""
        return dict(self.health)

    # --- the run ---------------------------------------------------------------------------
    @property
    def run(self) -> Any:
        """The WandB run rows go to (None until the first row, or when disabled)."""
        return self._run

    def _acquire_run(self) -> Any:
        if self._run is not None or self._disabled or self._run_failed:
            return self._run
        if os.getpid() != self._pid:
            return None
        import wandb

        active = wandb.run if getattr(self._cfg, "attach_to_active_run", True) else None
        if active is not None and getattr(active, "disabled", False):
            # The trainer disabled WandB for itself; our rows still need a home: a run of our own.
            logger.warning("otel-grpo: the active WandB run is disabled; writing otel-grpo rows to a "
                           "separate %s run", getattr(self._cfg, "mode", "offline"))
            active = None
        if active is not None:
            self._run = active
        else:
            self._run = self._start_run(wandb, separate=wandb.run is not None)
            self._own_run = self._run is not None
        if self._run is not None:
            self._define_metrics(self._run)
        return self._run

    def _start_run(self, wandb: Any, separate: bool = False) -> Any:
        from otel_grpo.wandb_run import start_run

        try:
            return start_run(wandb, self._cfg, self._run_config, separate=separate)
        except Exception as exc:  # noqa: BLE001 - never raise into the trainer
            self._run_failed = True
            self._fault("wandb.init", exc)
            return None

    def _define_metrics(self, run: Any) -> None:
        try:
            run.define_metric("train/step")
            for prefix in KEY_PREFIXES:
                run.define_metric(f"{prefix}/*", step_metric="train/step")
        except Exception as exc:  # noqa: BLE001
            self._fault("wandb.define_metric", exc)

    def start(self) -> Any:
        """Start (or attach to) the run now instead of at the first row."""
        with self._lock:
            return self._acquire_run()

    # --- rows ------------------------------------------------------------------------------
    def on_window_end(self, split: str, step: int, ok: bool) -> dict[str, Any]:
        """Collect, roll up and write the row for a window that just ended. Never raises."""
        if os.getpid() != self._pid:  # a forked child never writes
            return {}
        with self._lock:
            write = True
            if split == semconv.SPLIT_TRAIN and ok:
                self._train_steps_seen += 1
                frequency = max(1, int(getattr(self._cfg, "log_frequency", 1) or 1))
                write = step % frequency == 0 if step else self._train_steps_seen % frequency == 0
            window = WindowEnd(split=split, step=step, ok=ok, write=write)
            try:
                data = self._reader.collect_delta()
                points = flatten(data)
            except Exception as exc:  # noqa: BLE001
                self._fault("metric collection", exc)
                if ok and write:
                    self.health[semconv.HEALTH_ROWS_DROPPED] += 1
                return {}
            try:
                accumulate(self.totals, points)
            except Exception as exc:  # noqa: BLE001
                self._fault("accumulate", exc)
            try:
                self.totals.health = {**self._extra_health(), **self.health}
                self.totals.health[semconv.HEALTH_ROWS_WRITTEN] += 1
                row = window_row(self.totals, window)
            except Exception as exc:  # noqa: BLE001
                self._fault("rollup", exc)
                if ok and write:
                    self.health[semconv.HEALTH_ROWS_DROPPED] += 1
                return {}
            if not row:
                return {}
            extras: dict[str, Any] = {}
            for make_extras in list(self.row_extras):
                try:
                    extras.update(make_extras(row, window) or {})
                except Exception as exc:  # noqa: BLE001
                    self._fault("row extras", exc)
            self._write(row, extras)
            self.rows.append(row)
            for listener in list(self.row_listeners):
                try:
                    listener(row, window)
                except Exception as exc:  # noqa: BLE001
                    self._fault("row listener", exc)
            return row

    def _write(self, row: dict[str, Any], extras: dict[str, Any] | None = None) -> None:
        if self._disabled:
            self.health[semconv.HEALTH_ROWS_WRITTEN] += 1
            return
        if self._run is not None and not self._own_run:
            import wandb

            if wandb.run is not self._run:  # the trainer finished (or replaced) the run we attached to
                self._run = None
        run = self._acquire_run()
        if run is None:
            self.health[semconv.HEALTH_ROWS_DROPPED] += 1
            return
        try:
            run.log({**row, **extras} if extras else row)
            self.health[semconv.HEALTH_ROWS_WRITTEN] += 1
            if getattr(self._cfg, "debug_logging", False):
                logger.info("otel-grpo: wrote row train/step=%s with %d keys", row.get("train/step"), len(row))
        except Exception as exc:  # noqa: BLE001
            self.health[semconv.HEALTH_ROWS_DROPPED] += 1
            self._fault("wandb.log", exc)

    def shutdown(self, finish_run: bool = True, timeout_s: float = 30.0) -> None:
        """Finish the run if otel-grpo started it; leave the trainer's run alone."""
        with self._lock:
            run, own = self._run, self._own_run
            self._run = None
        if run is None or not own or not finish_run or os.getpid() != self._pid:
            return
        start = time.monotonic()
        try:
            run.finish()
        except Exception as exc:  # noqa: BLE001
            self._fault("wandb.finish", exc)
        logger.debug("otel-grpo: run finished in %.2fs (budget %.0fs)", time.monotonic() - start, timeout_s)
