"""Hostile config files and secrets, from a real YAML file through ``otel_grpo.setup``.

* Hostile files (issue 12, item 5): an alias bomb, a self-referencing alias, a FIFO,
  a 100 MB file, ... each gives a one-line ``ConfigError`` naming the file within
  seconds, from ``load_config``, ``setup`` and ``otel-grpo check-config`` (exit 2).
* Secrets (issue 12, item 9): an OTLP endpoint with a secret in its query string and a
  header written as ``"${ENV}"`` in the YAML. A loopback OTLP/HTTP receiver checks the
  header arrives resolved; the secrets are in no log record (any level, any logger),
  not in the run config and in no file of the offline WandB run directory.

Nothing here talks to anything but 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import otel_grpo
from otel_grpo.config import MAX_CONFIG_BYTES, ConfigError, load_config
from otel_grpo.exporters import otlp
from otel_grpo.redact import REDACTED, redact_text, redact_url
from otel_grpo.tools.runreader import read_run

pytestmark = pytest.mark.slow  # starts real processes, servers or WandB runs

QUERY_SECRET = "qs-SEKRET-9d2f41"
TOKEN_SECRET = "tok-SEKRET-7c1e05"
HEADER_VALUE = f"Bearer {TOKEN_SECRET}"
TIME_LIMIT_S = 5.0


# =========================================================================== hostile files
def _alias_bomb() -> str:
    """The classic "billion laughs": 9 levels of 9 aliases, 9**9 strings once expanded."""
    lines = ["lol0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for level in range(1, 10):
        refs = ", ".join([f"*l{level - 1}"] * 9)
        lines.append(f"lol{level}: &l{level} [{refs}]")
    return "\n".join(lines) + "\n"


def _doubling_bomb() -> str:
    """Few aliases, still exponential: each level doubles the one before (2**30 values)."""
    lines = ["d0: &d0 [x, x]"] + [f"d{i}: &d{i} [*d{i - 1}, *d{i - 1}]" for i in range(1, 31)]
    return "\n".join(lines[:17]) + "\n"  # 16 levels, 32 aliases: within the alias count


def _make_text(text: str) -> Callable[[Path], Path]:
    def make(tmp_path: Path) -> Path:
        path = tmp_path / "telemetry.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return make


def _make_fifo(tmp_path: Path) -> Path:
    path = tmp_path / "telemetry.fifo"
    os.mkfifo(path)
    return path


def _make_huge(tmp_path: Path) -> Path:
    path = tmp_path / "huge.yaml"
    with open(path, "wb") as handle:
        handle.write(b"wandb:\n  mode: offline\n")
        handle.truncate(100 * 1024 * 1024)  # sparse: 100 MB in an instant
    return path


HOSTILE: dict[str, tuple[Callable[[Path], Path], str]] = {
    "billion-laughs": (_make_text(_alias_bomb()), "too many aliases"),
    "doubling-bomb": (_make_text(_doubling_bomb()), "aliases expand to more than"),
    "self-alias-list": (_make_text("a: &a [1, *a]\n"), "recursive alias *a"),
    "self-alias-map": (_make_text("wandb: &w\n  dashboard: *w\n"), "recursive alias *w"),
    "deep-nesting": (_make_text("a: " + "[" * 200_000 + "]" * 200_000 + "\n"), "nested more than"),
    "huge-integer": (_make_text("metrics:\n  max_sources: " + "9" * 6000 + "\n"), "a value cannot be read"),
    "fifo": (_make_fifo, "FIFO"),
    "100MB": (_make_huge, "file too large"),
    "directory": (lambda tmp_path: tmp_path, "directory"),
}

needs_fifo = pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")


def _hostile_params() -> list:
    return [pytest.param(name, marks=needs_fifo if name == "fifo" else ()) for name in HOSTILE]


@pytest.mark.parametrize("name", _hostile_params())
def test_hostile_file_is_a_prompt_config_error(name: str, tmp_path: Path) -> None:
    make, problem = HOSTILE[name]
    path = make(tmp_path)
    started = time.monotonic()
    with pytest.raises(ConfigError) as caught:
        load_config(path, env={})
    elapsed = time.monotonic() - started
    message = str(caught.value)
    assert elapsed < TIME_LIMIT_S, f"{name}: took {elapsed:.1f}s"
    assert message.startswith(f"{path}: "), message
    assert problem in message, message
    assert "\n" not in message


@pytest.mark.parametrize("name", ["billion-laughs", "self-alias-list", pytest.param("fifo", marks=needs_fifo)])
def test_hostile_file_through_setup(name: str, tmp_path: Path) -> None:
    make, problem = HOSTILE[name]
    path = make(tmp_path)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=problem.replace("*", r"\*")):
        otel_grpo.setup(str(path), wandb={"mode": "disabled"})
    assert time.monotonic() - started < TIME_LIMIT_S
    assert otel_grpo.get_telemetry() is None


@pytest.mark.parametrize("name", _hostile_params())
def test_check_config_cli_exits_2_with_one_line(name: str, tmp_path: Path) -> None:
    make, problem = HOSTILE[name]
    path = make(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "otel_grpo.tools.cli", "check-config", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"{path}: ") and problem in lines[0]
    assert "Traceback" not in proc.stderr + proc.stdout


def test_limits_leave_room_for_a_real_config(tmp_path: Path) -> None:
    """Anchors used the ordinary way, and a file just under the size bound, still load."""
    text = (
        "wandb:\n  tags: &names [gsm8k, math]\n  dashboard:\n    datasets: *names\n"
        "judge:\n  hosts: *names\n  ports: &ports [8002, 8003]\n"
    )
    padding = "#" * 99 + "\n"
    text += padding * ((MAX_CONFIG_BYTES - len(text)) // len(padding))
    path = tmp_path / "telemetry.yaml"
    path.write_text(text, encoding="utf-8")
    assert MAX_CONFIG_BYTES - len(padding) < path.stat().st_size <= MAX_CONFIG_BYTES
    cfg = load_config(path, env={})
    assert cfg.wandb.dashboard.datasets == ["gsm8k", "math"] == cfg.judge.hosts
    assert cfg.judge.ports == [8002, 8003]
    path.write_text(text + padding, encoding="utf-8")
    with pytest.raises(ConfigError, match="file too large"):
        load_config(path, env={})


def test_default_path_that_is_a_fifo_is_an_error_not_skipped(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this platform")
    (tmp_path / "config").mkdir()
    os.mkfifo(tmp_path / "config" / "telemetry.yaml")  # the autouse fixture chdir'ed to tmp_path
    started = time.monotonic()
    with pytest.raises(ConfigError, match="FIFO"):
        load_config(env={})
    assert time.monotonic() - started < TIME_LIMIT_S


def test_self_containing_mapping_from_code_is_a_config_error() -> None:
    looped: dict = {}
    looped["wandb"] = looped
    with pytest.raises(ConfigError, match="^<dict>: nested too deeply"):
        load_config(looped, env={})
    with pytest.raises(ConfigError, match="^<overrides>: nested too deeply"):
        load_config(None, env={}, overrides={"wandb": looped})


# =========================================================================== redaction
def test_shared_redactor_masks_query_userinfo_and_bare_targets() -> None:
    assert redact_url(f"http://127.0.0.1:4318?api-key={QUERY_SECRET}") == f"http://127.0.0.1:4318?api-key={REDACTED}"
    assert redact_url(f"https://u:{QUERY_SECRET}@c/v1/metrics?token={QUERY_SECRET}") == (
        f"https://u:{REDACTED}@c/v1/metrics?token={REDACTED}"
    )
    # As HTTP clients print them: a bare path with its query, a gRPC target with userinfo.
    message = (
        f"Max retries exceeded with url: /v1/metrics?api-key={QUERY_SECRET} (target u:{QUERY_SECRET}@collector:4317)"
    )
    assert QUERY_SECRET not in redact_text(message)
    # otlp.redact_url is kept for its callers: the endpoint only.
    assert otlp.redact_url(f"https://u:pw@c:4318/v1/metrics?token={QUERY_SECRET}") == "https://c:4318/v1/metrics"


# =========================================================================== secrets end to end
class _OtlpReceiver:
    """A tiny OTLP/HTTP receiver on 127.0.0.1: records each request's path and headers, answers 200."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                receiver.requests.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def paths(self) -> list[str]:
        return [path for path, _ in self.requests]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def receiver() -> Iterator[_OtlpReceiver]:
    server = _OtlpReceiver()
    yield server
    server.close()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until(predicate: Callable[[], bool], timeout_s: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def _write_config(tmp_path: Path, endpoint: str) -> Path:
    path = tmp_path / "telemetry.yaml"
    path.write_text(
        "wandb:\n"
        "  mode: offline\n"
        "otlp:\n"
        "  enabled: true\n"
        f'  endpoint: "{endpoint}"\n'
        "  headers:\n"
        '    authorization: "Bearer ${MY_TOKEN}"\n'
        "  export_interval_s: 0.2\n"
        "  timeout_s: 2\n",
        encoding="utf-8",
    )
    return path


def _run_one_step(config: Path, tmp_path: Path) -> tuple[otel_grpo.Telemetry, Path]:
    tel = otel_grpo.setup(str(config), wandb={"mode": "offline", "dir": str(tmp_path / "wb")})
    with otel_grpo.step(1):
        otel_grpo.record_sample(1.0)
    assert tel.run is not None, "the WandB run must exist"
    return tel, Path(tel.run.dir).parent


def _assert_nowhere(
    secrets: tuple[str, ...], caplog: pytest.LogCaptureFixture, tel: otel_grpo.Telemetry, run_dir: Path
) -> None:
    texts = {f"log record {r.name}:{r.levelname}": r.getMessage() + (r.exc_text or "") for r in caplog.records}
    texts["redacted_dict"] = repr(tel.config.redacted_dict())
    # Every file wandb wrote: the run directory and the logs beside it (debug.log, ...).
    files = [path for path in run_dir.parent.rglob("*") if path.is_file()]
    assert any(path.suffix == ".wandb" for path in files), files
    assert any(path.name == "debug.log" for path in files), files
    for path in files:
        texts[str(path)] = path.read_bytes().decode("utf-8", "replace")
    for secret in secrets:
        leaks = [where for where, text in texts.items() if secret in text]
        assert not leaks, f"{secret!r} leaked into {leaks}"


@pytest.mark.parametrize("endpoint_path", ["", "/v1/metrics"])
def test_yaml_to_exporter_resolves_headers_and_hides_secrets(
    endpoint_path: str,
    receiver: _OtlpReceiver,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("MY_TOKEN", TOKEN_SECRET)
    query = "token" if endpoint_path else "api-key"
    endpoint = f"http://127.0.0.1:{receiver.port}{endpoint_path}?{query}={QUERY_SECRET}"
    config = _write_config(tmp_path, endpoint)
    caplog.set_level(logging.DEBUG)

    tel, run_dir = _run_one_step(config, tmp_path)
    assert _wait_until(lambda: any(p.startswith("/v1/metrics") for p in receiver.paths())), receiver.paths()
    tel.shutdown()

    # The exporter sent the endpoint's query and the header resolved from the environment.
    assert receiver.requests
    for path, headers in receiver.requests:
        assert path in (f"/v1/metrics?{query}={QUERY_SECRET}", f"/v1/traces?{query}={QUERY_SECRET}"), path
        assert headers.get("authorization") == HEADER_VALUE, headers
    # The run config shows the header name and the endpoint with its query value masked.
    otlp_config = tel.config.redacted_dict()["otlp"]
    assert otlp_config["headers"] == {"authorization": "***"}
    assert otlp_config["endpoint"] == f"http://127.0.0.1:{receiver.port}{endpoint_path}?{query}={REDACTED}"
    run_config = read_run(run_dir).config["otel_grpo"]["otlp"]
    assert (run_config["headers"], run_config["endpoint"]) == (otlp_config["headers"], otlp_config["endpoint"])
    # The HTTP client's request lines were logged, with the query masked.
    assert any(r.name.startswith("urllib3") and "/v1/metrics" in r.getMessage() for r in caplog.records)
    _assert_nowhere((QUERY_SECRET, TOKEN_SECRET), caplog, tel, run_dir)


def test_failed_export_warning_hides_endpoint_and_header_secrets(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("MY_TOKEN", TOKEN_SECRET)
    endpoint = f"http://user:{QUERY_SECRET}x@127.0.0.1:{_closed_port()}/v1/metrics?api-key={QUERY_SECRET}"
    config = _write_config(tmp_path, endpoint)
    caplog.set_level(logging.DEBUG)
    before = otlp.otlp_health()["metrics_export_errors"]

    tel, run_dir = _run_one_step(config, tmp_path)
    assert _wait_until(lambda: otlp.otlp_health()["metrics_export_errors"] > before)
    tel.shutdown()

    warnings = [r.getMessage() for r in caplog.records if r.name == otlp.__name__ and r.levelno >= logging.WARNING]
    assert warnings and "failed" in warnings[0], warnings
    assert f"api-key={REDACTED}" in warnings[0], warnings[0]
    _assert_nowhere((QUERY_SECRET, TOKEN_SECRET), caplog, tel, run_dir)


def test_unset_header_variable_is_not_sent_literally(
    receiver: _OtlpReceiver,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    config = _write_config(tmp_path, f"http://127.0.0.1:{receiver.port}")
    config.write_text(
        config.read_text(encoding="utf-8").replace("MY_TOKEN", "OTEL_GRPO_UNSET_TOKEN_VAR"), encoding="utf-8"
    )
    caplog.set_level(logging.WARNING)
    tel, _run_dir = _run_one_step(config, tmp_path)
    assert _wait_until(lambda: bool(receiver.requests))
    tel.shutdown()
    for _path, headers in receiver.requests:
        assert "authorization" not in headers, headers
    warning = [r.getMessage() for r in caplog.records if "OTEL_GRPO_UNSET_TOKEN_VAR" in r.getMessage()]
    assert warning == [
        "otlp.headers.authorization: environment variable OTEL_GRPO_UNSET_TOKEN_VAR is not set; header not sent"
    ]
