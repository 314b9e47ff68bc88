"""``otel-grpo init [PATH] [--force]``: write a commented telemetry config file to start from.

The file written is the packaged ``otel_grpo/default_telemetry.yaml``: every setting at
its default, each section explained (units, the ``WANDB_*`` / ``OTEL_*`` variables that
win over it). It loads to exactly the defaults, so writing it changes nothing until it
is edited. An existing file is never overwritten without ``--force``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from otel_grpo.config import DEFAULT_CONFIG_PATH, ConfigError, packaged_config_text

__all__ = ["InitError", "build_parser", "main", "write_config"]


class InitError(Exception):
    """The file cannot be written (it exists without ``force``, or the path is unusable); one line."""


def write_config(path: str | os.PathLike[str] = DEFAULT_CONFIG_PATH, *, force: bool = False) -> Path:
    """Write the commented default config to ``path`` (parent folders created); return the path.

    Raises:
        InitError: ``path`` exists and ``force`` is false, ``path`` is a directory, or
            it cannot be written.
    """
    target = Path(path)
    if target.is_dir():
        raise InitError(f"{target} is a directory; give a file path, e.g. {target / 'telemetry.yaml'}")
    if os.path.lexists(target) and not force:
        raise InitError(f"{target} already exists; use --force to overwrite it")
    try:
        text = packaged_config_text()
    except ConfigError as exc:
        raise InitError(str(exc)) from None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written next to the target and renamed over it: an interrupted write leaves no half file.
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError as exc:
        raise InitError(f"cannot write {target}: {exc.strerror or type(exc).__name__}") from None
    return target


def build_parser(prog: str = "otel-grpo init") -> argparse.ArgumentParser:
    """The arguments of ``otel-grpo init``."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Write a commented telemetry config file with every setting at its default "
        "(sections, units and the environment variables that override each one are explained in it).",
    )
    parser.add_argument(
        "path",
        nargs="?",
        default=str(DEFAULT_CONFIG_PATH),
        help=f"file to write (default {DEFAULT_CONFIG_PATH}, the file otel-grpo reads when given no path)",
    )
    parser.add_argument("--force", action="store_true", help="overwrite the file if it exists")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``otel-grpo init``: write the file and say what next; 0 on success, 2 on a one-line error."""
    args = build_parser().parse_args(argv)
    try:
        written = write_config(args.path, force=args.force)
    except InitError as exc:
        print(f"otel-grpo init: {exc}", file=sys.stderr)
        return 2
    quoted = shlex.quote(str(written))
    print(f"wrote {written} (every setting at its default). Next: edit it, then `otel-grpo check-config {quoted}`")
    return 0


if __name__ == "__main__":
    sys.exit(main())
