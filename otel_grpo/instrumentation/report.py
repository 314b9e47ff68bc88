"""Saying once what is recorded and where, and warning when a configured target never was.

The start-up line (:func:`announce_startup`), once per setup, at the first row (when the WandB
run has started, so its directory is known): what is recorded (the wrapped methods and their
roles, or the manual API), where the rows go (the WandB run directory, or "WandB off"), the
Prometheus URL and the OTLP endpoint when there are. ``announce: false`` in the config, or
``WANDB_SILENT=true``, turns it off.

A target whose module or class name does not match the trainer (a typo in
``instrumentation.targets``, a renamed class) would otherwise do nothing, silently:
no rows, or rows whose figures for that role stay at zero. So otel-grpo warns, naming the
target and ``instrumentation.targets``:

- when a target's module is imported but has no such class or method (at the import);
- when a target's module cannot be found at all (at the first recorded call, usually the
  first training step), or was never imported (at exit) - :func:`watch_targets`;
- when a recorded call or the end of the program comes without any training step
  having been instrumented (this one covers the ``train_step`` target).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from otel_grpo.api import Telemetry

logger = logging.getLogger(__name__)

TRAIN_STEP_ROLE = "train_step"


class _Report:
    lock = threading.Lock()
    wrapped: dict[str, str] = {}  # "Class.method" -> role
    warned = False
    announced = False
    targets_hint = ""
    watched: dict[str, str] = {}  # role -> "module:Class.method" whose module is awaited (otel-grpo run)
    appeared: set[str] = set()  # roles whose module has been imported
    target_warned: set[str] = set()  # roles already warned about


def set_targets_hint(targets: dict[str, str]) -> None:
    """Remember the configured targets, to name them in the warning."""
    _Report.targets_hint = ", ".join(f"{role}={target}" for role, target in sorted(targets.items()))


def report_instrumented(wrapped: Iterable[tuple[str, str]]) -> None:
    """Remember the methods just wrapped (``(role, "Class.method")`` pairs), for the start-up line."""
    new = [(role, label) for role, label in wrapped]
    if not new:
        return
    with _Report.lock:
        for role, label in new:
            _Report.wrapped[label] = role
    logger.debug("otel-grpo: instrumented %s", ", ".join(f"{label} ({role})" for role, label in new))


def startup_line(telemetry: Telemetry) -> str:
    """``otel-grpo: recording <what>; <where the WandB rows go>[; Prometheus metrics at <url>][; OTLP to <url>]``."""
    with _Report.lock:
        what = _listing() if _Report.wrapped else "the manual API"
    if telemetry.config.instrumentation.http:
        what += " and LLM HTTP requests"
    parts = [f"otel-grpo: recording {what}", telemetry.exporter.destination()]
    if telemetry.prometheus_url:
        parts.append(f"Prometheus metrics at {telemetry.prometheus_url}")
    otlp = telemetry.config.otlp
    if otlp.enabled and (otlp.metrics or otlp.traces):
        from otel_grpo.exporters.otlp.endpoints import redact_url, signal_endpoint

        signal = "metrics" if otlp.metrics else "traces"
        parts.append(f"OTLP to {redact_url(signal_endpoint(otlp.endpoint, otlp.protocol, signal))}")
    return "; ".join(parts)


def announce_startup(telemetry: Telemetry) -> None:
    """Say the start-up line (:func:`startup_line`), unless ``announce`` is off (``WANDB_SILENT=true``).

    It is an INFO record of this logger. When the program's logging would show it (``otel-grpo
    run``, a program logging otel-grpo's INFO records) it goes there; when the program set up no
    logging at all, to stderr through a handler of its own, as wandb's own lines go to stderr.
    A program that set logging up without INFO for otel-grpo does not get it.
    """
    if not telemetry.config.announce:
        return
    line = startup_line(telemetry)
    if logger.isEnabledFor(logging.INFO):
        logger.info(line)
    elif not logger.hasHandlers():
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler.handle(logger.makeRecord(logger.name, logging.INFO, __file__, 0, line, (), None))


def watch_targets(targets: Mapping[str, str]) -> None:
    """Expect the modules of ``targets`` (role -> ``module:Class.method``) to be imported.

    A target whose module cannot be found is warned about at the first recorded call
    (:func:`first_call`); one whose module was never imported, at exit (:func:`warn_at_exit`).
    """
    with _Report.lock:
        _Report.watched = dict(targets)
        _Report.appeared = set()
        _Report.target_warned = set()


def target_appeared(role: str) -> None:
    """The module of ``role``'s target has been imported (its class is checked there)."""
    with _Report.lock:
        _Report.appeared.add(role)


def _claim_target_warning(role: str) -> bool:
    """True once per role not yet instrumented nor warned about (the caller warns)."""
    with _Report.lock:
        if role in _Report.target_warned or role in _Report.appeared:
            return False
        _Report.target_warned.add(role)
        return True


def check_targets(at_exit: bool) -> list[str]:
    """Warn once per target whose module cannot be found or, ``at_exit``, was never imported.

    Returns the roles warned about now. Never imports a module.
    """
    from otel_grpo.config.targets import module_findable, target_module

    with _Report.lock:
        done = _Report.appeared | _Report.target_warned | {TRAIN_STEP_ROLE}  # train_step: warn_if_no_train_step
        pending = {r: t for r, t in _Report.watched.items() if r not in done}
    if not pending:  # a Ray worker watches no targets: it imports only what its calls need
        return []
    warned = []
    for role, target in sorted(pending.items()):
        module = target_module(target)
        if module in sys.modules:  # imported: its post-import hook checks the class
            continue
        findable = module_findable(module)
        if (findable and not at_exit) or not _claim_target_warning(role):
            continue  # a module that can be found may still be imported later
        warned.append(role)
        logger.warning(
            "otel-grpo: target %s=%s is not instrumented: module %s %s, so %s calls are not recorded. "
            "Check instrumentation.targets in your telemetry config (module, class and method must "
            "match your trainer; null turns a target off).",
            role,
            target,
            module,
            "was never imported" if findable else "cannot be found (a typo?)",
            role,
        )
    return warned


def first_call(role: str, steps_seen: bool) -> None:
    """The first call of any instrumented method: warn about targets whose module cannot be
    found, and warn if no training step is instrumented."""
    with _Report.lock:
        if _Report.announced:
            return
        _Report.announced = True
    check_targets(at_exit=False)
    if role != TRAIN_STEP_ROLE:
        warn_if_no_train_step(f"{role} was called", steps_seen)


def _listing() -> str:
    return ", ".join(f"{label} ({role})" for label, role in sorted(_Report.wrapped.items())) or "nothing"


def train_step_instrumented() -> bool:
    """True once a training-step method has been wrapped in this process."""
    return TRAIN_STEP_ROLE in _Report.wrapped.values()


def warn_if_no_train_step(when: str, steps_seen: bool = False) -> bool:
    """Warn once if no training step is instrumented and none was opened by hand (``steps_seen``).

    ``when`` says what prompted the check ("compute_reward was called", "the program ends").
    """
    if _Report.warned or steps_seen or train_step_instrumented():
        return False
    with _Report.lock:
        if _Report.warned:
            return False
        _Report.warned = True
    done = _listing()
    logger.warning(
        "otel-grpo: %s, but no training step has been instrumented (instrumented: %s), so no per-step "
        "rows are written. Check instrumentation.targets in your telemetry config (now: %s): module, "
        "class and method must match your trainer.",
        when,
        done,
        _Report.targets_hint or "the defaults",
    )
    return True


def warn_at_exit() -> None:
    """At interpreter exit: warn about targets never instrumented, and if the program ran
    without a single training-step window."""
    from otel_grpo.api import train_windows_opened

    check_targets(at_exit=True)
    warn_if_no_train_step("the program ends", steps_seen=train_windows_opened() > 0)


def reset() -> None:
    """Forget everything (tests)."""
    with _Report.lock:
        _Report.wrapped = {}
        _Report.warned = False
        _Report.announced = False
        _Report.watched = {}
        _Report.appeared = set()
        _Report.target_warned = set()


__all__ = [
    "announce_startup",
    "check_targets",
    "first_call",
    "report_instrumented",
    "reset",
    "set_targets_hint",
    "startup_line",
    "target_appeared",
    "train_step_instrumented",
    "warn_at_exit",
    "warn_if_no_train_step",
    "watch_targets",
]
