"""The ``otel-grpo demo`` command line: its options, their checks, and the judge URL's reachability.

:func:`parse_args` returns the validated :class:`argparse.Namespace` that
:func:`otel_grpo.tools.demo.cli.run_demo` runs; every problem is a :class:`DemoError`
(one line, exit status 2).
"""

from __future__ import annotations

import argparse
import math
import socket
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from otel_grpo.redact import redact_url

__all__ = [
    "DEFAULT_JUDGE_OUTAGE",
    "DemoError",
    "build_parser",
    "check_judge_reachable",
    "parse_args",
    "parse_outage",
]

#: The default judge outage window (training steps, inclusive): in the middle of the default 12 steps,
#: clear of the validation passes after steps 4, 8 and 12, and three steps long, so that its effect
#: stands out of the step-to-step noise of 56 samples a step.
DEFAULT_JUDGE_OUTAGE = "5-7"


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
