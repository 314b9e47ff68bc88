"""``otel-grpo report RUN_DIR [--out report.html] [--png overview.png] [--png-dir DIR]``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from otel_grpo.extras import MissingExtraError, require_extra


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-grpo report", description="Render a self-contained HTML report of a WandB run directory."
    )
    parser.add_argument("run_dir", help="an offline-run-* directory, a wandb/ directory, or a .wandb file")
    parser.add_argument("--out", default="report.html", help="HTML file to write (default: report.html)")
    parser.add_argument("--png", help="also write every panel group into this one PNG, one group under the other")
    parser.add_argument("--png-dir", help="also write one PNG per panel group into this folder (report-GROUP.png)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``otel-grpo report RUN_DIR [--out report.html] [--png overview.png] [--png-dir DIR]``."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        require_extra("report", feature="otel-grpo report")
    except MissingExtraError as exc:
        print(exc, file=sys.stderr)
        return 2
    from otel_grpo.tools.report.layout import render_groups, render_overview
    from otel_grpo.tools.report.page import render_report
    from otel_grpo.tools.runreader import read_run

    try:
        records = read_run(args.run_dir)
    except (FileNotFoundError, NotADirectoryError, RuntimeError, OSError) as exc:
        print(f"otel-grpo report: cannot read a WandB run at {args.run_dir}: {exc}", file=sys.stderr)
        return 2
    if not records.history:
        print(f"otel-grpo report: the run at {records.path} has no history rows", file=sys.stderr)
        return 2
    counts = render_report(records, args.out)
    empty = [name for name, n in counts.items() if n == 0]
    print(
        f"otel-grpo report: wrote {args.out} ({len(counts)} charts"
        + (f"; no data for: {', '.join(empty)}" if empty else "")
        + ")"
    )
    if args.png:
        render_overview(records, args.png)
        print(f"otel-grpo report: wrote {args.png}")
    if args.png_dir:
        for path in render_groups(records, args.png_dir):
            print(f"otel-grpo report: wrote {path}")
    return 0
