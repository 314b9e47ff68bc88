"""Starting otel-grpo's own WandB run, bounded in time, falling back to offline."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


def _settings(wandb: Any, cfg: Any) -> Any:
    return wandb.Settings(
        x_transaction_log_flush_interval=float(getattr(cfg, "flush_interval_s", 1.0)),
        init_timeout=float(getattr(cfg, "init_timeout_s", 30.0)),
        silent=not getattr(cfg, "debug_logging", False),
    )


def start_run(wandb: Any, cfg: Any, run_config: dict[str, Any], *, separate: bool = False) -> Any:
    """Start a run from the ``wandb:`` config block.

    In online mode a failure to reach WandB within ``init_timeout_s`` (no API key,
    refused connection, a server that never answers) falls back to an offline run
    with one warning, so no row is lost: ``wandb sync`` uploads it later. ``separate``
    starts a second run beside an active one (the trainer's disabled run).
    """
    mode = getattr(cfg, "mode", "offline")
    run_dir = getattr(cfg, "dir", None)
    if run_dir:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    kwargs = dict(
        project=getattr(cfg, "project", "otel-grpo"),
        entity=getattr(cfg, "entity", None),
        name=getattr(cfg, "run_name", None),
        dir=run_dir,
        tags=list(getattr(cfg, "tags", []) or []) or None,
        config=run_config,
    )
    if separate:  # another (disabled) run is active: leave it alone, make a second one
        kwargs["reinit"] = "create_new"
    if mode == "online":
        try:
            return wandb.init(mode="online", settings=_settings(wandb, cfg), **kwargs)
        except Exception as exc:  # noqa: BLE001 - any failure means: keep training, go offline
            logger.warning(
                "otel-grpo: could not start an online WandB run within %.0fs (%s); "
                "writing an offline run instead: upload it later with `wandb sync`",
                float(getattr(cfg, "init_timeout_s", 30.0)), type(exc).__qualname__,
            )
            try:
                wandb.finish()
            except Exception:  # noqa: BLE001
                pass
            os.environ["WANDB_MODE"] = "offline"
    return wandb.init(mode="offline", settings=_settings(wandb, cfg), **kwargs)
