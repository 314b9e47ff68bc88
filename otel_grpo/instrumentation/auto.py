"""Zero-code instrumentation: patch the configured ``module:Class.method`` targets on import.

:class:`GrpoInstrumentor` is registered under the ``opentelemetry_instrumentor`` entry
point, so ``opentelemetry-instrument python train.py`` loads it; ``otel-grpo run``
loads it through its own bootstrap. Targets default to the trainer of
trainer-shape.md and are changed in the config's ``instrumentation.targets``.
"""

from __future__ import annotations

import atexit
import logging
from collections.abc import Collection
from typing import Any

import wrapt
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from otel_grpo.api import get_telemetry, setup
from otel_grpo.config import parse_target
from otel_grpo.instrumentation.patching import patch_method, unpatch_method
from otel_grpo.instrumentation.report import (
    report_instrumented,
    set_targets_hint,
    target_appeared,
    warn_at_exit,
    watch_targets,
)
from otel_grpo.instrumentation.wrappers import ROLE_WRAPPERS

logger = logging.getLogger(__name__)


def _resolve_owner(module: Any, qualname: str) -> tuple[Any, str]:
    parts = qualname.split(".")
    owner = module
    for part in parts[:-1]:
        owner = getattr(owner, part)
    return owner, parts[-1]


def _sdk_providers() -> dict[str, Any]:
    """Reuse providers that ``opentelemetry-instrument`` built with our step reader."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    from otel_grpo.exporters.step_reader import StepMetricReader

    reader = StepMetricReader.latest()
    meter_provider = metrics.get_meter_provider()
    if reader is None or not isinstance(meter_provider, MeterProvider):
        return {}
    tracer_provider = trace.get_tracer_provider()
    return {
        "step_reader": reader,
        "meter_provider": meter_provider,
        "tracer_provider": tracer_provider if isinstance(tracer_provider, TracerProvider) else None,
    }


class GrpoInstrumentor(BaseInstrumentor):
    """Patches the trainer roles named in the config when their modules are imported."""

    def __init__(self) -> None:
        self._patched: list[tuple[str, str]] = []

    def instrumentation_dependencies(self) -> Collection[str]:
        """No library requirement: the targets are the user's own modules."""
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        tel = get_telemetry()
        if tel is None:
            from otel_grpo.instrumentation.trl import worker_overrides

            tel = setup(kwargs.get("config"), **_sdk_providers(), **worker_overrides())
        options = tel.config.instrumentation
        if not options.enabled:
            return
        targets = options.targets.enabled_targets()
        set_targets_hint(targets)
        watch_targets(targets)  # a module never imported (a typo in its name) is warned about too
        for role, target in targets.items():
            module_name, qualname = parse_target(target)
            wrapper = ROLE_WRAPPERS[role](options)
            wrapt.register_post_import_hook(self._patcher(module_name, qualname, wrapper, role), module_name)
        atexit.register(warn_at_exit)
        from otel_grpo.instrumentation.ray import watch_ray
        from otel_grpo.instrumentation.trl import watch_trl

        watch_ray()  # workers of the trainer's Ray calls, if it makes any
        watch_trl()  # every trl.GRPOTrainer, once TRL is imported
        try:
            from otel_grpo.instrumentation.llm_http import instrument_http

            instrument_http(get_telemetry)
        except ImportError:
            logger.debug("otel-grpo: judge HTTP instrumentation unavailable")

    def _patcher(self, module_name: str, qualname: str, wrapper: Any, role: str) -> Any:
        def patch(module: Any) -> None:
            target_appeared(role)
            try:
                owner, attr = _resolve_owner(module, qualname)
                getattr(owner, attr)
            except AttributeError:
                logger.warning(
                    "otel-grpo: target %s:%s not found in module %s; check instrumentation.targets",
                    module_name,
                    qualname,
                    module_name,
                )
                return
            if not isinstance(owner, type):
                logger.warning(
                    "otel-grpo: target %s:%s is not a method of a class; check instrumentation.targets",
                    module_name,
                    qualname,
                )
                return
            if patch_method(owner, attr, wrapper, role):
                self._patched.append((module_name, qualname))
                report_instrumented([(role, f"{module_name}:{qualname}")], announce=False)

        return patch

    def _uninstrument(self, **kwargs: Any) -> None:
        import sys

        for module_name, qualname in self._patched:
            module = sys.modules.get(module_name)
            if module is None:
                continue
            try:
                owner, attr = _resolve_owner(module, qualname)
            except AttributeError:
                continue
            unpatch_method(owner, attr)
        self._patched.clear()
        from otel_grpo.instrumentation.trl import uninstrument_trl

        uninstrument_trl()
        try:
            from otel_grpo.instrumentation.llm_http import uninstrument_http

            uninstrument_http()
        except ImportError:
            pass
