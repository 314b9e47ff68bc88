"""Putting otel-grpo on ``trl.GRPOTrainer``: two methods wrapped on the class, a callback per trainer.

* ``GRPOTrainer._calculate_rewards`` is wrapped on TRL's class (subclasses inherit it): for
  a trainer otel-grpo instruments, :meth:`TrlSession.score` runs around it; for any other
  it is a plain call.
* ``GRPOTrainer.__init__`` is wrapped under ``otel-grpo run`` (:func:`watch_trl`, an install
  extension for the configured targets), so every trainer, of TRL's class or a subclass, is
  instrumented as it is made; ``instrument_trainer(trainer)`` reaches :func:`attach_trainer`
  (an install trainer handler).

Nothing is stored on the trainer: its session lives in a weak mapping here.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

from otel_grpo.api import Telemetry, get_telemetry
from otel_grpo.faults import fault_guard
from otel_grpo.instrumentation.install import TARGETS, TRAINER
from otel_grpo.instrumentation.patching import patch_method, unpatch_method
from otel_grpo.instrumentation.report import TRAIN_STEP_ROLE, report_instrumented

logger = logging.getLogger(__name__)

MODULE = "trl.trainer.grpo_trainer"
_sessions: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_patched: list[tuple[type, str]] = []


def grpo_class() -> type | None:
    """TRL's ``GRPOTrainer`` class when TRL is imported (TRL is never imported here)."""
    import sys

    module = sys.modules.get(MODULE)
    return getattr(module, "GRPOTrainer", None) if module is not None else None


def is_trl_trainer(obj: Any) -> bool:
    """True for an instance of ``trl.GRPOTrainer`` or of a subclass."""
    cls = grpo_class()
    return cls is not None and isinstance(obj, cls)


def _rewards_wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    session = _sessions.get(instance) if instance is not None else None
    if session is None:
        return wrapped(*args, **kwargs)
    return session.score(instance, wrapped, args, kwargs)


def _init_wrapper(wrapped: Any, instance: Any, args: tuple, kwargs: dict) -> Any:
    result = wrapped(*args, **kwargs)
    with fault_guard("TRL trainer instrumentation"):  # on a fault the trainer works as without otel-grpo
        attach(instance)
    return result


def patch_class(cls: type, with_init: bool) -> None:
    """Wrap ``_calculate_rewards`` (and, with ``with_init``, ``__init__``) on TRL's ``GRPOTrainer``."""
    methods = ["_calculate_rewards", "__init__"] if with_init else ["_calculate_rewards"]
    for name in methods:
        wrapper = _rewards_wrapper if name == "_calculate_rewards" else _init_wrapper
        origin = TARGETS if with_init else TRAINER  # undone with the targets, or with uninstrument_trainer
        if hasattr(cls, name) and patch_method(cls, name, wrapper, "trl", origin):
            _patched.append((cls, name))


def attach(trainer: Any) -> bool:
    """Instrument one trainer: its session and callback (idempotent). False when otel-grpo is off for TRL."""
    tel = get_telemetry()
    if tel is None or trainer in _sessions:
        return trainer in _sessions
    options = tel.config.instrumentation
    if not options.enabled or not options.trl.enabled:
        return False
    from otel_grpo.instrumentation.trl.callback import OtelGrpoCallback
    from otel_grpo.instrumentation.trl.session import TrlSession

    session = TrlSession(trainer, options.trl)
    _sessions[trainer] = session
    trainer.add_callback(OtelGrpoCallback(session))
    what = f"{type(trainer).__name__} (TRL GRPOTrainer, process {session.process_index} of {session.num_processes})"
    report_instrumented([(TRAIN_STEP_ROLE, what)])  # the start-up line names it, at the main process's first row
    return True


def attach_trainer(telemetry: Telemetry, trainer: Any) -> bool:
    """``instrument_trainer(trainer)`` for a TRL trainer (an install trainer handler): True when ``trainer``
    is one (then it is instrumented here; call it on every process, as a training script does)."""
    if not is_trl_trainer(trainer):
        return False
    if telemetry.config.instrumentation.trl.enabled:
        cls = grpo_class()
        if cls is not None:
            patch_class(cls, with_init=False)
        attach(trainer)
    return True


def _on_import(module: Any) -> None:
    tel = get_telemetry()
    if tel is None or not tel.config.instrumentation.trl.enabled:
        return
    cls = getattr(module, "GRPOTrainer", None)
    if isinstance(cls, type):
        patch_class(cls, with_init=True)


def watch_trl(_telemetry: Any = None) -> None:
    """Instrument every ``GRPOTrainer`` made once TRL is imported (an import hook; TRL is not imported)."""
    import wrapt

    wrapt.register_post_import_hook(_on_import, MODULE)


def uninstrument_trl() -> None:
    """Remove the class wrappers and forget every session."""
    while _patched:
        cls, name = _patched.pop()
        unpatch_method(cls, name)
    for session in list(_sessions.values()):
        session.requests.stop()
    _sessions.clear()
