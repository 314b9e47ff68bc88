"""Dashboards: the WandB workspace spec, its wandb-workspaces model, the tables and the HTML report.

One offline WandB run is produced with the manual API (7 sources, 3 train steps, a
validation pass after each, judge evaluations of every outcome), read back from disk,
and every dashboard artefact is checked against what the exporter really wrote.
"""

from __future__ import annotations

import html
import json
import re
import socket
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import otel_grpo
from otel_grpo import keys
from otel_grpo.config import TelemetryConfig
from otel_grpo.exporters.rollup import SourceFigures, WindowRow
from otel_grpo.exporters.tables import attach_tables
from otel_grpo.faults import fault_count
from otel_grpo.summary import RunSnapshot, WindowSummary
from otel_grpo.tools.dashboards import wandb_workspace as wsmod
from otel_grpo.tools.dashboards.wandb_workspace import (
    DEFAULT_DATASETS,
    build_workspace,
    build_workspace_spec,
    spec_keys,
    validate_workspace,
)
from otel_grpo.tools.report import render_overview, render_report, report_sections, section_figures
from otel_grpo.tools.report.sections import extra_panels, is_small_multiples
from otel_grpo.tools.runreader import read_run
from tests.isolation import offline_run_env

pytestmark = pytest.mark.slow  # starts real processes, servers or WandB runs

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [
    ("gsm8k", "math"),
    ("math", "math"),
    ("humaneval", "code"),
    ("mbpp", "code"),
    ("hotpotqa", "qa"),
    ("commonsenseqa", "qa"),
    ("mmlu", "qa"),
]
OUTCOMES = ["success", "parse_failure", "api_failure"]
STEPS = (1, 2, 3)
SAMPLE_ROWS = 5  # < 7 samples per step: the samples table must be bounded
DATASET_STATISTICS_COLUMNS = list(keys.DATASET_STATISTICS_COLUMNS)
SAMPLES_COLUMNS = list(keys.SAMPLES_COLUMNS)


def _serve(index: int, step: int, src: str, ptype: str, *, cost: float) -> None:
    with otel_grpo.sample(src, ptype):
        otel_grpo.record_executor_run(cost=cost, duration_s=0.3, success=True)
        outcome = OUTCOMES[(index + step) % 3]
        otel_grpo.record_judge_request(
            input_tokens=100, output_tokens=10, error_type="APIConnectionError" if outcome == "api_failure" else None
        )
        otel_grpo.record_judge_evaluation(outcome, (index % 2 == 0) if outcome == "success" else None, 0.2)
        otel_grpo.record_sample(1.0 if (index + step) % 2 == 0 else 0.25)


@pytest.fixture(scope="module")
def offline_run(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """An offline run written with the manual API and :func:`attach_tables`, read back from disk."""
    tmp = tmp_path_factory.mktemp("dash-run")
    with offline_run_env(tmp):
        tel = otel_grpo.setup(
            {
                "wandb": {
                    "mode": "offline",
                    "dir": str(tmp),
                    "dashboard": {"table_every": 1, "sample_table_rows": SAMPLE_ROWS},
                },
                "otlp": {"enabled": False},
                "prometheus": {"enabled": False},
            }
        )
        attach_tables(tel)
        for step in STEPS:
            with otel_grpo.step(step):
                for i, (src, pt) in enumerate(SOURCES):
                    _serve(i, step, src, pt, cost=0.01 * (i + 1))
                otel_grpo.record_scalars(loss=1.0 / step, kl_div=0.01 * step, temperature=0.7)
            with otel_grpo.validation():
                for i, (src, pt) in enumerate(SOURCES):
                    _serve(i + 1, step, src, pt, cost=0.02)
        run_files = Path(tel.run.dir)
        rows = tel.rows
        errors = tel.exporter.health_counts()
        tel.shutdown()
    records = read_run(run_files.parent)
    return SimpleNamespace(records=records, files=run_files, rows=rows, errors=errors, tmp=tmp)


def _panels(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["title"]: p for section in spec["sections"] for p in section["panels"]}


def _section(spec: dict[str, Any], name: str) -> list[dict[str, Any]]:
    return next(s["panels"] for s in spec["sections"] if s["name"] == name)


def _find(panels: list[dict[str, Any]], kind: str, keys: set[str]) -> dict[str, Any]:
    found = [p for p in panels if p["type"] == kind and set(p["keys"]) == keys]
    assert found, f"no {kind} panel with keys {sorted(keys)}; have {[(p['type'], p['keys']) for p in panels]}"
    return found[0]


# --- the spec ------------------------------------------------------------------------------
def dry_run_spec(capsys: pytest.CaptureFixture, *argv: str) -> dict[str, Any]:
    assert wsmod.main(["--project", "proj", "--dry-run", *argv]) == 0
    return json.loads(capsys.readouterr().out)


def test_dry_run_spec_has_every_panel_of_the_document(capsys: pytest.CaptureFixture) -> None:
    spec = dry_run_spec(capsys, "--entity", "team")
    assert spec["project"] == "proj" and spec["entity"] == "team" and spec["x_axis"] == "train/step"
    assert [s["name"] for s in spec["sections"]] == [
        "Training overview",
        "Datasets",
        "Judge",
        "Reward integrity",
        "Validation",
        "Cost",
    ]
    sources = list(DEFAULT_DATASETS)
    assert spec["datasets"] == sources

    # 1. Training overview
    training = _section(spec, "Training overview")
    _find(training, "line", {"train/loss", "train/kl_div"})
    _find(training, "line", {"train/accuracy", "val/accuracy"})
    _find(training, "scalar", {"train/step"})
    # 2. Datasets
    datasets = _section(spec, "Datasets")
    _find(datasets, "bar", {f"dataset/{s}/accuracy" for s in sources})
    _find(datasets, "line", {"dataset/gsm8k/accuracy", "dataset/gsm8k/avg_reward"})
    _find(datasets, "line", {"dataset/math/accuracy", "dataset/math/avg_reward"})
    table = _find(datasets, "table", {"dataset_statistics"})
    assert table["title"] == "Dataset Statistics, step of the latest table"
    assert table["columns"] == ["source", "accuracy", "count", "avg_reward", "avg_cost"]
    # 3. Judge
    judge = _section(spec, "Judge")
    _find(judge, "line", {"judge/success_rate", "judge/parse_failure_rate", "judge/api_failure_rate"})
    _find(judge, "line", {"judge/step_success_rate", "judge/step_parse_failure_rate", "judge/step_api_failure_rate"})
    _find(judge, "bar", {"judge/correct_predictions", "judge/incorrect_predictions"})  # the pie fallback
    _find(judge, "bar", {f"judge/{s}_success_rate" for s in sources})
    _find(judge, "line", {"judge/latency_p50_s", "judge/latency_p95_s"})
    # 4. Validation
    validation = _section(spec, "Validation")
    _find(validation, "line", {f"val/{s}/accuracy" for s in sources})
    scatter = _find(validation, "scatter", {"val/avg_cost", "val/accuracy"})
    assert (scatter["x"], scatter["y"]) == ("val/avg_cost", "val/accuracy")
    # Reward integrity: every panel, exactly
    integrity = _section(spec, "Reward integrity")
    assert [(p["type"], p["title"], p["keys"]) for p in integrity] == [
        (
            "line",
            "Judge share & judge-failed share (train), per step",
            ["train/judge_share", "train/judge_failed_share"],
        ),
        ("line", "Judge-failed share per dataset, per step", [f"dataset/{s}/judge_failed_share" for s in sources]),
        ("line", "Judge share per dataset, per step", [f"dataset/{s}/judge_share" for s in sources]),
        (
            "line",
            "GSM8K: accuracy with & without judge-failed samples (%), per step",
            ["dataset/gsm8k/accuracy", "dataset/gsm8k/accuracy_excl_judge_failed"],
        ),
        (
            "line",
            "MATH: accuracy with & without judge-failed samples (%), per step",
            ["dataset/math/accuracy", "dataset/math/accuracy_excl_judge_failed"],
        ),
        (
            "line",
            "Accuracy excluding judge-failed samples per dataset (%), per step",
            [f"dataset/{s}/accuracy_excl_judge_failed" for s in sources],
        ),
        (
            "bar",
            "Cost per correct answer per dataset (USD), latest step",
            [f"dataset/{s}/cost_per_correct" for s in sources],
        ),
        (
            "line",
            "Cost per correct answer & step cost (USD), cumulative since the run started & per step",
            ["cost/cost_per_correct", "cost/step_cost"],
        ),
        (
            "line",
            "Judge share & judge-failed share (validation), per validation pass",
            ["val/judge_share", "val/judge_failed_share"],
        ),
    ]
    integrity_keys = {k for p in integrity for k in p["keys"]}
    assert all(
        keys.is_integrity_key(k) or k == "dataset/gsm8k/accuracy" or k == "dataset/math/accuracy"
        for k in integrity_keys
    )
    # every per-dataset figure of the key contract has a panel
    assert {k.rsplit("/", 1)[-1] for k in integrity_keys if k.startswith("dataset/")} >= set(
        keys.DATASET_INTEGRITY_FIGURES
    ) - {keys.EXEC_SUCCESS_RATE}
    # A bar reads the run summary: its keys must be ones the exporter keeps there.
    summary_keys_of = getattr(keys, "summary_keys_of", None)
    if summary_keys_of is not None:
        kept = {k for s in sources for k in summary_keys_of(s)} | set(getattr(keys, "SUMMARY_KEYS", ()))
        for panel in integrity:
            if panel["type"] == "bar":
                assert set(panel["keys"]) <= kept, panel["title"]
    # Cost
    assert {"cost/total_cost", "cost/avg_cost_per_sample", "cost/executor_calls", "cost/judge_calls"} <= {
        k for p in _section(spec, "Cost") for k in p["keys"]
    }

    for title, panel in _panels(spec).items():
        assert panel["keys"] and panel["type"] in {"line", "bar", "scalar", "scatter", "table"}, title
        assert panel["x"] == ("val/avg_cost" if panel["type"] == "scatter" else "train/step"), title
    assert len(_panels(spec)) == sum(len(s["panels"]) for s in spec["sections"]), "titles are unique"


def test_dataset_panels_come_from_the_config(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    config = tmp_path / "telemetry.yaml"
    config.write_text(
        "wandb:\n  project: from-config\n  dashboard:\n    datasets: [GSM8K, mmlu, mmlu]\n", encoding="utf-8"
    )
    spec = json.loads(json.dumps(build_workspace_spec("x")))  # JSON-able as is
    assert spec["datasets"] == list(DEFAULT_DATASETS)
    spec = dry_run_spec(capsys, "--config", str(config))
    assert spec["datasets"] == ["gsm8k", "mmlu"]
    panels = _panels(spec)
    assert panels["Accuracy per dataset (%), latest step"]["keys"] == [
        "dataset/gsm8k/accuracy",
        "dataset/mmlu/accuracy",
    ]
    assert panels["Validation accuracy per dataset (%), per validation pass"]["keys"] == [
        "val/gsm8k/accuracy",
        "val/mmlu/accuracy",
    ]
    assert "GSM8K: accuracy (%) & avg reward, per step" in panels
    assert "MATH: accuracy (%) & avg reward, per step" not in panels
    assert wsmod.main(["--dry-run", "--config", str(tmp_path / "missing.yaml")]) == 2


def test_every_spec_key_is_written_by_the_exporter(offline_run: SimpleNamespace) -> None:
    written = offline_run.records.keys()
    spec = build_workspace_spec("proj", None, DEFAULT_DATASETS)
    missing = sorted(spec_keys(spec) - written)
    assert not missing, f"panels read keys the exporter never wrote: {missing}"
    # the table panel's key is a logged table
    assert spec_keys(spec, include_tables=True) - spec_keys(spec) == {"dataset_statistics"}
    assert any(
        row.get("dataset_statistics._type") == "table-file" or isinstance(row.get("dataset_statistics"), dict)
        for row in offline_run.records.history
    )
    assert offline_run.errors["export_errors"] == 0


# --- the wandb-workspaces model -------------------------------------------------------------
def test_workspace_builds_without_network_and_round_trips(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("building a workspace must not touch the network")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    import wandb_workspaces.reports.v2 as wr
    import wandb_workspaces.workspaces as ws

    spec = build_workspace_spec("proj", "team", DEFAULT_DATASETS)
    workspace = build_workspace(spec)
    assert isinstance(workspace, ws.Workspace)
    assert (workspace.entity, workspace.project) == ("team", "proj")
    assert [s.name for s in workspace.sections] == [s["name"] for s in spec["sections"]]
    kinds = {
        "line": wr.LinePlot,
        "bar": wr.BarPlot,
        "scalar": wr.ScalarChart,
        "scatter": wr.ScatterPlot,
        "table": wr.WeavePanelSummaryTable,
    }
    for section, section_spec in zip(workspace.sections, spec["sections"], strict=True):
        assert section.panel_settings.x_axis == "train/step"
        for panel, panel_spec in zip(section.panels, section_spec["panels"], strict=True):
            assert isinstance(panel, kinds[panel_spec["type"]])

    # wandb-workspaces' own pydantic model: Workspace -> View -> JSON -> View.model_validate -> Workspace
    copy = validate_workspace(workspace)
    assert wsmod.workspace_json(copy) == wsmod.workspace_json(workspace)
    view = wsmod.workspace_json(workspace)
    sections = view["spec"]["section"]["panelBankConfig"]["sections"]
    assert view["spec"]["section"]["settings"]["xAxis"] == "train/step"
    by_type: dict[str, list[dict]] = {}
    for section in sections:
        for panel in section["panels"]:
            by_type.setdefault(panel["viewType"], []).append(panel)
    assert {p["config"]["xAxis"] for p in by_type["Run History Line Plot"]} == {"train/step"}
    assert len(by_type["Weave"]) == 1 and "dataset_statistics" in json.dumps(by_type["Weave"][0])
    assert by_type["Scatter Plot"][0]["config"]["xAxis"] == "summary:val/avg_cost"
    assert len(by_type["Bar Chart"]) == 4 and len(by_type["Scalar Chart"]) == 2  # 1 bar in Reward integrity
    # every metric named in the view is one the spec asked for
    named = {
        m
        for p in by_type["Run History Line Plot"] + by_type["Bar Chart"] + by_type["Scalar Chart"]
        for m in p["config"]["metrics"]
    }
    assert named | {"val/avg_cost"} == spec_keys(spec)  # the scatter's x is only in the scatter


def test_entity_is_optional_for_building() -> None:
    workspace = build_workspace(build_workspace_spec("proj"))
    assert workspace.entity == "" and validate_workspace(workspace).project == "proj"


def test_save_without_api_key_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)

    def no_save(self: Any) -> None:
        raise AssertionError("must not try to save without a key")

    import wandb_workspaces.workspaces as ws

    monkeypatch.setattr(ws.Workspace, "save", no_save)
    assert wsmod.main(["--project", "proj"]) == 2
    err = capsys.readouterr().err
    assert "WANDB_API_KEY" in err and "--dry-run" in err


def test_cli_forwards_dashboard_and_report(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    from otel_grpo.tools.cli import main as cli_main

    assert cli_main(["dashboard", "--project", "p", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["project"] == "p"
    assert cli_main(["report", str(tmp_path / "no-such-run")]) == 2
    assert "cannot read a WandB run" in capsys.readouterr().err


# --- tables ------------------------------------------------------------------------------------
def _table_refs(records: Any, key: str) -> list[tuple[int, dict[str, Any]]]:
    """(train/step, table reference) of every history row that logged table ``key``."""
    refs = []
    for row in records.history:
        ref = (
            row.get(key)
            if isinstance(row.get(key), dict)
            else {k[len(key) + 1 :]: v for k, v in row.items() if k.startswith(key + ".")}
        )
        if ref.get("_type") == "table-file":
            refs.append((row["train/step"], ref))
    return refs


def test_tables_are_in_the_offline_run(offline_run: SimpleNamespace) -> None:
    records, files = offline_run.records, offline_run.files
    train_rows = {row["train/step"]: row for row in offline_run.rows if "train/accuracy" in row}

    stats = _table_refs(records, "dataset_statistics")
    assert [step for step, _ in stats] == list(STEPS)
    for step, ref in stats:
        assert (ref["ncols"], ref["nrows"]) == (len(DATASET_STATISTICS_COLUMNS), len(SOURCES))
        path = files / ref["path"]
        assert path.is_file() and path.parent == files / "media" / "table"
        table = json.loads(path.read_text(encoding="utf-8"))
        assert table["columns"] == DATASET_STATISTICS_COLUMNS
        assert sorted(r[0] for r in table["data"]) == sorted(s for s, _ in SOURCES)
        row = train_rows[step]
        for source, accuracy, count, avg_reward, avg_cost in table["data"]:
            assert accuracy == pytest.approx(row[f"dataset/{source}/accuracy"])
            assert count == row[f"dataset/{source}/count"] == 1
            assert avg_reward == pytest.approx(row[f"dataset/{source}/avg_reward"])
            assert avg_cost == pytest.approx(row[f"dataset/{source}/avg_cost"])

    samples = _table_refs(records, "samples")
    assert [step for step, _ in samples] == list(STEPS)
    for step, ref in samples:
        table = json.loads((files / ref["path"]).read_text(encoding="utf-8"))
        assert table["columns"] == SAMPLES_COLUMNS
        assert len(table["data"]) == ref["nrows"] == SAMPLE_ROWS
        for sample in table["data"]:
            assert sample[0] == step and (sample[1], sample[2]) in SOURCES
            assert sample[6] in OUTCOMES and sample[5] == pytest.approx(
                0.01 * (SOURCES.index((sample[1], sample[2])) + 1)
            )
            assert sample[7] == pytest.approx(0.3)

    table_files = sorted(p.name for p in (files / "media" / "table").glob("*.table.json"))
    assert len([n for n in table_files if n.startswith("dataset_statistics_")]) == len(STEPS)
    assert len([n for n in table_files if n.startswith("samples_")]) == len(STEPS)


def _fake_telemetry(table_every: int, sample_rows: int) -> SimpleNamespace:
    config = TelemetryConfig.model_validate(
        {"wandb": {"dashboard": {"table_every": table_every, "sample_table_rows": sample_rows}}}
    )
    return SimpleNamespace(config=config, exporter=SimpleNamespace(row_extras=[]))


def _window(split: str, step: int, sample_rows: tuple) -> WindowSummary:
    """A closed window as the recorder hands it over (only what the tables read matters here)."""
    empty: dict = {}
    return WindowSummary(
        split, step, True, empty, empty, empty, empty, empty, empty, sample_rows, (0.0, False), RunSnapshot()
    )


def _written(step: int) -> WindowRow:
    """What the rollup hands the tables with a train row: the row and its per-source figures."""
    return WindowRow(
        {"train/step": step}, (SourceFigures("gsm8k", 50.0, 2, 0.5, 0.01), SourceFigures("math", 0.0, 1, 0.0, 0.0))
    )


def test_table_every_sample_bound_and_off_switches() -> None:
    faults = fault_count()
    tel = _fake_telemetry(2, 3)
    attach_tables(tel)
    attach_tables(tel)  # idempotent
    assert len(tel.exporter.row_extras) == 1
    extras = tel.exporter.row_extras[0]
    sample = ("gsm8k", "math", 1.0, 1.0, 0.01, "success", 0.5)
    logged = []
    for step in (1, 2, 3, 4):
        window = _window("train", step, (sample,) * 9 if step == 4 else ())
        data = extras(_written(step), window)
        if data:
            logged.append({"train/step": step, **data})
    assert not extras(WindowRow({"train/step": 4, "val/accuracy": 10.0}), _window("val", 4, (sample,)))
    # at the steps whose number is a multiple of table_every (2): 2, 4
    assert [d["train/step"] for d in logged if "dataset_statistics" in d] == [2, 4]
    samples = [d for d in logged if "samples" in d]
    assert [d["train/step"] for d in samples] == [4]  # only a window that handed samples over
    assert samples[0]["samples"].columns == SAMPLES_COLUMNS
    assert samples[0]["samples"].data == [[4, "gsm8k", "math", 1.0, 1.0, 0.01, "success", 0.5]] * 3
    stats = next(d["dataset_statistics"] for d in logged if "dataset_statistics" in d)
    assert stats.columns == DATASET_STATISTICS_COLUMNS
    assert stats.data == [["gsm8k", 50.0, 2, 0.5, 0.01], ["math", 0.0, 1, 0.0, 0.0]]
    assert fault_count() == faults

    off = _fake_telemetry(0, 0)
    attach_tables(off)
    assert off.exporter.row_extras == []


def test_tables_never_raise() -> None:
    faults = fault_count()
    tel = _fake_telemetry(1, 4)
    attach_tables(tel)
    broken = _window("train", 1, 42)  # type: ignore[arg-type]  # not a sequence of samples
    assert tel.exporter.row_extras[0](_written(1), broken) is None
    attach_tables(None)  # a broken handle is a no-op, not an exception
    assert fault_count() == faults + 2  # each logged once and counted


# --- the report --------------------------------------------------------------------------------
def test_report_renders_every_chart_with_data(offline_run: SimpleNamespace, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    counts = render_report(offline_run.records, out)
    spec = build_workspace_spec("p", None, DEFAULT_DATASETS)
    drawn = dict(report_sections(offline_run.records))
    extra = extra_panels(offline_run.records)
    assert len(counts) == sum(len(panels) for panels in drawn.values())
    # every panel of the workspace (titled by its name: the report says the coverage on its own line)
    # but the "Executor cost (USD)" scalar (its key is the line chart's), and a Reward integrity
    # section (the report's own panels of the group)
    for section in spec["sections"]:
        if section["name"] == keys.INTEGRITY_GROUP:
            assert drawn[section["name"]], "the report draws the Reward integrity group"
            continue
        want = [p["name"] for p in section["panels"] if p["name"] != "Executor cost (USD)"]
        titles = [p["title"] for p in drawn[section["name"]]]
        assert titles[: len(want)] == want, section["name"]
        # then the report's own charts of the group's keys the workspace draws nowhere
        assert titles[len(want) :] == [p["title"] for p in extra.get(section["name"], [])], section["name"]
    assert "Executor cost (USD)" not in counts and "Total executor cost (USD)" in counts
    assert [p["title"] for p in drawn["Exporter health"]] == ["Rows written to WandB", "Rows dropped & export errors"]
    empty = {name: n for name, n in counts.items() if n <= 0}
    assert not empty, f"charts without data: {empty}"
    assert counts["Dataset Statistics"] == len(SOURCES)
    assert counts["Accuracy per dataset (%)"] == len(SOURCES)
    assert counts["Loss & KL divergence"] == 2 * len(STEPS)
    assert counts["Validation: avg cost vs accuracy"] == len(STEPS)
    text = out.read_text(encoding="utf-8")
    assert len(re.findall(r"src='data:image/png;base64,[A-Za-z0-9+/=]+'", text)) == len(counts) - 1
    for name in ("Training overview", "Datasets", "Judge", "Validation", "Reward integrity", "Cost", "commonsenseqa"):
        assert name in text
    assert "http://" not in text and "https://" not in text  # self-contained

    png = tmp_path / "overview.png"
    assert render_overview(offline_run.records, png) == counts
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _captions(text: str) -> dict[str, str]:
    """{chart title: what its caption says after the title} of an HTML report."""
    return {
        html.unescape(title): html.unescape(rest)
        for title, rest in re.findall(r"<figcaption><b>(.*?)</b>, (.*?)(?:<br>|<code>)", text)
    }


def test_every_chart_says_which_steps_it_shows(offline_run: SimpleNamespace, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    counts = render_report(offline_run.records, out)
    captions = _captions(out.read_text(encoding="utf-8"))
    assert set(captions) == set(counts)
    last = max(STEPS)
    for title, caption in captions.items():
        assert re.search(r"\bsteps? \d", caption), (title, caption)
    # the bar chart and the table show the same step, the last one, and agree on the values
    assert captions["Accuracy per dataset (%)"].startswith(f"step {last}")
    assert captions["Dataset Statistics"].startswith(f"step {last}")
    assert captions["Loss & KL divergence"].startswith(f"per step, steps {min(STEPS)}-{last}")
    assert captions["Judge success rate per dataset"].startswith(f"run total at step {last}")
    assert captions["Judge latency (s)"].startswith("cumulative since the run started")
    assert "bucket estimate" in captions["Judge latency (s)"]
    last_row = next(r for r in reversed(offline_run.records.history) if "dataset/gsm8k/accuracy" in r)
    table = re.search(r"<table>.*?</table>", out.read_text(encoding="utf-8"), re.S).group(0)
    gsm8k = re.search(r"<tr><td>gsm8k</td><td>([^<]*)</td>", table).group(1)
    assert float(gsm8k) == pytest.approx(last_row["dataset/gsm8k/accuracy"], abs=0.05)


def test_chart_lines_stay_distinguishable(offline_run: SimpleNamespace) -> None:
    """Every series of a chart has its own marker or line style; one unit never gets two y axes;
    a panel of more than four keys is small multiples, one series each on one shared y axis."""
    from matplotlib.figure import Figure

    from otel_grpo.tools.report import draw_panel

    for _, panels in report_sections(offline_run.records):
        for panel in (p for p in panels if p["type"] == "line"):
            fig = Figure()
            _, title = draw_panel(fig, panel, offline_run.records, 5.0)
            axes = fig.get_axes()
            assert title.split("\n")[0] == panel["title"] and "step" in title.split("\n")[1]
            if is_small_multiples(panel):
                assert len(axes) == len(panel["keys"]) and all(len(ax.get_lines()) == 1 for ax in axes)
                assert len({ax.get_ylim() for ax in axes}) == 1
                continue
            lines = [line for a in axes for line in a.get_lines()]
            styles = {(line.get_marker(), line.get_linestyle()) for line in lines}
            assert len(styles) == len(lines) <= 4, (panel["title"], styles)
            if panel["title"] == "Judge latency (s)":
                assert len(axes) == 1, "p50 and p95 share one axis (so p95 is never drawn below p50)"
            if panel["title"].endswith("accuracy (%) & avg reward"):
                assert len(axes) == 2, "percent and reward get their own axes"


def test_report_figures_read_at_their_native_size(offline_run: SimpleNamespace) -> None:
    """Three steps, seven datasets, every judge outcome: each section's figure reads well (see figure_checks)."""
    from tests.figure_checks import readability_problems

    for name, fig, _ in section_figures(offline_run.records):
        problems = readability_problems(fig)
        assert not problems, (name, problems[:12])


def test_report_cli(offline_run: SimpleNamespace, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from otel_grpo.tools.report import main as report_main

    out = tmp_path / "r.html"
    assert report_main([str(offline_run.records.path), "--out", str(out)]) == 0
    assert out.stat().st_size > 10_000 and "no data for" not in capsys.readouterr().out
    assert report_main([str(tmp_path / "missing")]) == 2
    assert "cannot read a WandB run" in capsys.readouterr().err
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    assert report_main([str(empty_dir)]) == 2
    png, groups = tmp_path / "overview.png", tmp_path / "groups"
    args = [str(offline_run.records.path), "--out", str(out), "--png", str(png), "--png-dir", str(groups)]
    assert report_main(args) == 0
    printed = capsys.readouterr().out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"wrote {png}" in printed
    written = sorted(p.name for p in groups.glob("*.png"))
    assert written == sorted(
        f"report-{s}.png" for s in ("training", "datasets", "judge", "integrity", "validation", "cost", "health")
    )
    assert all(f"wrote {groups / name}" in printed for name in written)


# --- the Grafana dashboard's modules ---------------------------------------------------------------
def test_grafana_layout_is_split_into_row_functions() -> None:
    from otel_grpo.tools.dashboards import grafana_integrity, grafana_layout, grafana_rows

    rows = grafana_layout.dashboard_rows()
    assert [title for title, _ in rows] == [
        "Training overview",
        "Datasets",
        "Judge",
        "Reward integrity",
        "Validation",
        "Cost",
        "Exporter health",
    ]
    assert rows[3] == grafana_integrity.integrity_row()
    for module in (grafana_layout, grafana_rows, grafana_integrity):
        lines = Path(module.__file__).read_text(encoding="utf-8").count("\n")
        assert lines <= 450, f"{module.__name__} has {lines} lines"
