"""The Grafana dashboard's Reward integrity row (docs/keys.md, "Reward integrity and cost insight").

What decided the rewards GRPO trained on, from ``grpo_samples_scored_by_total`` and
``grpo_samples_scored_by_correct_total`` (label ``grpo_scored_by``: rule, judge,
judge_failed, not_scored): the judge share and the judge-failed share of the scored
samples, accuracy with and without the judge-failed samples, and the cost per correct
answer. Train samples; windowed figures use the ``window`` variable.

Every figure divides sums of counter increases, aggregated with ``sum by (grpo_source)``
(or ``sum``) over every process and series first, so several processes exporting the
same run (each with its own ``instance``) add up and are never averaged. A source whose
denominator is empty in the window has no value (never NaN); a source with scored
samples but no judge-failed one has 0.
"""

from __future__ import annotations

from otel_grpo import semconv as sc
from otel_grpo.tools.dashboards.grafana_panels import bargauge, query_targets, stat, table, timeseries
from otel_grpo.tools.dashboards.grafana_promql import (
    L_SOURCE,
    accuracy,
    accuracy_excl_judge_failed,
    cost_per_correct,
    cost_per_correct_total,
    judge_failed_share,
    judge_share,
)

TRAIN = sc.SPLIT_TRAIN
BY_SOURCE = (L_SOURCE,)
SOURCE_LEGEND = f"{{{{{L_SOURCE}}}}}"
TITLE = "Reward integrity"

Panel = tuple[dict, int, int]
Row = tuple[str, list[Panel]]


def integrity_row() -> Row:
    """The Reward integrity row."""
    return (
        TITLE,
        [
            (
                timeseries(
                    "Judge share & judge-failed share (train)",
                    "Of the scored train samples over the selected window: the share with a judge "
                    "evaluation, and the share scored judge_failed (every judge evaluation failed: the "
                    "reward is the trainer's fallback, not a verdict, and GRPO trains on it).",
                    query_targets(
                        (judge_share(TRAIN), "judge share"),
                        (judge_failed_share(TRAIN), "judge-failed share"),
                    ),
                    "percentunit",
                    minimum=0,
                    maximum=1,
                ),
                8,
                8,
            ),
            (
                timeseries(
                    "Judge-failed share per dataset (train)",
                    "Samples scored judge_failed / scored samples of each dataset over the selected window.",
                    query_targets((judge_failed_share(TRAIN, BY_SOURCE), SOURCE_LEGEND)),
                    "percentunit",
                    minimum=0,
                    maximum=1,
                ),
                8,
                8,
            ),
            (
                timeseries(
                    "Accuracy with and without judge-failed samples (train, %)",
                    "100 x correct / samples over the selected window: all train samples, and without "
                    "the samples scored judge_failed (failed executions stay in). A judge outage drops "
                    "the first; the second stays flat.",
                    query_targets(
                        (accuracy(TRAIN), "all samples"),
                        (accuracy_excl_judge_failed(TRAIN), "excluding judge-failed"),
                    ),
                    "percent",
                    minimum=0,
                    maximum=100,
                ),
                8,
                8,
            ),
            (
                table(
                    "Reward integrity per dataset (train)",
                    "Per dataset, over the selected window: judge share, judge-failed share, accuracy with "
                    "and without judge-failed samples, executor + priced judge cost per correct answer.",
                    [
                        ("Judge share", judge_share(TRAIN, BY_SOURCE), "percentunit", 1),
                        ("Judge-failed share", judge_failed_share(TRAIN, BY_SOURCE), "percentunit", 1),
                        ("Accuracy (%)", accuracy(TRAIN, BY_SOURCE), "percent", 1),
                        ("Accuracy excl. judge-failed (%)", accuracy_excl_judge_failed(TRAIN, BY_SOURCE), "percent", 1),
                        ("Cost per correct (USD)", cost_per_correct(TRAIN, BY_SOURCE), "currencyUSD", 4),
                    ],
                    L_SOURCE,
                    "Dataset",
                ),
                12,
                9,
            ),
            (
                bargauge(
                    "Cost per correct answer per dataset (train, USD)",
                    "Executor + priced judge cost / correct train samples of each dataset over the selected window.",
                    cost_per_correct(TRAIN, BY_SOURCE),
                    SOURCE_LEGEND,
                    "currencyUSD",
                    None,
                    decimals=4,
                ),
                8,
                9,
            ),
            (
                stat(
                    "Cost per correct answer (train, USD)",
                    "Train executor cost + priced judge cost / correct train samples since the run started.",
                    cost_per_correct_total(TRAIN),
                    "currencyUSD",
                    4,
                ),
                4,
                9,
            ),
        ],
    )
