"""The Collector -> Prometheus -> Grafana configuration, checked without Docker.

* promtool validates prometheus.yml and alerts.yml and runs alerts.test.yml;
* docker-compose.yml is read against the files it mounts (paths, ports, host names);
* the Grafana dashboard JSON is the generator's output, and every query (and alert)
  uses only Prometheus names from the semconv translation table;
* that table is checked against a port of collector-contrib's translator
  (prometheus/otlptranslator normalizeName) and against what
  opentelemetry-exporter-prometheus produces in-process.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from otel_grpo import semconv as sc
from otel_grpo.tools.dashboards import grafana as gd

ROOT = Path(__file__).resolve().parents[1]
PROM_DIR = ROOT / "config" / "prometheus"
COLLECTOR_FILE = ROOT / "config" / "otel-collector.yaml"
COMPOSE_FILE = ROOT / "docker-compose.yml"
GRAFANA_DIR = ROOT / "config" / "grafana"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "otel-grpo.json"
PUBLISHED_PORTS = {4317, 4318, 8889, 9090, 3000, 16686}


# --- promtool ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool") or ("/usr/bin/promtool" if Path("/usr/bin/promtool").exists() else None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("promtool is required in CI (apt-get install prometheus)")
        pytest.skip("promtool not installed (apt-get install prometheus); CI runs these checks")
    return found


def run_promtool(promtool: str, *args: str) -> str:
    result = subprocess.run([promtool, *args], cwd=PROM_DIR, capture_output=True, text=True, timeout=60, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    return output


def test_promtool_check_config(promtool):
    # `check config` validates syntax and rule files; it does not resolve otel-collector.
    output = run_promtool(promtool, "check", "config", str(PROM_DIR / "prometheus.yml"))
    assert "SUCCESS" in output


def test_promtool_check_rules(promtool):
    output = run_promtool(promtool, "check", "rules", str(PROM_DIR / "alerts.yml"))
    assert "SUCCESS" in output


def test_promtool_test_rules(promtool):
    output = run_promtool(promtool, "test", "rules", str(PROM_DIR / "alerts.test.yml"))
    assert "SUCCESS" in output


def load_yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def test_every_alert_is_tested_firing_and_not_firing():
    rules = [r for g in load_yaml(PROM_DIR / "alerts.yml")["groups"] for r in g["rules"]]
    alerts = {r["alert"] for r in rules if "alert" in r}
    records = {r["record"] for r in rules if "record" in r}
    tests = load_yaml(PROM_DIR / "alerts.test.yml")["tests"]
    fired, quiet = set(), set()
    for case in tests:
        for check in case.get("alert_rule_test", []):
            (fired if check["exp_alerts"] else quiet).add(check["alertname"])
    assert alerts and fired == alerts, f"never seen firing: {alerts - fired}"
    # "not firing" is covered by an empty expectation or by a run left out of exp_alerts.
    assert quiet | {a for a in alerts if _has_non_firing_series(tests, a)} == alerts
    tested_records = {
        re.match(r"[\w:]+", c["expr"]).group(0) for case in tests for c in case.get("promql_expr_test", [])
    }
    assert records <= tested_records, f"recording rules without a value test: {records - tested_records}"


def _has_non_firing_series(tests: list[dict], alertname: str) -> bool:
    return any(
        check["alertname"] == alertname and len(check["exp_alerts"]) < len(case["input_series"])
        for case in tests
        for check in case.get("alert_rule_test", [])
    )


# --- docker-compose.yml against the files it mounts ------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_yaml(COMPOSE_FILE)


def mounts(service: dict) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts."""
    found = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("."):
            found[target] = (ROOT / source).resolve()
    return found


def host_file(service: dict, container_path: str) -> Path:
    """The repository file a container path of ``service`` resolves to."""
    for target, source in sorted(mounts(service).items(), key=lambda kv: -len(kv[0])):
        if container_path == target:
            return source
        if container_path.startswith(target.rstrip("/") + "/"):
            return source / container_path[len(target.rstrip("/")) + 1 :]
    raise AssertionError(f"{container_path} is not mounted into the service")


def published(service: dict) -> dict[int, int]:
    """Container port -> host port; every published port must be bound to 127.0.0.1."""
    ports = {}
    for spec in service.get("ports", []):
        host_ip, host_port, container_port = str(spec).split(":")
        assert host_ip == "127.0.0.1", f"{spec} must be bound to 127.0.0.1"
        ports[int(container_port)] = int(host_port)
    return ports


def hostport(endpoint: str) -> tuple[str, int]:
    parts = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
    return parts.hostname, parts.port


def test_compose_mounts_exist_and_images_are_pinned(compose):
    for name, service in compose["services"].items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image tag"
        for target, source in mounts(service).items():
            assert source.exists(), f"{name}: mounted {source} (-> {target}) does not exist"
    all_published = set()
    for service in compose["services"].values():
        all_published |= set(published(service).values())
    assert all_published >= PUBLISHED_PORTS


def test_compose_matches_collector_config(compose):
    services = compose["services"]
    collector = services["otel-collector"]
    config_arg = next(a for a in collector["command"] if a.startswith("--config="))
    config_file = host_file(collector, config_arg.split("=", 1)[1])
    assert config_file == COLLECTOR_FILE.resolve()
    config = load_yaml(config_file)

    protocols = config["receivers"]["otlp"]["protocols"]
    grpc_host, grpc_port = hostport(protocols["grpc"]["endpoint"])
    http_host, http_port = hostport(protocols["http"]["endpoint"])
    assert (grpc_host, http_host) == ("0.0.0.0", "0.0.0.0"), "receivers must listen beyond localhost"
    prom = config["exporters"]["prometheus"]
    prom_host, prom_port = hostport(prom["endpoint"])
    assert prom_host == "0.0.0.0"
    assert prom["resource_to_telemetry_conversion"]["enabled"] is True
    assert prom["translation_strategy"] == "UnderscoreEscapingWithSuffixes"
    health_port = hostport(config["extensions"]["health_check"]["endpoint"])[1]
    ports = published(collector)
    expected = {grpc_port: 4317, http_port: 4318, prom_port: 8889}
    assert {port: ports.get(port) for port in expected} == expected
    assert health_port == 13133 and health_port in ports

    jaeger = config["exporters"]["otlp/jaeger"]
    jaeger_host, jaeger_port = hostport(jaeger["endpoint"])
    assert jaeger_host in services and jaeger_port == 4317
    assert jaeger["tls"]["insecure"] is True
    assert 16686 in published(services[jaeger_host])
    assert services[jaeger_host]["environment"]["JAEGER_LISTEN_HOST"] == "0.0.0.0"

    service = config["service"]
    assert set(service["extensions"]) <= set(config["extensions"])
    pipelines = service["pipelines"]
    for name, pipeline in pipelines.items():
        assert set(pipeline["receivers"]) <= set(config["receivers"]), name
        assert set(pipeline["processors"]) <= set(config["processors"]), name
        assert set(pipeline["exporters"]) <= set(config["exporters"]), name
        assert pipeline["processors"][0] == "memory_limiter", f"{name}: memory_limiter must come first"
        assert "batch" in pipeline["processors"]
    assert pipelines["metrics"]["exporters"] == ["prometheus"]
    assert pipelines["traces"]["exporters"] == ["otlp/jaeger"]


def test_compose_matches_prometheus_config(compose):
    services = compose["services"]
    prometheus = services["prometheus"]
    config_arg = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_file = host_file(prometheus, config_arg.split("=", 1)[1])
    assert config_file == (PROM_DIR / "prometheus.yml").resolve()
    config = load_yaml(config_file)
    for rule_file in config["rule_files"]:
        assert (config_file.parent / rule_file).exists()
    assert config["global"]["scrape_interval"] == "15s"
    (job,) = config["scrape_configs"]
    assert job["honor_labels"] is True, "keep job/instance set by the Collector"
    (target,) = job["static_configs"][0]["targets"]
    host, port = hostport(target)
    collector_config = load_yaml(COLLECTOR_FILE)
    assert host == "otel-collector" and host in services
    assert port == hostport(collector_config["exporters"]["prometheus"]["endpoint"])[1]
    assert 9090 in published(prometheus)


def test_compose_matches_grafana_provisioning(compose):
    services = compose["services"]
    grafana = services["grafana"]
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "true"
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    assert 3000 in published(grafana)
    provisioning = host_file(grafana, "/etc/grafana/provisioning")
    assert provisioning == (GRAFANA_DIR / "provisioning").resolve()

    (datasource,) = load_yaml(provisioning / "datasources" / "prometheus.yml")["datasources"]
    assert datasource["uid"] == gd.DATASOURCE["uid"] and datasource["type"] == "prometheus"
    host, port = hostport(datasource["url"])
    assert host == "prometheus" and host in services and port in published(services[host])

    (provider,) = load_yaml(provisioning / "dashboards" / "dashboards.yml")["providers"]
    assert provider["type"] == "file"
    dashboards_dir = host_file(grafana, provider["options"]["path"])
    assert dashboards_dir == DASHBOARD_FILE.parent.resolve()
    assert host_file(grafana, grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]).exists()


# --- the dashboard ----------------------------------------------------------------------------


def test_dashboard_json_is_the_generated_one():
    assert DASHBOARD_FILE.read_text(encoding="utf-8") == gd.render_dashboard(), (
        "config/grafana/dashboards/otel-grpo.json is stale: run python -m otel_grpo.tools.dashboards.grafana"
    )
    assert gd.render_dashboard() == gd.render_dashboard()


def test_dashboard_has_the_spec_groups_and_uses_the_provisioned_datasource():
    dashboard = gd.build_dashboard()
    rows = [p["title"] for p in dashboard["panels"] if p["type"] == "row"]
    assert rows[:4] == ["Training overview", "Datasets", "Judge", "Validation"]
    assert "Cost" in rows
    types = {p["type"] for p in dashboard["panels"]}
    assert {"timeseries", "stat", "bargauge", "piechart", "table"} <= types
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == gd.DATASOURCE
        assert all(t["datasource"] == gd.DATASOURCE for t in panel["targets"])
        assert panel["gridPos"]["x"] >= 0 and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
    names = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"job", "grpo_run_id"} <= names


_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_PROMQL_WORDS = {
    "sum",
    "max",
    "min",
    "by",
    "on",
    "or",
    "and",
    "unless",
    "ignoring",
    "group_left",
    "group_right",
    "increase",
    "rate",
    "delta",
    "histogram_quantile",
    "vector",
    "label_replace",
    "label_values",
    "offset",
    "count",
    "avg",
    "timestamp",
    "bool",
}


def metric_names_in(expr: str, allowed_series: set[str] | frozenset[str]) -> set[str]:
    """The metric names ``expr`` uses; fails on any identifier that is neither an allowed
    metric, a known label name, nor a PromQL keyword/function."""
    text = re.sub(r"\$\{?\w+\}?", "", expr)  # dashboard variables
    text = re.sub(r'"[^"]*"', '""', text)  # label values, regexes
    text = re.sub(r"\[[^\]]*\]", "", text)  # range windows
    text = re.sub(r"\b\d+(\.\d+)?[smhdwy]\b", "", text)  # offset durations
    used = set()
    for word in _IDENT.findall(text):
        if word in allowed_series:
            used.add(word)
        elif word not in _PROMQL_WORDS and word not in gd.LABEL_NAMES:
            raise AssertionError(f"unknown identifier {word!r} (not a translated semconv name) in {expr!r}")
    assert used, f"no metric in {expr!r}"
    return used


def test_every_panel_uses_only_translated_semconv_names():
    allowed = gd.prometheus_series_names() | gd.EXTRA_SERIES
    dashboard = gd.build_dashboard()
    used = set()
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            used |= metric_names_in(target["expr"], allowed)
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            metric_names_in(variable["query"], allowed)
    assert {gd.SAMPLES, gd.CORRECT, gd.JUDGE_DURATION + "_bucket", gd.EXEC_COST, gd.REWARD_SUM} <= used
    assert len(gd.all_promql_expressions()) == sum(len(p.get("targets", [])) for p in dashboard["panels"])
    assert all("$" not in expr for _, expr in gd.all_promql_expressions())


def test_alert_rules_use_only_translated_semconv_names():
    groups = load_yaml(PROM_DIR / "alerts.yml")["groups"]
    records = {r["record"] for g in groups for r in g["rules"] if "record" in r}
    allowed = set(gd.prometheus_series_names()) | records | {"up"}
    for group in groups:
        for rule in group["rules"]:
            metric_names_in(rule["expr"], allowed)


# --- the translation table ----------------------------------------------------------------------

# A port of prometheus/otlptranslator's MetricNamer.Build with WithMetricSuffixes=true and
# UTF8Allowed=false (translation_strategy UnderscoreEscapingWithSuffixes), which the
# Collector's prometheus exporter uses: metric_namer.go normalizeName, unit_namer.go.
_UNIT_MAP = {
    "d": "days",
    "h": "hours",
    "min": "minutes",
    "s": "seconds",
    "ms": "milliseconds",
    "us": "microseconds",
    "ns": "nanoseconds",
    "By": "bytes",
    "KiBy": "kibibytes",
    "MiBy": "mebibytes",
    "GiBy": "gibibytes",
    "TiBy": "tibibytes",
    "KBy": "kilobytes",
    "MBy": "megabytes",
    "GBy": "gigabytes",
    "TBy": "terabytes",
    "m": "meters",
    "V": "volts",
    "A": "amperes",
    "J": "joules",
    "W": "watts",
    "g": "grams",
    "Cel": "celsius",
    "Hz": "hertz",
    "1": "",
    "%": "percent",
}
_PER_UNIT_MAP = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week", "mo": "month", "y": "year"}


def _clean_unit(unit: str) -> str:
    return re.sub(r"_+", "_", re.sub(r"[^a-zA-Z0-9:]", "_", unit)).lstrip("_")


def otlptranslator_name(name: str, unit: str, kind: str) -> str:
    tokens = [t for t in re.split(r"[^a-zA-Z0-9:]", name) if t]
    main, per = "", ""
    unit_parts = unit.split("/", 1)
    main_otel = unit_parts[0].strip()
    if main_otel and not any(c in main_otel for c in "{}"):
        main = _UNIT_MAP.get(main_otel, main_otel)
    if len(unit_parts) > 1 and unit_parts[1]:
        per_otel = unit_parts[1].strip()
        if per_otel and not any(c in per_otel for c in "{}"):
            per = _PER_UNIT_MAP.get(per_otel, per_otel)
        per = f"per_{per}" if per else ""
    main, per = _clean_unit(main), _clean_unit(per)
    if main in tokens:
        main = ""
    per = "" if per == "per_" else per.rstrip("_")
    if per in tokens:
        per = ""
    if per:
        main = main.rstrip("_")
    tokens += [t for t in (main, per) if t]
    if kind == gd.COUNTER:
        tokens = [t for t in tokens if t != "total"] + ["total"]
    if unit == "1" and kind in (gd.GAUGE,):
        tokens = [t for t in tokens if t != "ratio"] + ["ratio"]
    return "_".join(tokens)


def test_otlptranslator_port_matches_its_documented_examples():
    assert otlptranslator_name("http.server.duration", "s", gd.HISTOGRAM) == "http_server_duration_seconds"
    assert otlptranslator_name("requests.count", "1", gd.COUNTER) == "requests_count_total"
    assert otlptranslator_name("memory.usage", "By", gd.GAUGE) == "memory_usage_bytes"
    assert otlptranslator_name("cpu.utilization", "1", gd.GAUGE) == "cpu_utilization_ratio"
    assert otlptranslator_name("net.io", "By/s", gd.COUNTER) == "net_io_bytes_per_second_total"


def test_translation_table_matches_the_collector():
    """semconv.prometheus_name (via the dashboard's table) == the Collector's naming."""
    table = gd.prometheus_metric_names()
    for instrument, kind in gd.INSTRUMENT_KINDS:
        name, unit, _ = instrument
        # An up-down counter is a non-monotonic sum: exported as a gauge without suffix.
        collector_kind = gd.GAUGE if kind == gd.UP_DOWN else kind
        assert table[name] == otlptranslator_name(name, unit, collector_kind), name
    semconv_table = getattr(sc, "PROMETHEUS_NAMES", None)
    if semconv_table is not None:  # if semconv.py grows the table its docstring mentions
        for name, base in table.items():
            assert semconv_table.get(name) in (base, None), name


def test_translation_table_matches_the_in_process_exporter():
    """What opentelemetry-exporter-prometheus serves for each instrument kind."""
    from opentelemetry.exporter.prometheus import PrometheusMetricReader
    from opentelemetry.metrics import Observation
    from opentelemetry.sdk.metrics import MeterProvider
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    reader = PrometheusMetricReader(registry=registry)
    provider = MeterProvider(metric_readers=[reader])
    meter = provider.get_meter(sc.METER_NAME)
    attrs = {sc.ATTR_SOURCE: "gsm8k"}
    for (name, unit, description), kind in gd.INSTRUMENT_KINDS:
        callback = [lambda _o: [Observation(1, attrs)]]
        if kind == gd.COUNTER:
            meter.create_counter(name, unit=unit, description=description).add(1, attrs)
        elif kind == gd.UP_DOWN:
            meter.create_observable_up_down_counter(name, callback, unit=unit, description=description)
        elif kind == gd.GAUGE:
            meter.create_observable_gauge(name, callback, unit=unit, description=description)
        else:
            meter.create_histogram(name, unit=unit, description=description).record(0.5, attrs)
    try:
        served = {s.name for family in registry.collect() for s in family.samples}
    finally:
        provider.shutdown()
    served -= {"target_info"}
    assert served == set(gd.prometheus_series_names())
