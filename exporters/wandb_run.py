"""Starting otel-grpo's own WandB run, bounded in time, falling back to offline.

A failed online attempt leaves nothing behind: wandb creates the run directory
(``run-<time>-<id>``, with a header-only ``.wandb`` file) before it learns that the
server cannot be reached, so that directory is removed before the offline run starts.
Exactly one run directory is left per run, and ``wandb sync --sync-all`` uploads no
empty run.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import string
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from otel_grpo.config import WandbConfig
from otel_grpo.exporters.wandb_online import OnlineProblem, init_problem, problem_before_trying, run_directory

if TYPE_CHECKING:
    from wandb import Run, Settings

logger = logging.getLogger(__name__)

_ID_ALPHABET = string.ascii_lowercase + string.digits


def _settings(wandb: ModuleType, cfg: WandbConfig) -> Settings:
    """``wandb.Settings`` from the ``wandb:`` config block."""
    return wandb.Settings(
        x_transaction_log_flush_interval=cfg.flush_interval_s,
        init_timeout=cfg.init_timeout_s,
        silent=not cfg.debug_logging,
    )


def new_run_id() -> str:
    """A fresh WandB run id (8 lowercase letters and digits, like wandb's own)."""
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def _wandb_dirs(run_dir: str | None) -> list[Path]:
    """The directories wandb may create run directories in for ``dir=run_dir``."""
    root = Path(run_dir or os.environ.get("WANDB_DIR") or os.getcwd()).expanduser()
    return [root / "wandb", root / ".wandb"]


def _attempt_dirs(run_dir: str | None, run_id: str) -> set[Path]:
    """The online run directories (``run-<time>-<id>[-suffix]``) of ``run_id``."""
    found: set[Path] = set()
    for parent in _wandb_dirs(run_dir):
        for pattern in (f"run-*-{run_id}", f"run-*-{run_id}-*"):
            try:
                found.update(p for p in parent.glob(pattern) if p.is_dir() and not p.is_symlink())
            except OSError:
                continue
    return found


def _remove_failed_attempt(run_dir: str | None, run_id: str, existing: set[Path]) -> None:
    """Remove the run directory a failed online ``wandb.init`` created (never one that existed before)."""
    for path in sorted(_attempt_dirs(run_dir, run_id) - existing):
        try:
            shutil.rmtree(path)
            logger.debug("otel-grpo: removed the failed online attempt's run directory %s", path)
        except OSError as exc:
            logger.warning(
                "otel-grpo: could not remove the failed online attempt's run directory %s (%s); do not `wandb sync` it",
                path,
                type(exc).__qualname__,
            )


def start_run(wandb: ModuleType, cfg: WandbConfig, run_config: dict[str, Any], *, separate: bool = False) -> Run:
    """Start a run from the ``wandb:`` config block.

    In online mode, a certain cause found before trying (no API key; the base URL refuses the
    connection, has an unknown host or cannot be reached: :mod:`.wandb_online`) falls back to an
    offline run at once; otherwise ``wandb.init`` gets ``init_timeout_s`` (a server that never
    answers). Either way one warning names the cause, its fix and the offline run's directory,
    and no row is lost: ``wandb sync`` uploads it later. The failed attempt's run directory is
    removed, so one run directory is left. ``separate`` starts a second run beside an active
    one (the trainer's disabled run).
    """
    run_dir = cfg.dir
    if run_dir:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = dict(
        project=cfg.project,
        entity=cfg.entity,
        name=cfg.run_name,
        dir=run_dir,
        tags=list(cfg.tags) or None,
        config=run_config,
    )
    if separate:  # another (disabled) run is active: leave it alone, make a second one
        kwargs["reinit"] = "create_new"
    if cfg.mode != "online":
        return wandb.init(mode="offline", settings=_settings(wandb, cfg), **kwargs)
    started = _start_online(wandb, cfg, kwargs, separate)
    if not isinstance(started, OnlineProblem):
        return started
    problem = started
    os.environ["WANDB_MODE"] = "offline"
    kwargs["id"] = new_run_id()  # wandb-core keeps a failed attempt's stream (and its id) until exit
    run = wandb.init(mode="offline", settings=_settings(wandb, cfg), **kwargs)
    where = run_directory(run)
    logger.warning(
        "otel-grpo: no online WandB run: %s; %s. Writing an offline run instead, in %s: "
        "upload it later with `wandb sync %s`",
        problem.cause,
        problem.fix,
        where,
        where,
    )
    return run


def _start_online(wandb: ModuleType, cfg: WandbConfig, kwargs: dict[str, Any], separate: bool) -> Run | OnlineProblem:
    """The online run, or why there is none (found before trying when certain, else from wandb.init's failure)."""
    url, problem = problem_before_trying(cfg.init_timeout_s)
    if problem is not None:
        return problem
    # A known id names the directory the attempt creates, so a failed attempt can be cleaned up.
    run_id = (None if separate else os.environ.get("WANDB_RUN_ID")) or new_run_id()
    existing = _attempt_dirs(cfg.dir, run_id)
    try:
        return wandb.init(mode="online", id=run_id, settings=_settings(wandb, cfg), **kwargs)
    except Exception as exc:  # noqa: BLE001 - any failure means: keep training, go offline
        # A failed wandb.init sets no global run, so there is nothing to finish here (finishing
        # wandb.run would finish the trainer's run). Its directory holds only a header.
        _remove_failed_attempt(cfg.dir, run_id, existing)
        return init_problem(url, cfg.init_timeout_s, exc)
