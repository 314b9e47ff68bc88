"""Process start and end hooks for ``otel-grpo run`` (auto-instrumentation)."""

from __future__ import annotations

import atexit
import logging
import os
import signal
import traceback
from typing import Any

logger = logging.getLogger(__name__)

CONFIG_ENV = "OTEL_GRPO_CONFIG"
_started = False


def start_from_environment() -> None:
    """Set up otel-grpo from ``$OTEL_GRPO_CONFIG`` and patch the configured targets.

    Under ``OTEL_SDK_DISABLED=true`` nothing at all: no setup, no patch, no exit or
    signal hook; one log line says so.
    """
    global _started
    if _started:
        return
    _started = True
    from otel_grpo.config.env import announce_sdk_disabled, sdk_disabled

    if sdk_disabled():
        announce_sdk_disabled()
        return
    from otel_grpo.instrumentation.launch import hand_over_to_workers

    if hand_over_to_workers():  # a launcher (accelerate launch, torchrun): its training processes start otel-grpo
        return
    from otel_grpo.instrumentation.auto import GrpoInstrumentor

    GrpoInstrumentor().instrument(config=os.environ.get(CONFIG_ENV) or None)
    install_exit_hooks()


def _shutdown(finish_any_run: bool = False) -> None:
    """Flush and stop otel-grpo; with ``finish_any_run`` also finish the trainer's run. Never raises.

    At a normal exit this runs after wandb's own exit hook (``atexit`` is last-in first-out
    and it was registered first); otel-grpo's own run has been finished by then by the
    exporter's exit hook, which runs before wandb's teardown.
    """
    try:
        from otel_grpo.api import get_telemetry

        tel = get_telemetry()
        if tel is None:
            return
        run = tel.run
        tel.shutdown()
        if finish_any_run and run is not None and not getattr(run, "_is_finished", False):
            run.finish()
    except Exception as exc:  # noqa: BLE001 - an exit hook must never turn a clean exit into a traceback
        from otel_grpo.redact import redact_text

        logger.warning(
            "otel-grpo: flushing telemetry at exit failed (%s: %s)", type(exc).__qualname__, redact_text(str(exc))[:300]
        )
        logger.debug("otel-grpo: exit hook failure\n%s", redact_text(traceback.format_exc()))


def install_exit_hooks() -> None:
    """Flush at exit; on SIGTERM (when the default action is in place) flush, finish, then die."""
    atexit.register(_shutdown)
    try:
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _on_sigterm)
    except ValueError:  # not the main thread
        pass


def _on_sigterm(signum: int, frame: Any) -> None:
    logger.warning("otel-grpo: SIGTERM: flushing telemetry and finishing the WandB run")
    try:
        _shutdown(finish_any_run=True)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)
