"""The WandB workspace of otel-grpo, as code.

:func:`build_workspace_spec` describes the design document's four panel groups
(Training overview, Datasets, Judge, Validation) plus the Reward integrity and Cost
sections as a plain, JSON-able dict; :func:`build_workspace` turns that spec into a
``wandb_workspaces.workspaces.Workspace`` (no network); ``otel-grpo dashboard``
prints the spec (``--dry-run``) or saves the workspace as a saved view of the project.

Every panel plots against ``train/step`` (the exporter writes rows without ``step=``
and declares ``train/step`` as the step metric of every key), and every title says what
its panel covers, from its keys (:func:`otel_grpo.keys.window_of`, worded by
:mod:`.coverage`): ``"Judge latency (s), cumulative since the run started"``,
``"Judge success rate per dataset, run total"``, ``"Loss & KL divergence, per step"``.
Panel kinds:

``line``    ``wr.LinePlot``, x = ``train/step``, one series per key.
``bar``     ``wr.BarPlot``: the latest (summary) value of each key, per run.
``scalar``  ``wr.ScalarChart``: the latest value of one key.
``scatter`` ``wr.ScatterPlot``: in WandB one point per run (summary x vs summary y);
            the offline report (:mod:`otel_grpo.tools.report`) draws one point per validation pass.
``table``   ``wr.WeavePanelSummaryTable``: the run's latest ``dataset_statistics``
            ``wandb.Table`` (logged by :mod:`otel_grpo.exporters.tables`).

wandb-workspaces (0.4) has no pie panel (only Vega custom charts, whose built-in
presets are line, scatter, bar, histogram, PR and ROC curves), so the verdict
distribution is a bar of ``judge/correct_predictions`` vs ``judge/incorrect_predictions``,
as the design document allows.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from otel_grpo import keys
from otel_grpo.extras import MissingExtraError, require, require_extra
from otel_grpo.tools.dashboards.coverage import titled, wandb_coverage

DEFAULT_DATASETS: tuple[str, ...] = tuple(keys.DEFAULT_DATASETS)
X_AXIS = keys.STEP
WORKSPACE_NAME = "otel-grpo: GRPO training"
TABLE_KEY = keys.DATASET_STATISTICS_TABLE
#: What needs the ``dashboards`` extra (wandb-workspaces), as named in the missing-extra message.
FEATURE = "otel-grpo dashboard"
TABLE_COLUMNS = list(keys.DATASET_STATISTICS_COLUMNS)
#: The reward-integrity group comes right after Judge (as in the Grafana dashboard and the report).
INTEGRITY_SECTION = keys.INTEGRITY_GROUP
_BASE_SECTIONS = tuple(name for name in keys.WORKSPACE_SECTIONS if name != INTEGRITY_SECTION)
SECTION_NAMES = (*_BASE_SECTIONS[:3], INTEGRITY_SECTION, *_BASE_SECTIONS[3:])

_DISPLAY = {
    "gsm8k": "GSM8K",
    "math": "MATH",
    "humaneval": "HumanEval",
    "mbpp": "MBPP",
    "hotpotqa": "HotpotQA",
    "commonsenseqa": "CommonsenseQA",
    "mmlu": "MMLU",
}


def display_name(source: str) -> str:
    """How a dataset is named in panel titles (GSM8K, MATH, ...)."""
    return _DISPLAY.get(source, source)


def _panel(kind: str, name: str, panel_keys: Iterable[str], *, x: str = X_AXIS, **extra: Any) -> dict[str, Any]:
    """A panel whose title says what it covers: ``"{name}, {covers}"`` (:func:`.coverage.wandb_coverage`)."""
    panel_keys = list(panel_keys)
    covers = wandb_coverage(kind, panel_keys)
    return {
        "type": kind,
        "title": titled(name, covers),
        "name": name,
        "covers": covers,
        "keys": panel_keys,
        "x": x,
        **extra,
    }


def _datasets(datasets: Iterable[str] | None) -> list[str]:
    seen: list[str] = []
    for name in DEFAULT_DATASETS if datasets is None else datasets:
        name = str(name).strip().lower()
        if name and name not in seen:
            seen.append(name)
    return seen


def build_workspace_spec(
    project: str, entity: str | None = None, datasets: Iterable[str] | None = DEFAULT_DATASETS
) -> dict[str, Any]:
    """The workspace as a plain JSON-able dict.

    ``{"name", "project", "entity", "x_axis", "datasets", "sections": [{"name",
    "panels": [{"type", "title", "name", "covers", "keys", "x", ...}]}]}``. ``title`` is
    ``"{name}, {covers}"``: the panel's name, then what it covers (``covers``, one phrase per
    window of its keys). ``keys`` are the WandB keys a panel reads (for a ``table`` panel:
    the table's key, with its ``columns``), all built by :mod:`otel_grpo.keys`. ``datasets``
    (``wandb.dashboard.datasets`` of the config) picks the per-dataset series; the two "over
    time" dataset panels show GSM8K and MATH, or the first two datasets when those are not
    configured.
    """
    sources = _datasets(datasets)
    highlight = [s for s in ("gsm8k", "math") if s in sources] or sources[:2]

    training = [
        _panel("line", "Loss & KL divergence", [keys.TRAIN_LOSS, keys.TRAIN_KL_DIV]),
        _panel("line", "Accuracy: train vs validation (%)", [keys.TRAIN_ACCURACY, keys.VAL_ACCURACY]),
        _panel("scalar", "Training step", [keys.STEP]),
    ]
    dataset_panels = [
        _panel("bar", "Accuracy per dataset (%)", [keys.dataset(s, "accuracy") for s in sources]),
        *[
            _panel(
                "line",
                f"{display_name(s)}: accuracy (%) & avg reward",
                [keys.dataset(s, "accuracy"), keys.dataset(s, "avg_reward")],
            )
            for s in highlight
        ],
        _panel("table", "Dataset Statistics", [TABLE_KEY], columns=list(TABLE_COLUMNS)),
    ]
    judge = [
        _panel("line", "Judge outcome rates", [keys.judge_outcome_rate(o) for o in keys.JUDGE_OUTCOMES]),
        _panel(
            "line",
            "Judge step outcome rates",
            [keys.judge_outcome_rate(o, step=True) for o in keys.JUDGE_OUTCOMES],
        ),
        _panel(
            "bar",
            "Judge verdict distribution",
            [keys.JUDGE_CORRECT_PREDICTIONS, keys.JUDGE_INCORRECT_PREDICTIONS],
            note="a bar: wandb-workspaces has no pie panel",
        ),
        _panel("bar", "Judge success rate per dataset", [keys.judge_source_success_rate(s) for s in sources]),
        _panel("line", "Judge latency (s)", [keys.judge_latency(label) for _, label in keys.QUANTILES]),
    ]
    validation = [
        _panel("line", "Validation accuracy per dataset (%)", [keys.val("accuracy", s) for s in sources]),
        _panel(
            "scatter",
            "Validation: avg cost vs accuracy",
            [keys.VAL_AVG_COST, keys.VAL_ACCURACY],
            x=keys.VAL_AVG_COST,
            y=keys.VAL_ACCURACY,
        ),
    ]
    integrity = _integrity_panels(sources, highlight)
    cost = [
        _panel("line", "Total executor cost (USD)", [keys.COST_TOTAL]),
        _panel("line", "Average cost per sample (USD)", [keys.COST_AVG_PER_SAMPLE]),
        _panel("line", "Executor runs & judge requests", [keys.COST_EXECUTOR_CALLS, keys.COST_JUDGE_CALLS]),
        _panel("scalar", "Executor cost (USD)", [keys.COST_TOTAL]),
    ]
    panels_by_section = (training, dataset_panels, judge, integrity, validation, cost)
    sections = [{"name": name, "panels": panels} for name, panels in zip(SECTION_NAMES, panels_by_section, strict=True)]
    return {
        "name": WORKSPACE_NAME,
        "project": project,
        "entity": entity,
        "x_axis": X_AXIS,
        "datasets": sources,
        "sections": sections,
    }


def _integrity_panels(sources: list[str], highlight: list[str]) -> list[dict[str, Any]]:
    """The Reward integrity group (docs/keys.md, "Reward integrity and cost insight").

    Shares are fractions of the scored samples (judge share: with a judge evaluation;
    judge-failed share: every judge evaluation failed, the reward is the trainer's
    fallback); accuracy is a percentage; costs are USD. Train keys per step, except the
    validation shares (``val/``) and ``cost/cost_per_correct`` (since the run started).
    History lines, and one bar (a bar reads the run summary): the latest cost per
    correct answer of each dataset.
    """
    return [
        _panel(
            "line",
            "Judge share & judge-failed share (train)",
            [keys.TRAIN_JUDGE_SHARE, keys.TRAIN_JUDGE_FAILED_SHARE],
        ),
        _panel(
            "line",
            "Judge-failed share per dataset",
            [keys.dataset(s, keys.JUDGE_FAILED_SHARE) for s in sources],
        ),
        _panel("line", "Judge share per dataset", [keys.dataset(s, keys.JUDGE_SHARE) for s in sources]),
        *[
            _panel(
                "line",
                f"{display_name(s)}: accuracy with & without judge-failed samples (%)",
                [keys.dataset(s, "accuracy"), keys.dataset(s, keys.ACCURACY_EXCL_JUDGE_FAILED)],
            )
            for s in highlight
        ],
        _panel(
            "line",
            "Accuracy excluding judge-failed samples per dataset (%)",
            [keys.dataset(s, keys.ACCURACY_EXCL_JUDGE_FAILED) for s in sources],
        ),
        _panel(
            "bar",
            "Cost per correct answer per dataset (USD)",
            [keys.dataset(s, keys.COST_PER_CORRECT) for s in sources],
        ),
        _panel(
            "line",
            "Cost per correct answer & step cost (USD)",
            [keys.COST_PER_CORRECT_TOTAL, keys.COST_STEP],
        ),
        _panel(
            "line",
            "Judge share & judge-failed share (validation)",
            [keys.val(keys.JUDGE_SHARE), keys.val(keys.JUDGE_FAILED_SHARE)],
        ),
    ]


def spec_keys(spec: dict[str, Any], *, include_tables: bool = False) -> set[str]:
    """Every history key the spec's panels read (table keys only with ``include_tables``)."""
    keys: set[str] = set()
    for section in spec["sections"]:
        for panel in section["panels"]:
            if panel["type"] == "table" and not include_tables:
                continue
            keys.update(panel["keys"])
    return keys


def _to_panel(panel: dict[str, Any]) -> Any:
    wr = require("wandb_workspaces.reports.v2", extra="dashboards", feature=FEATURE)

    kind, title, keys = panel["type"], panel["title"], list(panel["keys"])
    if kind == "line":
        return wr.LinePlot(title=title, x=panel.get("x", X_AXIS), y=keys)
    if kind == "bar":
        return wr.BarPlot(title=title, metrics=keys, orientation="v")
    if kind == "scalar":
        return wr.ScalarChart(title=title, metric=keys[0])
    if kind == "scatter":
        return wr.ScatterPlot(title=title, x=panel.get("x", keys[0]), y=panel.get("y", keys[1]))
    if kind == "table":
        return wr.WeavePanelSummaryTable(table_name=keys[0])
    raise ValueError(f"unknown panel type {kind!r} in panel {title!r}")


def build_workspace(spec: dict[str, Any]) -> Any:
    """A ``wandb_workspaces.workspaces.Workspace`` for ``spec``. Touches no network.

    A spec without an entity gets ``""`` (saving resolves the default entity).
    """
    ws = require("wandb_workspaces.workspaces", extra="dashboards", feature=FEATURE)

    x_axis = spec.get("x_axis", X_AXIS)
    sections = [
        ws.Section(
            name=section["name"],
            panels=[_to_panel(p) for p in section["panels"]],
            is_open=True,
            layout_settings=ws.SectionLayoutSettings(columns=3, rows=2),
            panel_settings=ws.SectionPanelSettings(x_axis=x_axis),
        )
        for section in spec["sections"]
    ]
    return ws.Workspace(
        entity=spec.get("entity") or "",
        project=spec["project"],
        name=spec.get("name", WORKSPACE_NAME),
        sections=sections,
        settings=ws.WorkspaceSettings(x_axis=x_axis),
    )


def workspace_json(workspace: Any) -> dict[str, Any]:
    """The view a workspace would be saved as (wandb-workspaces' own pydantic model), as JSON."""
    return workspace._to_model().model_dump(by_alias=True, exclude_none=True, mode="json")


def validate_workspace(workspace: Any) -> Any:
    """Round-trip ``workspace`` through wandb-workspaces' pydantic view model; returns the copy.

    ``Workspace -> internal.View -> JSON dict -> View.model_validate -> Workspace``:
    what ``Workspace.save()`` would send, checked by the library's own validators,
    without the network.
    """
    ws = require("wandb_workspaces.workspaces", extra="dashboards", feature=FEATURE)
    view = ws.internal.View.model_validate(workspace_json(workspace))
    return ws.Workspace._from_model(view)


# --- command line ------------------------------------------------------------------------
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="otel-grpo dashboard",
        description="Build the otel-grpo WandB workspace (saved view). --dry-run prints it as JSON.",
    )
    parser.add_argument("--project", help="WandB project (default: wandb.project of the config)")
    parser.add_argument("--entity", help="WandB entity (default: wandb.entity of the config, else yours)")
    parser.add_argument("--config", help="telemetry YAML: wandb.dashboard.datasets picks the dataset panels")
    parser.add_argument("--name", default=WORKSPACE_NAME, help="name of the saved view")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the spec JSON and validate the workspace; no network, no API key"
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """``otel-grpo dashboard --project P [--entity E] [--config F] [--dry-run]``."""
    args = _parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        require_extra("dashboards", feature=FEATURE)
    except MissingExtraError as exc:
        print(exc, file=sys.stderr)
        return 2
    from otel_grpo.config import ConfigError, load_config

    try:
        cfg = load_config(args.config)
    except ConfigError as exc:
        print(f"otel-grpo dashboard: {exc}", file=sys.stderr)
        return 2
    project = args.project or cfg.wandb.project
    entity = args.entity or cfg.wandb.entity
    spec = build_workspace_spec(project, entity, cfg.wandb.dashboard.datasets)
    spec["name"] = args.name
    try:
        workspace = build_workspace(spec)
        validate_workspace(workspace)
    except Exception as exc:  # noqa: BLE001 - report any model error as a CLI error
        print(f"otel-grpo dashboard: the workspace does not validate: {exc}", file=sys.stderr)
        return 1
    if args.dry_run:
        print(json.dumps(spec, indent=2))
        return 0
    if not os.environ.get("WANDB_API_KEY"):
        print(
            "otel-grpo dashboard: WANDB_API_KEY is not set. Saving a workspace needs a WandB API key "
            "in the environment (export WANDB_API_KEY=...; never in a config file). "
            "Use --dry-run to print the workspace without one.",
            file=sys.stderr,
        )
        return 2
    try:
        if not workspace.entity:
            import wandb

            workspace.entity = wandb.Api().default_entity or ""
        if not workspace.entity:
            print("otel-grpo dashboard: no entity: pass --entity or set wandb.entity", file=sys.stderr)
            return 2
        workspace.save()
    except Exception as exc:  # noqa: BLE001
        print(f"otel-grpo dashboard: saving the workspace failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    try:
        url = workspace.url
    except Exception:  # noqa: BLE001
        url = f"{workspace.entity}/{workspace.project}"
    print(f"otel-grpo dashboard: saved workspace {spec['name']!r}: {url}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
