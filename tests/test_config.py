"""Tests for otel_grpo.config: defaults, sources, environment, secrets, errors, check-config."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from otel_grpo import config as config_mod
from otel_grpo.config import (
    ConfigError,
    OtlpConfig,
    TelemetryConfig,
    check_config,
    load_config,
    parse_target,
    resolve_headers,
)
from otel_grpo.tools import init_config
from otel_grpo.tools.cli import check_config_cli

REPO_ROOT = Path(__file__).resolve().parents[1]
REPO_CONFIG = REPO_ROOT / "config" / "telemetry.yaml"
PACKAGED_CONFIG = REPO_ROOT / "otel_grpo" / "default_telemetry.yaml"
SECRET = "sk-do-not-leak-4f9a8b7c"


def write(tmp_path: Path, text: str, name: str = "telemetry.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(*args: Any, **kwargs: Any) -> str:
    kwargs.setdefault("env", {})
    with pytest.raises(ConfigError) as info:
        load_config(*args, **kwargs)
    return str(info.value)


# --------------------------------------------------------------------------- defaults
def schema_key_paths(model: type[BaseModel], prefix: str = "") -> set[str]:
    """Every leaf key of a config model, as dotted paths (sections are walked into)."""
    paths: set[str] = set()
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths |= schema_key_paths(annotation, f"{prefix}{name}.")
        else:
            paths.add(prefix + name)
    return paths


def yaml_key_paths(data: dict[str, Any], sections: set[str], prefix: str = "") -> set[str]:
    """Every leaf key of parsed YAML; only the mappings named in ``sections`` are walked into."""
    paths: set[str] = set()
    for name, value in data.items():
        path = prefix + name
        if path in sections and isinstance(value, dict):
            paths |= yaml_key_paths(value, sections, path + ".")
        else:
            paths.add(path)
    return paths


def test_packaged_yaml_spells_out_every_schema_key() -> None:
    """The file says "every value below is the built-in default": no key may be left out or unknown."""
    expected = schema_key_paths(TelemetryConfig)
    sections = {path.rsplit(".", 1)[0] for path in expected if "." in path}
    sections |= {section.rsplit(".", 1)[0] for section in sections if "." in section}
    written = yaml_key_paths(yaml.safe_load(PACKAGED_CONFIG.read_text(encoding="utf-8")), sections)
    assert written == expected, (sorted(expected - written), sorted(written - expected))


def test_defaults_keep_everything_on_this_machine(tmp_path: Path) -> None:
    """What the README and DESIGN promise for a config that sets nothing: no data leaves the host.

    WandB writes offline, OTLP is off, the Prometheus endpoint (when turned on) listens on
    loopback only, and judge message content is captured only on opt-in.
    """
    cfg = load_config(write(tmp_path, ""), env={})
    assert cfg.wandb.mode == "offline"
    assert cfg.otlp.enabled is False
    assert cfg.prometheus.enabled is False
    assert load_config(write(tmp_path, "prometheus: {enabled: true}\n"), env={}).prometheus.host == "127.0.0.1"
    assert cfg.judge.capture_content is False


def test_yaml_files_spell_out_the_defaults() -> None:
    assert load_config(REPO_CONFIG, env={}) == TelemetryConfig()
    assert load_config(PACKAGED_CONFIG, env={}) == TelemetryConfig()


def test_packaged_copy_is_identical_to_repo_config() -> None:
    assert PACKAGED_CONFIG.read_bytes() == REPO_CONFIG.read_bytes()


def test_config_file_has_no_secret_keys() -> None:
    text = REPO_CONFIG.read_text(encoding="utf-8")
    assert "api_key" not in text.lower()
    assert "wandb:" in text.split("\n\n# ---", 2)[1]  # the wandb block comes first
    assert "my_rl.loop:Trainer.step" in text


# ---------------------------------------------------------------------------- sources
def test_file_load_merges_with_defaults(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "wandb:\n  project: p\n  mode: online\n  dashboard:\n    table_every: 0\nmetrics:\n  accuracy_threshold: 0.5\n",
    )
    cfg = load_config(path, env={})
    assert (cfg.wandb.project, cfg.wandb.mode) == ("p", "online")
    assert cfg.wandb.dashboard.table_every == 0
    assert cfg.wandb.dashboard.sample_table_rows == 0
    assert cfg.metrics.accuracy_threshold == 0.5
    assert cfg.metrics.max_sources == 32
    assert load_config(str(path), env={}) == cfg


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    assert load_config(write(tmp_path, "# nothing\n"), env={}) == TelemetryConfig()


def test_dict_load() -> None:
    cfg = load_config({"service_name": "svc", "judge": {"ports": [8002, 9000]}}, env={})
    assert cfg.service_name == "svc"
    assert cfg.judge.ports == [8002, 9000]


def test_model_source_gets_env_applied() -> None:
    base = TelemetryConfig(service_name="base")
    cfg = load_config(base, env={"WANDB_PROJECT": "from-env"})
    assert cfg.service_name == "base"
    assert cfg.wandb.project == "from-env"
    assert base.wandb.project == "otel-grpo"  # the input is not mutated


def test_default_source_prefers_cwd_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "config").mkdir()
    write(tmp_path / "config", "service_name: from-cwd\n")
    monkeypatch.chdir(tmp_path)
    assert load_config(env={}).service_name == "from-cwd"
    assert config_mod.default_config_source() == str(Path("config") / "telemetry.yaml")


def test_default_source_falls_back_to_packaged(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_config(env={}) == TelemetryConfig()
    assert config_mod.default_config_source().endswith("default_telemetry.yaml")


def test_bad_source_type() -> None:
    with pytest.raises(TypeError):
        load_config(42, env={})  # type: ignore[arg-type]


# ------------------------------------------------------------------------ environment
ENV_CASES: list[tuple[dict[str, str], str, Any]] = [
    ({"WANDB_PROJECT": "proj"}, "wandb.project", "proj"),
    ({"WANDB_ENTITY": "team"}, "wandb.entity", "team"),
    ({"WANDB_MODE": "online"}, "wandb.mode", "online"),
    ({"WANDB_MODE": "disabled"}, "wandb.mode", "disabled"),
    ({"WANDB_MODE": "OFFLINE"}, "wandb.mode", "offline"),
    ({"WANDB_MODE": "dryrun"}, "wandb.mode", "offline"),
    ({"WANDB_MODE": "run"}, "wandb.mode", "online"),
    ({"WANDB_NAME": "run-7"}, "wandb.run_name", "run-7"),
    ({"WANDB_DIR": "/tmp/wb"}, "wandb.dir", "/tmp/wb"),
    ({"WANDB_DISABLED": "true"}, "wandb.mode", "disabled"),
    ({"WANDB_DISABLED": "true", "WANDB_MODE": "online"}, "wandb.mode", "disabled"),
    ({"WANDB_DISABLED": "false"}, "wandb.mode", "offline"),
    ({"WANDB_TAGS": "a, b,,c"}, "wandb.tags", ["a", "b", "c"]),
    ({"OTEL_SERVICE_NAME": "svc"}, "service_name", "svc"),
    (
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
        "otlp.endpoint",
        "http://c:4318",
    ),
    ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}, "otlp.enabled", True),
    ({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "otlp.protocol", "grpc"),
    (
        {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"},
        "otlp.protocol",
        "http/protobuf",
    ),
    (
        {
            "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "c:4317",
        },
        "otlp.endpoint",
        "c:4317",
    ),
    ({"OTEL_METRIC_EXPORT_INTERVAL": "2500"}, "otlp.export_interval_s", 2.5),
    ({"OTEL_EXPORTER_OTLP_TIMEOUT": "1000"}, "otlp.timeout_s", 1.0),
    ({"OTEL_METRICS_EXPORTER": "none"}, "otlp.metrics", False),
    ({"OTEL_METRICS_EXPORTER": "console"}, "otlp.metrics", True),  # not a name that decides: file value kept
    ({"OTEL_METRICS_EXPORTER": "prometheus"}, "otlp.metrics", False),
    ({"OTEL_METRICS_EXPORTER": "prometheus"}, "prometheus.enabled", True),
    ({"OTEL_METRICS_EXPORTER": "otlp,prometheus"}, "otlp.metrics", True),
    ({"OTEL_METRICS_EXPORTER": "otlp,prometheus"}, "prometheus.enabled", True),
    ({"OTEL_METRICS_EXPORTER": "otlp"}, "prometheus.enabled", False),
    ({"OTEL_TRACES_EXPORTER": "none"}, "otlp.traces", False),
    ({"OTEL_TRACES_EXPORTER": "otlp"}, "otlp.traces", True),
    ({"OTEL_SDK_DISABLED": "true"}, "instrumentation.enabled", False),
    (
        {"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"},
        "otlp.enabled",
        False,
    ),
    ({"OTEL_SDK_DISABLED": "false"}, "instrumentation.enabled", True),
    (
        {"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"},
        "judge.capture_content",
        True,
    ),
    ({"OTEL_EXPORTER_PROMETHEUS_HOST": "0.0.0.0"}, "prometheus.host", "0.0.0.0"),
    ({"OTEL_EXPORTER_PROMETHEUS_PORT": "9999"}, "prometheus.port", 9999),
    ({"WANDB_PROJECT": ""}, "wandb.project", "otel-grpo"),  # empty = unset
]


def get_path(cfg: TelemetryConfig, dotted: str) -> Any:
    value: Any = cfg
    for part in dotted.split("."):
        value = getattr(value, part)
    return value


@pytest.mark.parametrize(("env", "path", "expected"), ENV_CASES)
def test_env_mapping(env: dict[str, str], path: str, expected: Any) -> None:
    assert get_path(load_config({}, env=env), path) == expected


def test_env_wins_over_file(tmp_path: Path) -> None:
    path = write(tmp_path, "wandb:\n  project: file\n  mode: online\n")
    cfg = load_config(path, env={"WANDB_PROJECT": "env", "WANDB_MODE": "disabled"})
    assert (cfg.wandb.project, cfg.wandb.mode) == ("env", "disabled")


def test_capture_content_false_from_env_wins_over_file() -> None:
    cfg = load_config(
        {"judge": {"capture_content": True}},
        env={"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "false"},
    )
    assert cfg.judge.capture_content is False


def test_env_headers_url_decoded_and_merged_over_config() -> None:
    cfg = load_config(
        {"otlp": {"headers": {"keep": "1", "x-team": "file"}}},
        env={"OTEL_EXPORTER_OTLP_HEADERS": "x-team=env, Authorization=Bearer%20abc%3D"},
    )
    assert cfg.otlp.headers == {
        "keep": "1",
        "x-team": "env",
        "Authorization": "Bearer abc=",
    }


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        (
            {"WANDB_MODE": "x"},
            "<env> WANDB_MODE: must be one of online, offline, disabled (got 'x')",
        ),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "thrift"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"OTEL_METRIC_EXPORT_INTERVAL": "soon"}, "OTEL_METRIC_EXPORT_INTERVAL"),
        ({"OTEL_EXPORTER_OTLP_TIMEOUT": "-5"}, "OTEL_EXPORTER_OTLP_TIMEOUT"),
        ({"OTEL_EXPORTER_PROMETHEUS_PORT": "99999"}, "OTEL_EXPORTER_PROMETHEUS_PORT"),
        ({"OTEL_EXPORTER_PROMETHEUS_PORT": "http"}, "OTEL_EXPORTER_PROMETHEUS_PORT"),
        ({"WANDB_DISABLED": "maybe"}, "WANDB_DISABLED: expected true or false"),
        ({"OTEL_SDK_DISABLED": "maybe"}, "OTEL_SDK_DISABLED"),
        ({"OTEL_METRICS_EXPORTER": "otlp;prom"}, "OTEL_METRICS_EXPORTER"),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "localhost:4318"},
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ),
    ],
)
def test_bad_env_value_names_the_variable(env: dict[str, str], expected: str) -> None:
    message = error_of({}, env=env)
    assert message.startswith("<env> ")
    assert expected in message


def test_http_json_is_reported_as_unsupported() -> None:
    message = error_of({}, env={"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
    assert "not supported" in message


def test_bad_env_headers_never_echo_values() -> None:
    message = error_of({}, env={"OTEL_EXPORTER_OTLP_HEADERS": f"a={SECRET},broken"})
    assert "OTEL_EXPORTER_OTLP_HEADERS" in message
    assert SECRET not in message


def test_several_env_errors_are_joined() -> None:
    message = error_of({}, env={"WANDB_MODE": "x", "OTEL_EXPORTER_PROMETHEUS_PORT": "y"})
    assert "WANDB_MODE" in message and "; OTEL_EXPORTER_PROMETHEUS_PORT" in message


def test_os_environ_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_PROJECT", "from-os-environ")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "svc-os")
    cfg = load_config({})
    assert cfg.wandb.project == "from-os-environ"
    assert cfg.service_name == "svc-os"


# -------------------------------------------------------------------------- overrides
def test_section_keyword_overrides_win_over_env() -> None:
    cfg = load_config(
        {"wandb": {"project": "file"}},
        env={"WANDB_MODE": "online"},
        wandb={"mode": "disabled"},
        service_name="kw",
    )
    assert (cfg.wandb.mode, cfg.wandb.project, cfg.service_name) == (
        "disabled",
        "file",
        "kw",
    )


def test_overrides_mapping_nested_and_dotted() -> None:
    cfg = load_config(
        {},
        env={},
        overrides={"wandb": {"dashboard": {"table_every": 5}}, "otlp.enabled": True},
    )
    assert cfg.wandb.dashboard.table_every == 5
    assert cfg.wandb.dashboard.sample_table_rows == 0
    assert cfg.otlp.enabled is True


def test_keyword_sections_apply_after_overrides_mapping() -> None:
    cfg = load_config({}, env={}, overrides={"wandb.mode": "online"}, wandb={"mode": "disabled"})
    assert cfg.wandb.mode == "disabled"


def test_bad_override_is_reported_as_overrides() -> None:
    assert error_of({}, wandbb={"mode": "x"}) == ("<overrides>: wandbb: unknown key (did you mean 'wandb'?)")
    assert "<overrides>: wandb.mode: must be one of" in error_of({}, overrides={"wandb.mode": "nope"})


# ---------------------------------------------------------------------------- secrets
def test_api_key_removed_with_warning_naming_file_not_value(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(
        tmp_path,
        f"wandb:\n  project: p\n  api_key: {SECRET}\notlp:\n  headers:\n    x-a: '${{A}}'\n  Token: {SECRET}\n",
    )
    with caplog.at_level(logging.WARNING, logger="otel_grpo.config"):
        cfg = load_config(path, env={})
    assert cfg.wandb.project == "p"
    messages = [r.getMessage() for r in caplog.records]
    warnings = [m for m in messages if "ignoring" in m]
    assert len(warnings) == 1
    warning = warnings[0]
    assert warning.startswith(f"{path}: ignoring wandb.api_key")
    assert "otlp.Token" in warning
    assert "secrets are never read from config files" in warning
    assert "set WANDB_API_KEY in the environment instead" in warning
    for record in caplog.records:
        assert SECRET not in record.getMessage()
        assert SECRET not in str(record.args)
    assert SECRET not in json.dumps(cfg.redacted_dict())
    assert SECRET not in repr(cfg)


def test_api_key_warning_exact_text_and_once_per_file(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = write(tmp_path, f"wandb:\n  api_key: {SECRET}\n")
    with caplog.at_level(logging.WARNING, logger="otel_grpo.config"):
        load_config(path, env={})
        load_config(path, env={})
    expected = (
        f"{path}: ignoring wandb.api_key: secrets are never read from config files; "
        "set WANDB_API_KEY in the environment instead"
    )
    assert [r.getMessage() for r in caplog.records] == [expected]


@pytest.mark.parametrize("key", ["API_KEY", "apikey", "password", "Secret", "api-key"])
def test_secret_names_any_case_any_depth(key: str, caplog: pytest.LogCaptureFixture) -> None:
    data = {"instrumentation": {"targets": {key: SECRET}}, key: SECRET}
    with caplog.at_level(logging.WARNING, logger="otel_grpo.config"):
        cfg = load_config(data, env={})
    assert cfg == TelemetryConfig()
    assert "<dict>: ignoring" in caplog.text
    assert SECRET not in caplog.text


def test_secret_in_invalid_yaml_is_not_echoed(tmp_path: Path) -> None:
    path = write(tmp_path, f"wandb:\n  api_key: '{SECRET}\n")
    message = error_of(path)
    assert message.startswith(f"{path}: invalid YAML")
    assert SECRET not in message


def test_header_values_never_in_errors_or_redacted_dict() -> None:
    message = error_of({"otlp": {"headers": {"bad name": SECRET}}})
    assert "otlp.headers" in message and SECRET not in message
    cfg = load_config(
        {"otlp": {"enabled": True, "endpoint": f"http://user:{SECRET}@collector:4318"}},
        env={"OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer {SECRET}"},
    )
    dumped = json.dumps(cfg.redacted_dict())
    assert SECRET not in dumped
    assert cfg.redacted_dict()["otlp"]["headers"] == {"authorization": "***"}
    assert cfg.redacted_dict()["otlp"]["endpoint"] == "http://user:REDACTED@collector:4318"
    cfg = load_config({"otlp": {"enabled": True, "endpoint": f"http://collector:4318/v1?api-key={SECRET}"}}, env={})
    assert cfg.redacted_dict()["otlp"]["endpoint"] == "http://collector:4318/v1?api-key=REDACTED"


def test_endpoint_query_secret_hidden_in_summary_and_errors(tmp_path: Path) -> None:
    path = write(tmp_path, f"otlp:\n  enabled: true\n  endpoint: http://collector:4318?api-key={SECRET}\n")
    code, summary = check_config(path, env={})
    assert code == 0 and SECRET not in summary and "http://collector:4318?api-key=REDACTED" in summary
    # A rejected endpoint is quoted in the error with its secrets masked.
    message = error_of({"otlp": {"endpoint": f"ftp://user:{SECRET}@collector:4318?token={SECRET}"}})
    assert "otlp.endpoint" in message and SECRET not in message


# ----------------------------------------------------------------------------- errors
def test_invalid_mode_names_file_and_key(tmp_path: Path) -> None:
    path = write(tmp_path, "wandb:\n  mode: onlin\n")
    assert error_of(path) == (f"{path}: wandb.mode: must be one of online, offline, disabled (got 'onlin')")


def test_unknown_key_did_you_mean(tmp_path: Path) -> None:
    path = write(tmp_path, "wandb:\n  projct: x\n")
    assert error_of(path) == f"{path}: wandb.projct: unknown key (did you mean 'project'?)"


def test_unknown_key_without_close_match_lists_valid_keys() -> None:
    message = error_of({"zzz": 1})
    assert message.startswith("<dict>: zzz: unknown key (valid keys: service_name, wandb")


def test_wrong_type() -> None:
    assert error_of({"metrics": {"accuracy_threshold": "high"}}) == (
        "<dict>: metrics.accuracy_threshold: expected a number between 0 and 1 (got 'high')"
    )


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"metrics": {"accuracy_threshold": 1.5}}, "between 0 and 1 (got 1.5)"),
        (
            {"wandb": {"log_frequency": 0}},
            "wandb.log_frequency: expected an integer >= 1",
        ),
        (
            {"wandb": {"init_timeout_s": 0}},
            "wandb.init_timeout_s: expected a number > 0",
        ),
        ({"wandb": {"tags": [1]}}, "wandb.tags[0]: expected a string (got 1)"),
        ({"wandb": {"enabled": "maybe"}}, "wandb.enabled: expected true or false"),
        ({"wandb": True}, "wandb: expected a mapping (got True)"),
        ({"prometheus": {"port": 70000}}, "between 0 and 65535 (got 70000)"),
        (
            {"judge": {"ports": [0]}},
            "judge.ports[0]: expected an integer between 1 and 65535",
        ),
        ({"judge": {"price_input_per_mtok": -1}}, "expected a number >= 0"),
        ({"otlp": {"protocol": "http/json"}}, "otlp.protocol: must be one of"),
        (
            {"otlp": {"endpoint": "localhost:4318"}},
            "otlp.endpoint: expected an http://",
        ),
        ({"instrumentation": {"arguments": {"step": "1x"}}}, "a Python identifier"),
        ({"wandb": {"dashboard": {"table_every": -1}}}, "wandb.dashboard.table_every"),
    ],
)
def test_invalid_values(data: dict[str, Any], expected: str) -> None:
    message = error_of(data)
    assert message.startswith("<dict>: ")
    assert expected in message


def test_multiple_errors_joined() -> None:
    message = error_of({"wandb": {"mode": "x", "projct": "y"}, "metrics": {"max_sources": 0}})
    assert message.count("; ") == 2
    assert "wandb.mode" in message
    assert "wandb.projct" in message
    assert "metrics.max_sources" in message


def test_grpc_endpoint_may_omit_scheme() -> None:
    cfg = load_config({"otlp": {"protocol": "grpc", "endpoint": "collector:4317"}}, env={})
    assert cfg.otlp.endpoint == "collector:4317"


def test_invalid_target_format(tmp_path: Path) -> None:
    path = write(tmp_path, "instrumentation:\n  targets:\n    train_step: grpo_trainer.train\n")
    message = error_of(path)
    assert message.startswith(f"{path}: instrumentation.targets.train_step: expected ")
    assert "'module:Qualified.name'" in message
    assert "(got 'grpo_trainer.train')" in message


def test_null_target_disables_and_custom_target_accepted() -> None:
    cfg = load_config(
        {"instrumentation": {"targets": {"execute": None, "train_step": "my_rl.loop:Trainer.step"}}},
        env={},
    )
    targets = cfg.instrumentation.targets
    assert targets.execute is None
    assert "execute" not in targets.enabled_targets()
    assert targets.enabled_targets()["train_step"] == "my_rl.loop:Trainer.step"
    assert parse_target("my_rl.loop:Trainer.step") == ("my_rl.loop", "Trainer.step")
    with pytest.raises(ValueError):
        parse_target("no_colon")


def test_unreadable_file_directory(tmp_path: Path) -> None:
    message = error_of(tmp_path)
    assert message.startswith(f"{tmp_path}: cannot read file")


def test_invalid_yaml(tmp_path: Path) -> None:
    path = write(tmp_path, "wandb: [unclosed\n")
    message = error_of(path)
    assert message.startswith(f"{path}: invalid YAML: ")
    assert "line" in message


def test_duplicate_key_is_an_error(tmp_path: Path) -> None:
    path = write(tmp_path, "wandb:\n  mode: online\n  mode: offline\n")
    assert "duplicate key 'mode'" in error_of(path)


def test_top_level_must_be_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, "- a\n- b\n")
    assert error_of(path) == f"{path}: expected a mapping at the top level (got list)"


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    assert error_of(path) == (
        f"{path}: file not found (write one with `otel-grpo init {path}`, or give no path to use the packaged defaults)"
    )


def test_missing_file_with_defaults_warns_once_and_uses_the_packaged_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # What setup() does: a training script is never stopped by a missing file. Even with a
    # ./config/telemetry.yaml present, the packaged defaults are used, as the warning says.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "config").mkdir()
    write(tmp_path / "config", "wandb:\n  project: from-cwd\n")
    with caplog.at_level(logging.WARNING, logger="otel_grpo"):
        cfg = load_config("conf/missing.yaml", env={}, missing_file="defaults")
    assert cfg == TelemetryConfig()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        f"otel-grpo: config file conf/missing.yaml not found (current directory {tmp_path}): "
        "using the packaged defaults; write one with `otel-grpo init conf/missing.yaml`"
    ]


def test_missing_file_with_defaults_still_rejects_an_invalid_file(tmp_path: Path) -> None:
    path = write(tmp_path, "wandb:\n  mode: onlin\n")
    with pytest.raises(ConfigError, match="wandb.mode"):
        load_config(path, env={}, missing_file="defaults")


def test_config_error_is_value_error() -> None:
    err = ConfigError("f.yaml", [("wandb.mode", "bad")])
    assert isinstance(err, ValueError)
    assert str(err) == "f.yaml: wandb.mode: bad"
    assert err.source == "f.yaml" and err.issues == [("wandb.mode", "bad")]


# --------------------------------------------------------------------------- headers
def test_resolve_headers_expands_env_refs() -> None:
    otlp = OtlpConfig(headers={"authorization": "Bearer ${TOKEN_VAR}", "x-static": "1"})
    assert resolve_headers(otlp, env={"TOKEN_VAR": "abc"}) == {
        "authorization": "Bearer abc",
        "x-static": "1",
    }
    assert otlp.headers["authorization"] == "Bearer ${TOKEN_VAR}"  # config unchanged


def test_resolve_headers_accepts_the_mapping_itself() -> None:
    assert resolve_headers({"x": "a-${V}-b"}, env={"V": "v"}) == {"x": "a-v-b"}


def test_resolve_headers_uses_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_GRPO_TEST_HDR", "v")
    assert resolve_headers(OtlpConfig(headers={"x": "${OTEL_GRPO_TEST_HDR}"})) == {"x": "v"}


def test_resolve_headers_missing_var(caplog: pytest.LogCaptureFixture) -> None:
    otlp = OtlpConfig(headers={"authorization": "Bearer ${MISSING_VAR}", "x": "1"})
    with caplog.at_level(logging.WARNING, logger="otel_grpo.config"):
        assert resolve_headers(otlp, env={}) == {"x": "1"}
    assert "MISSING_VAR" in caplog.text
    with pytest.raises(ConfigError, match="MISSING_VAR is not set"):
        resolve_headers(otlp, env={}, strict=True)


def test_redacted_dict_is_json_safe() -> None:
    cfg = load_config({"otlp": {"headers": {"x-k": "${K}"}}}, env={})
    dumped = cfg.redacted_dict()
    assert json.loads(json.dumps(dumped)) == dumped
    assert dumped["otlp"]["headers"] == {"x-k": "***"}
    assert dumped["wandb"]["project"] == "otel-grpo"


# ------------------------------------------------------------------------------- CLI
@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI reads os.environ; make sure the machine's variables do not interfere."""
    for name in config_mod.ENV_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("clean_env")
def test_check_config_cli_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "wandb:\n  project: p\n")
    assert check_config_cli(str(path)) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK: {path}\n")
    assert "project=p" in out


@pytest.mark.usefixtures("clean_env")
def test_check_config_cli_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "wandb:\n  mode: onlin\n")
    assert check_config_cli(str(path)) == 2
    captured = capsys.readouterr()
    assert "wandb.mode: must be one of online, offline, disabled" in captured.err
    assert captured.out == ""


def test_check_config_default_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, text = check_config(None, env={})
    assert code == 0
    assert text.startswith("OK: ") and "default_telemetry.yaml" in text.splitlines()[0]
    code, text = check_config(tmp_path / "missing.yaml", env={})
    assert code == 2 and "\n" not in text
    assert text.startswith(f"{tmp_path / 'missing.yaml'}: file not found (write one with `otel-grpo init ")


# --------------------------------------------------------------------------- missing files on the command line
@pytest.mark.parametrize(
    "command",
    [
        ["run", "--config", "config/telemetry.yaml", "--", "python", "-c", "print('ran')"],
        ["check-config", "config/telemetry.yaml"],
    ],
)
def test_a_missing_config_path_is_one_line_and_exit_2(tmp_path: Path, command: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "otel_grpo.tools.cli", *command],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "config/telemetry.yaml: file not found (write one with `otel-grpo init config/telemetry.yaml`" in lines[0]


# --------------------------------------------------------------------------- otel-grpo init
def test_init_writes_a_commented_file_that_loads_to_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert init_config.main([]) == 0
    written = tmp_path / "config" / "telemetry.yaml"
    assert capsys.readouterr().out == (
        "wrote config/telemetry.yaml (every setting at its default). "
        "Next: edit it, then `otel-grpo check-config config/telemetry.yaml`\n"
    )
    assert load_config(written, env={}) == TelemetryConfig()
    # It is the file otel-grpo reads when given no path, and check-config accepts it.
    assert config_mod.default_config_source() == "config/telemetry.yaml"
    assert check_config(None, env={})[0] == 0


def test_init_file_explains_sections_units_and_overriding_variables(tmp_path: Path) -> None:
    text = init_config.write_config(tmp_path / "t.yaml").read_text(encoding="utf-8")
    comments = "\n".join(line for line in text.splitlines() if "#" in line)
    for section in TelemetryConfig.model_fields:
        assert f"\n{section}:" in "\n" + text, section
    for variable in ("WANDB_PROJECT", "WANDB_MODE", "OTEL_SERVICE_NAME", "OTEL_EXPORTER_OTLP_ENDPOINT"):
        assert variable in comments, variable
    for unit in ("seconds", "USD", "0..1"):
        assert unit in comments, unit
    assert "NEVER put secrets here" in comments


def test_init_refuses_to_overwrite_without_force(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, "wandb:\n  project: mine\n")
    assert init_config.main([str(path)]) == 2
    assert capsys.readouterr().err == f"otel-grpo init: {path} already exists; use --force to overwrite it\n"
    assert path.read_text(encoding="utf-8") == "wandb:\n  project: mine\n"
    assert init_config.main([str(path), "--force"]) == 0
    assert load_config(path, env={}) == TelemetryConfig()


def test_init_into_a_directory_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert init_config.main([str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"otel-grpo init: {tmp_path} is a directory; give a file path, e.g. {tmp_path / 'telemetry.yaml'}\n"
    assert list(tmp_path.iterdir()) == []


def test_init_as_a_module_in_an_empty_project(tmp_path: Path) -> None:
    def init(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "otel_grpo.tools.init_config", *args],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    first = init("conf/t.yaml")
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "conf" / "t.yaml").is_file()
    second = init("conf/t.yaml")
    assert second.returncode == 2 and "already exists; use --force" in second.stderr
    assert "Traceback" not in second.stderr
    assert sorted(p.name for p in (tmp_path / "conf").iterdir()) == ["t.yaml"]  # no temporary file left behind


# --------------------------------------------------------------------------- setup() in a training script
def test_setup_with_a_missing_file_warns_once_and_goes_on_with_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import otel_grpo

    monkeypatch.chdir(tmp_path)  # an empty project
    with caplog.at_level(logging.WARNING, logger="otel_grpo"):
        tel = otel_grpo.setup("config/telemetry.yaml", wandb={"mode": "disabled"})
    assert tel.config == TelemetryConfig(wandb={"mode": "disabled"})
    assert [r.getMessage() for r in caplog.records if "not found" in r.getMessage()] == [
        f"otel-grpo: config file config/telemetry.yaml not found (current directory {tmp_path}): "
        "using the packaged defaults; write one with `otel-grpo init config/telemetry.yaml`"
    ]
    with otel_grpo.step(1), otel_grpo.sample(source="gsm8k", problem_type="math"):
        otel_grpo.record_sample(reward=1.0, correctness=1.0)  # recording works: nothing raises
