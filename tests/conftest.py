"""Shared fixtures: an isolated working directory, environment and otel-grpo teardown."""

from __future__ import annotations

import os
import socket
import sys
import threading
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHAPE_DIR = Path(__file__).resolve().parent / "shape_trainer"

_ENV_PREFIXES = ("WANDB_", "OTEL_")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """Each test starts with no WANDB_*/OTEL_* variables, in its own directory, no wandb run."""
    for key in list(os.environ):
        if key.startswith(_ENV_PREFIXES):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.chdir(tmp_path)
    yield
    import otel_grpo

    tel = otel_grpo.get_telemetry()
    if tel is not None:
        tel.shutdown()
    if "wandb" in sys.modules:
        import wandb

        if wandb.run is not None:
            wandb.finish()


@pytest.fixture
def shape_path(monkeypatch: pytest.MonkeyPatch):
    """Make the shape trainer's modules (grpo_trainer, aflow_executor, ...) importable."""
    monkeypatch.syspath_prepend(str(SHAPE_DIR))
    yield SHAPE_DIR
    for name in ("grpo_trainer", "aflow_executor", "reward_computer", "plan", "ray_trainer"):
        sys.modules.pop(name, None)


@pytest.fixture
def silent_server():
    """A loopback server that accepts connections and never answers."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _ = sock.accept()
                held.append(conn)
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    sock.close()
