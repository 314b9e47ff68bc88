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
    assert rows == [
        "Training overview",
        "Datasets",
        "Judge",
        "Reward integrity",
        "Validation",
        "Cost",
        "Exporter health",
    ]
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


# --- the Reward integrity row ---------------------------------------------------------------------

INTEGRITY_TARGETS = [
    ("timeseries", "Judge share & judge-failed share (train), last $window", "judge share"),
    ("timeseries", "Judge share & judge-failed share (train), last $window", "judge-failed share"),
    ("timeseries", "Judge-failed share per dataset (train), last $window", "{{grpo_source}}"),
    ("timeseries", "Accuracy with and without judge-failed samples (train, %), last $window", "all samples"),
    ("timeseries", "Accuracy with and without judge-failed samples (train, %), last $window", "excluding judge-failed"),
    ("table", "Reward integrity per dataset (train), last $window", "Judge share"),
    ("table", "Reward integrity per dataset (train), last $window", "Judge-failed share"),
    ("table", "Reward integrity per dataset (train), last $window", "Accuracy (%)"),
    ("table", "Reward integrity per dataset (train), last $window", "Accuracy excl. judge-failed (%)"),
    ("table", "Reward integrity per dataset (train), last $window", "Cost per correct (USD)"),
    ("bargauge", "Cost per correct answer per dataset (train, USD), last $window", "{{grpo_source}}"),
    (
        "stat",
        "Cost per correct answer (train, USD), since the run started",
        "Cost per correct answer (train, USD), since the run started",
    ),
]
SINCE_START = "Cost per correct answer (train, USD), since the run started"


def integrity_targets(variables: dict[str, str] | None = None) -> list[tuple[str, str, str, str]]:
    """(panel type, title, legend or table column, PromQL) of every query of the Reward integrity row."""
    found, inside = [], False
    for panel in gd.build_dashboard()["panels"]:
        if panel["type"] == "row":
            inside = panel["title"] == "Reward integrity"
            continue
        if inside:
            for target in panel["targets"]:
                expr = target["expr"] if variables is None else gd.substitute_variables(target["expr"], variables)
                found.append((panel["type"], panel["title"], target["legendFormat"], expr))
    return found


def test_integrity_row_has_exactly_its_panels_over_summed_counters():
    assert [t[:3] for t in integrity_targets()] == INTEGRITY_TARGETS
    selector = r"[a-zA-Z_]+\{[^}]*\}"
    for _, title, legend, expr in integrity_targets():
        assert 'grpo_split="train"' in expr and "avg" not in expr, (title, expr)
        if title == SINCE_START:  # cumulative counters summed over every process: no window
            assert re.findall(selector, expr) == re.findall(rf"sum\(({selector})\)", expr), expr
            continue
        # Every selector is the increase over the window, summed over every process before dividing.
        increases = re.findall(rf"sum(?: by \(grpo_source\))? \(increase\(({selector})\[\$window\]\)\)", expr)
        assert increases and increases == re.findall(selector, expr), (title, legend, expr)
        by_source = legend == "{{grpo_source}}" or title.endswith("per dataset (train), last $window")
        assert expr.count("sum by (grpo_source) (") == (len(increases) if by_source else 0), (title, legend)
        assert "> 0)" in expr  # an empty denominator gives no value, never NaN or Inf


# Per-minute increments of one run exported by two processes (instances a, b):
# (instance, split, source, scored_by) -> (samples, correct samples).
INTEGRITY_SERIES = {
    ("a", "train", "gsm8k", "judge"): (3, 2),
    ("a", "train", "gsm8k", "judge_failed"): (2, 0),
    ("a", "train", "gsm8k", "rule"): (1, 1),
    ("a", "train", "gsm8k", "not_scored"): (1, 0),
    ("b", "train", "gsm8k", "judge"): (1, 1),
    ("b", "train", "gsm8k", "judge_failed"): (3, 1),  # a fallback reward can be "correct"
    ("a", "val", "gsm8k", "judge_failed"): (10, 0),  # validation: not in the train panels
    ("a", "train", "humaneval", "rule"): (2, 1),
    ("b", "train", "humaneval", "not_scored"): (2, 0),
    ("b", "train", "mbpp", "not_scored"): (3, 0),  # nothing scored, nothing correct
}
# (instance, split, source) -> executor cost USD per minute; judge cost per minute.
INTEGRITY_EXEC_COST = {
    ("a", "train", "gsm8k"): 0.25,
    ("b", "train", "gsm8k"): 0.5,
    ("a", "val", "gsm8k"): 1.0,
    ("a", "train", "humaneval"): 0.125,
    ("b", "train", "humaneval"): 0.125,
    ("b", "train", "mbpp"): 0.0625,
}
INTEGRITY_JUDGE_COST = {("a", "train", "gsm8k"): 0.125, ("a", "val", "gsm8k"): 2.0}
PTYPE = {"gsm8k": "math", "humaneval": "code", "mbpp": "code"}


def _integrity_input_series() -> list[dict]:
    def labels(instance: str, split: str, source: str, **extra: str) -> str:
        pairs = {"job": "trainer", "instance": instance, "grpo_run_id": "r", "grpo_split": split}
        pairs |= {"grpo_source": source, "grpo_problem_type": PTYPE[source], **extra}
        return ", ".join(f'{k}="{v}"' for k, v in pairs.items())

    def series(name: str, label_text: str, per_minute: float) -> dict:
        return {"series": f"{name}{{{label_text}}}", "values": f"0+{per_minute}x20"}

    found, samples, correct = [], {}, {}
    for (instance, split, source, scorer), (n, c) in INTEGRITY_SERIES.items():
        found.append(series(gd.SCORED_BY, labels(instance, split, source, grpo_scored_by=scorer), n))
        if c:  # the recorder omits zero series
            found.append(series(gd.SCORED_BY_CORRECT, labels(instance, split, source, grpo_scored_by=scorer), c))
        key = (instance, split, source)
        samples[key], correct[key] = samples.get(key, 0) + n, correct.get(key, 0) + c
    for key in samples:
        found.append(series(gd.SAMPLES, labels(*key), samples[key]))
        found.append(series(gd.CORRECT, labels(*key), correct[key]))
    for key, usd in INTEGRITY_EXEC_COST.items():
        found.append(series(gd.EXEC_COST, labels(*key), usd))
    for (instance, split, source), usd in INTEGRITY_JUDGE_COST.items():
        label_text = ", ".join(
            f'{k}="{v}"'
            for k, v in {"job": "trainer", "instance": instance, "grpo_run_id": "r", "grpo_split": split}.items()
        )
        found.append(series(gd.JUDGE_COST, f'{label_text}, grpo_source="{source}"', usd))
    return found


def _integrity_truth(minutes: int) -> dict[tuple[str, str], dict[str, float]]:
    """{(title, legend): {source or "": value}}: sums over both processes, then one division."""

    def count(source: str | None, scorers: set[str], index: int) -> int:
        return minutes * sum(
            v[index]
            for (_, split, src, scorer), v in INTEGRITY_SERIES.items()
            if split == "train" and src == (source or src) and scorer in scorers
        )

    def exec_cost(source: str | None) -> float:
        """Executor + priced judge cost of train samples (the rows' cost_per_correct numerator)."""
        return minutes * sum(
            usd
            for store in (INTEGRITY_EXEC_COST, INTEGRITY_JUDGE_COST)
            for (_, split, src), usd in store.items()
            if split == "train" and src == (source or src)
        )

    everything = {"rule", "judge", "judge_failed", "not_scored"}
    scored, judged = everything - {"not_scored"}, {"judge", "judge_failed"}
    kept = everything - {"judge_failed"}

    def figures(source: str | None) -> dict[str, float]:
        found = {}
        if count(source, scored, 0):
            found["judge share"] = count(source, judged, 0) / count(source, scored, 0)
            found["judge-failed share"] = count(source, {"judge_failed"}, 0) / count(source, scored, 0)
        found["accuracy"] = 100 * count(source, everything, 1) / count(source, everything, 0)
        found["excluding"] = 100 * count(source, kept, 1) / count(source, kept, 0)
        if count(source, everything, 1):
            found["cost per correct"] = exec_cost(source) / count(source, everything, 1)
        return found

    sources = sorted({k[2] for k in INTEGRITY_SERIES})
    per_source = {s: figures(s) for s in sources}

    def column(figure: str) -> dict[str, float]:
        return {s: f[figure] for s, f in per_source.items() if figure in f}

    train = figures(None)
    return {
        ("Judge share & judge-failed share (train), last $window", "judge share"): {"": train["judge share"]},
        ("Judge share & judge-failed share (train), last $window", "judge-failed share"): {
            "": train["judge-failed share"]
        },
        ("Judge-failed share per dataset (train), last $window", "{{grpo_source}}"): column("judge-failed share"),
        ("Accuracy with and without judge-failed samples (train, %), last $window", "all samples"): {
            "": train["accuracy"]
        },
        ("Accuracy with and without judge-failed samples (train, %), last $window", "excluding judge-failed"): {
            "": train["excluding"]
        },
        ("Reward integrity per dataset (train), last $window", "Judge share"): column("judge share"),
        ("Reward integrity per dataset (train), last $window", "Judge-failed share"): column("judge-failed share"),
        ("Reward integrity per dataset (train), last $window", "Accuracy (%)"): column("accuracy"),
        ("Reward integrity per dataset (train), last $window", "Accuracy excl. judge-failed (%)"): column("excluding"),
        ("Reward integrity per dataset (train), last $window", "Cost per correct (USD)"): column("cost per correct"),
        ("Cost per correct answer per dataset (train, USD), last $window", "{{grpo_source}}"): column(
            "cost per correct"
        ),
    }


def test_integrity_panels_sum_across_processes(promtool, tmp_path):
    """Every Reward integrity query, run by promtool on two processes' series, equals the shares
    of the summed counts (never a mean of the processes' shares); absent where the denominator is 0."""
    eval_minutes, window_minutes = 10, 5
    truth = _integrity_truth(window_minutes)  # samples at 5m..10m: increase is exactly 5 minutes' worth
    # The since-start stat: cumulative counters (10 minutes), executor + judge cost of train / correct train.
    exec_usd = sum(u for (_, split, _), u in INTEGRITY_EXEC_COST.items() if split == "train") * eval_minutes
    judge_usd = sum(u for (_, split, _), u in INTEGRITY_JUDGE_COST.items() if split == "train") * eval_minutes
    correct = sum(c for (_, split, _, _), (_, c) in INTEGRITY_SERIES.items() if split == "train") * eval_minutes
    truth[(SINCE_START, SINCE_START)] = {"": (exec_usd + judge_usd) / correct}
    # The figures really differ from a mean of the two processes' shares (gsm8k: 2/6 and 3/4).
    assert truth[("Reward integrity per dataset (train), last $window", "Judge-failed share")]["gsm8k"] == 0.5
    assert set(truth[("Reward integrity per dataset (train), last $window", "Judge share")]) == {"gsm8k", "humaneval"}

    checks = []
    for _, title, legend, expr in integrity_targets({"window": f"{window_minutes}m"}):
        expected = truth[(title, legend)]
        checks.append(
            {
                "expr": expr,
                "eval_time": f"{eval_minutes}m",
                "exp_samples": [
                    {"labels": f'{{grpo_source="{source}"}}' if source else "{}", "value": value}
                    for source, value in sorted(expected.items())
                ],
            }
        )
    assert len(checks) == len(INTEGRITY_TARGETS)
    (tmp_path / "empty.yml").write_text("groups: []\n", encoding="utf-8")
    test_file = tmp_path / "integrity.test.yml"
    test_file.write_text(
        yaml.safe_dump(
            {
                "rule_files": ["empty.yml"],
                "evaluation_interval": "1m",
                "tests": [{"interval": "1m", "input_series": _integrity_input_series(), "promql_expr_test": checks}],
            },
            sort_keys=False,
        ),
        encoding="utf-8",
    )
    result = subprocess.run(
        [promtool, "test", "rules", test_file.name], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0 and "SUCCESS" in result.stdout, result.stdout + result.stderr


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
