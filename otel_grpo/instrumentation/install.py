"""One ``install()`` for every entry point: what otel-grpo patches in a process, and nothing else does.

Every way of starting otel-grpo goes through :func:`install`, after
:func:`otel_grpo.api.setup` has built the telemetry:

========================================  ==========================================================
entry point                               what it installs
========================================  ==========================================================
``otel_grpo.setup()``                     the LLM HTTP instrumentation; Ray call tracking
``otel_grpo.instrument_trainer(t)``       + the roles found on the trainer object ``t``
``otel-grpo run`` /                       + the configured targets (``instrumentation.targets``),
``opentelemetry-instrument``              patched when their modules are imported
a Ray worker (first tracked call)         + the methods the driver wrapped (its capturing recorder)
========================================  ==========================================================

``instrumentation.http: false`` leaves every HTTP client class alone; ``instrumentation.enabled:
false`` (and ``OTEL_SDK_DISABLED=true``) patches nothing. Extensions (the Ray scale-out) register
themselves with :func:`register_extension` and run at every install.
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Callable, Iterable
from typing import Any

import wrapt

from otel_grpo import api
from otel_grpo.api import Telemetry, get_telemetry
from otel_grpo.config import InstrumentationConfig, TargetsConfig, parse_target
from otel_grpo.config.env import sdk_disabled
from otel_grpo.faults import fault_guard
from otel_grpo.instrumentation.launch import worker_overrides
from otel_grpo.instrumentation.patching import patch_method, unpatch_all
from otel_grpo.instrumentation.report import (
    announce_startup,
    report_instrumented,
    set_targets_hint,
    target_appeared,
    warn_at_exit,
    watch_targets,
)
from otel_grpo.instrumentation.roles import ROLE_WRAPPERS
from otel_grpo.instrumentation.trainer import defining_class, trainer_targets

logger = logging.getLogger(__name__)

Extension = Callable[[Telemetry], None]
TrainerHandler = Callable[[Telemetry, Any], bool]
_extensions: list[tuple[Extension, bool]] = []  # (extension, only with the configured targets)
_trainer_handlers: list[TrainerHandler] = []
_exit_warning = False

TARGETS = "targets"
TRAINER = "trainer"
WORKER = "worker"


def register_extension(extension: Extension, *, targets_only: bool = False) -> None:
    """Run ``extension(telemetry)`` at every :func:`install` from now on (``targets_only``: only when the
    configured targets are patched, i.e. under ``otel-grpo run`` / ``opentelemetry-instrument``). Idempotent."""
    if all(extension is not known for known, _ in _extensions):
        _extensions.append((extension, targets_only))


def register_trainer_handler(handler: TrainerHandler) -> None:
    """``handler(telemetry, trainer)`` instruments the trainers it recognises (returns True for those);
    ``instrument_trainer`` asks every handler before looking for the configured roles. Idempotent."""
    if handler not in _trainer_handlers:
        _trainer_handlers.append(handler)


def setup(config: Any = None, **options: Any) -> Telemetry:
    """Start otel-grpo, make it current, and install what the manual API needs: ``otel_grpo.setup()``.

    The arguments are :func:`otel_grpo.api.setup`'s. The LLM HTTP instrumentation is installed
    (unless ``instrumentation.http`` is false), so the judge requests a hand-instrumented loop
    makes are recorded like those of a wrapped trainer.
    """
    telemetry = api.setup(config, **{**worker_overrides(), **options})
    install(telemetry)
    return telemetry


def install(
    telemetry: Telemetry,
    *,
    targets: bool = False,
    trainer: Any = None,
    methods: Iterable[tuple[str, str, str]] | None = None,
) -> list[tuple[str, str]]:
    """Install otel-grpo's patches for ``telemetry`` (idempotent); the ``(role, Class.method)`` wrapped now.

    ``targets``: patch the configured ``instrumentation.targets`` when their modules are imported
    (``otel-grpo run``); ``trainer``: patch the roles found on this object (``instrument_trainer``);
    ``methods``: ``(module, Class.method, role)`` to patch when imported, in a Ray worker (which also
    patches the configured targets, but does not judge them: it imports only what its calls need).
    Never raises.
    """
    options = telemetry.config.instrumentation
    if methods is None and not sdk_disabled():  # a Ray worker's driver says what is recorded
        telemetry.at_first_row(lambda: announce_startup(telemetry))  # the start-up line, at the first row
    if not options.enabled:
        return []
    wrapped: list[tuple[str, str]] = []
    with fault_guard("install"):
        if options.http:
            _install_http()
        if targets:
            _patch_targets(options, judge_targets=methods is None)
        for module_name, qualname, role in methods or ():
            _patch_on_import(options, module_name, qualname, role, WORKER)
        if trainer is not None and not _handled(telemetry, trainer):
            wrapped = _patch_trainer(options, trainer)
    for extension, targets_only in list(_extensions):
        if targets or not targets_only:
            with fault_guard("install extension"):
                extension(telemetry)
    return wrapped


def _handled(telemetry: Telemetry, trainer: Any) -> bool:
    """True when a registered handler instrumented ``trainer`` (a trainer family of its own: TRL)."""
    return any(handler(telemetry, trainer) for handler in list(_trainer_handlers))


def _install_http() -> None:
    try:
        from otel_grpo.instrumentation.llm_http import instrument_http
    except ImportError:  # pragma: no cover - the core always has it
        logger.debug("otel-grpo: LLM HTTP instrumentation unavailable")
        return
    instrument_http(get_telemetry)


def _patch_targets(options: InstrumentationConfig, judge_targets: bool) -> None:
    """Patch each configured target when its module is imported; with ``judge_targets``, warn about
    those that never appear."""
    global _exit_warning
    targets = options.targets.enabled_targets()
    set_targets_hint(targets)
    if judge_targets:  # a module never imported (a typo in its name) is warned about too
        watch_targets(_written(targets))
    for role, target in targets.items():
        module_name, qualname = parse_target(target)
        _patch_on_import(options, module_name, qualname, role, TARGETS)
    if judge_targets and not _exit_warning:
        _exit_warning = True
        atexit.register(warn_at_exit)


def _written(targets: dict[str, str]) -> dict[str, str]:
    """The targets the user wrote: those that differ from the built-in defaults.

    A default whose module does not exist is not a typo: the trainer is of another shape (TRL's,
    a hand-instrumented loop) and never had those modules. If nothing records a training step,
    the "no training step" warning still says so.
    """
    defaults = TargetsConfig().enabled_targets()
    return {role: target for role, target in targets.items() if defaults.get(role) != target}


def _patch_on_import(options: InstrumentationConfig, module_name: str, qualname: str, role: str, origin: str) -> None:
    """Wrap ``module_name:qualname`` for ``role`` once its module is imported (at once if it is)."""
    if role not in ROLE_WRAPPERS or module_name == "__main__" or "<locals>" in qualname:
        return  # a class only the main script defines cannot be found by name
    wrapper = ROLE_WRAPPERS[role](options)

    def patch(module: Any) -> None:
        if origin == TARGETS:
            target_appeared(role)
        owner, attr = _resolve(module, module_name, qualname)
        if owner is not None and patch_method(owner, attr, wrapper, role, origin):
            report_instrumented([(role, f"{module_name}:{qualname}")])

    wrapt.register_post_import_hook(_guarded(patch), module_name)


def _guarded(patch: Callable[[Any], None]) -> Callable[[Any], None]:
    def run(module: Any) -> None:
        with fault_guard("patching"):
            patch(module)

    return run


def _resolve(module: Any, module_name: str, qualname: str) -> tuple[type | None, str]:
    """The class that holds ``qualname``'s method in ``module``, with a warning when there is none."""
    *path, attr = qualname.split(".")
    owner: Any = module
    try:
        for part in path:
            owner = getattr(owner, part)
        getattr(owner, attr)
    except AttributeError:
        logger.warning(
            "otel-grpo: target %s:%s not found in module %s; check instrumentation.targets",
            module_name,
            qualname,
            module_name,
        )
        return None, attr
    if not isinstance(owner, type):
        logger.warning(
            "otel-grpo: target %s:%s is not a method of a class; check instrumentation.targets", module_name, qualname
        )
        return None, attr
    return owner, attr


def _patch_trainer(options: InstrumentationConfig, trainer: Any) -> list[tuple[str, str]]:
    """Wrap the roles found on ``trainer`` (and its executor and reward computer) on their classes."""
    set_targets_hint(options.targets.enabled_targets())
    wrapped: list[tuple[str, str]] = []
    missing: list[str] = []
    for owner, method, role in trainer_targets(trainer, options):
        klass = defining_class(owner, method)
        if klass is None:
            missing.append(f"{type(owner).__name__}.{method}")
        elif patch_method(klass, method, ROLE_WRAPPERS[role](options), role, TRAINER):
            wrapped.append((role, f"{klass.__name__}.{method}"))
    if missing:
        logger.warning("otel-grpo: %s are not methods of their class and are not recorded", ", ".join(missing))
    report_instrumented(wrapped)
    return wrapped


def instrument_trainer(trainer: Any, **setup_overrides: Any) -> Any:
    """Wrap the step, validation, executor, reward and judge methods of ``trainer``: ``otel_grpo.instrument_trainer``.

    The methods are wrapped on the objects' classes, so the objects themselves carry
    nothing of otel-grpo: they pickle, copy and cross process boundaries exactly as
    before. Sets otel-grpo up with defaults first if :func:`otel_grpo.setup` was not
    called (``setup_overrides`` go to it). Idempotent: instrumenting twice wraps once.
    Returns ``trainer``.
    """
    tel = get_telemetry() or setup(**setup_overrides)
    install(tel, trainer=trainer)
    return trainer


def uninstrument_trainer(trainer: Any) -> Any:
    """Remove every wrapper :func:`instrument_trainer` put in place."""
    unpatch_all(TRAINER)
    return trainer


__all__ = [
    "TARGETS",
    "TRAINER",
    "WORKER",
    "install",
    "instrument_trainer",
    "register_extension",
    "register_trainer_handler",
    "setup",
    "uninstrument_trainer",
]
