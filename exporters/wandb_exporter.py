"""The WandB exporter: writes one row per closed window, from the window's summary alone.

The recorder closes a training step or validation pass and hands its frozen
:class:`~otel_grpo.summary.WindowSummary` here (:meth:`WandbStepExporter.write`); the row is
made by the pure functions of :mod:`otel_grpo.exporters.rollup` and logged with
``train/step`` in it. This is the only writer of those keys, and it never reads what produced
the summary. Rows are logged *without* ``step=`` so they are never dropped when the host
trainer also calls ``wandb.log`` (with or without ``step=``); every key is plotted against
``train/step`` through ``define_metric``.

Faults never reach the trainer: an exception while collecting, rolling up or writing
is logged once per kind and counted in the exporter-health keys.

The run's life: rows go to the trainer's active run when there is one, else to a run
otel-grpo starts itself (from the ``wandb:`` config). When the trainer finishes the run
rows go to (``wandb.finish()`` finishes the global run, which may be otel-grpo's) and
training goes on, later rows go to the trainer's new run if it started one, else to a new
run of otel-grpo's own, with one warning. otel-grpo finishes only runs it started, at
:meth:`WandbStepExporter.shutdown` or at interpreter exit, before wandb's own exit hook
tears wandb's service down.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from otel_grpo import keys, semconv
from otel_grpo.exporters.rollup import Row, WindowRow, window_row
from otel_grpo.exporters.wandb_online import run_directory
from otel_grpo.faults import fault_guard, report_fault
from otel_grpo.summary import WindowSummary

if TYPE_CHECKING:
    from otel_grpo.config import WandbConfig

logger = logging.getLogger(__name__)

_FLUSH_ENV = "WANDB_X_TRANSACTION_LOG_FLUSH_INTERVAL"

_NAMESPACE_PREFIXES = tuple(keys.prefix(namespace) for namespace in keys.NAMESPACES)

RowListener = Callable[[Row, WindowSummary], None]
RowExtras = Callable[[WindowRow, WindowSummary], "Mapping[str, object] | None"]


class WandbStepExporter:
    """Writes one WandB row per closed window (:meth:`write`), and follows the run rows go to."""

    def __init__(
        self,
        wandb_config: WandbConfig,
        *,
        run_config: dict[str, Any] | None = None,
        extra_health: Callable[[], dict[str, int]] | None = None,
        keep_rows: int = 100,
    ) -> None:
        self._cfg = wandb_config
        self._run_config = run_config or {}
        self._extra_health = extra_health or (lambda: {})
        self._lock = threading.RLock()
        self._health_lock = threading.Lock()
        self.health = {semconv.HEALTH_ROWS_WRITTEN: 0, semconv.HEALTH_ROWS_DROPPED: 0, semconv.HEALTH_EXPORT_ERRORS: 0}
        self.rows: deque[Row] = deque(maxlen=keep_rows)
        self._run: Any = None
        self._summary_sources: set[str] = set()  # sources whose summary keys are known on the run
        self._summary_keys: set[str] = set(keys.SUMMARY_KEYS)  # keys whose latest value stays in the summary
        self._defined: set[str] = {keys.STEP}  # keys defined on the run (define_metric)
        self._own_run = False
        self._run_failed = False
        self._closed = False
        self._disabled = not wandb_config.enabled or wandb_config.mode == "disabled"
        self._train_steps_seen = 0
        self._pid = os.getpid()
        # Called with every row after it is written (an extension point: alerts, custom sinks).
        self.row_listeners: list[RowListener] = []
        # Extras (e.g. wandb.Table objects) logged in the same call as the row they belong to;
        # called with the rollup's WindowRow (the row and its per-source figures) and the window.
        self.row_extras: list[RowExtras] = []
        if not self._disabled:
            os.environ.setdefault(_FLUSH_ENV, str(wandb_config.flush_interval_s))

    # --- faults ----------------------------------------------------------------------------
    def _fault(self, kind: str, exc: BaseException) -> None:
        report_fault(f"WandB export ({kind})", exc, count=self._count_error)

    def _guard(self, kind: str) -> AbstractContextManager[None]:
        """A block whose exception is reported as a WandB export fault and swallowed."""
        return fault_guard(f"WandB export ({kind})", count=self._count_error)

    def _count_error(self) -> None:
        self.count(semconv.HEALTH_EXPORT_ERRORS)

    def count(self, event: str, amount: int = 1) -> None:
        """Add ``amount`` to the exporter-health count ``event`` (``exporter/{event}`` in the rows)."""
        with self._health_lock:
            self.health[event] = self.health.get(event, 0) + amount

    def health_counts(self) -> dict[str, int]:
        """Every exporter-health count so far (rows written/dropped, export errors, ...)."""
        with self._health_lock:
            return {**self._extra_health(), **self.health}

    # --- the run ---------------------------------------------------------------------------
    @property
    def run(self) -> Any:
        """The WandB run rows go to (None until the first row, or when disabled)."""
        return self._run

    def destination(self) -> str:
        """Where the rows go, for the start-up line: ``"WandB off"``, ``"WandB offline run in <dir>"``,
        ``"WandB online run in <dir> (the trainer's run, <url>)"``, or why there is no run."""
        if self._disabled:
            return "WandB off"
        run = self._run
        if run is None:
            if self._run_failed:
                return "WandB: no run could be started (rows are counted in exporter/rows_dropped)"
            return f"WandB: a {self._cfg.mode} run from the first row"
        offline = bool(getattr(run, "offline", False))
        details = [] if self._own_run else ["the trainer's run"]
        url = None if offline else getattr(run, "url", None)
        if url:
            details.append(str(url))
        where = f"WandB {'offline' if offline else 'online'} run in {run_directory(run)}"
        return f"{where} ({', '.join(details)})" if details else where

    def _acquire_run(self) -> Any:
        if self._run is not None or self._disabled or self._run_failed or self._closed:
            return self._run
        if os.getpid() != self._pid:
            return None
        import wandb

        active = wandb.run if self._cfg.attach_to_active_run else None
        if active is not None and getattr(active, "disabled", False):
            # The trainer disabled WandB for itself; our rows still need a home: a run of our own.
            logger.warning(
                "otel-grpo: the active WandB run is disabled; writing otel-grpo rows to a separate %s run",
                self._cfg.mode,
            )
            active = None
        if active is not None and _is_finished(active):
            active = None
        if active is not None:
            self._run, self._own_run = active, False
        else:
            self._run = self._start_run(wandb, separate=wandb.run is not None)
            self._own_run = self._run is not None
            if self._own_run:
                self._finish_before_wandb_teardown()
        if self._run is not None:
            self._define_metrics(self._run)
        return self._run

    def _start_run(self, wandb: Any, separate: bool = False) -> Any:
        from otel_grpo.exporters.wandb_run import start_run

        try:
            return start_run(wandb, self._cfg, self._run_config, separate=separate)
        except Exception as exc:  # noqa: BLE001 - never raise into the trainer
            self._run_failed = True
            self._fault("wandb.init", exc)
            return None

    def _run_gone(self, run: Any) -> bool:
        """True when rows can no longer go to ``run``: it was finished, or (the trainer's) replaced."""
        if _is_finished(run):
            return True
        if self._own_run:
            return False  # our own run lives until we finish it, whatever wandb.run is
        import wandb

        return wandb.run is not run

    def _live_run(self) -> Any:
        """The run to write to now; follows the trainer when it finished or replaced the current one."""
        run = self._run
        if run is not None and self._run_gone(run):
            self._move_on_from(run)
        return self._acquire_run()

    def _move_on_from(self, old: Any) -> None:
        """The run rows went to is gone: attach to the trainer's new run, else start one of our own."""
        finished, was_own = _is_finished(old), self._own_run
        self._run, self._own_run = None, False
        new = self._acquire_run()
        if not was_own and new is not None and not self._own_run:
            # The trainer finished (or replaced) its own run and started another: rows follow it, as
            # they followed the first one. Nothing unexpected happened, so no warning.
            logger.info(
                "otel-grpo: the trainer's WandB run %s ended; otel-grpo rows follow its new run %s",
                _describe(old),
                _describe(new),
            )
            return
        whose = "otel-grpo started" if was_own else "otel-grpo was writing to"
        if new is None:
            where = "nowhere: no new run could be started, later rows are counted in exporter/rows_dropped"
        elif self._own_run:
            where = f"a new run of otel-grpo's own, {_describe(new)}"
        else:
            where = f"the trainer's new run {_describe(new)}"
        what = "was finished (wandb.finish())" if finished else "is no longer the active run"
        logger.warning(
            "otel-grpo: the WandB run %s (%s) %s while training goes on; later otel-grpo rows go to %s",
            whose,
            _describe(old),
            what,
            where,
        )

    def _finish_before_wandb_teardown(self) -> None:
        """Finish our own run at exit *before* wandb's own exit hook tears its service down.

        ``atexit`` runs hooks last-in first-out, and wandb registers its teardown when the
        first run starts, i.e. after :func:`otel_grpo.setup` registered its shutdown. Without
        this hook our ``run.finish()`` would reach a service that is already gone.
        Re-registering moves the hook back in front when a later run is started.
        """
        atexit.unregister(self._finish_at_exit)
        atexit.register(self._finish_at_exit)

    def _finish_at_exit(self) -> None:
        if os.getpid() == self._pid:
            self.shutdown()

    def _define_metrics(self, run: Any) -> None:
        """Start over on a new run: ``train/step`` is defined, each other key when first written."""
        self._summary_sources.clear()
        self._summary_keys = set(keys.SUMMARY_KEYS)
        self._defined = {keys.STEP}
        with self._guard("wandb.define_metric"):
            run.define_metric(keys.STEP)

    def _define_row_keys(self, run: Any, row: Mapping[str, object]) -> None:
        """Plot each key of ``row`` (and of its tables) written for the first time against ``train/step``.

        Only otel-grpo's own keys are defined, one by one (never a glob), so the keys a host
        trainer logs into the same run (TRL's ``train/loss``, ...) keep their own x axis and
        summaries. Of otel-grpo's keys, only :data:`keys.SUMMARY_KEYS` and the per-source
        summary keys keep their latest value in ``run.summary`` (tables keep theirs).
        """
        new = [key for key in row if key not in self._defined]
        if not new:
            return
        sources = [s for s in keys.sources_in(new) if s not in self._summary_sources]
        self._summary_sources.update(sources)
        kept = self._summary_keys
        promoted = [k for source in sources for k in keys.summary_keys_of(source)]
        kept.update(promoted)
        with self._guard("wandb.define_metric"):
            for key in promoted:  # defined (without a summary) before its source's first row: redefined
                if key in self._defined:
                    run.define_metric(key, step_metric=keys.STEP)
            for key in new:
                if key in kept or not key.startswith(_NAMESPACE_PREFIXES):  # a summary key, or a table
                    run.define_metric(key, step_metric=keys.STEP)
                else:
                    run.define_metric(key, step_metric=keys.STEP, summary="none")
                self._defined.add(key)

    def start(self) -> Any:
        """Start (or attach to) the run now instead of at the first row."""
        with self._lock:
            return self._acquire_run()

    # --- rows ------------------------------------------------------------------------------
    def write(self, summary: WindowSummary) -> None:
        """Write the row of a closed window. Never raises.

        A step that raised, a train step ``log_frequency`` skips and a validation pass with no
        sample get no row.
        """
        if os.getpid() != self._pid:  # a forked child never writes
            return
        with self._lock:
            if not self._row_due(summary):
                return
            try:
                health = self.health_counts()
                health[semconv.HEALTH_ROWS_WRITTEN] += 1  # this row included
                written = window_row(summary, health)
            except Exception as exc:  # noqa: BLE001 - never raise into the trainer
                self._fault("rollup", exc)
                self.count(semconv.HEALTH_ROWS_DROPPED)
                return
            if not written.data:
                return
            row = written.data
            self._write(row, self._extras(written, summary))
            self.rows.append(row)
            for listener in list(self.row_listeners):
                with self._guard("row listener"):
                    listener(row, summary)

    def _row_due(self, summary: WindowSummary) -> bool:
        """False for a step that raised and for a train step that ``log_frequency`` skips."""
        if not summary.ok:
            return False
        if summary.split != semconv.SPLIT_TRAIN:
            return True
        self._train_steps_seen += 1
        frequency = self._cfg.log_frequency
        step = summary.step
        return step % frequency == 0 if step else self._train_steps_seen % frequency == 0

    def _extras(self, written: WindowRow, window: WindowSummary) -> dict[str, object]:
        """What the :attr:`row_extras` add to the row's ``log`` call (nothing when WandB is disabled)."""
        extras: dict[str, object] = {}
        if self._disabled:
            return extras
        for make_extras in list(self.row_extras):
            with self._guard("row extras"):
                extras.update(make_extras(written, window) or {})
        return extras

    def _write(self, row: Row, extras: Mapping[str, object]) -> bool:
        """Log ``row`` (and its extras, in the same call); False when it was dropped."""
        if self._disabled:
            self.count(semconv.HEALTH_ROWS_WRITTEN)
            return True
        data = {**row, **extras} if extras else row
        for attempt in (1, 2):
            run = self._live_run()
            if run is None:
                self.count(semconv.HEALTH_ROWS_DROPPED)
                return False
            try:
                self._define_row_keys(run, data)
                run.log(data)
            except Exception as exc:  # noqa: BLE001
                if attempt == 1 and self._run_gone(run):  # finished between the check and the log: once more
                    continue
                self.count(semconv.HEALTH_ROWS_DROPPED)
                self._fault("wandb.log", exc)
                return False
            self.count(semconv.HEALTH_ROWS_WRITTEN)
            if self._cfg.debug_logging:
                logger.info("otel-grpo: wrote row %s=%s with %d keys", keys.STEP, row.get(keys.STEP), len(row))
            return True
        return False

    def shutdown(self, timeout_millis: float = 30_000, *, finish_run: bool = True) -> None:
        """Finish the run if otel-grpo started it; leave the trainer's run alone. Later rows are dropped."""
        with self._lock:
            run, own = self._run, self._own_run
            self._run = None
            self._closed = True
        atexit.unregister(self._finish_at_exit)
        if run is None or not own or not finish_run or os.getpid() != self._pid:
            return
        if _is_finished(run):  # the trainer finished it already
            return
        if _wandb_torn_down():
            # wandb's own exit hook ran first (or the program called wandb.teardown()): wandb-core
            # finished every run, with all its rows and an exit record. Finishing again can only fail.
            logger.debug("otel-grpo: wandb was torn down already; run %s was finished by it", _describe(run))
            return
        start = time.monotonic()
        with self._guard("wandb.finish"):
            run.finish()
        logger.debug("otel-grpo: run finished in %.2fs (budget %.0fs)", time.monotonic() - start, timeout_millis / 1000)


def _is_finished(run: Any) -> bool:
    """True when ``run`` was finished (by anyone): ``run.log`` on it raises ``UsageError``."""
    return getattr(run, "_is_finished", False) is True


def _describe(run: Any) -> str:
    """``id`` and directory of ``run``, for log lines."""
    if run is None:
        return "-"
    try:
        where = getattr(run, "dir", None)
        return f"{run.id} in {os.path.dirname(where)}" if where else str(run.id)
    except Exception:  # noqa: BLE001 - only for a log line
        return "?"


def _wandb_torn_down() -> bool:
    """True when wandb's service connection in this process is gone (its exit hook ran)."""
    try:
        from wandb.sdk import wandb_setup

        singleton = wandb_setup._singleton
        if singleton is None:
            return True
        connection = getattr(singleton, "_connection", None)
        return connection is None or getattr(connection, "_torn_down", False) is True
    except Exception:  # noqa: BLE001 - wandb internals changed: assume it is not, and try to finish
        return False
