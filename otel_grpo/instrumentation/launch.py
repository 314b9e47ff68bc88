"""Process launchers (``accelerate launch``, ``torchrun``, ``deepspeed``) under ``otel-grpo run``.

``otel-grpo run -- accelerate launch train.py`` starts otel-grpo in the launcher, a process
that trains nothing and whose children would not see otel-grpo (the bootstrap takes itself
off ``PYTHONPATH``). So in a launcher otel-grpo starts nothing and puts its bootstrap back
on ``PYTHONPATH`` for the training processes only (:func:`hand_over_to_workers`); each of
them starts otel-grpo, and only the main one (``RANK`` 0) writes rows, serves metrics and
exports (:func:`worker_overrides`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

_LAUNCHER_NAMES = ("torchrun", "deepspeed")
_LAUNCHER_MODULES = ("torch.distributed.run", "torch.distributed.launch", "accelerate.commands.launch")


def is_launcher(argv: list[str] | None = None) -> bool:
    """True when this process is a launcher of training processes (from its command line)."""
    argv = list(argv if argv is not None else getattr(sys, "orig_argv", sys.argv))
    for index, arg in enumerate(argv[:3]):
        name = os.path.basename(arg)
        if name == "accelerate" or name == "accelerate-launch":
            return name == "accelerate-launch" or (len(argv) > index + 1 and argv[index + 1] == "launch")
        if name in _LAUNCHER_NAMES:
            return True
        if arg == "-m" and len(argv) > index + 1:
            return argv[index + 1] in _LAUNCHER_MODULES
    return False


def hand_over_to_workers() -> bool:
    """In a launcher: put the bootstrap on the children's ``PYTHONPATH`` and return True (start nothing here)."""
    if not is_launcher():
        return False
    bootstrap = str(Path(__file__).resolve().parents[1] / "bootstrap")
    original = os.environ.get("PYTHONPATH", "")
    os.environ["OTEL_GRPO_ORIGINAL_PYTHONPATH"] = original
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (bootstrap, original) if p)
    return True


def worker_overrides() -> dict[str, Any]:
    """Config overrides for a non-main training process (``RANK`` > 0): no rows, no endpoint, no export."""
    rank = os.environ.get("RANK", "0").strip() or "0"
    if rank == "0":
        return {}
    return {"wandb": {"mode": "disabled"}, "prometheus": {"enabled": False}, "otlp": {"enabled": False}}
