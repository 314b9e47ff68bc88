"""Read a WandB run directory (offline or synced) back from disk.

Uses ``wandb leet inspect --json``, which prints every record of the run's ``.wandb``
transaction log, so what is read is exactly what would be synced to the cloud.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otel_grpo import keys

_INTERNAL = ("_runtime", "_timestamp", "_step", "_wandb")

# Units of the key families of otel_grpo.keys (how ``inspect`` and ``report`` label values).
PERCENT = "%"
FRACTION = "fraction (0-1)"
USD = "USD"
SECONDS_ESTIMATE = "s, bucket estimate"
COUNT = "count"
STEP_UNIT = "step"
BUCKET_NOTE = (
    "latency percentiles (latency_p50_s, latency_p95_s) are bucket estimates from histograms, "
    "as Prometheus' histogram_quantile gives, not exact percentiles of the calls"
)
_COUNT_ENDINGS = ("count", "_calls", "_predictions", "_tokens", "_requests")
_OTEL_GRPO_TABLES = (keys.DATASET_STATISTICS_TABLE, keys.SAMPLES_TABLE)


def unit_of(key: str) -> str:
    """The unit of an otel-grpo key, from its family; ``""`` for unitless figures (loss, rewards).

    ``accuracy``/``success_rate`` under ``train/``, ``dataset/`` and ``val/`` are
    percentages (0-100); ``judge/`` and ``grpo/`` rates and ratios are fractions (0-1);
    costs are USD; ``latency_*_s`` are seconds estimated from histogram buckets; counts
    of samples, calls, predictions, tokens, requests and exporter events are counts. Of the
    reward-integrity figures, ``judge_share`` and ``judge_failed_share`` are fractions,
    ``exec_success_rate`` a percentage and ``cost_per_correct`` USD, in every namespace.
    """
    namespace, _, rest = key.partition("/")
    name = rest.rsplit("/", 1)[-1]
    if namespace not in keys.NAMESPACES or not name:
        return ""
    if key == keys.STEP:
        return STEP_UNIT
    if name in (keys.JUDGE_SHARE, keys.JUDGE_FAILED_SHARE):
        return FRACTION
    if name == keys.EXEC_SUCCESS_RATE:
        return PERCENT
    if name == keys.COST_PER_CORRECT:
        return USD
    if name.startswith("latency_") and name.endswith("_s"):
        return SECONDS_ESTIMATE
    if namespace in (keys.TRAIN, keys.DATASET, keys.VAL) and (name.startswith("accuracy") or name == "success_rate"):
        return PERCENT
    if namespace in (keys.JUDGE, keys.GRPO) and name.endswith(("_rate", "_ratio")):
        return FRACTION
    if namespace == keys.EXPORTER or name.startswith("count") or name.endswith(_COUNT_ENDINGS):
        return COUNT
    if name.endswith("_cost") or name.startswith("avg_cost"):
        return USD
    return ""


# What a key's value covers (how ``inspect`` labels its groups): the rows' windows, see docs/keys.md.
STEP_COVERAGE = "step"
VALIDATION_COVERAGE = "validation pass"
RUN_TOTAL = "run total"


_COVERAGE_LABELS = {
    keys.WINDOW_STEP: STEP_COVERAGE,
    keys.WINDOW_VALIDATION: VALIDATION_COVERAGE,
    keys.WINDOW_RUN: RUN_TOTAL,
}


def coverage_of(key: str) -> str:
    """What the value of an otel-grpo key covers, as ``inspect`` says it; ``""`` for a key of no
    otel-grpo namespace. The contract is :func:`otel_grpo.keys.window_of`: :data:`STEP_COVERAGE`
    (its row's training step), :data:`VALIDATION_COVERAGE` (its row's validation pass),
    :data:`RUN_TOTAL` (everything since the run started, all splits).
    """
    if key.partition("/")[0] not in keys.NAMESPACES:
        return ""
    return _COVERAGE_LABELS[keys.window_of(key)]


def format_value(value: Any, unit: str = "") -> str:
    """``value`` as ``inspect`` and ``report`` show it in ``unit`` (no unit text)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if unit in (COUNT, STEP_UNIT) and float(value).is_integer():
        return str(int(value))
    if unit == PERCENT:
        return f"{value:.1f}"
    if unit == FRACTION:
        return f"{value:.3f}"
    if unit in (USD, SECONDS_ESTIMATE):
        return f"{value:.4g}"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def accuracy_excl_judge_failed(row: dict[str, Any]) -> float | None:
    """The train accuracy (%) of a row over its samples not scored ``judge_failed``; None without one.

    The row has no train-wide key for it: it is the samples-weighted combination of the
    sources' ``dataset/{source}/accuracy_excl_judge_failed``, each weighted by its samples
    that are not judge-failed, ``count - round(judge_failed_share * scored)``, where the
    scored samples are ``round(count * exec_success_rate / 100)`` (exact when every sample
    is one executor run, as in the demo and the trainer shape; a source with no
    ``judge_failed_share`` yet has no judge-failed sample).
    """
    kept_correct = kept = 0.0
    for source in keys.sources_in(row):
        count, accuracy = (
            row.get(keys.dataset(source, "count")),
            row.get(keys.dataset(source, keys.ACCURACY_EXCL_JUDGE_FAILED)),
        )
        if not _number(count) or not _number(accuracy):
            continue
        share = row.get(keys.dataset(source, keys.JUDGE_FAILED_SHARE))
        success = row.get(keys.dataset(source, keys.EXEC_SUCCESS_RATE))
        scored = round(count * success / 100.0) if _number(success) else count
        failed = round(share * scored) if _number(share) else 0
        if count - failed > 0:
            kept_correct += accuracy * (count - failed)
            kept += count - failed
    return kept_correct / kept if kept else None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_otel_grpo_row(row: dict[str, Any]) -> bool:
    """True for a row otel-grpo wrote: every one carries ``train/step`` (the step metric of its keys)."""
    return keys.STEP in row


def table_name(key: str) -> str | None:
    """The table a history key belongs to (``dataset_statistics.sha256`` -> ``dataset_statistics``)."""
    name = key.split(".", 1)[0]
    return name if name in _OTEL_GRPO_TABLES else None


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

    def otel_grpo_rows(self) -> list[dict[str, Any]]:
        """The history rows otel-grpo wrote (not the trainer's own ``wandb.log`` rows)."""
        return [row for row in self.history if is_otel_grpo_row(row)]


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
