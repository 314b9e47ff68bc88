"""Per-step WandB tables: "Dataset Statistics" and a bounded per-sample table.

Call :func:`attach_tables` once after :func:`otel_grpo.setup`::

    tel = otel_grpo.setup()
    from otel_grpo.exporters.tables import attach_tables
    attach_tables(tel)

It adds a maker of tables to the WandB exporter's ``row_extras``. After each **train**
row the exporter logs the tables due in the same ``log`` call as the row, so they carry
the row's ``train/step`` and line up with every other panel:

``dataset_statistics``
    one row per source of the step: ``source, accuracy, count, avg_reward, avg_cost``,
    the rollup's per-source figures of the row (accuracy is a percentage 0-100, like
    the ``dataset/{source}/accuracy`` key; avg_cost empty for a source with no executor
    run). Logged at the train steps whose number is a multiple of
    ``wandb.dashboard.table_every`` (10, 20, ... by default; ``0`` = off).
``samples``
    the first ``wandb.dashboard.sample_table_rows`` samples of the step (``0`` = off):
    ``step, source, problem_type, reward, correctness, cost, judge_outcome, latency_s``,
    from the closed window's summary.

Table keys and columns come from :mod:`otel_grpo.keys`. The workspace built by
:mod:`otel_grpo.tools.dashboards.wandb_workspace` shows the latest ``dataset_statistics``
table in the Datasets section. Nothing here ever raises into the trainer: a failure is
counted in ``exporter/export_errors`` and warned about once.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Protocol

from otel_grpo import keys, semconv
from otel_grpo.exporters.rollup import SourceFigures, WindowRow
from otel_grpo.faults import guarded
from otel_grpo.summary import SampleRow, WindowSummary

if TYPE_CHECKING:
    from otel_grpo.config import DashboardConfig, TelemetryConfig
    from otel_grpo.exporters.wandb_exporter import WandbStepExporter

__all__ = ["attach_tables", "dataset_statistics_rows", "sample_table_rows"]

Cell = str | float | int | None


class _Telemetry(Protocol):
    """What :func:`attach_tables` needs of the running telemetry."""

    config: TelemetryConfig
    exporter: WandbStepExporter


def dataset_statistics_rows(sources: Iterable[SourceFigures]) -> list[list[Cell]]:
    """Rows of the Dataset Statistics table (columns :data:`otel_grpo.keys.DATASET_STATISTICS_COLUMNS`)."""
    return [[f.source, f.accuracy, f.count, f.avg_reward, f.avg_cost] for f in sources]


def _cell(value: object) -> Cell:
    """A table cell: numbers as float, strings as is, anything else as its string."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (int, float)):
        return float(value)
    return str(value)


def sample_table_rows(samples: Iterable[SampleRow], step: int, limit: int) -> list[list[Cell]]:
    """Rows of the per-sample table (columns :data:`otel_grpo.keys.SAMPLES_COLUMNS`): the first ``limit``."""
    width = len(keys.SAMPLE_FIELDS)
    rows: list[list[Cell]] = []
    for sample in list(samples)[:limit]:
        fields = (tuple(sample) + (None,) * width)[:width]
        rows.append([step, *(_cell(value) for value in fields)])
    return rows


class _TableMaker:
    """The ``row_extras`` entry installed by :func:`attach_tables`."""

    def __init__(self, dashboard: DashboardConfig) -> None:
        self.table_every = dashboard.table_every
        self.sample_rows = dashboard.sample_table_rows

    @guarded("tables")
    def __call__(self, written: WindowRow, window: WindowSummary) -> dict[str, object] | None:
        """The tables due with the row of ``window``; the exporter logs them in the row's own call."""
        if window.split != semconv.SPLIT_TRAIN:
            return None
        import wandb

        step = int(window.step)
        data: dict[str, object] = {}
        if self.table_every and step % self.table_every == 0 and written.sources:
            data[keys.DATASET_STATISTICS_TABLE] = wandb.Table(
                columns=list(keys.DATASET_STATISTICS_COLUMNS), data=dataset_statistics_rows(written.sources)
            )
        samples = sample_table_rows(window.sample_rows, step, self.sample_rows)
        if samples:
            data[keys.SAMPLES_TABLE] = wandb.Table(columns=list(keys.SAMPLES_COLUMNS), data=samples)
        return data


@guarded("tables")
def attach_tables(telemetry: _Telemetry) -> None:
    """Log the per-step WandB tables of ``telemetry`` (see the module docstring).

    Idempotent: a second call on the same handle does nothing. Never raises.
    """
    extras = telemetry.exporter.row_extras
    if any(isinstance(maker, _TableMaker) for maker in extras):
        return
    maker = _TableMaker(telemetry.config.wandb.dashboard)
    if maker.table_every or maker.sample_rows:
        extras.append(maker)
