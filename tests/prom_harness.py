"""Run a real Prometheus server (Debian's /usr/bin/prometheus) on loopback for tests.

    proc, api_url = start_prometheus("127.0.0.1:9464", scrape_interval="1s")
    try:
        wait_for_series(api_url, "grpo_samples_total")
        result = query(api_url, 'sum by (grpo_source) (grpo_samples_total)')
    finally:
        stop_prometheus(proc)

The server scrapes one target (job ``otel-grpo``), loads ``config/prometheus/alerts.yml``
as its rule file, keeps its TSDB in a temporary directory, and listens on a free
127.0.0.1 port. Nothing leaves loopback.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
ALERTS_FILE = REPO_ROOT / "config" / "prometheus" / "alerts.yml"
PROMETHEUS_BIN = os.environ.get("PROMETHEUS_BIN", "/usr/bin/prometheus")
PROMTOOL_BIN = os.environ.get("PROMTOOL_BIN", "/usr/bin/promtool")
SCRAPE_JOB = "otel-grpo"


class PrometheusError(RuntimeError):
    """Prometheus did not start, or rejected a query."""


def prometheus_available() -> bool:
    """True when the Prometheus server binary is installed."""
    return Path(PROMETHEUS_BIN).exists() or shutil.which("prometheus") is not None


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _binary() -> str:
    if Path(PROMETHEUS_BIN).exists():
        return PROMETHEUS_BIN
    found = shutil.which("prometheus")
    if not found:
        raise PrometheusError("prometheus binary not found (apt-get install prometheus)")
    return found


def start_prometheus(
    scrape_url_host_port: str,
    scrape_interval: str = "1s",
    *,
    metrics_path: str = "/metrics",
    rule_file: Path | None = ALERTS_FILE,
    startup_timeout_s: float = 30.0,
) -> tuple[subprocess.Popen, str]:
    """Start Prometheus scraping ``scrape_url_host_port`` (e.g. "127.0.0.1:9464").

    Returns (process, api_url) where api_url is e.g. ``http://127.0.0.1:PORT``. The
    process owns a temporary directory (config, rules, TSDB) removed by
    :func:`stop_prometheus`. Raises :class:`PrometheusError` if it is not ready in time.
    """
    if "://" in scrape_url_host_port:
        parsed = urllib.parse.urlsplit(scrape_url_host_port)
        scrape_url_host_port = parsed.netloc
        metrics_path = parsed.path or metrics_path
    workdir = Path(tempfile.mkdtemp(prefix="otel-grpo-prometheus-"))
    rule_files = []
    if rule_file is not None:
        shutil.copy(rule_file, workdir / "alerts.yml")
        rule_files.append("alerts.yml")
    config = {
        "global": {"scrape_interval": scrape_interval, "evaluation_interval": scrape_interval},
        "rule_files": rule_files,
        "scrape_configs": [
            {
                "job_name": SCRAPE_JOB,
                "honor_labels": True,
                "scrape_interval": scrape_interval,
                "scrape_timeout": scrape_interval,
                "metrics_path": metrics_path,
                "static_configs": [{"targets": [scrape_url_host_port]}],
            }
        ],
    }
    # JSON is valid YAML: no YAML writer needed.
    (workdir / "prometheus.yml").write_text(json.dumps(config, indent=2))
    port = free_port()
    api_url = f"http://127.0.0.1:{port}"
    log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop_prometheus
    proc = subprocess.Popen(
        [
            _binary(),
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=workdir,
    )
    proc.workdir = workdir  # type: ignore[attr-defined]
    proc.logfile = log  # type: ignore[attr-defined]
    deadline = time.monotonic() + startup_timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = _read_log(proc)
            stop_prometheus(proc)
            raise PrometheusError(f"prometheus exited with {proc.returncode}:\n{output}")
        try:
            with urllib.request.urlopen(f"{api_url}/-/ready", timeout=1) as response:
                if response.status == 200:
                    return proc, api_url
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.1)
    output = _read_log(proc)
    stop_prometheus(proc)
    raise PrometheusError(f"prometheus not ready after {startup_timeout_s}s:\n{output}")


def _read_log(proc: subprocess.Popen) -> str:
    try:
        return (proc.workdir / "prometheus.log").read_text(errors="replace")[-4000:]  # type: ignore[attr-defined]
    except OSError:
        return ""


def stop_prometheus(proc: subprocess.Popen, timeout_s: float = 10.0) -> None:
    """Stop the server started by :func:`start_prometheus` and delete its files."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_s)
    logfile = getattr(proc, "logfile", None)
    if logfile is not None:
        logfile.close()
    workdir = getattr(proc, "workdir", None)
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)


def _api(api_url: str, path: str, params: dict[str, str]) -> Any:
    data = urllib.parse.urlencode(params).encode()
    request = urllib.request.Request(f"{api_url}{path}", data=data, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode(errors="replace")
        raise PrometheusError(f"{path} {params} -> HTTP {exc.code}: {detail}") from exc
    if body.get("status") != "success":
        raise PrometheusError(f"{path} {params} -> {body}")
    return body["data"]


def query(api_url: str, expr: str, at: float | None = None) -> list[dict]:
    """Run an instant query; return the result list (``[{"metric": {...}, "value": [t, "v"]}]``).

    Raises :class:`PrometheusError` if Prometheus rejects the expression. A scalar
    result is returned as one element with an empty metric.
    """
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    data = _api(api_url, "/api/v1/query", params)
    if data["resultType"] in ("scalar", "string"):
        return [{"metric": {}, "value": data["result"]}]
    return data["result"]


def values_by(result: list[dict], *labels: str) -> dict[tuple[str, ...], float]:
    """``{(label values...): value}`` of an instant-vector result."""
    return {tuple(r["metric"].get(label, "") for label in labels): float(r["value"][1]) for r in result}


def wait_for_series(
    api_url: str,
    expr: str,
    timeout_s: float = 20.0,
    predicate: Any = None,
    interval_s: float = 0.2,
) -> list[dict]:
    """Poll ``expr`` until it returns data (and ``predicate(result)`` holds, if given)."""
    deadline = time.monotonic() + timeout_s
    last: list[dict] = []
    while True:
        last = query(api_url, expr)
        if last and (predicate is None or predicate(last)):
            return last
        if time.monotonic() >= deadline:
            raise PrometheusError(f"timed out after {timeout_s}s waiting for {expr!r}; last result: {last}")
        time.sleep(interval_s)


def wait_for_scrape(api_url: str, after: float, timeout_s: float = 20.0) -> None:
    """Wait until the target has been scraped successfully at a time later than ``after``."""

    def scraped(result: list[dict]) -> bool:
        return any(float(r["value"][1]) >= after for r in result)

    # timestamp() of a selector is the sample's (= the scrape's) time; of an operator
    # result it would be the evaluation time, hence the `and` to keep successful scrapes.
    up = f'up{{job="{SCRAPE_JOB}"}}'
    wait_for_series(api_url, f"timestamp({up}) and on() ({up} == 1)", timeout_s, scraped)


__all__ = [
    "ALERTS_FILE",
    "PROMTOOL_BIN",
    "PrometheusError",
    "SCRAPE_JOB",
    "free_port",
    "prometheus_available",
    "query",
    "start_prometheus",
    "stop_prometheus",
    "values_by",
    "wait_for_scrape",
    "wait_for_series",
]
