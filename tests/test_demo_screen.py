"""What a person reads on the screen of ``otel-grpo demo``: every figure says what it covers, and the line fits.

The slow tests run ``otel-grpo demo`` as a subprocess on a real pseudo-terminal of a
given width (so rich redraws its progress line live, as in a terminal), keep every
redraw of the progress line, and compare the figures on the screen with the rows of the
offline WandB run the demo wrote, read back from disk. The fast tests check the progress
line's layout at several widths.
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import shutil
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from otel_grpo.tools.demo.datasets import DATASETS
from otel_grpo.tools.demo.progress import StepFigures, fit_line, status_groups
from otel_grpo.tools.runreader import read_run

_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")


def _command(*args: str) -> list[str]:
    script = shutil.which("otel-grpo")
    return [script, *args] if script else [sys.executable, "-m", "otel_grpo.tools.cli", *args]


def run_on_terminal(args: list[str], cwd: Path, columns: int, timeout_s: float = 240.0) -> SimpleNamespace:
    """Run ``otel-grpo ARGS`` on a pseudo-terminal ``columns`` wide; its screen as text, every redraw kept.

    ``frames`` are the progress line's renderings (pieces of the output starting with
    ``GRPO``, between carriage returns, newlines and cursor movements); ``screen`` is the
    whole output without escape sequences.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "OTEL_"))}
    env.update(COLUMNS=str(columns), LINES="40", TERM="xterm-256color", WANDB_SILENT="true")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, columns, 0, 0))
    proc = subprocess.Popen(_command(*args), stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=env)
    os.close(slave)
    output = b""
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                output += data
            elif proc.poll() is not None:
                break
        else:
            proc.kill()
            raise AssertionError(f"otel-grpo {' '.join(args)} did not finish within {timeout_s}s")
        returncode = proc.wait(timeout=30)
    finally:
        os.close(master)
    text = _ESCAPE.sub("", output.decode("utf-8", "replace"))
    pieces = [piece.rstrip() for piece in re.split(r"[\r\n]", text)]
    frames = [piece for piece in pieces if piece.startswith("GRPO")]
    return SimpleNamespace(returncode=returncode, screen=text.replace("\r", ""), frames=frames)


def _table(screen: str, title: str) -> tuple[list[str], dict[str, list[str]]]:
    """A rich table on the screen: its column headers (lines joined) and ``{first cell: cells}`` of its rows."""
    lines = screen.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith(title))
    top = next(i for i in range(start, len(lines)) if lines[i].startswith("┏"))
    rule = next(i for i in range(top, len(lines)) if lines[i].startswith("┡"))
    header_cells = [[cell.strip() for cell in line.strip("┃").split("┃")] for line in lines[top + 1 : rule]]
    headers = [" ".join(filter(None, column)) for column in zip(*header_cells, strict=True)]
    rows: dict[str, list[str]] = {}
    for line in lines[rule + 1 :]:
        if line.startswith("└"):
            break
        if line.startswith("│"):
            cells = [cell.strip() for cell in line.strip("│").split("│")]
            rows[cells[0]] = cells
    return headers, rows


# --- the progress line's layout (fast) ------------------------------------------------------------------
FIGURES = StepFigures(step=12, accuracy=80.4, avg_reward=0.8, loss=0.281, judge_ok=1.0, run_judge_ok=0.757)


@pytest.mark.parametrize("width", [200, 120, 80, 60, 40, 20])
@pytest.mark.parametrize("down", [None, "empty_content"])
def test_the_progress_line_fits_every_width(width: int, down: str | None) -> None:
    line = fit_line(7, 12, 17.0, status_groups(FIGURES, down), width).plain
    assert len(line) <= width - 1, line
    assert line.startswith("GRPO ")
    if width >= 80:  # the demo's default size shows the step's figures and the judge now
        assert "step 12: acc 80.4%" in line
        assert ("now: judge DOWN" in line) if down else ("judge ok 100% │ run: judge ok 76%" in line)
    if down and width >= 40:  # the judge's outage is the last thing to go
        assert "now: judge DOWN" in line
    if ":" in line.split(" ", 4)[-1]:  # a label never stands without a figure
        assert not re.search(r"(step \d+|now|run):( │|$)", line), line


def test_a_step_label_says_which_step_and_the_run_share_says_run() -> None:
    line = fit_line(12, 12, 15.0, status_groups(FIGURES), 200).plain
    assert line.endswith("step 12: acc 80.4% reward +0.80 loss 0.281 judge ok 100% │ run: judge ok 76%")
    before_first_step = fit_line(0, 12, 1.0, status_groups(None, "connection"), 80).plain
    assert before_first_step.endswith("0/12 0:01 now: judge DOWN (connection)")
    assert " 7/12 1:02:05 step 12:" in fit_line(7, 12, 3725.0, status_groups(FIGURES), 80).plain


# --- the real demo on a terminal (slow) ---------------------------------------------------------------------
STEPS = 8  # the default outage (steps 5-7) and validation passes after steps 4 and 8


@pytest.fixture(scope="module")
def demo_screen(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    workdir = tmp_path_factory.mktemp("demo_screen")
    shown = run_on_terminal(["demo", "--steps", str(STEPS), "--wandb-dir", str(workdir)], workdir, columns=80)
    assert shown.returncode == 0, shown.screen[-3000:]
    run_dirs = sorted((workdir / "wandb").glob("offline-run-*"))
    assert len(run_dirs) == 1, shown.screen[-3000:]
    rows = read_run(run_dirs[0]).otel_grpo_rows()
    train = {row["train/step"]: row for row in rows if "train/loss" in row}
    assert sorted(train) == list(range(1, STEPS + 1))
    return SimpleNamespace(screen=shown.screen, frames=shown.frames, train=train, last=rows[-1])


@pytest.mark.slow
def test_no_progress_line_is_wider_than_79_columns_at_80(demo_screen: SimpleNamespace) -> None:
    assert len(demo_screen.frames) > STEPS, "the progress line was redrawn as the steps went"
    too_wide = [frame for frame in demo_screen.frames if len(frame) > 79]
    assert not too_wide, too_wide[:3]
    # each step's figures were on the one line, with the step they cover
    for step in range(1, STEPS + 1):
        assert any(f"step {step}: acc" in frame for frame in demo_screen.frames), step
    assert any("now: judge DOWN" in frame for frame in demo_screen.frames)  # live, during the outage


@pytest.mark.slow
def test_after_the_outage_the_step_judge_reads_healthy_and_the_run_share_says_run(demo_screen) -> None:
    final = demo_screen.frames[-1]
    match = re.search(rf"step {STEPS}: .*judge ok (\d+)% │ run: judge ok (\d+)%$", final)
    assert match, final
    step_row = demo_screen.train[STEPS]
    assert match.group(1) == f"{step_row['judge/step_success_rate']:.0%}".rstrip("%")
    assert step_row["judge/step_success_rate"] >= 0.9  # the judge is back: this step is healthy ...
    run_share = demo_screen.last["judge/success_rate"]
    assert match.group(2) == f"{run_share:.0%}".rstrip("%") and run_share < 0.8  # ... the run's share is not
    for step in (5, 6, 7):  # the outage steps read as what they were
        assert any(f"step {step}: " in frame and "judge ok 0%" in frame for frame in demo_screen.frames)


@pytest.mark.slow
def test_the_summary_labels_every_column_by_what_it_covers(demo_screen: SimpleNamespace) -> None:
    headers, rows = _table(demo_screen.screen, "Per-dataset results")
    step_row, last = demo_screen.train[STEPS], demo_screen.last
    column = {name: headers.index(name) for name in headers}
    assert {"train acc step 8", "reward step 8", "judge- failed step 8", "val acc pass at step 8"} <= set(column)
    run_total = column["judge ok run total"]
    for source in DATASETS:
        cells = rows[source]
        assert cells[column["train acc step 8"]] == f"{step_row[f'dataset/{source}/accuracy']:.1f}%"
        assert cells[column["reward step 8"]] == f"{step_row[f'dataset/{source}/avg_reward']:.2f}"
        # the run-long judge figure is under "run total", under no "step N" heading
        assert cells[run_total] == f"{last[f'judge/{source}_success_rate']:.1%}"
    assert "step" not in headers[run_total]
    assert rows["all"][run_total] == f"{last['judge/success_rate']:.1%}"

    judge_headers, judge_rows = _table(demo_screen.screen, "LLM judge evaluations")
    success = judge_headers.index("success")
    assert judge_rows[f"step {STEPS}"][success] == f"{step_row['judge/step_success_rate']:.1%}"
    run_label = f"run total, {int(last['judge/total_calls'])} evaluations"
    assert judge_rows[run_label][success] == f"{last['judge/success_rate']:.1%}"

    screen = " ".join(demo_screen.screen.split())  # rich wraps the sentences at 80 columns
    evaluations = int(last["judge/total_calls"])
    assert f"Run total (steps 1-{STEPS}, training and validation): {evaluations} judge evaluations" in screen
    assert f"step {STEPS} cost ${step_row['cost/step_cost']:.4f}" in screen
    assert "Judge outage (simulated, steps 5-7;" in screen
    assert "Mean per step in the outage vs the steps around it (3-4, 8): judge evaluations ok 0.0%" in screen


@pytest.mark.slow
def test_a_narrow_terminal_drops_figures_instead_of_wrapping(tmp_path: Path) -> None:
    shown = run_on_terminal(
        ["demo", "--steps", "6", "--eval-every", "0", "--wandb-mode", "disabled"], tmp_path, columns=60
    )
    assert shown.returncode == 0, shown.screen[-3000:]
    assert shown.frames and all(len(frame) <= 59 for frame in shown.frames), max(shown.frames, key=len)
    assert any(re.search(r"step \d: acc [\d.]+% judge ok \d+%$", frame) for frame in shown.frames)
    assert any(frame.endswith("now: judge DOWN") for frame in shown.frames)  # outage from step 5
