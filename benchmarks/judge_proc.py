"""Run the demo JudgeServer on loopback in this process until stdin closes.

Prints ``PORT <n>`` once it listens. The listen backlog is raised from the
``socketserver`` default of 5 to 1024 as a precaution for 500 concurrent clients (a
dropped SYN is retried by the kernel only after a second); a check with the default
backlog gave the same burst times on the reference machine.
"""

from __future__ import annotations

import argparse
import logging
import sys

from otel_grpo.tools.demo.judge_server import FaultConfig, JudgeServer


def main() -> int:
    """Serve until stdin is closed (the parent exits or closes the pipe)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--schedule", default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    faults = FaultConfig(schedule=args.schedule.split(",") if args.schedule else None)
    server = JudgeServer(faults=faults).start()
    try:
        print(f"PORT {server.port}", flush=True)
        sys.stdin.read()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
