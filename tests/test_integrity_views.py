"""The "Reward integrity" group in ``otel-grpo inspect`` and ``otel-grpo report``.

A scripted run (manual API, offline WandB) is read back from disk. Per step: gsm8k has
four samples (a judge verdict True, a rule 1, a rule 0, and a judge evaluation that is a
verdict False at step 1 but an API failure at step 2, so that sample is scored
``judge_failed``), humaneval three (rule 1, rule 0, a failed execution: not scored).
Every figure below is worked out by hand from that plan.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

import otel_grpo
from otel_grpo import keys
from otel_grpo.tools.cli import main as cli_main
from otel_grpo.tools.runreader import FRACTION, PERCENT, USD, accuracy_excl_judge_failed, read_run, unit_of
from tests.isolation import offline_run_env

GSM8K_COST, HUMANEVAL_COST = 0.01, 0.02
STEP_COST = 4 * GSM8K_COST + 3 * HUMANEVAL_COST

# The latest values (step 2) of every reward-integrity key of the run, worked out by hand.
EXPECTED_LATEST = {
    "train/judge_share": 2 / 6,  # gsm8k A and D of 6 scored samples (humaneval's failed run is not scored)
    "train/judge_failed_share": 1 / 6,  # gsm8k D
    "train/accuracy_excl_judge_failed": 100 * 3 / 6,  # A, B and humaneval's 1 of 6 samples not judge-failed
    "dataset/gsm8k/judge_share": 2 / 4,
    "dataset/gsm8k/judge_failed_share": 1 / 4,
    "dataset/gsm8k/accuracy_excl_judge_failed": 100 * 2 / 3,  # A and B correct of A, B, C
    "dataset/gsm8k/exec_success_rate": 100.0,
    "dataset/gsm8k/cost_per_correct": 4 * GSM8K_COST / 2,
    "dataset/humaneval/judge_share": 0.0,
    "dataset/humaneval/judge_failed_share": 0.0,
    "dataset/humaneval/accuracy_excl_judge_failed": 100 * 1 / 3,  # the failed run stays in, incorrect
    "dataset/humaneval/exec_success_rate": 100 * 2 / 3,
    "dataset/humaneval/cost_per_correct": 3 * HUMANEVAL_COST / 1,
    "cost/step_cost": STEP_COST,  # the judge is unpriced
    "cost/cost_per_correct": 2 * STEP_COST / 6,  # two steps, three correct samples each
    "val/judge_share": 1.0,
    "val/judge_failed_share": 0.0,
    "val/accuracy_excl_judge_failed": 100.0,
    "val/gsm8k/judge_share": 1.0,
    "val/gsm8k/judge_failed_share": 0.0,
    "val/gsm8k/accuracy_excl_judge_failed": 100.0,
    "val/gsm8k/cost_per_correct": GSM8K_COST,
}


def _gsm8k(step: int) -> None:
    plan = [("success", True, 1.0), (None, None, 1.0), (None, None, 0.0)]
    plan.append(("success", False, 0.0) if step == 1 else ("api_failure", None, 0.0))
    for outcome, verdict, reward in plan:
        with otel_grpo.sample("gsm8k", "math"):
            otel_grpo.record_executor_run(cost=GSM8K_COST, duration_s=0.1, success=True)
            if outcome == "success":
                otel_grpo.record_judge_evaluation("success", verdict, 0.2)
            elif outcome == "api_failure":
                otel_grpo.record_judge_evaluation("api_failure", None, 0.2, error_type="InternalServerError")
            otel_grpo.record_sample(reward)


def _humaneval() -> None:
    for ok, reward in ((True, 1.0), (True, 0.0), (False, 0.0)):
        with otel_grpo.sample("humaneval", "code"):
            otel_grpo.record_executor_run(cost=HUMANEVAL_COST, duration_s=0.1, success=ok)
            otel_grpo.record_sample(reward)


@pytest.fixture(scope="module")
def integrity_run(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    tmp = tmp_path_factory.mktemp("integrity-run")
    with offline_run_env(tmp):
        tel = otel_grpo.setup(None, wandb={"mode": "offline", "dir": str(tmp)})
        for step in (1, 2):
            with otel_grpo.step(step):
                _gsm8k(step)
                _humaneval()
                otel_grpo.record_scalars(loss=1.0 / step)
        with otel_grpo.validation():
            with otel_grpo.sample("gsm8k", "math"):
                otel_grpo.record_executor_run(cost=GSM8K_COST, duration_s=0.1, success=True)
                otel_grpo.record_judge_evaluation("success", True, 0.2)
                otel_grpo.record_sample(1.0)
        run_dir = Path(tel.run.dir).parent
        tel.shutdown()
    return SimpleNamespace(run_dir=run_dir, records=read_run(run_dir))


def _train_rows(records) -> dict[int, dict]:
    return {int(r[keys.STEP]): r for r in records.history if keys.TRAIN_LOSS in r}


# --- the figures the views show ---------------------------------------------------------------------
@pytest.mark.slow
def test_the_run_read_back_has_the_planned_figures(integrity_run: SimpleNamespace) -> None:
    rows = _train_rows(integrity_run.records)
    assert sorted(rows) == [1, 2]
    assert rows[1]["train/judge_failed_share"] == 0.0 and rows[1]["train/judge_share"] == pytest.approx(2 / 6)
    assert rows[1]["dataset/gsm8k/accuracy_excl_judge_failed"] == pytest.approx(50.0)
    assert rows[2]["train/accuracy"] == pytest.approx(100 * 3 / 7)
    # the train-wide accuracy excluding judge-failed samples the report derives: 3/7, then 3/6
    assert accuracy_excl_judge_failed(rows[1]) == pytest.approx(100 * 3 / 7)
    assert accuracy_excl_judge_failed(rows[2]) == pytest.approx(100 * 3 / 6)


@pytest.mark.slow
def test_inspect_lists_the_integrity_keys_in_their_own_group(
    integrity_run: SimpleNamespace, capsys: pytest.CaptureFixture
) -> None:
    assert cli_main(["inspect", str(integrity_run.run_dir), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    panels = summary["panels"]
    group = panels[keys.INTEGRITY_GROUP]
    assert set(group) == set(EXPECTED_LATEST)
    for key, value in EXPECTED_LATEST.items():
        assert group[key] == pytest.approx(value, abs=1e-9), key
    # no integrity key in any other group; the other keys of those namespaces stay where they were
    for title, values in panels.items():
        if title != keys.INTEGRITY_GROUP:
            assert not [k for k in values if keys.is_integrity_key(k)], title
    assert "train/accuracy" in panels["Training overview"] and "dataset/gsm8k/accuracy" in panels["Datasets"]
    assert "cost/total_cost" in panels["Cost"] and "val/accuracy" in panels["Validation"]
    units = summary["units"]
    assert units["train/judge_failed_share"] == units["dataset/gsm8k/judge_share"] == FRACTION
    assert units["dataset/gsm8k/accuracy_excl_judge_failed"] == units["dataset/humaneval/exec_success_rate"] == PERCENT
    assert units["dataset/gsm8k/cost_per_correct"] == units["cost/step_cost"] == units["cost/cost_per_correct"] == USD


@pytest.mark.slow
def test_inspect_text_shows_the_group_with_units(integrity_run: SimpleNamespace, capsys: pytest.CaptureFixture) -> None:
    assert cli_main(["inspect", str(integrity_run.run_dir)]) == 0
    out = capsys.readouterr().out
    # a group is split by what its values cover: "== Reward integrity: step 3 ==", "...: run total up to step 3 =="
    blocks = re.findall(r"^== ([^:=]*)(?::[^=]*)? ==\n((?:  .*\n?)*)", out, re.M)
    section = "".join(block for group, block in blocks if group == keys.INTEGRITY_GROUP)
    lines = {line.split()[0]: line.split()[1:] for line in section.strip().splitlines()}
    # the groups in the workspace's order: the integrity group where the workspace has its section
    from otel_grpo.tools.dashboards.wandb_workspace import SECTION_NAMES

    groups = list(dict.fromkeys(group for group, _ in blocks))
    assert [g for g in groups if g in SECTION_NAMES] == list(SECTION_NAMES)
    assert set(lines) == set(EXPECTED_LATEST)
    assert lines["train/judge_failed_share"] == ["0.167", "fraction", "(0-1)"]
    assert lines["dataset/gsm8k/accuracy_excl_judge_failed"] == ["66.7", "%"]
    assert lines["dataset/humaneval/cost_per_correct"] == ["0.06", "USD"]


# --- the report -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_report_has_the_reward_integrity_charts(integrity_run: SimpleNamespace, tmp_path: Path) -> None:
    from otel_grpo.tools.dashboards.wandb_workspace import SECTION_NAMES
    from otel_grpo.tools.report import render_overview, render_report, report_sections

    sections = dict(report_sections(integrity_run.records))
    # the workspace's sections, its integrity one included, then the report's exporter health
    assert list(sections) == [*SECTION_NAMES, "Exporter health"]
    panels = sections[keys.INTEGRITY_GROUP]
    drawn = {k for p in panels for k in p["keys"]}
    assert {
        "train/judge_share",
        "train/judge_failed_share",
        "dataset/gsm8k/judge_failed_share",
        "dataset/gsm8k/cost_per_correct",
        "cost/step_cost",
    } <= drawn
    assert any(k.endswith("/accuracy_excl_judge_failed") for k in drawn)
    out = tmp_path / "report.html"
    counts = render_report(integrity_run.records, out)
    text = out.read_text(encoding="utf-8")
    assert f"<h2>{keys.INTEGRITY_GROUP}</h2>" in text
    run_keys = integrity_run.records.keys()
    for panel in panels:
        present = [k for k in panel["keys"] if k in run_keys]
        if present:  # a chart of a key the run has (the workspace may name datasets this run lacks)
            assert counts[panel["title"]] > 0, panel["title"]
    share = next(p for p in panels if p["keys"] == ["train/judge_share", "train/judge_failed_share"])
    assert counts[share["title"]] == 4  # two keys, two steps
    caption = re.search(rf"<b>{re.escape(html.escape(share['title']))}</b>, ([^<]*)<br>", text).group(1)
    assert caption.startswith("per step, steps 1-2")
    png = tmp_path / "integrity.png"
    assert render_overview(integrity_run.records, png, sections=[keys.INTEGRITY_GROUP]) == {
        p["title"]: counts[p["title"]] for p in panels
    }


@pytest.mark.slow
def test_the_report_of_two_datasets_reads_at_its_native_size(integrity_run: SimpleNamespace) -> None:
    """Two steps, two datasets: every section figure reads well (text size, overlaps, series, axes, titles)."""
    from otel_grpo.tools.report import section_figures
    from tests.figure_checks import readability_problems

    for name, fig, _ in section_figures(integrity_run.records):
        problems = readability_problems(fig)
        assert not problems, (name, problems[:12])


@pytest.mark.slow
def test_the_derived_train_figure_equals_the_rows_key(integrity_run: SimpleNamespace) -> None:
    """Where the row has ``train/accuracy_excl_judge_failed``, the derivation from the sources agrees."""
    rows = _train_rows(integrity_run.records)
    for row in rows.values():
        assert accuracy_excl_judge_failed(row) == pytest.approx(row["train/accuracy_excl_judge_failed"])


@pytest.mark.slow
@pytest.mark.parametrize("with_train_key", [True, False])
def test_the_report_draws_its_own_group_when_the_workspace_has_none(
    integrity_run: SimpleNamespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, with_train_key: bool
) -> None:
    from matplotlib.figure import Figure

    from otel_grpo.tools import report
    from otel_grpo.tools.report import sections as report_sections_module

    spec_for = report_sections_module.spec_for

    def without_integrity(records):
        spec = spec_for(records)
        spec["sections"] = [s for s in spec["sections"] if s["name"] != keys.INTEGRITY_GROUP]
        return spec

    monkeypatch.setattr(report_sections_module, "spec_for", without_integrity)
    records = integrity_run.records
    if not with_train_key:  # a run of an otel-grpo before the train-wide key: derived from the sources
        records = SimpleNamespace(
            path=records.path,
            config=records.config,
            history=[
                {k: v for k, v in r.items() if k != keys.TRAIN_ACCURACY_EXCL_JUDGE_FAILED} for r in records.history
            ],
        )
        records.keys = lambda: {k for r in records.history for k in r}
    sections = dict(report.report_sections(records))
    names = list(sections)
    assert names.index(keys.INTEGRITY_GROUP) == names.index("Validation") + 1
    panels = sections[keys.INTEGRITY_GROUP]
    assert panels == report.integrity_panels(records)
    accuracy = next(p for p in panels if p["keys"][0] == keys.TRAIN_ACCURACY)
    fig = Figure()
    points, title = report.draw_panel(fig, accuracy, records, 5.0)
    assert points == 4 and "steps 1-2" in title and (("samples-weighted" in title) is not with_train_key)
    ys = [list(line.get_ydata()) for line in fig.get_axes()[0].get_lines()]
    assert ys[0] == pytest.approx([100 * 3 / 7, 100 * 3 / 7])  # train/accuracy
    assert ys[1] == pytest.approx([100 * 3 / 7, 100 * 3 / 6])  # excluding gsm8k's judge-failed sample
    counts = report.render_report(records, tmp_path / "r.html")
    assert all(counts[p["title"]] > 0 for p in panels)


# --- units and the derived figure, without a run ----------------------------------------------------
def test_units_of_the_integrity_keys() -> None:
    assert unit_of("train/judge_share") == unit_of("val/gsm8k/judge_failed_share") == FRACTION
    assert unit_of("dataset/mbpp/exec_success_rate") == PERCENT
    assert unit_of("dataset/mbpp/accuracy_excl_judge_failed") == unit_of("val/accuracy_excl_judge_failed") == PERCENT
    assert unit_of("dataset/mbpp/cost_per_correct") == unit_of("cost/cost_per_correct") == USD
    assert unit_of("cost/step_cost") == USD


def test_derived_accuracy_excl_judge_failed_weights_sources_by_their_kept_samples() -> None:
    row = {
        # 10 samples, 8 scored (2 failed runs), 4 judge-failed (0.5 of 8): 6 kept, 50% of them correct
        "dataset/a/count": 10,
        "dataset/a/exec_success_rate": 80.0,
        "dataset/a/judge_failed_share": 0.5,
        "dataset/a/accuracy_excl_judge_failed": 50.0,
        # 2 samples, no judge yet: both kept, both correct
        "dataset/b/count": 2,
        "dataset/b/exec_success_rate": 100.0,
        "dataset/b/accuracy_excl_judge_failed": 100.0,
        "val/c/count": 5,  # validation sources are not train samples
        "val/c/accuracy_excl_judge_failed": 0.0,
    }
    assert accuracy_excl_judge_failed(row) == pytest.approx(100 * (3 + 2) / (6 + 2))
    assert accuracy_excl_judge_failed({"train/accuracy": 50.0}) is None
    every_sample_failed = {
        "dataset/a/count": 4,
        "dataset/a/exec_success_rate": 100.0,
        "dataset/a/judge_failed_share": 1.0,
    }
    assert accuracy_excl_judge_failed(every_sample_failed) is None
