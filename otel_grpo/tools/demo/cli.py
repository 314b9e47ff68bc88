"""``otel-grpo demo``: an instrumented GRPO run on the packaged data, in about a minute.

It starts the local judge server (unless ``--judge-url`` points at one), sets otel-grpo
up through the public API only (:func:`otel_grpo.setup`, :func:`otel_grpo.instrument_trainer`),
trains the reference trainer of the user's shape (:mod:`otel_grpo.tools.demo.trainer`) with a
progress bar, and ends with a summary: per-dataset accuracy, judge rates, cost, and where
the WandB run is with the commands to inspect or upload it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import os
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from otel_grpo.extras import MissingExtraError, require_extra
from otel_grpo.redact import redact_text, redact_url
from otel_grpo.tools.demo.datasets import DATASETS

__all__ = ["DemoError", "DemoResult", "build_parser", "main", "parse_args", "run_demo"]

logger = logging.getLogger(__name__)

#: The default judge outage window (training steps, inclusive): in the middle of the default 12 steps,
#: clear of the validation passes after steps 4, 8 and 12, and three steps long, so that its effect
#: stands out of the step-to-step noise of 56 samples a step.
DEFAULT_JUDGE_OUTAGE = "5-7"

_QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "openai", "otel_grpo.tools.demo.judge_server")


class DemoError(Exception):
    """A bad command line or configuration: reported as a message and exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise DemoError(f"{self.prog}: error: {message}")


def build_parser() -> argparse.ArgumentParser:
    """The ``otel-grpo demo`` argument parser."""
    p = _Parser(
        prog="otel-grpo demo",
        description="Run an instrumented GRPO demo (simulated policy, real rewards, local judge server) "
        "and write an offline WandB run.",
    )
    p.add_argument("--steps", type=int, default=12, help="training steps (default 12)")
    p.add_argument(
        "--batch",
        type=int,
        default=14,
        help="questions per step, round-robin over the 7 datasets (default 14 = 2 per dataset)",
    )
    p.add_argument("--k", type=int, default=4, help="workflows per question, a GRPO group (default 4)")
    p.add_argument("--eval-every", type=int, default=4, help="validate every E steps; 0 = never (default 4)")
    p.add_argument("--val-samples", type=int, default=28, help="validation questions (default 28)")
    p.add_argument(
        "--judge-url",
        default=None,
        help="use this OpenAI-compatible judge (e.g. http://127.0.0.1:8002/v1) instead of "
        "starting the local judge server",
    )
    p.add_argument(
        "--wandb-mode",
        choices=("offline", "online", "disabled"),
        default=None,
        help="WandB mode (default offline, or the --config file's)",
    )
    p.add_argument("--wandb-dir", default=None, help="parent of the wandb/ run directory (default: cwd)")
    p.add_argument("--otlp-endpoint", default=None, help="also export over OTLP, e.g. http://localhost:4318")
    p.add_argument(
        "--prometheus-port", type=int, default=None, help="serve Prometheus /metrics on 127.0.0.1:P (0 = any free port)"
    )
    p.add_argument(
        "--judge-fault-rate",
        type=float,
        default=0.05,
        help="share of judge requests answered with a fault, split evenly among HTTP 500, "
        "an unparsable reply and null content (default 0.05; local server only)",
    )
    p.add_argument(
        "--judge-outage",
        default=DEFAULT_JUDGE_OUTAGE,
        metavar="FIRST-LAST",
        help="training steps FIRST..LAST during which every judge request fails (HTTP 500, HTTP 503, "
        "null content in turn), switched at the start of each step (a validation pass after a step of "
        "the window is in it too); 'none' = no outage "
        f"(default {DEFAULT_JUDGE_OUTAGE}; local server only)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--config", default=None, help="telemetry YAML (default: config/telemetry.yaml, else packaged)")
    p.add_argument(
        "--ray",
        type=int,
        default=0,
        metavar="N",
        help="run the executor and the reward computer in N Ray workers on a local Ray instance "
        "(needs the ray extra; default 0 = in this process)",
    )
    p.add_argument(
        "--oom-step",
        type=int,
        default=2,
        help="step whose first attempt hits a simulated CUDA OOM and is retried; 0 = none (default 2)",
    )
    return p


def _judge_port(url: str) -> int:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise DemoError(
            f"otel-grpo demo: --judge-url must be an http(s) URL such as "
            f"http://127.0.0.1:8002/v1 (got {redact_url(url)!r})"
        )
    try:
        port = parts.port
    except ValueError as exc:
        raise DemoError(f"otel-grpo demo: --judge-url has an invalid port: {exc}") from None
    return port or (443 if parts.scheme == "https" else 80)


_JUDGE_CONNECT_TIMEOUT_S = 3.0


def check_judge_reachable(url: str, timeout: float = _JUDGE_CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`DemoError` (one line) unless something accepts TCP connections at ``url``'s host and port.

    A TCP connect, not a request: a judge that needs an API key or has no ``/v1/models``
    still passes; nothing listening, a wrong host or a firewall fails within ``timeout``.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = _judge_port(url)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or type(exc).__name__)
        raise DemoError(
            f"otel-grpo demo: cannot reach the judge at {redact_url(url)} ({reason.lower()}): "
            f"start one (otel-grpo judge-server --port {port}) or leave out --judge-url"
        ) from None


def parse_outage(text: str | None) -> tuple[int, int] | None:
    """``"6-7"`` -> ``(6, 7)``, ``"6"`` -> ``(6, 6)``, ``"none"``/``"off"``/``"0"`` -> None.

    Raises :class:`DemoError` for anything else.
    """
    value = (text or "").strip().lower()
    if value in ("", "none", "off", "0"):
        return None
    first, sep, last = value.partition("-")
    try:
        window = (int(first), int(last) if sep else int(first))
    except ValueError:
        window = (0, 0)
    if window[0] < 1 or window[1] < window[0]:
        raise DemoError(
            f"otel-grpo demo: --judge-outage must be FIRST-LAST training steps such as 6-7, "
            f"a single step, or none (got {text!r})"
        )
    return window


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse and validate the demo options; raises :class:`DemoError`."""
    args = build_parser().parse_args(list(argv or []))
    checks = [
        (args.steps >= 1, "--steps must be at least 1"),
        (args.batch >= 1, "--batch must be at least 1"),
        (args.k >= 1, "--k must be at least 1"),
        (args.eval_every >= 0, "--eval-every must be 0 (never) or more"),
        (args.val_samples >= 1, "--val-samples must be at least 1"),
        (
            math.isfinite(args.judge_fault_rate) and 0.0 <= args.judge_fault_rate <= 1.0,
            "--judge-fault-rate must be between 0 and 1",
        ),
        (
            args.prometheus_port is None or 0 <= args.prometheus_port <= 65535,
            "--prometheus-port must be between 0 and 65535",
        ),
        (args.oom_step >= 0, "--oom-step must be 0 (none) or a step number"),
        (args.ray >= 0, "--ray must be 0 (no Ray) or a number of workers"),
        (args.config is None or Path(args.config).is_file(), f"--config: no such file: {args.config}"),
        (
            args.otlp_endpoint is None or urlsplit(args.otlp_endpoint).scheme in ("http", "https"),
            f"--otlp-endpoint must be an http(s) URL such as http://localhost:4318 "
            f"(got {redact_url(args.otlp_endpoint or '')!r})",
        ),
    ]
    for ok, message in checks:
        if not ok:
            raise DemoError(f"otel-grpo demo: {message}")
    args.judge_port = _judge_port(args.judge_url) if args.judge_url else None
    args.outage = parse_outage(args.judge_outage)
    return args


@dataclass
class DemoResult:
    """Everything a finished demo leaves behind (for the summary and for tests)."""

    trainer: Any
    rows: list[dict[str, Any]]
    run_dir: Path | None
    judge_url: str
    judge_stats: dict[str, int] | None
    wall_s: float
    config: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: The judge outage window that was served (training steps, inclusive), None without one.
    outage: tuple[int, int] | None = None


def _latest(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    latest: dict[str, Any] = {}
    for row in rows:
        latest.update(row)
    return latest


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

        _train_with_progress(trainer, console, judge_health(tel))
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


#: How many steps on each side of the outage window its effect is compared with.
OUTAGE_NEIGHBOURS = 2


def outage_effect(rows: Sequence[dict[str, Any]], window: tuple[int, int]) -> dict[str, Any]:
    """Train figures inside the outage window and in the steps around it (means per step).

    ``{"inside": {...}, "around": {...}, "inside_steps": [...], "around_steps": [...]}``
    where each side has ``judge_failed_share`` (fraction), ``accuracy`` and
    ``accuracy_excl_judge_failed`` (percent: the row's ``train/accuracy_excl_judge_failed``, else
    the samples-weighted combination of the sources' figures, see
    :func:`otel_grpo.tools.runreader.accuracy_excl_judge_failed`).
    The steps around are up to :data:`OUTAGE_NEIGHBOURS` on each side: the policy learns
    as it trains, so accuracy is compared with the nearest steps, not the whole run.
    """
    from otel_grpo import keys
    from otel_grpo.tools.runreader import accuracy_excl_judge_failed

    first, last = window
    train = {
        int(row[keys.STEP]): row for row in rows if keys.TRAIN_ACCURACY in row and isinstance(row.get(keys.STEP), int)
    }
    inside = [s for s in sorted(train) if first <= s <= last]
    around = [
        s for s in sorted(train) if first - OUTAGE_NEIGHBOURS <= s < first or last < s <= last + OUTAGE_NEIGHBOURS
    ]

    def means(steps: list[int]) -> dict[str, float | None]:
        figures: dict[str, list[float]] = {"judge_failed_share": [], "accuracy": [], "accuracy_excl_judge_failed": []}
        for step in steps:
            row = train[step]
            figures["judge_failed_share"].append(row.get(keys.TRAIN_JUDGE_FAILED_SHARE, 0.0))
            figures["accuracy"].append(row[keys.TRAIN_ACCURACY])
            excl = row.get(keys.TRAIN_ACCURACY_EXCL_JUDGE_FAILED, accuracy_excl_judge_failed(row))
            if excl is not None:
                figures["accuracy_excl_judge_failed"].append(excl)
        return {name: (sum(v) / len(v) if v else None) for name, v in figures.items()}

    return {"inside": means(inside), "around": means(around), "inside_steps": inside, "around_steps": around}


def _steps(steps: Sequence[int]) -> str:
    runs: list[str] = []
    for step in steps:
        if runs and runs[-1].split("-")[-1] == str(step - 1):
            runs[-1] = f"{runs[-1].split('-')[0]}-{step}"
        else:
            runs.append(str(step))
    return ", ".join(runs) or "-"


def print_outage_effect(result: DemoResult, console: Any) -> None:
    """One paragraph: what the judge outage did to the reward signal (the "Reward integrity" keys)."""
    if result.outage is None:
        return
    first, last = result.outage
    effect = outage_effect(result.rows, result.outage)
    if not effect["inside_steps"]:
        console.print(f"Judge outage (steps {first}-{last}): not reached, the run has fewer steps.")
        return
    inside, around = effect["inside"], effect["around"]
    failed = (result.judge_stats or {}).get("outage", 0)
    console.print(
        f"Judge outage (simulated, steps {_steps(effect['inside_steps'])}, {failed} judge requests failed), "
        f"vs the steps around it ({_steps(effect['around_steps'])}):\n"
        f"  judge-failed share           {_fmt(inside['judge_failed_share'], '.1%')} of scored samples "
        f"(around: {_fmt(around['judge_failed_share'], '.1%')})\n"
        f"  train accuracy               {_fmt(inside['accuracy'], '.1f', '%')} "
        f"(around: {_fmt(around['accuracy'], '.1f', '%')})\n"
        f"  accuracy excl. judge-failed  {_fmt(inside['accuracy_excl_judge_failed'], '.1f', '%')} "
        f"(around: {_fmt(around['accuracy_excl_judge_failed'], '.1f', '%')})\n"
        "  The judge-failed samples got the reward computer's fallback (0), not a verdict: "
        'see the "Reward integrity" group in otel-grpo inspect / otel-grpo report.',
        highlight=False,
        soft_wrap=True,
    )


def judge_status(health: Any) -> str:
    """The judge's state for the progress line: ``judge ok 98%``, ``judge DOWN (connection)``, ``judge -``."""
    state = health.snapshot()
    if state.down:
        return f"[bold red]judge DOWN ({state.last_error_type})[/bold red]"
    rate = state.success_rate
    if rate is None:
        return "judge -"
    return f"judge ok {rate:.0%}" if state.consecutive_api_failures == 0 else f"[yellow]judge {rate:.0%}[/yellow]"


def _train_with_progress(trainer: Any, console: Any, health: Any = None) -> None:
    trainer_module = type(trainer).__module__
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class JudgeColumn(ProgressColumn):
        """The judge's state, read at every refresh (a step waiting on a dead judge shows it)."""

        def render(self, task: Any) -> Text:
            return Text.from_markup(judge_status(health)) if health is not None else Text("")

    columns = (
        TextColumn("[bold]GRPO[/bold]"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("steps"),
        TimeElapsedColumn(),
        JudgeColumn(),
        TextColumn("{task.fields[status]}"),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("train", total=trainer.max_steps, status="")

        def on_step(step: int, metrics: dict[str, Any]) -> None:
            status = (
                f"acc {metrics.get('accuracy', 0.0):5.1f}%  reward {metrics.get('avg_reward', 0.0):+.2f}  "
                f"loss {metrics.get('loss', 0.0):.3f}"
            )
            progress.update(task, completed=step, status=status)

        def on_eval(step: int, metrics: dict[str, Any]) -> None:
            progress.console.print(
                f"step {step:>3}: validation accuracy {metrics.get('val_accuracy', 0.0):.1f}%, "
                f"success {metrics.get('val_success_rate', 0.0):.1f}%, "
                f"avg cost ${metrics.get('val_avg_cost', 0.0):.4f}"
            )

        trainer.on_step_end, trainer.on_eval_end = on_step, on_eval
        trainer_logger = logging.getLogger(trainer_module)
        saved = trainer_logger.level
        trainer_logger.setLevel(logging.WARNING)  # its retries and fallbacks, not its debug lines
        try:
            asyncio.run(trainer.train())
        finally:
            trainer.on_step_end = trainer.on_eval_end = None
            trainer_logger.setLevel(saved)


def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    if value is None:
        return "-"
    try:
        return f"{format(float(value), spec)}{suffix}"
    except (TypeError, ValueError):
        return str(value)


def print_summary(result: DemoResult, console: Any) -> None:
    """The closing report: per-dataset table, judge, cost, run directory and next commands."""
    from rich.table import Table

    latest = _latest(result.rows)
    table = Table(title=f"Per-dataset results (latest, train/step {latest.get('train/step', '-')})")
    for column, justify in (
        ("dataset", "left"),
        ("type", "left"),
        ("train acc", "right"),
        ("train count", "right"),
        ("avg reward", "right"),
        ("val acc", "right"),
        ("judge success", "right"),
    ):
        table.add_column(column, justify=justify)
    from otel_grpo.tools.demo.datasets import PROBLEM_TYPES

    for source in DATASETS:
        table.add_row(
            source,
            PROBLEM_TYPES[source],
            _fmt(latest.get(f"dataset/{source}/accuracy"), ".1f", "%"),
            _fmt(latest.get(f"dataset/{source}/count"), ".0f"),
            _fmt(latest.get(f"dataset/{source}/avg_reward"), ".2f"),
            _fmt(latest.get(f"val/{source}/accuracy"), ".1f", "%"),
            _fmt(latest.get(f"judge/{source}_success_rate"), ".1%"),
        )
    table.add_section()
    table.add_row(
        "all",
        "",
        _fmt(latest.get("train/accuracy"), ".1f", "%"),
        "",
        _fmt(latest.get("train/avg_reward"), ".2f"),
        _fmt(latest.get("val/accuracy"), ".1f", "%"),
        _fmt(latest.get("judge/success_rate"), ".1%"),
    )
    console.print(table)

    judge = Table(title="LLM judge (cumulative)", show_header=True)
    for column in ("evaluations", "success", "parse failure", "API failure", "correct ratio", "HTTP requests"):
        judge.add_column(column, justify="right")
    judge.add_row(
        _fmt(latest.get("judge/total_calls"), ".0f"),
        _fmt(latest.get("judge/success_rate"), ".1%"),
        _fmt(latest.get("judge/parse_failure_rate"), ".1%"),
        _fmt(latest.get("judge/api_failure_rate"), ".1%"),
        _fmt(latest.get("judge/correct_ratio"), ".2f"),
        _fmt(latest.get("cost/judge_calls"), ".0f"),
    )
    console.print(judge)
    console.print(
        f"Executor cost: [bold]${_fmt(latest.get('cost/total_cost'), '.4f')}[/bold] over "
        f"{_fmt(latest.get('cost/executor_calls'), '.0f')} runs "
        f"(${_fmt(latest.get('cost/avg_cost_per_sample'), '.5f')} per sample)"
    )
    stats = result.judge_stats
    if stats:
        console.print(
            f"Judge server ({redact_url(result.judge_url)}): {stats.get('total', 0)} chat requests, "
            f"{stats.get('http_500', 0)} HTTP 500, "
            + (f"{stats['http_503']} HTTP 503, " if stats.get("http_503") else "")
            + f"{stats.get('unparsable', 0)} unparsable, "
            f"{stats.get('null_content', 0)} null content injected"
            + (f" ({stats.get('outage', 0)} of them by the outage)" if stats.get("outage") else "")
        )
    print_outage_effect(result, console)
    console.print(f"Finished in {result.wall_s:.1f}s.")
    if result.run_dir is not None:
        console.print(f"\nWandB run: [bold]{result.run_dir}[/bold]", soft_wrap=True)
        console.print(f"  inspect:  otel-grpo inspect {result.run_dir}", soft_wrap=True, highlight=False)
        console.print(f"  upload:   wandb sync {result.run_dir}", soft_wrap=True, highlight=False)
    else:
        console.print("\nWandB disabled: no run directory was written.")


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
    os.environ.setdefault("WANDB_SILENT", "true")  # the progress bar and the summary tell the story
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
