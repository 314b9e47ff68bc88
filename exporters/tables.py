"""Per-step WandB tables: "Dataset Statistics" and a bounded per-sample table.

Call :func:`attach_tables` once after :func:`otel_grpo.setup`::

    tel = otel_grpo.setup()
    from otel_grpo.exporters.tables import attach_tables
    attach_tables(tel)

It registers a row listener on the WandB exporter. After each **train** row it logs,
in one ``log`` call that also carries the row's ``train/step`` (so the tables line up
with every other panel, which all plot against ``train/step``):

``dataset_statistics``
    one row per source of the step: ``source, accuracy, count, avg_reward, avg_cost``,
    built from that row's ``dataset/{source}/*`` keys (accuracy is a percentage 0-100,
    like the keys). Logged at most every ``wandb.dashboard.table_every`` steps
    (``0`` = off); the first train row always gets one.
``samples``
    the first ``wandb.dashboard.sample_table_rows`` samples of the step (``0`` = off):
    ``step, source, problem_type, reward, correctness, cost, judge_outcome, latency_s``.

The workspace built by :mod:`otel_grpo.tools.dashboards.wandb_workspace` shows the latest
``dataset_statistics`` table in the Datasets section. Nothing here ever raises into
the trainer: a failure is counted in ``exporter/export_errors`` and warned about once.
"""

from __future__ import annotations

from typing import Any

from otel_grpo import semconv

__all__ = [
    "DATASET_STATISTICS_KEY",
    "DATASET_STATISTICS_COLUMNS",
    "SAMPLES_KEY",
    "SAMPLES_COLUMNS",
    "attach_tables",
    "dataset_statistics_rows",
]

DATASET_STATISTICS_KEY = "dataset_statistics"
DATASET_STATISTICS_COLUMNS = ["source", "accuracy", "count", "avg_reward", "avg_cost"]
SAMPLES_KEY = "samples"
SAMPLES_COLUMNS = ["step", "source", "problem_type", "reward", "correctness", "cost",
                   "judge_outcome", "latency_s"]

_PREFIX = "dataset/"


def dataset_statistics_rows(row: dict[str, Any]) -> list[list[Any]]:
    """Rows of the Dataset Statistics table from one train row's ``dataset/{source}/*`` keys.

    One row per source that has a ``dataset/{source}/count`` in ``row``, sorted by
    source; a field missing from ``row`` is ``None``.
    """
    sources = sorted(
        key[len(_PREFIX):-len("/count")]
        for key in row
        if key.startswith(_PREFIX) and key.endswith("/count") and key.count("/") == 2
    )
    out: list[list[Any]] = []
    for source in sources:
        base = f"{_PREFIX}{source}/"
        count = row.get(base + "count")
        out.append([
            source,
            _num(row.get(base + "accuracy")),
            int(count) if count is not None else None,
            _num(row.get(base + "avg_reward")),
            _num(row.get(base + "avg_cost")),
        ])
    return out


def _num(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _opt(value: Any) -> Any:
    """A table cell: numbers as float, strings as is, anything else as its string."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return float(value)
    return str(value)


class _TableListener:
    """The row listener installed by :func:`attach_tables`."""

    def __init__(self, telemetry: Any) -> None:
        self._tel = telemetry
        dashboard = telemetry.config.wandb.dashboard
        self.table_every = max(0, int(getattr(dashboard, "table_every", 1) or 0))
        self.sample_rows = max(0, int(getattr(dashboard, "sample_table_rows", 0) or 0))
        self._last_table_step: int | None = None

    def __call__(self, row: dict[str, Any], window: Any) -> dict[str, Any] | None:
        """The tables due with ``row``; the exporter logs them in the row's own call."""
        exporter = self._tel.exporter
        try:
            if getattr(window, "split", semconv.SPLIT_TRAIN) != semconv.SPLIT_TRAIN \
                    or getattr(exporter, "_disabled", False):
                return None
            step = int(row.get("train/step", getattr(window, "step", 0)))
            return self._build(row, step)
        except Exception as exc:  # noqa: BLE001 - tables are never worth a trainer crash
            exporter._fault("tables", exc)
            return None

    def _build(self, row: dict[str, Any], step: int) -> dict[str, Any]:
        import wandb

        data: dict[str, Any] = {}
        if self.table_every and self._table_due(step):
            rows = dataset_statistics_rows(row)
            if rows:
                data[DATASET_STATISTICS_KEY] = wandb.Table(columns=list(DATASET_STATISTICS_COLUMNS),
                                                           data=rows)
                self._last_table_step = step
        if self.sample_rows:
            samples = self._sample_rows(step)
            if samples:
                data[SAMPLES_KEY] = wandb.Table(columns=list(SAMPLES_COLUMNS), data=samples)
        return data

    def _table_due(self, step: int) -> bool:
        last = self._last_table_step
        return last is None or step - last >= self.table_every or step < last

    def _sample_rows(self, step: int) -> list[list[Any]]:
        window = getattr(self._tel.recorder, "last_closed", {}).get(semconv.SPLIT_TRAIN)
        if window is None or int(window.step) != step:  # not this row's window: never mislabel
            return []
        out = []
        for sample in list(window.sample_rows)[: self.sample_rows]:
            source, ptype, reward, correctness, cost, judge, latency = (tuple(sample) + (None,) * 7)[:7]
            out.append([step, _opt(source), _opt(ptype), _opt(reward), _opt(correctness), _opt(cost),
                        _opt(judge), _opt(latency)])
        return out


def attach_tables(telemetry: Any) -> None:
    """Log the per-step WandB tables of ``telemetry`` (see the module docstring).

    Idempotent: a second call on the same handle does nothing. Never raises.
    """
    try:
        listeners = telemetry.exporter.row_extras
        if any(isinstance(listener, _TableListener) for listener in listeners):
            return
        listener = _TableListener(telemetry)
        if listener.table_every or listener.sample_rows:
            listeners.append(listener)
    except Exception as exc:  # noqa: BLE001
        try:
            telemetry.exporter._fault("tables", exc)
        except Exception:  # noqa: BLE001
            pass
