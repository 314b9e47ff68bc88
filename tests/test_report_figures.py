"""``otel-grpo report`` reads at its native size, and every chart says what it covers.

A real offline run is written by ``docs/make_example.py``'s generator (the run the committed
``docs/report-*.png`` come from), 16 steps: seven datasets, GRPO groups, a judge outage at
steps 13-15, validation passes at steps 5, 10 and 15. It is read back from disk, and every
figure the report draws (each section's PNG, and each chart of the HTML report) is drawn with
the Agg renderer and read back: pixel size, every text's size in pixels and box, series per
chart, legends, axes and titles (:mod:`tests.figure_checks`).
"""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from otel_grpo import keys
from otel_grpo.tools.report import render_groups, render_overview, report_sections, section_figures
from otel_grpo.tools.report.data import OVER_STEPS
from otel_grpo.tools.report.layout import CELL_WIDTH, COLUMNS, SECTION_GAP, panel_figure
from otel_grpo.tools.runreader import read_run
from tests.figure_checks import drawn_texts, readability_problems, series_count
from tests.isolation import offline_run_env

ROOT = Path(__file__).resolve().parent.parent
STEPS = 16
LAST = STEPS
WIDTH_PX = 1000  # the report's figures are two 5-inch charts wide at 100 dpi
SLUGS = ["training", "datasets", "judge", "integrity", "validation", "cost", "health"]


def _make_example():
    spec = importlib.util.spec_from_file_location("make_example", ROOT / "docs" / "make_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def example_run(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    tmp = tmp_path_factory.mktemp("example-run")
    with offline_run_env(tmp):
        run_dir = _make_example().make_run(tmp, steps=STEPS)
    records = read_run(run_dir)
    return SimpleNamespace(records=records, run_dir=run_dir, figures=section_figures(records))


def _titles(figures) -> dict[str, str]:
    """{chart title: what its figure title says after the first line} of every chart of the sections."""
    return {
        sub._suptitle.get_text().split("\n", 1)[0]: sub._suptitle.get_text().split("\n", 1)[1].replace("\n", " ")
        for _, fig, _ in figures
        for sub in fig.subfigs
    }


# --- the key contract's windows, without a run ---------------------------------------------------------
def test_window_of_follows_the_key_contract() -> None:
    step, validation, run = keys.WINDOW_STEP, keys.WINDOW_VALIDATION, keys.WINDOW_RUN
    expected = {
        keys.TRAIN_ACCURACY: step,
        keys.dataset("gsm8k", "accuracy"): step,
        keys.grpo_zero_advantage_rate("gsm8k"): step,
        keys.judge_outcome_rate("success", step=True): step,
        keys.COST_STEP: step,
        keys.VAL_ACCURACY: validation,
        keys.val("accuracy", "gsm8k"): validation,
        keys.judge_outcome_rate("success"): run,
        keys.judge_source_success_rate("gsm8k"): run,
        keys.judge_latency("p95"): run,
        keys.JUDGE_CORRECT_PREDICTIONS: run,
        keys.COST_TOTAL: run,
        keys.COST_PER_CORRECT_TOTAL: run,
        keys.executor_latency("p50"): run,
        keys.exporter("rows_written"): run,
    }
    assert {key: keys.window_of(key) for key in expected} == expected


# --- the figures, read back -----------------------------------------------------------------------------
@pytest.mark.slow
def test_every_section_figure_reads_at_its_native_size(example_run: SimpleNamespace) -> None:
    assert [name for name, _, _ in example_run.figures] == [name for name, _ in report_sections(example_run.records)]
    smallest = []
    for name, fig, counts in example_run.figures:
        assert all(n > 0 for n in counts.values()), (name, counts)
        problems = readability_problems(fig)
        assert not problems, (name, problems[:12])
        texts, (width, height) = drawn_texts(fig)
        assert width == WIDTH_PX and (width, height) == tuple(round(v * fig.dpi) for v in fig.get_size_inches())
        smallest.append(min(t.px for t in texts))
    assert min(smallest) >= 10.0


@pytest.mark.slow
def test_every_html_chart_reads_at_its_native_size(example_run: SimpleNamespace) -> None:
    for section, panels in report_sections(example_run.records):
        for panel in panels:
            if panel["type"] == "table":
                continue  # an HTML table in the report, not a picture
            fig, points, _ = panel_figure(panel, example_run.records)
            assert points > 0, panel["title"]
            problems = readability_problems(fig)
            assert not problems, (section, panel["title"], problems[:12])
            assert fig.get_figwidth() * fig.dpi <= WIDTH_PX


@pytest.mark.slow
def test_a_panel_of_seven_datasets_becomes_small_multiples(example_run: SimpleNamespace) -> None:
    figures = {name: fig for name, fig, _ in example_run.figures}
    sub = next(s for s in figures["Validation"].subfigs if s._suptitle.get_text().startswith("Validation accuracy"))
    axes = [ax for ax in sub.get_axes() if ax.get_visible()]
    assert len(axes) == 7 and {ax.get_title() for ax in axes} == {s for s, *_ in _make_example().DATASETS}
    assert all(series_count([ax]) == 1 for ax in axes)
    assert len({ax.get_ylim() for ax in axes}) == 1, "one y axis for all"
    for _, fig, _ in example_run.figures:
        for ax in fig.get_axes():
            assert series_count([ax]) <= 4


@pytest.mark.slow
def test_titles_say_what_each_chart_covers(example_run: SimpleNamespace) -> None:
    titles = _titles(example_run.figures)
    # run-long totals say so, with their step
    assert titles["Judge success rate per dataset"].startswith(f"run total at step {LAST}")
    assert titles["Judge verdict distribution"].startswith(f"run total at step {LAST}")
    assert titles["Judge latency (s)"].startswith(f"cumulative since the run started, steps 1-{LAST}")
    assert titles["Average cost per sample (USD)"].startswith("cumulative since the run started")
    # one step's values say which step, and that it is that step alone
    assert titles["Accuracy per dataset (%)"].startswith(f"step {LAST} only")
    assert titles["Dataset Statistics"].startswith(f"step {LAST} only")
    assert titles["Judge step outcome rates"].startswith(f"per step, steps 1-{LAST}")
    assert titles["Validation accuracy per dataset (%)"].startswith("per validation pass, steps 5-15")
    assert titles["Validation: avg cost vs accuracy"].startswith("one point per validation pass, steps 5-15")
    assert titles["Accuracy: train vs validation (%)"].startswith("per step & per validation pass")
    # every chart of keys of one window says that window, as the key contract gives it
    for _, panels in report_sections(example_run.records):
        for panel in (p for p in panels if p["type"] == "line"):
            found = {keys.window_of(k) for k in panel["keys"]}
            if len(found) == 1:
                assert titles[panel["title"]].startswith(OVER_STEPS[found.pop()]), panel["title"]


@pytest.mark.slow
def test_rate_and_cost_axes_start_at_zero(example_run: SimpleNamespace) -> None:
    figures = {name: fig for name, fig, _ in example_run.figures}
    cost = next(s for s in figures["Cost"].subfigs if s._suptitle.get_text().startswith("Average cost per sample"))
    (ax,) = cost.get_axes()
    values = ax.get_lines()[0].get_ydata()
    assert ax.get_ylim()[0] == 0 and max(values) - min(values) < 0.1 * max(values), "a small wiggle looks small"
    scatter = next(s for s in figures["Validation"].subfigs if "cost vs accuracy" in s._suptitle.get_text())
    (ax,) = scatter.get_axes()
    assert ax.get_xlim()[0] == 0 or "zoomed" in ax.get_xlabel()
    assert ax.get_ylim()[0] == 0


@pytest.mark.slow
def test_the_pngs_are_the_figures(example_run: SimpleNamespace, tmp_path: Path) -> None:
    from PIL import Image

    written = render_groups(example_run.records, tmp_path / "groups")
    assert [p.name for p in written] == [f"report-{slug}.png" for slug in SLUGS]
    sizes = []
    for path, (name, fig, counts) in zip(written, example_run.figures, strict=True):
        with Image.open(path) as image:
            assert image.size == (WIDTH_PX, round(fig.get_figheight() * fig.dpi)), name
            sizes.append(image.size)
        assert written[path] == counts
    one = tmp_path / "overview.png"
    counts = render_overview(example_run.records, one)
    with Image.open(one) as image:
        assert image.size == (WIDTH_PX, sum(h for _, h in sizes) + SECTION_GAP * (len(sizes) - 1))
    assert counts == {title: n for c in written.values() for title, n in c.items()}
    assert COLUMNS * CELL_WIDTH * 100 == WIDTH_PX


# --- the repository: the committed pictures, the README lines, .gitignore ---------------------------------
def test_committed_pictures_are_each_group_and_small() -> None:
    from PIL import Image

    for slug in SLUGS:
        png = ROOT / "docs" / f"report-{slug}.png"
        assert png.is_file(), "run: python docs/make_example.py"
        assert png.stat().st_size < 300 * 1024, png
        with Image.open(png) as image:
            assert image.size[0] == WIDTH_PX, png
    assert not (ROOT / "docs" / "report-example.png").exists(), "the old 26-chart sheet is gone"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pictures = re.findall(r"!\[([^\]]*)\]\((docs/report-[a-z]+\.png)\)", readme)
    assert pictures and all((ROOT / src).is_file() for _, src in pictures)
    assert not any("every dashboard panel" in alt.lower() for alt, _ in pictures)


def test_the_readme_png_is_ignored_by_git() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    named = re.findall(r"otel-grpo report \S+ .*--png (\S+\.png)", readme)
    assert named, "the README tells users where to write the PNG"
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    for name in named:
        ignored = subprocess.run(["git", "check-ignore", "-q", name], cwd=ROOT, check=False)
        assert ignored.returncode == 0, f"{name} is not ignored by git"
    tracked = subprocess.run(["git", "ls-files", "-ci", "--exclude-standard"], cwd=ROOT, text=True, capture_output=True)
    assert tracked.stdout.strip() == "", f"committed files that .gitignore matches: {tracked.stdout}"


def test_the_report_package_is_split_into_small_modules() -> None:
    package = ROOT / "otel_grpo" / "tools" / "report"
    assert not (ROOT / "otel_grpo" / "tools" / "report.py").exists()
    for module in package.glob("*.py"):
        lines = module.read_text(encoding="utf-8").count("\n")
        assert lines < 550, f"{module.name} has {lines} lines"
