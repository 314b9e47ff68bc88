"""Optional dependencies: which extra brings which package, and the one-line message when one is missing.

The core (``pip install otel-grpo``) records WandB rows and needs nothing else. The
OTLP exporter, the Prometheus endpoint, the demo, the HTML report and the WandB
workspace each come with an extra; a feature whose extra is not installed raises
:class:`MissingExtraError`, whose message is the one line that says what to install::

    otel-grpo: the OTLP exporter needs the otlp extra: pip install 'otel-grpo[otlp]' (No module named 'grpc')

Telemetry turns that into one warning and carries on without the feature; the
``otel-grpo`` commands print it and exit with status 2. This module imports nothing
of otel-grpo, so every layer may use it.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterable
from types import ModuleType

#: The modules each extra makes importable (what :func:`require_extra` checks).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "otlp": ("opentelemetry.exporter.otlp.proto.http", "opentelemetry.exporter.otlp.proto.grpc"),
    "prometheus": ("opentelemetry.exporter.prometheus", "prometheus_client"),
    "demo": ("openai", "rich"),
    "report": ("matplotlib",),
    "dashboards": ("wandb_workspaces",),
    "ray": ("ray",),
}


class MissingExtraError(ImportError):
    """A feature's optional dependency is not installed; ``str()`` is the one-line message."""

    def __init__(self, feature: str, extra: str, cause: str = "") -> None:
        self.feature = feature
        self.extra = extra
        self.cause = cause
        super().__init__(missing_extra_message(feature, extra, cause))

    def __str__(self) -> str:
        return missing_extra_message(self.feature, self.extra, self.cause)


def missing_extra_message(feature: str, extra: str, cause: str = "") -> str:
    """``otel-grpo: <feature> needs the <extra> extra: pip install 'otel-grpo[<extra>]' (<cause>)``."""
    line = f"otel-grpo: {feature} needs the {extra} extra: pip install 'otel-grpo[{extra}]'"
    return f"{line} ({cause})" if cause else line


def require(module: str, *, extra: str, feature: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` naming ``extra``.

    Any ImportError counts (the package is absent, or present but broken); its text
    is kept at the end of the message.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(feature, extra, str(exc) or type(exc).__name__) from exc


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package is missing or broken
        return False


def missing_modules(extra: str, modules: Iterable[str] | None = None) -> list[str]:
    """The modules of ``extra`` (or ``modules``) that cannot be found; imports nothing."""
    return [m for m in (EXTRA_MODULES[extra] if modules is None else modules) if not _installed(m)]


def require_extra(extra: str, *, feature: str, modules: Iterable[str] | None = None) -> None:
    """Raise :class:`MissingExtraError` unless every module of ``extra`` (or ``modules``) can be found.

    Checks without importing, so a command can call it first and fail fast.
    """
    missing = missing_modules(extra, modules)
    if missing:
        raise MissingExtraError(feature, extra, f"No module named {missing[0]!r}")
