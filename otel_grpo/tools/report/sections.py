"""Which panels the report draws, in which sections.

The WandB workspace's sections and panels (:func:`otel_grpo.tools.dashboards.wandb_workspace.build_workspace_spec`),
without a scalar panel whose key a line chart of its section already draws (the line chart's title
gives the latest value); plus the report's own panels for keys the workspace has no panel of
(:func:`extra_panels`): GRPO zero-advantage rates (Datasets), executor latency (Cost) and the
Exporter health section; and, for a workspace spec without a "Reward integrity" section, the
report's own (:func:`integrity_panels`, after Validation).
"""

from __future__ import annotations

from typing import Any

from otel_grpo import keys
from otel_grpo.tools.dashboards.wandb_workspace import build_workspace_spec
from otel_grpo.tools.report.data import TRAIN_ACCURACY_EXCL_JUDGE_FAILED, X_AXIS, report_datasets

#: At most this many series share one chart; a panel of more keys is drawn as small multiples.
MAX_SERIES = 4
#: Where the report's own "Reward integrity" section goes when the workspace has none (as in
#: the workspace and the Grafana dashboard: after Validation).
INTEGRITY_AFTER = "Validation"
HEALTH_GROUP = next(title for title, namespaces in keys.PANEL_GROUPS if namespaces == (keys.EXPORTER,))
#: File-name slugs of the sections (``--png-dir`` writes ``report-{slug}.png``).
SLUGS = {
    "Training overview": "training",
    "Datasets": "datasets",
    "Judge": "judge",
    keys.INTEGRITY_GROUP: "integrity",
    "Validation": "validation",
    "Cost": "cost",
    HEALTH_GROUP: "health",
}
EXPORTER_PROBLEMS = ("rows_dropped", "export_errors", "otlp_export_errors", "otlp_spans_dropped")


def slug(section: str) -> str:
    """The file-name slug of a section (``"Reward integrity"`` -> ``"integrity"``)."""
    return SLUGS.get(section) or "".join(c if c.isalnum() else "-" for c in section.lower())


def is_small_multiples(panel: dict[str, Any]) -> bool:
    """A line panel of more than :data:`MAX_SERIES` keys: one small chart per key."""
    return panel["type"] == "line" and len(panel["keys"]) > MAX_SERIES


def spec_for(records: Any) -> dict[str, Any]:
    """The workspace spec for the run's datasets, each panel titled by its name: the report says what a
    chart covers itself, with its steps, on the title's second line (:func:`.data.over_steps`)."""
    spec = build_workspace_spec("offline", None, report_datasets(records))
    for section in spec["sections"]:
        for panel in section["panels"]:
            panel["title"] = panel["name"]
    return spec


def _panel(kind: str, title: str, panel_keys: list[str], **extra: Any) -> dict[str, Any]:
    return {"type": kind, "title": title, "keys": panel_keys, "x": X_AXIS, **extra}


def integrity_panels(records: Any) -> list[dict[str, Any]]:
    """The report's own "Reward integrity" panels, for a workspace spec that has none (same shape).

    Judge share and judge-failed share (train); judge-failed share per dataset; train
    accuracy against accuracy excluding judge-failed samples; cost per correct answer per
    dataset (latest); step cost, with the run's cost per correct answer on the right axis.
    Per-dataset series are the report's datasets that have the key in the run.
    """
    present = records.keys()
    sources = report_datasets(records)

    def per_source(figure: str) -> list[str]:
        return [k for k in (keys.dataset(s, figure) for s in sources) if k in present]

    accuracy_excl = TRAIN_ACCURACY_EXCL_JUDGE_FAILED
    return [
        _panel(
            "line",
            "Judge share & judge-failed share (train)",
            [keys.TRAIN_JUDGE_SHARE, keys.TRAIN_JUDGE_FAILED_SHARE],
            labels=["judge share", "judge-failed share"],
        ),
        _panel("line", "Judge-failed share per dataset", per_source(keys.JUDGE_FAILED_SHARE)),
        _panel(
            "line",
            "Train accuracy vs accuracy excl. judge-failed (%)",
            [keys.TRAIN_ACCURACY, accuracy_excl],
            labels=["accuracy", "accuracy excl. judge-failed"],
            derived=[] if accuracy_excl in present else [accuracy_excl],
            note="" if accuracy_excl in present else "excl.: samples-weighted over dataset/*",
        ),
        _panel("bar", "Cost per correct answer per dataset (USD)", per_source(keys.COST_PER_CORRECT)),
        _panel(
            "line",
            "Step cost & cost per correct answer since the start (USD)",
            [keys.COST_STEP, keys.COST_PER_CORRECT_TOTAL],
            labels=["step cost", "cost per correct"],
        ),
    ]


def extra_panels(records: Any) -> dict[str, list[dict[str, Any]]]:
    """``{section: panels}`` the report adds for keys the workspace draws nowhere, with the run's keys only."""
    present = records.keys()
    sources = report_datasets(records)

    def having(panel: dict[str, Any]) -> list[dict[str, Any]]:
        panel["keys"] = [k for k in panel["keys"] if k in present]
        return [panel] if panel["keys"] else []

    latency = [keys.executor_latency(label) for _, label in keys.QUANTILES]
    return {
        "Datasets": [
            *having(_panel("line", "GRPO zero-advantage rate, all datasets", [keys.grpo_zero_advantage_rate()])),
            *having(
                _panel(
                    "line", "GRPO zero-advantage rate per dataset", [keys.grpo_zero_advantage_rate(s) for s in sources]
                )
            ),
        ],
        "Cost": having(_panel("line", "Executor latency (s)", latency)),
        HEALTH_GROUP: [
            *having(_panel("line", "Rows written to WandB", [keys.exporter("rows_written")])),
            *having(
                _panel(
                    "line",
                    "Rows dropped & export errors",
                    [keys.exporter(e) for e in EXPORTER_PROBLEMS],
                )
            ),
        ],
    }


def report_sections(records: Any) -> list[tuple[str, list[dict[str, Any]]]]:
    """(section name, panels) to draw, in the workspace's order, then Exporter health."""
    sections = []
    for section in spec_for(records)["sections"]:
        on_lines = {key for panel in section["panels"] if panel["type"] == "line" for key in panel["keys"]}
        panels = [p for p in section["panels"] if not (p["type"] == "scalar" and p["keys"][0] in on_lines)]
        sections.append((section["name"], panels))
    names = [name for name, _ in sections]
    if keys.INTEGRITY_GROUP not in names:
        at = names.index(INTEGRITY_AFTER) + 1 if INTEGRITY_AFTER in names else len(names)
        sections.insert(at, (keys.INTEGRITY_GROUP, integrity_panels(records)))
    extra = extra_panels(records)
    sections = [(name, panels + extra.pop(name, [])) for name, panels in sections]
    return sections + [(name, panels) for name, panels in extra.items() if panels]
