"""Read a WandB run directory (offline or synced) back from disk.

Uses ``wandb leet inspect --json``, which prints every record of the run's ``.wandb``
transaction log, so what is read is exactly what would be synced to the cloud.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_INTERNAL = ("_runtime", "_timestamp", "_step", "_wandb")


@dataclass
class RunRecords:
    """What a run directory holds: history rows, config, summary and table files."""

    path: Path
    history: list[dict[str, Any]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)
    raw_types: dict[str, int] = field(default_factory=dict)

    def rows_with(self, key: str) -> list[dict[str, Any]]:
        """History rows that contain ``key``."""
        return [row for row in self.history if key in row]

    def keys(self) -> set[str]:
        """Every history key written to the run."""
        return {k for row in self.history for k in row}


def find_run_file(path: str | Path) -> Path:
    """Return the ``.wandb`` file for a run directory, a wandb directory, or the file itself."""
    p = Path(path)
    if p.is_file():
        return p
    candidates = (
        sorted(p.glob("*.wandb"))
        or sorted(p.glob("latest-run/*.wandb"))
        or sorted(p.glob("*/*.wandb"), key=lambda f: f.stat().st_mtime)
    )
    if not candidates:
        raise FileNotFoundError(f"no .wandb transaction log under {p}")
    return candidates[-1]


def _strip(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if not k.startswith(_INTERNAL)}


def read_run(path: str | Path, *, timeout_s: float = 60.0) -> RunRecords:
    """Read every record of the run at ``path``."""
    run_file = find_run_file(path)
    out = subprocess.run(
        [sys.executable, "-m", "wandb", "leet", "inspect", "--json", str(run_file)],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )
    if out.returncode != 0 and not out.stdout:
        raise RuntimeError(f"wandb leet inspect failed on {run_file}: {out.stderr.strip()[:500]}")
    records = RunRecords(path=run_file.parent)
    for line in out.stdout.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        rec = json.loads(line)
        kind = rec.get("type", "")
        records.raw_types[kind] = records.raw_types.get(kind, 0) + 1
        body = rec.get(kind) or {}
        if kind == "history":
            item = body.get("item", {})
            row = _strip(item)
            row["_step"] = item.get("_step")
            records.history.append(row)
        elif kind == "config":
            records.config.update(body.get("update", {}))
        elif kind == "run":
            records.config.update((body.get("config") or {}).get("update", {}))
        elif kind == "summary":
            records.summary.update(_strip(body.get("update", {})))
    return records
