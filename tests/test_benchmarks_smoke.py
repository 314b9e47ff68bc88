"""`python -m benchmarks --smoke` runs every section at tiny sizes and reports each of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("1. Per-sample recording cost", "2. Step-end export latency", "3. Memory",
            "4. WandB bytes per step", "5. End to end", "6. Judge path")


def test_smoke_run_writes_every_section(tmp_path: Path) -> None:
    out = tmp_path / "RESULTS.md"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WANDB_", "OTEL_"))}
    env["WANDB_SILENT"] = "true"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run([sys.executable, "-m", "benchmarks", "--smoke", "--out", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]

    text = out.read_text(encoding="utf-8")
    for title in ("## Machine", "## Goals", *(f"## {s}" for s in SECTIONS)):
        assert title in text, f"{title!r} missing from the report"
    assert "python -m benchmarks" in text  # the reproduce command
    assert "section failed" not in text

    results = json.loads((tmp_path / "results.json").read_text(encoding="utf-8"))
    assert results["mode"] == "smoke"
    assert results["machine"]["cores"] and results["machine"]["python"]
    assert len(results["sections"]) == len(SECTIONS)
    for section, title in zip(results["sections"], SECTIONS, strict=True):
        assert section["title"].startswith(title)
        assert not section.get("error"), section.get("error")
        assert section["rows"] and section["goals"], title
        for goal in section["goals"]:
            assert goal["met"] in (True, False), goal  # every goal was measured
        for row in section["rows"]:  # the table has a cell for every column
            assert len(row) == len(section["columns"]), (title, row)
    assert results["duration_s"] < 120, f"smoke run took {results['duration_s']:.0f}s (budget: 60s)"
