"""The demo's closing summary: every figure says what it covers.

Three coverages, as in the WandB rows (see ``docs/keys.md``):

- **step N**: the last training step's row only (``train/``, ``dataset/``, ``judge/step_*``,
  ``cost/step_cost``); a figure that row leaves out (nothing measured) shows ``-``, never an
  older step's value;
- **validation at step V**: the last validation pass (``val/``);
- **run total**: everything since the run started, training and validation (``judge/`` other
  than ``step_*``, ``cost/``, ``executor/``).

The outage paragraph compares means per step inside the judge outage and in the steps around it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from otel_grpo import keys, semconv
from otel_grpo.redact import redact_url
from otel_grpo.tools.demo.datasets import DATASETS, PROBLEM_TYPES

__all__ = [
    "OUTAGE_NEIGHBOURS",
    "DemoResult",
    "last_train_row",
    "last_val_row",
    "outage_effect",
    "print_outage_effect",
    "print_summary",
    "run_totals",
]

_SUCCESS, _PARSE, _API = semconv.OUTCOME_SUCCESS, semconv.OUTCOME_PARSE_FAILURE, semconv.OUTCOME_API_FAILURE


@dataclass
class DemoResult:
    """Everything a finished demo leaves behind (for the summary and for tests)."""

    trainer: Any
    rows: list[dict[str, Any]]
    run_dir: Path | None
    judge_url: str
    judge_stats: dict[str, int] | None
    wall_s: float
    config: Any = None
    extra: dict[str, Any] = field(default_factory=dict)
    #: The judge outage window that was served (training steps, inclusive), None without one.
    outage: tuple[int, int] | None = None


def _is_val(row: dict[str, Any]) -> bool:
    return any(k.startswith(keys.prefix(keys.VAL)) for k in row)


def last_train_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The last training step's row (``{}`` before the first one): the "step N" figures, nothing older."""
    return next((row for row in reversed(rows) if keys.STEP in row and not _is_val(row)), {})


def last_val_row(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The last validation pass's row (``{}`` without one)."""
    return next((row for row in reversed(rows) if _is_val(row)), {})


def run_totals(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The latest value of each cumulative key: `judge/` but `step_*`, `cost/` but `step_cost`, `executor/`."""
    totals: dict[str, Any] = {}
    for row in rows:
        for key, value in row.items():
            namespace = key.partition("/")[0]
            if key == keys.COST_STEP or key.startswith(keys.judge("step_")):
                continue
            if namespace in (keys.JUDGE, keys.COST, keys.EXECUTOR):
                totals[key] = value
    return totals


def _fmt(value: Any, spec: str, suffix: str = "") -> str:
    if value is None:
        return "-"
    try:
        return f"{format(float(value), spec)}{suffix}"
    except (TypeError, ValueError):
        return str(value)


#: How many steps on each side of the outage window its effect is compared with.
OUTAGE_NEIGHBOURS = 2


def outage_effect(rows: Sequence[dict[str, Any]], window: tuple[int, int]) -> dict[str, Any]:
    """Train figures inside the outage window and in the steps around it (means per step).

    ``{"inside": {...}, "around": {...}, "inside_steps": [...], "around_steps": [...]}``
    where each side has ``judge_failed_share`` and ``judge_ok`` (the step's
    ``judge/step_success_rate``; fractions), ``accuracy`` and ``accuracy_excl_judge_failed``
    (percent: the row's ``train/accuracy_excl_judge_failed``, else the samples-weighted
    combination of the sources' figures, see
    :func:`otel_grpo.tools.runreader.accuracy_excl_judge_failed`). A figure a row leaves
    out is left out of its mean. The steps around are up to :data:`OUTAGE_NEIGHBOURS` on
    each side: the policy learns as it trains, so accuracy is compared with the nearest steps.
    """
    from otel_grpo.tools.runreader import accuracy_excl_judge_failed

    first, last = window
    train = {
        int(row[keys.STEP]): row for row in rows if keys.TRAIN_ACCURACY in row and isinstance(row.get(keys.STEP), int)
    }
    inside = [s for s in sorted(train) if first <= s <= last]
    around = [
        s for s in sorted(train) if first - OUTAGE_NEIGHBOURS <= s < first or last < s <= last + OUTAGE_NEIGHBOURS
    ]
    step_ok = keys.judge_outcome_rate(_SUCCESS, step=True)

    def means(steps: list[int]) -> dict[str, float | None]:
        figures: dict[str, list[float]] = {
            "judge_failed_share": [],
            "judge_ok": [],
            "accuracy": [],
            "accuracy_excl_judge_failed": [],
        }
        for step in steps:
            row = train[step]
            figures["judge_failed_share"].append(row.get(keys.TRAIN_JUDGE_FAILED_SHARE, 0.0))
            if row.get(step_ok) is not None:
                figures["judge_ok"].append(row[step_ok])
            figures["accuracy"].append(row[keys.TRAIN_ACCURACY])
            excl = row.get(keys.TRAIN_ACCURACY_EXCL_JUDGE_FAILED, accuracy_excl_judge_failed(row))
            if excl is not None:
                figures["accuracy_excl_judge_failed"].append(excl)
        return {name: (sum(v) / len(v) if v else None) for name, v in figures.items()}

    return {"inside": means(inside), "around": means(around), "inside_steps": inside, "around_steps": around}


def _steps(steps: Sequence[int]) -> str:
    runs: list[str] = []
    for step in steps:
        if runs and runs[-1].split("-")[-1] == str(step - 1):
            runs[-1] = f"{runs[-1].split('-')[0]}-{step}"
        else:
            runs.append(str(step))
    return ", ".join(runs) or "-"


def print_outage_effect(result: DemoResult, console: Any) -> None:
    """One paragraph: what the judge outage did to the reward signal (means per step, inside vs around)."""
    if result.outage is None:
        return
    first, last = result.outage
    effect = outage_effect(result.rows, result.outage)
    if not effect["inside_steps"]:
        console.print(f"Judge outage (steps {first}-{last}): not reached, the run has fewer steps.")
        return
    inside, around = effect["inside"], effect["around"]
    failed = (result.judge_stats or {}).get("outage", 0)

    def line(label: str, name: str, spec: str, suffix: str = "", unit: str = "") -> str:
        value, near = _fmt(inside[name], spec, suffix), _fmt(around[name], spec, suffix)
        return f"\n  {label:<28} {value:>6}{unit} (around: {near})"

    console.print(
        f"Judge outage (simulated, steps {_steps(effect['inside_steps'])}; {failed} judge requests failed).\n"
        f"Mean per step in the outage vs the steps around it ({_steps(effect['around_steps'])}):"
        + line("judge evaluations ok", "judge_ok", ".1%")
        + line("judge-failed share", "judge_failed_share", ".1%", unit=" of scored samples")
        + line("train accuracy", "accuracy", ".1f", "%")
        + line("accuracy excl. judge-failed", "accuracy_excl_judge_failed", ".1f", "%"),
        highlight=False,
    )
    console.print(
        "The judge-failed samples got the reward computer's fallback (0), not a verdict: "
        'see the "Reward integrity" group in otel-grpo inspect / otel-grpo report.',
        highlight=False,
    )


def _dataset_table(rows: Sequence[dict[str, Any]]) -> Any:
    """Per dataset: the last step's figures, the last validation pass's accuracy, the run's judge share."""
    from rich.table import Table

    step_row, val_row, totals = last_train_row(rows), last_val_row(rows), run_totals(rows)
    step = f"step {step_row.get(keys.STEP, '-')}"
    val = f"pass at\nstep {val_row.get(keys.STEP, '-')}"
    table = Table(title="Per-dataset results")
    for column, justify in (
        ("dataset", "left"),
        ("type", "left"),
        (f"train acc\n{step}", "right"),
        (f"reward\n{step}", "right"),
        (f"judge-\nfailed\n{step}", "right"),
        (f"val acc\n{val}", "right"),
        ("judge ok\nrun total", "right"),
    ):
        table.add_column(column, justify=justify, no_wrap=column == "dataset")  # type: ignore[arg-type]
    for source in DATASETS:
        table.add_row(
            source,
            PROBLEM_TYPES[source],
            _fmt(step_row.get(keys.dataset(source, "accuracy")), ".1f", "%"),
            _fmt(step_row.get(keys.dataset(source, "avg_reward")), ".2f"),
            _fmt(step_row.get(keys.dataset(source, keys.JUDGE_FAILED_SHARE)), ".0%"),
            _fmt(val_row.get(keys.val("accuracy", source)), ".1f", "%"),
            _fmt(totals.get(keys.judge_source_success_rate(source)), ".1%"),
        )
    table.add_section()
    table.add_row(
        "all",
        "",
        _fmt(step_row.get(keys.TRAIN_ACCURACY), ".1f", "%"),
        _fmt(step_row.get(keys.TRAIN_AVG_REWARD), ".2f"),
        _fmt(step_row.get(keys.TRAIN_JUDGE_FAILED_SHARE), ".0%"),
        _fmt(val_row.get(keys.VAL_ACCURACY), ".1f", "%"),
        _fmt(totals.get(keys.judge_outcome_rate(_SUCCESS)), ".1%"),
    )
    return table


def _judge_table(rows: Sequence[dict[str, Any]]) -> Any:
    """The judge's evaluation outcomes: the last step's (``judge/step_*``) and the run's (``judge/*_rate``)."""
    from rich.table import Table

    step_row, totals = last_train_row(rows), run_totals(rows)
    table = Table(title="LLM judge evaluations")
    table.add_column("covers")
    for column in ("success", "parse failure", "API failure"):
        table.add_column(column, justify="right")
    table.add_row(
        f"step {step_row.get(keys.STEP, '-')}",
        *(_fmt(step_row.get(keys.judge_outcome_rate(o, step=True)), ".1%") for o in (_SUCCESS, _PARSE, _API)),
    )
    evaluations = _fmt(totals.get(keys.JUDGE_TOTAL_CALLS), ".0f")
    table.add_row(
        f"run total, {evaluations} evaluations",
        *(_fmt(totals.get(keys.judge_outcome_rate(o)), ".1%") for o in (_SUCCESS, _PARSE, _API)),
    )
    return table


def print_summary(result: DemoResult, console: Any) -> None:
    """The closing report: per-dataset table, judge, cost, run directory and next commands."""
    rows = result.rows
    step_row, totals = last_train_row(rows), run_totals(rows)
    last = step_row.get(keys.STEP, "-")
    console.print(_dataset_table(rows))
    console.print(_judge_table(rows))
    step_cost = step_row.get(keys.COST_STEP)
    console.print(
        f"Run total (steps 1-{last}, training and validation): {_fmt(totals.get(keys.JUDGE_TOTAL_CALLS), '.0f')} "
        f"judge evaluations in {_fmt(totals.get(keys.COST_JUDGE_CALLS), '.0f')} HTTP requests, "
        f"{_fmt(totals.get(keys.JUDGE_CORRECT_RATIO), '.0%')} of verdicts 'correct'; executor cost "
        f"[bold]${_fmt(totals.get(keys.COST_TOTAL), '.4f')}[/bold] over "
        f"{_fmt(totals.get(keys.COST_EXECUTOR_CALLS), '.0f')} runs "
        f"(${_fmt(totals.get(keys.COST_AVG_PER_SAMPLE), '.5f')} per run)"
        + (f"; step {last} cost ${_fmt(step_cost, '.4f')}" if step_cost is not None else "")
        + ".",
        highlight=False,
    )
    stats = result.judge_stats
    if stats:
        console.print(
            f"Judge server ({redact_url(result.judge_url)}), run total: {stats.get('total', 0)} chat requests, "
            f"{stats.get('http_500', 0)} HTTP 500, "
            + (f"{stats['http_503']} HTTP 503, " if stats.get("http_503") else "")
            + f"{stats.get('unparsable', 0)} unparsable, "
            f"{stats.get('null_content', 0)} null content injected"
            + (f" ({stats.get('outage', 0)} of them by the outage)" if stats.get("outage") else ""),
            highlight=False,
        )
    print_outage_effect(result, console)
    console.print(f"Finished in {result.wall_s:.1f}s.")
    if result.run_dir is not None:
        console.print(f"\nWandB run: [bold]{result.run_dir}[/bold]", soft_wrap=True)
        console.print(f"  inspect:  otel-grpo inspect {result.run_dir}", soft_wrap=True, highlight=False)
        console.print(f"  upload:   wandb sync {result.run_dir}", soft_wrap=True, highlight=False)
    else:
        console.print("\nWandB disabled: no run directory was written.")
