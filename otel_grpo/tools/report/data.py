"""The report's data: series and latest values read from a run's history, and what they cover in words.

What a chart covers comes from the key contract (:func:`otel_grpo.keys.window_of`): a line of
per-step keys is "per step", a line of cumulative keys "cumulative since the run started", a bar
of latest values "step N only" or "run total at step N".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from otel_grpo import keys
from otel_grpo.tools.dashboards.wandb_workspace import DEFAULT_DATASETS
from otel_grpo.tools.runreader import accuracy_excl_judge_failed

X_AXIS = keys.STEP
TABLE_COLUMNS = keys.DATASET_STATISTICS_COLUMNS
_DELIMS = "/_"

#: How a line chart of keys of one window says what it covers (then the steps it spans).
OVER_STEPS = {
    keys.WINDOW_STEP: "per step",
    keys.WINDOW_VALIDATION: "per validation pass",
    keys.WINDOW_RUN: "cumulative since the run started",
}
#: The same, short, after a legend label when one chart mixes windows.
IN_LEGEND = {keys.WINDOW_STEP: "per step", keys.WINDOW_VALIDATION: "per val. pass", keys.WINDOW_RUN: "cumulative"}


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def series(history: list[dict[str, Any]], key: str, x: str = X_AXIS) -> list[tuple[float, float]]:
    """``(x, value)`` points of ``key``, the last value per x, sorted by x."""
    points: dict[float, float] = {}
    for row in history:
        xv, yv = row.get(x), row.get(key)
        if is_number(xv) and is_number(yv):
            points[float(xv)] = float(yv)
    return sorted(points.items())


def latest_at(history: list[dict[str, Any]], key: str) -> tuple[float, Any] | None:
    """The latest value of ``key`` and the ``train/step`` of its row."""
    for row in reversed(history):
        if is_number(row.get(key)):
            return float(row[key]), row.get(X_AXIS)
    return None


def _steps(steps: Sequence[Any]) -> list[int]:
    return sorted({int(s) for s in steps if is_number(s)})


def steps_text(steps: Sequence[Any], *, latest: bool = False) -> str:
    """``"step 12"``, ``"steps 1-30"`` or, for latest values from different rows, ``"latest of each, steps 11-12"``."""
    found = _steps(steps)
    if not found:
        return "no step"
    if len(found) == 1:
        return f"step {found[0]}"
    span = f"steps {found[0]}-{found[-1]}"
    return f"latest of each, {span}" if latest else span


def windows(panel_keys: Sequence[str]) -> list[str]:
    """The windows (:func:`otel_grpo.keys.window_of`) of ``panel_keys``, each once, in key order."""
    found: list[str] = []
    for key in panel_keys:
        if keys.window_of(key) not in found:
            found.append(keys.window_of(key))
    return found


def over_steps(panel_keys: Sequence[str], steps: Sequence[Any]) -> str:
    """What a chart of values over steps covers: ``"per step, steps 1-30"``,
    ``"cumulative since the run started, steps 1-30"``, ``"per step & per validation pass, steps 5-30"``."""
    if not _steps(steps):
        return "no step"
    return f"{' & '.join(OVER_STEPS[w] for w in windows(panel_keys))}, {steps_text(steps)}"


def at_step(panel_keys: Sequence[str], steps: Sequence[Any]) -> str:
    """What a chart of latest values covers: ``"step 30 only"``, ``"run total at step 30"``,
    ``"validation pass of step 30"``; from rows of different steps, ``"each one's latest step alone, steps 28-30"``."""
    found = _steps(steps)
    if not found:
        return "no step"
    if list(panel_keys) == [X_AXIS]:
        return f"latest row, step {found[-1]}"
    if len(found) == 1:
        step = f"step {found[0]}"
        phrases = {
            keys.WINDOW_STEP: f"{step} only",
            keys.WINDOW_VALIDATION: f"validation pass of {step}",
            keys.WINDOW_RUN: f"run total at {step}",
        }
    else:
        span = f"steps {found[0]}-{found[-1]}"
        phrases = {
            keys.WINDOW_STEP: f"each one's latest step alone, {span}",
            keys.WINDOW_VALIDATION: f"each one's latest validation pass, {span}",
            keys.WINDOW_RUN: f"run totals at each one's latest step, {span}",
        }
    return " & ".join(phrases[w] for w in windows(panel_keys))


def report_datasets(records: Any) -> list[str]:
    """Datasets to draw: the run's configured ``wandb.dashboard.datasets`` that have data,
    then any other source seen; the configured list when nothing was seen."""
    configured: list[str] = list(DEFAULT_DATASETS)
    try:
        cfg = records.config.get("otel_grpo", {})
        configured = list(cfg["wandb"]["dashboard"]["datasets"]) or configured
    except (AttributeError, KeyError, TypeError):
        pass
    seen = keys.sources_in(records.keys())
    if not seen:
        return configured
    return [s for s in configured if s in seen] + [s for s in seen if s not in configured]


def table_rows(records: Any) -> tuple[list[list[Any]], list[Any]]:
    """The Dataset Statistics table and the steps it shows.

    Each source's row is its latest ``dataset/{source}/*`` figures: the values the
    per-dataset bar chart shows, so the two never disagree (the ``dataset_statistics``
    table file is logged only every ``table_every`` steps and can be older).
    """
    rows: list[list[Any]] = []
    steps: list[Any] = []
    for source in sorted(report_datasets(records)):
        for row in reversed(records.history):
            if keys.dataset(source, "count") in row:
                rows.append([source, *(row.get(keys.dataset(source, figure)) for figure in keys.DATASET_FIGURES)])
                steps.append(row.get(X_AXIS))
                break
    return rows, steps


def short_labels(panel_keys: list[str]) -> list[str]:
    """Series labels: the keys without their common prefix/suffix (cut at / or _)."""
    if len(panel_keys) < 2:
        return [k.rsplit("/", 1)[-1] for k in panel_keys]
    prefix = panel_keys[0]
    for k in panel_keys[1:]:
        while not k.startswith(prefix):
            prefix = prefix[:-1]
    prefix = prefix[: max(prefix.rfind(d) for d in _DELIMS) + 1]
    suffix = panel_keys[0]
    for k in panel_keys[1:]:
        while not k.endswith(suffix):
            suffix = suffix[1:]
    positions = [suffix.find(d) for d in _DELIMS if suffix.find(d) >= 0]
    suffix = suffix[min(positions) :] if positions else ""
    labels = [k[len(prefix) : len(k) - len(suffix)] if len(k) > len(prefix) + len(suffix) else "" for k in panel_keys]
    if not all(labels):  # one key is the others' prefix and suffix: each key's own name
        return [k.rsplit("/", 1)[-1] for k in panel_keys]
    return labels


#: The train-wide accuracy excluding judge-failed samples: drawn from the row when the run has
#: the key, else derived from the row's per-source figures.
TRAIN_ACCURACY_EXCL_JUDGE_FAILED = keys.TRAIN_ACCURACY_EXCL_JUDGE_FAILED
#: Derived figures a panel may draw: ``{key: row -> value or None}``.
DERIVED: dict[str, Callable[[dict[str, Any]], float | None]] = {
    TRAIN_ACCURACY_EXCL_JUDGE_FAILED: accuracy_excl_judge_failed
}


def with_derived(history: list[dict[str, Any]], panel: dict[str, Any]) -> list[dict[str, Any]]:
    """``history``, with the panel's ``derived`` keys filled in on the rows that lack them."""
    derived = [key for key in panel.get("derived", ()) if key in DERIVED]
    if not derived:
        return history
    rows = []
    for row in history:
        missing = {key: DERIVED[key](row) for key in derived if not is_number(row.get(key))}
        rows.append({**row, **{k: v for k, v in missing.items() if v is not None}} if missing else row)
    return rows
