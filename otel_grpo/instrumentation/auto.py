"""Zero-code instrumentation: patch the configured ``module:Class.method`` targets on import.

:class:`GrpoInstrumentor` is registered under the ``opentelemetry_instrumentor`` entry
point, so ``opentelemetry-instrument python train.py`` loads it; ``otel-grpo run``
loads it through its own bootstrap. Targets default to the trainer of
trainer-shape.md and are changed in the config's ``instrumentation.targets``.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]

from otel_grpo.api import get_telemetry, setup
from otel_grpo.instrumentation.install import TARGETS, install
from otel_grpo.instrumentation.launch import worker_overrides
from otel_grpo.instrumentation.patching import unpatch_all

logger = logging.getLogger(__name__)


def _sdk_providers() -> dict[str, Any]:
    """Reuse the providers ``opentelemetry-instrument`` built (its readers then publish our instruments)."""
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.trace import TracerProvider

    meter_provider = metrics.get_meter_provider()
    if not isinstance(meter_provider, MeterProvider):
        return {}
    tracer_provider = trace.get_tracer_provider()
    return {
        "meter_provider": meter_provider,
        "tracer_provider": tracer_provider if isinstance(tracer_provider, TracerProvider) else None,
    }


class GrpoInstrumentor(BaseInstrumentor):
    """Patches the trainer roles named in the config when their modules are imported."""

    def instrumentation_dependencies(self) -> Collection[str]:
        """No library requirement: the targets are the user's own modules."""
        return ()

    def _instrument(self, **kwargs: Any) -> None:
        tel = get_telemetry()
        if tel is None:
            tel = setup(kwargs.get("config"), **_sdk_providers(), **worker_overrides())
        install(tel, targets=True)

    def _uninstrument(self, **kwargs: Any) -> None:
        unpatch_all(TARGETS)
        from otel_grpo.instrumentation.llm_http import uninstrument_http

        uninstrument_http()
