"""A clean place for a test's offline WandB run: no WANDB_*/OTEL_* variables, WandB silent."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

import pytest


@contextlib.contextmanager
def offline_run_env(folder: Path | str) -> Iterator[pytest.MonkeyPatch]:
    """Within the block: the environment without WANDB_*/OTEL_* variables, ``WANDB_SILENT=true``, and
    ``folder`` as the working directory (all restored afterwards). Yields the monkeypatch for more."""
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith(("WANDB_", "OTEL_")):
                mp.delenv(key, raising=False)
        mp.setenv("WANDB_SILENT", "true")
        mp.chdir(folder)
        yield mp
