"""The demo's progress line: one line that fits the terminal, each figure labelled with what it covers.

``GRPO ━━━━━━━━ 8/12 0:11 step 8: acc 64.3% judge ok 100% │ run: judge ok 59%``

- ``step 8:`` figures cover the last training step that ended (``train/accuracy``,
  ``train/avg_reward``, the trainer's loss, and ``judge/step_success_rate``: the share of
  that step's judge evaluations that succeeded), read from the row otel-grpo wrote for it.
- ``run:`` is the share of every judge evaluation since the run started (``judge/success_rate``).
- ``now: judge DOWN (error type)`` appears while the judge is failing, as soon as
  ``judge.warn_after_failures`` evaluations in a row have failed (read live, at every refresh).

The line is at most the console's width minus one column, so it never wraps: on a
narrow terminal the least important figures are left out first (:data:`PRIORITY`), and
what still does not fit is cut with an ellipsis.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from otel_grpo import keys, semconv

__all__ = ["BAR_WIDTH", "PRIORITY", "StepFigures", "fit_line", "status_groups", "step_figures", "train_with_progress"]

#: Width of the bar itself (columns).
BAR_WIDTH = 8
#: Order in which figures are left out when the line is too long: the highest number goes first.
PRIORITY = {"down": 0, "judge": 1, "acc": 2, "error": 3, "run": 4, "loss": 5, "reward": 6}

_JUDGE_STEP_SUCCESS = keys.judge_outcome_rate(semconv.OUTCOME_SUCCESS, step=True)
_JUDGE_RUN_SUCCESS = keys.judge_outcome_rate(semconv.OUTCOME_SUCCESS)


@dataclass(frozen=True)
class StepFigures:
    """What the progress line shows of the last training step that ended (None: not measured)."""

    step: int
    accuracy: float | None = None
    """``train/accuracy`` of the step, percent."""
    avg_reward: float | None = None
    loss: float | None = None
    judge_ok: float | None = None
    """``judge/step_success_rate``: the step's judge evaluations that succeeded, fraction."""
    run_judge_ok: float | None = None
    """``judge/success_rate`` as of the step: every judge evaluation since the run started, fraction."""


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def step_figures(rows: Sequence[dict[str, Any]], step: int, metrics: dict[str, Any] | None = None) -> StepFigures:
    """The figures of training step ``step``: from its row (the last one otel-grpo wrote for it), else the trainer's.

    A figure the row leaves out (nothing measured, or ``log_frequency`` skipped the row)
    is None; the trainer's own ``metrics`` fill in accuracy, reward and loss then.
    """
    row: dict[str, Any] = {}
    for candidate in reversed(rows):
        if candidate.get(keys.STEP) == step and not any(k.startswith(keys.prefix(keys.VAL)) for k in candidate):
            row = candidate
            break
    metrics = metrics or {}

    def pick(key: str, metric: str | None = None) -> float | None:
        value = _number(row.get(key))
        return value if value is not None or metric is None else _number(metrics.get(metric))

    return StepFigures(
        step=step,
        accuracy=pick(keys.TRAIN_ACCURACY, "accuracy"),
        avg_reward=pick(keys.TRAIN_AVG_REWARD, "avg_reward"),
        loss=pick(keys.TRAIN_LOSS, "loss"),
        judge_ok=pick(_JUDGE_STEP_SUCCESS),
        run_judge_ok=pick(_JUDGE_RUN_SUCCESS),
    )


def _judge_style(rate: float) -> str:
    return "green" if rate >= 0.9 else "yellow" if rate >= 0.5 else "bold red"


#: A figure of the status: (name, text, style); its name ranks it in :data:`PRIORITY`.
Figure = tuple[str, str, str]
#: A labelled group of figures: (label, figures); groups are separated by `` │ ``.
Group = tuple[str, list[Figure]]


def status_groups(figures: StepFigures | None, down: str | None = None) -> list[Group]:
    """The status in display order: ``step N:`` figures, ``now:`` the judge down, ``run:`` the run's judge share.

    ``down`` is the error type while the judge is down now, None otherwise.
    """
    groups: list[Group] = []
    if figures is not None:
        shown: list[Figure] = []
        if figures.accuracy is not None:
            shown.append(("acc", f" acc {figures.accuracy:.1f}%", ""))
        if figures.avg_reward is not None:
            shown.append(("reward", f" reward {figures.avg_reward:+.2f}", ""))
        if figures.loss is not None:
            shown.append(("loss", f" loss {figures.loss:.3f}", ""))
        if figures.judge_ok is not None:
            shown.append(("judge", f" judge ok {figures.judge_ok:.0%}", _judge_style(figures.judge_ok)))
        groups.append((f"step {figures.step}:", shown))
    if down is not None:
        groups.append(("now:", [("down", " judge DOWN", "bold red"), ("error", f" ({down})", "red")]))
    if figures is not None and figures.run_judge_ok is not None:
        groups.append(("run:", [("run", f" judge ok {figures.run_judge_ok:.0%}", "")]))
    return groups


def _width(groups: list[Group]) -> int:
    shown = [(label, figs) for label, figs in groups if figs]
    return sum(len(label) + sum(len(text) for _, text, _ in figs) for label, figs in shown) + 3 * max(0, len(shown) - 1)


def _elapsed(seconds: float | None) -> str:
    total = int(seconds or 0)
    hours, rest = divmod(total, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def fit_line(completed: int, total: int, elapsed_s: float | None, groups: list[Group], width: int) -> Any:
    """The whole progress line as a :class:`rich.text.Text` of at most ``width - 1`` cells.

    Figures are left out by :data:`PRIORITY` until the line fits (a group with no figure
    left goes, label and all); if even the judge's DOWN state does not fit, the line is
    cut with an ellipsis.
    """
    from rich.text import Text

    limit = max(1, width - 1)
    done = 0 if total <= 0 else min(BAR_WIDTH, round(BAR_WIDTH * completed / total))
    line = Text("GRPO ", style="bold")
    line.append("━" * done, style="bar.finished" if completed >= total else "bar.complete")
    line.append("─" * (BAR_WIDTH - done), style="bar.back")  # thinner: the fill reads without colours too
    line.append(f" {completed}/{total} {_elapsed(elapsed_s)}")
    kept = [(label, list(figs)) for label, figs in groups]
    while line.cell_len + 1 + _width(kept) > limit:
        droppable = [(PRIORITY.get(f[0], 9), g, f) for g, (_, figs) in enumerate(kept) for f in figs]
        droppable = [d for d in droppable if d[0] > 0]
        if not droppable:
            break
        _, g, figure = max(droppable, key=lambda d: d[0])
        kept[g][1].remove(figure)
    for n, (label, figs) in enumerate(group for group in kept if group[1]):
        line.append(" │ " if n else " ")
        line.append(label, style="bold")
        for _, text, style in figs:
            line.append(text, style=style)
    line.truncate(limit, overflow="ellipsis")
    return line


def train_with_progress(
    trainer: Any,
    console: Any,
    health: Any = None,
    rows: Callable[[], Sequence[dict[str, Any]]] | None = None,
) -> None:
    """Run ``trainer.train()`` under the progress line; validation passes are printed above it.

    ``health`` is the session's :class:`~otel_grpo.instrumentation.judge_health.JudgeHealth`
    (the live DOWN state), ``rows`` gives the rows otel-grpo wrote so far (the step's figures).
    """
    from rich.progress import Progress, ProgressColumn
    from rich.table import Column

    state: dict[str, StepFigures | None] = {"figures": None}

    class LineColumn(ProgressColumn):
        """The whole line, rendered at every refresh (a step waiting on a dead judge shows it)."""

        def render(self, task: Any) -> Any:
            snapshot = health.snapshot() if health is not None else None
            down = (snapshot.last_error_type or "error") if snapshot is not None and snapshot.down else None
            groups = status_groups(state["figures"], down)
            return fit_line(int(task.completed), int(task.total or 0), task.elapsed, groups, console.width)

    column = LineColumn(table_column=Column(no_wrap=True, overflow="ellipsis"))
    with Progress(column, console=console, transient=False) as progress:
        task = progress.add_task("train", total=trainer.max_steps)

        def on_step(step: int, metrics: dict[str, Any]) -> None:
            state["figures"] = step_figures(rows() if rows is not None else (), step, metrics)
            progress.update(task, completed=step)

        def on_eval(step: int, metrics: dict[str, Any]) -> None:
            figures = state["figures"]
            latest = next((r for r in reversed(rows()) if _JUDGE_RUN_SUCCESS in r), {}) if rows is not None else {}
            if figures is not None and _number(latest.get(_JUDGE_RUN_SUCCESS)) is not None:
                # the run share now counts the validation pass too, as the summary's run total does
                state["figures"] = replace(figures, run_judge_ok=_number(latest[_JUDGE_RUN_SUCCESS]))
            progress.console.print(
                f"step {step} validation pass: acc {metrics.get('val_accuracy', 0.0):.1f}%, "
                f"executions ok {metrics.get('val_success_rate', 0.0):.1f}%, "
                f"${metrics.get('val_avg_cost', 0.0):.4f}/sample",
                highlight=False,
            )

        trainer.on_step_end, trainer.on_eval_end = on_step, on_eval
        trainer_logger = logging.getLogger(type(trainer).__module__)
        saved = trainer_logger.level
        trainer_logger.setLevel(logging.WARNING)  # its retries and fallbacks, not its debug lines
        try:
            asyncio.run(trainer.train())
        finally:
            trainer.on_step_end = trainer.on_eval_end = None
            trainer_logger.setLevel(saved)
