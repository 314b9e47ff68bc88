"""Validate a config file plus the environment and summarise it (what ``otel-grpo check-config`` prints).

The summary is one line per section and never shows a secret: the OTLP endpoint goes
through :func:`otel_grpo.redact.redact_url` and headers are counted, not shown. Notes
follow (they never change the exit status): ``OTEL_SDK_DISABLED=true``, and every target
whose module cannot be found from the current directory or ``sys.path`` (looked up, not
imported: a module may only become importable when the trainer runs).
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from otel_grpo.config.env import sdk_disabled
from otel_grpo.config.errors import ConfigError
from otel_grpo.config.loader import default_config_source, load_config
from otel_grpo.config.schema import TargetsConfig, TelemetryConfig
from otel_grpo.config.targets import target_module, unfindable_targets
from otel_grpo.redact import redact_url

__all__ = ["check_config", "note_lines", "summary_lines"]


def check_config(path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Validate a config file plus the environment without printing anything.

    Returns:
        ``(0, "OK: <file>\\n  <summary lines>")`` or ``(2, "<ConfigError message>")``.
    """
    label = default_config_source() if path is None else os.fspath(path)
    try:
        cfg = load_config(path, env=env)
    except ConfigError as exc:
        return 2, str(exc)
    lines = [f"OK: {label}", *(f"  {line}" for line in summary_lines(cfg)), *note_lines(cfg, env)]
    return 0, "\n".join(lines)


def note_lines(cfg: TelemetryConfig, env: Mapping[str, str] | None = None) -> list[str]:
    """``note: ...`` lines: OTEL_SDK_DISABLED, and targets whose module cannot be found from here."""
    notes = []
    if sdk_disabled(env):
        notes.append("note: OTEL_SDK_DISABLED=true: nothing is instrumented, served or written")
    if cfg.instrumentation.enabled:
        here = os.getcwd()
        for role, target in unfindable_targets(cfg.instrumentation.targets.enabled_targets(), [here]):
            notes.append(
                f"note: target {role}={target}: module {target_module(target)} not found from {here} or "
                "sys.path (fine if it is importable when the trainer runs; else check instrumentation.targets)"
            )
    return notes


def summary_lines(cfg: TelemetryConfig) -> list[str]:
    """One line per section: what is enabled, and where it sends data (secrets masked)."""
    w, o, p, j = cfg.wandb, cfg.otlp, cfg.prometheus, cfg.judge
    wandb_line = (
        f"wandb: {'enabled' if w.enabled else 'disabled'}, mode={w.mode}, project={w.project}, "
        f"entity={w.entity or '-'}, log_frequency={w.log_frequency}"
    )
    if o.enabled:
        signals = [name for name, on in (("metrics", o.metrics), ("traces", o.traces)) if on]
        otlp_line = (
            f"otlp: enabled, {o.protocol} -> {redact_url(o.endpoint) if o.endpoint else '(SDK default)'}"
            f", signals={','.join(signals) or 'none'}, headers={len(o.headers)}"
        )
    else:
        otlp_line = "otlp: disabled"
    prometheus_line = f"prometheus: enabled on {p.host}:{p.port}" if p.enabled else "prometheus: disabled"
    judge_line = (
        f"judge: ports={j.ports}, model={j.model}, provider={j.provider}, "
        f"capture_content={str(j.capture_content).lower()}"
    )
    enabled = cfg.instrumentation.targets.enabled_targets()
    instrumentation_line = (
        f"instrumentation: {'enabled' if cfg.instrumentation.enabled else 'disabled'}, "
        f"{len(enabled)}/{len(TargetsConfig.model_fields)} targets"
    )
    return [
        f"service_name: {cfg.service_name}",
        wandb_line,
        otlp_line,
        prometheus_line,
        judge_line,
        instrumentation_line,
    ]
