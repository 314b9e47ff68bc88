"""``otel-grpo demo``: an instrumented GRPO run on the packaged data, in about a minute.

It starts the local judge server (unless ``--judge-url`` points at one), sets otel-grpo
up through the public API only (:func:`otel_grpo.setup`, :func:`otel_grpo.instrument_trainer`),
trains the reference trainer of the user's shape (:mod:`otel_grpo.tools.demo.trainer`) under a
one-line progress display, and ends with a summary whose every figure says what it covers
(the last step, the last validation pass, or the run total) and where the WandB run is.

This module runs the demo; its options are :mod:`~otel_grpo.tools.demo.options`, the progress
line :mod:`~otel_grpo.tools.demo.progress`, the closing summary :mod:`~otel_grpo.tools.demo.summary`.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from otel_grpo.extras import MissingExtraError, require_extra
from otel_grpo.redact import redact_text
from otel_grpo.tools.demo.options import (
    DEFAULT_JUDGE_OUTAGE,
    DemoError,
    build_parser,
    check_judge_reachable,
    parse_args,
    parse_outage,
)
from otel_grpo.tools.demo.progress import train_with_progress
from otel_grpo.tools.demo.summary import (
    OUTAGE_NEIGHBOURS,
    DemoResult,
    outage_effect,
    print_outage_effect,
    print_summary,
)

__all__ = [
    "DEFAULT_JUDGE_OUTAGE",
    "OUTAGE_NEIGHBOURS",
    "DemoError",
    "DemoResult",
    "build_parser",
    "check_judge_reachable",
    "main",
    "outage_effect",
    "parse_args",
    "parse_outage",
    "print_outage_effect",
    "print_summary",
    "run_demo",
]

logger = logging.getLogger(__name__)

_QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "openai", "otel_grpo.tools.demo.judge_server")


def _overrides(args: argparse.Namespace, judge_port: int) -> dict[str, Any]:
    wandb: dict[str, Any] = {}
    if args.wandb_mode is not None or args.config is None:
        wandb["mode"] = args.wandb_mode or "offline"
    if args.wandb_dir is not None or args.config is None:
        wandb["dir"] = str(Path(args.wandb_dir or ".").resolve())
    overrides: dict[str, Any] = {"wandb": wandb, "judge": {"ports": [judge_port]}}
    if args.otlp_endpoint:
        overrides["otlp"] = {"enabled": True, "endpoint": args.otlp_endpoint}
    if args.prometheus_port is not None:
        overrides["prometheus"] = {"enabled": True, "port": args.prometheus_port}
    return overrides


@contextlib.contextmanager
def _argv_without_secrets() -> Iterator[None]:
    """``sys.argv`` with every URL's password and query values redacted, for the duration of the demo.

    WandB records the command line (``sys.argv[1:]``) in the metadata of every run started
    in this process, so ``--judge-url http://user:PASSWORD@host/v1`` would otherwise end up
    in the run's ``.wandb`` file. The demo parsed its arguments already; the original
    ``sys.argv`` is given back afterwards.
    """
    original = list(sys.argv)
    try:
        sys.argv[:] = [redact_text(arg) for arg in original]
    except Exception:  # noqa: BLE001 - redaction failing must not stop the demo; keep argv as it was
        logger.debug("otel-grpo demo: could not redact sys.argv", exc_info=True)
    try:
        yield
    finally:
        sys.argv[:] = original


def run_demo(args: argparse.Namespace, console: Any = None, **trainer_overrides: Any) -> DemoResult:
    """Run the demo described by ``args`` (from :func:`parse_args`).

    ``trainer_overrides`` set further :class:`~otel_grpo.tools.demo.trainer.TrainerConfig`
    fields (tests use them). Raises :class:`DemoError` for a bad configuration.
    No secret of the command line (a ``--judge-url`` password) reaches the WandB run.
    """
    if console is None:
        from rich import get_console

        console = get_console()
    with _argv_without_secrets(), _logging_through(console):
        return _run_demo(args, console, **trainer_overrides)


@contextlib.contextmanager
def _logging_through(console: Any) -> Iterator[None]:
    """Log records go through ``console`` (rich's ``RichHandler``) for the duration of the demo.

    The console is the progress bar's, so a warning is printed above the bar instead of
    being glued onto it. The root logger's plain terminal handlers (``logging.basicConfig``)
    are taken off meanwhile and given back afterwards; others (files, test capture) stay.
    """
    from rich.logging import RichHandler

    root = logging.getLogger()
    terminal = [
        h
        for h in root.handlers
        if type(h) is logging.StreamHandler and getattr(h, "stream", None) in (sys.stderr, sys.stdout)
    ]
    handler = RichHandler(console=console, show_time=False, show_path=False, markup=False, rich_tracebacks=False)
    for h in terminal:
        root.removeHandler(h)
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        for h in terminal:
            root.addHandler(h)


def _run_demo(args: argparse.Namespace, console: Any = None, **trainer_overrides: Any) -> DemoResult:
    import otel_grpo
    from otel_grpo.config import ConfigError
    from otel_grpo.tools.demo.judge_server import FaultConfig, JudgeServer
    from otel_grpo.tools.demo.trainer import GRPOTrainer, TrainerConfig

    started = time.perf_counter()
    for name in _QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    server = None
    tel = None
    trainer = None
    started_ray = False
    try:
        if args.judge_url:
            check_judge_reachable(args.judge_url)
            judge_url, judge_port = args.judge_url, args.judge_port
        else:
            third = args.judge_fault_rate / 3.0
            faults = FaultConfig(error_rate=third, unparsable_rate=third, null_content_rate=third, seed=args.seed)
            server = JudgeServer(host="127.0.0.1", port=0, faults=faults).start()
            judge_url, judge_port = server.url, server.port
        try:
            tel = otel_grpo.setup(args.config, **_overrides(args, judge_port))
        except ConfigError as exc:
            raise DemoError(f"otel-grpo demo: {exc}") from None
        # wandb's own lines off: the progress bar and the summary tell the story. Set after setup, so
        # otel-grpo's start-up line follows the user's WANDB_SILENT, not the demo's.
        os.environ.setdefault("WANDB_SILENT", "true")
        wandb_cfg = tel.config.wandb
        mode = wandb_cfg.mode if wandb_cfg.enabled else "disabled"
        cfg = TrainerConfig(
            max_steps=args.steps,
            batch_size=args.batch,
            num_workflows=args.k,
            eval_every=args.eval_every,
            val_samples=args.val_samples,
            judge_url=judge_url,
            wandb_mode=mode,
            wandb_dir=wandb_cfg.dir,
            seed=args.seed,
            oom_steps=(args.oom_step,) if args.oom_step else (),
        )
        for key, value in trainer_overrides.items():
            if not hasattr(cfg, key):
                raise TypeError(f"run_demo: unknown TrainerConfig field {key!r}")
            setattr(cfg, key, value)
        if args.ray:
            from otel_grpo.tools.demo.ray_workers import RayDemoTrainer, start_ray

            started_ray = start_ray(args.ray)
            trainer = RayDemoTrainer(cfg, args.ray)
        else:
            trainer = GRPOTrainer(cfg)
        outage = getattr(args, "outage", None) if server is not None else None
        if outage is not None:
            trainer.on_step_start = _outage_switch(server, outage)
        otel_grpo.instrument_trainer(trainer)
        from otel_grpo.instrumentation.judge_health import judge_health

        train_with_progress(trainer, console, judge_health(tel), rows=lambda: tel.rows)
        run = trainer.wandb_run
        run_dir = Path(run.dir).parent if run is not None and getattr(run, "dir", None) else None
        rows = tel.rows
        tel.shutdown()  # flush otel-grpo's last rows into the trainer's run, then finish it
        if run is not None:
            trainer.wandb_run = None
            run.finish()
        stats = server.stats if server is not None else None
        return DemoResult(
            trainer=trainer,
            rows=rows,
            run_dir=run_dir,
            judge_url=judge_url,
            judge_stats=stats,
            wall_s=time.perf_counter() - started,
            config=tel.config,
            outage=outage,
        )
    finally:  # on an error too: no half-open run, no server left behind
        if tel is not None:
            tel.shutdown()
        if trainer is not None and trainer.wandb_run is not None:
            trainer.wandb_run.finish(exit_code=1)
        if server is not None:
            server.stop()
        if started_ray:
            import ray

            ray.shutdown()


def _outage_switch(server: Any, window: tuple[int, int]) -> Any:
    """The trainer's ``on_step_start``: the judge server's outage is on for the steps of ``window``.

    Switched by step, not by the clock, so the same steps fail on every machine; a
    validation pass after a step of the window runs in the outage too.
    """
    first, last = window
    flag = f"--judge-outage {first}-{last}" if last > first else f"--judge-outage {first}"

    def on_step_start(step: int) -> None:
        inside = first <= step <= last
        if inside and not server.outage:
            logger.warning("simulated: the judge is down for steps %d-%d (demo fault injection, %s)", first, last, flag)
        elif not inside and server.outage:
            logger.warning("simulated: the judge is back at step %d (demo fault injection, %s)", step, flag)
        server.set_outage(inside)

    return on_step_start


def main(argv: Sequence[str] | None = None) -> int:
    """``otel-grpo demo ARGS``: returns 0 on success, 2 on bad arguments."""
    try:
        require_extra("demo", feature="otel-grpo demo")
    except MissingExtraError as exc:
        print(exc, file=sys.stderr)
        return 2
    from rich.console import Console

    console = Console()
    errors = Console(stderr=True)
    try:
        args = parse_args(argv)
        if args.ray:
            require_extra("ray", feature="otel-grpo demo --ray")
    except MissingExtraError as exc:
        print(exc, file=sys.stderr)
        return 2
    except DemoError as exc:
        build_parser().print_usage(sys.stderr)
        errors.print(str(exc), style="red", markup=False, highlight=False, soft_wrap=True)
        return 2
    except SystemExit as exc:  # --help
        return int(exc.code or 0)
    try:
        result = run_demo(args, console=console)
    except DemoError as exc:
        errors.print(str(exc), style="red", markup=False, highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        errors.print("otel-grpo demo: interrupted", style="red")
        return 130
    except Exception:  # noqa: BLE001 - a crash in training: show it, exit 1
        errors.print_exception(max_frames=8)
        return 1
    print_summary(result, console)
    return 0
