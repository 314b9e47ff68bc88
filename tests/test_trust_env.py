"""The environment switches win over the file: OTEL_SDK_DISABLED, OTEL_METRICS_EXPORTER, OTEL_TRACES_EXPORTER.

Every case starts from a config file that enables the Prometheus endpoint on one fixed
loopback port. A real Prometheus server scrapes that port: the endpoint is up exactly
when the variables say so, and a plain HTTP GET of the port is refused otherwise. OTLP
goes to a real OTLP/HTTP receiver; WandB rows are looked for on disk. The same is checked
under ``otel-grpo run``.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

import otel_grpo
from otel_grpo.config import env as env_module
from otel_grpo.config import load_config
from tests.prom_harness import (
    SCRAPE_JOB,
    free_port,
    prometheus_available,
    query,
    start_prometheus,
    stop_prometheus,
)
from tests.test_otlp_export import Receiver, wait_until

pytestmark = pytest.mark.slow  # starts real servers and processes

DISABLED_LINE = "OTEL_SDK_DISABLED=true: nothing is instrumented, served or written"


@pytest.fixture(scope="module")
def prom_port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def prometheus(prom_port):
    if not prometheus_available():
        pytest.skip("the prometheus binary is not installed")
    proc, api_url = start_prometheus(f"127.0.0.1:{prom_port}", scrape_interval="1s", rule_file=None)
    yield api_url
    stop_prometheus(proc)


def write_config(path: Path, port: int, *, wandb: str = "{mode: disabled}", otlp: str = "{enabled: false}") -> Path:
    path.write_text(
        textwrap.dedent(f"""
        wandb: {wandb}
        prometheus: {{enabled: true, host: 127.0.0.1, port: {port}}}
        otlp: {otlp}
        """)
    )
    return path


def get_metrics(port: int) -> str | None:
    """The body of a GET of /metrics on the port; None when the connection is refused."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return response.read().decode()
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            return None
        raise


def scraped_up(api_url: str, after: float, timeout_s: float = 20.0) -> float:
    """``up`` of the otel-grpo job in Prometheus's first scrape later than ``after`` (unix time)."""
    selector = f'up{{job="{SCRAPE_JOB}"}}'
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stamps = query(api_url, f"timestamp({selector})")
        if stamps and float(stamps[0]["value"][1]) > after:
            (up,) = query(api_url, selector)
            return float(up["value"][1])
        time.sleep(0.2)
    raise AssertionError(f"Prometheus did not scrape 127.0.0.1 after {after}")


def one_step() -> None:
    with otel_grpo.step(1):
        with otel_grpo.sample("gsm8k"):
            otel_grpo.record_executor_run(cost=0.01, duration_s=0.1)
            otel_grpo.record_sample(1.0)


# --- the Prometheus endpoint, scraped by Prometheus -----------------------------------------------
@pytest.mark.parametrize(
    ("env", "served"),
    [
        ({}, True),  # the file alone: served (the check can fail)
        ({"OTEL_METRICS_EXPORTER": "none"}, False),
        ({"OTEL_METRICS_EXPORTER": "otlp"}, False),  # names otlp, not prometheus
        ({"OTEL_METRICS_EXPORTER": "grpo_wandb"}, True),  # not ours to decide: the file's setting stays
        ({"OTEL_METRICS_EXPORTER": "prometheus,otlp"}, True),
        ({"OTEL_SDK_DISABLED": "true"}, False),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_METRICS_EXPORTER": "prometheus"}, False),
    ],
)
def test_the_prometheus_endpoint_follows_the_variables(env, served, prometheus, prom_port, tmp_path, monkeypatch):
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = write_config(tmp_path / "telemetry.yaml", prom_port)
    started = time.time()
    tel = otel_grpo.setup(str(config))
    try:
        one_step()
        body = get_metrics(prom_port)
        up = scraped_up(prometheus, after=started + 0.5)
    finally:
        tel.shutdown()
    if served:
        assert body is not None and "grpo_samples" in body
        assert up == 1.0
    else:
        assert body is None, "the endpoint is served"
        assert up == 0.0
        assert tel.prometheus_url is None


# --- OTLP -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("file_otlp", "env", "metrics", "traces"),
    [
        ("on", {}, True, True),
        ("on", {"OTEL_TRACES_EXPORTER": "none"}, True, False),
        ("on", {"OTEL_TRACES_EXPORTER": "grpo_wandb"}, True, True),
        ("on", {"OTEL_METRICS_EXPORTER": "prometheus"}, False, True),
        ("on", {"OTEL_SDK_DISABLED": "true"}, False, False),
        # Naming otlp turns OTLP on; with the file's OTLP off, only the signals named.
        ("off", {"OTEL_METRICS_EXPORTER": "otlp"}, True, False),
        ("off", {"OTEL_TRACES_EXPORTER": "otlp"}, False, True),
        ("off", {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_TRACES_EXPORTER": "otlp"}, True, True),
    ],
)
def test_otlp_export_follows_the_variables(file_otlp, env, metrics, traces, tmp_path, monkeypatch):
    receiver = Receiver()
    try:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", f"http://127.0.0.1:{receiver.port}/v1/traces")
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", f"http://127.0.0.1:{receiver.port}/v1/metrics")
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        otlp = "{enabled: true, export_interval_s: 3600}" if file_otlp == "on" else "{enabled: false}"
        config = write_config(tmp_path / "telemetry.yaml", 0, otlp=otlp)
        tel = otel_grpo.setup(str(config))
        one_step()
        tel.shutdown()
        if metrics or traces:
            assert wait_until(lambda: receiver.paths, timeout_s=10)
        else:
            time.sleep(0.5)
        assert (bool(receiver.metrics), bool(receiver.traces)) == (metrics, traces)
    finally:
        receiver.close()


def test_exporter_names_in_the_effective_config():
    def effective(env: dict[str, str], file: dict | None = None) -> tuple:
        cfg = load_config(file or {"prometheus": {"enabled": True}, "otlp": {"enabled": True}}, env=env)
        return cfg.otlp.enabled, cfg.otlp.metrics, cfg.otlp.traces, cfg.prometheus.enabled

    assert effective({}) == (True, True, True, True)
    assert effective({"OTEL_METRICS_EXPORTER": "none"}) == (True, False, True, False)
    assert effective({"OTEL_METRICS_EXPORTER": "console"}) == (True, True, True, True)
    assert effective({"OTEL_METRICS_EXPORTER": "grpo_wandb,otlp"}) == (True, True, True, False)
    assert effective({"OTEL_TRACES_EXPORTER": "none"}) == (True, True, False, True)
    assert effective({"OTEL_SDK_DISABLED": "true", "OTEL_METRICS_EXPORTER": "otlp,prometheus"}) == (
        False,
        True,
        True,
        False,
    )
    off = {"otlp": {"enabled": False}}
    assert effective({"OTEL_METRICS_EXPORTER": "otlp"}, off) == (True, True, False, False)
    # An endpoint in the environment turns OTLP on with both signals, as before.
    both = {"OTEL_METRICS_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}
    assert effective(both, off) == (True, True, True, False)
    sdk_off = load_config({"wandb": {"mode": "offline"}}, env={"OTEL_SDK_DISABLED": "true"})
    assert (sdk_off.wandb.mode, sdk_off.instrumentation.enabled) == ("disabled", False)


# --- OTEL_SDK_DISABLED: WandB, overrides, patching -------------------------------------------------
def test_sdk_disabled_writes_no_wandb_run_even_over_code_overrides(tmp_path, monkeypatch, caplog, prom_port):
    caplog.set_level(logging.INFO, logger="otel_grpo")
    monkeypatch.setattr(env_module, "_announced", False)  # said once per process: this test's process
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    wandb_dir = tmp_path / "runs"
    wandb_dir.mkdir()
    config = write_config(tmp_path / "telemetry.yaml", prom_port, wandb=f"{{mode: offline, dir: '{wandb_dir}'}}")
    tel = otel_grpo.setup(str(config), wandb={"mode": "offline", "dir": str(wandb_dir)}, prometheus={"enabled": True})

    class Trainer:
        def train_step(self, step):
            return {"loss": 0.5}

    trainer = Trainer()
    original = Trainer.train_step
    otel_grpo.instrument_trainer(trainer)
    assert Trainer.train_step is original  # nothing patched
    for step in (1, 2):
        trainer.train_step(step)
        one_step()
    assert get_metrics(prom_port) is None
    tel.shutdown()
    assert list(wandb_dir.rglob("*")) == [], "OTEL_SDK_DISABLED wrote WandB files"
    assert not tel.tracing
    lines = [r.getMessage() for r in caplog.records if DISABLED_LINE in r.getMessage()]
    assert len(lines) == 1


# --- the same under `otel-grpo run` -------------------------------------------------------------------
TRAINER = """
class GRPOTrainer:
    def train_step(self, step):
        return {"loss": 0.5}
"""

SCRIPT = """
import sys, urllib.request, urllib.error
import grpo_trainer

port = int(sys.argv[1])
original = grpo_trainer.GRPOTrainer.__dict__["train_step"]
trainer = grpo_trainer.GRPOTrainer()
for step in (1, 2):
    trainer.train_step(step)
try:
    urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    print("SERVED")
except urllib.error.URLError:
    print("REFUSED")
patched = grpo_trainer.GRPOTrainer.__dict__["train_step"] is not original or hasattr(original, "__wrapped__")
print("PATCHED" if patched else "UNPATCHED")
"""


@pytest.mark.parametrize(
    ("env", "served", "written"),
    [
        ({}, True, True),
        ({"OTEL_METRICS_EXPORTER": "none"}, False, True),
        ({"OTEL_SDK_DISABLED": "true"}, False, False),
    ],
)
def test_otel_grpo_run_follows_the_variables(env, served, written, tmp_path):
    port = free_port()
    wandb_dir = tmp_path / "runs"
    wandb_dir.mkdir()
    write_config(tmp_path / "telemetry.yaml", port, wandb=f"{{mode: offline, dir: '{wandb_dir}'}}")
    (tmp_path / "grpo_trainer.py").write_text(TRAINER)
    (tmp_path / "train.py").write_text(SCRIPT)
    child_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "WANDB_"))}
    child_env.update(env, WANDB_SILENT="true")
    done = subprocess.run(
        ["otel-grpo", "run", "--config", "telemetry.yaml", "--", sys.executable, "train.py", str(port)],
        cwd=tmp_path,
        env=child_env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    printed = done.stdout.split()
    assert printed[0] == ("SERVED" if served else "REFUSED"), done.stderr[-3000:]
    runs = list(wandb_dir.rglob("*.wandb"))
    if written:
        assert printed[1] == "PATCHED" and len(runs) == 1
    else:
        assert printed[1] == "UNPATCHED" and runs == []
        assert done.stderr.count(DISABLED_LINE) == 1, done.stderr
