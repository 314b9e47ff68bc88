"""The Grafana dashboard's training, datasets, judge and validation rows, one function each.

Each returns ``(title, [(panel, width, height), ...])``.

Panels follow the four panel groups of the WandB workspace (training overview,
datasets, judge, validation) plus cost and exporter health. Windowed figures
(accuracy, average reward, rates of outcomes, per-second rates, latency) use the ``window``
variable, and their titles say "last $window"; figures of plain counters say "since the
run started" (:mod:`.grafana_panels` titles each panel from its queries). Latency panels are
``histogram_quantile`` estimates from the duration histograms' buckets. :mod:`.grafana_layout` holds the cost and
exporter-health rows, puts the rows in order and places the panels on the grid.
"""

from __future__ import annotations

from otel_grpo import semconv as sc
from otel_grpo.tools.dashboards.grafana_panels import (
    axis_override,
    bargauge,
    piechart,
    query_targets,
    stat,
    table,
    timeseries,
)
from otel_grpo.tools.dashboards.grafana_promql import (
    EXEC_COST,
    GROUPS,
    GROUPS_ZERO_ADV,
    JUDGE_DURATION,
    JUDGE_EVALS,
    JUDGE_REQUESTS,
    L_ERROR,
    L_OUTCOME,
    L_SCALAR,
    L_SOURCE,
    L_SPLIT,
    L_TOKEN_TYPE,
    L_VERDICT,
    SAMPLES,
    TOKEN_USAGE,
    TRAIN_SCALAR,
    TRAIN_STEP,
    accuracy,
    average_reward,
    increase_sum,
    per_second,
    quantile,
    sel,
    share,
)

TRAIN = sc.SPLIT_TRAIN
VAL = sc.SPLIT_VAL
BY_SOURCE = (L_SOURCE,)
HIGHLIGHTED = {L_SOURCE: "~gsm8k|math"}
JUDGE_ALL = increase_sum(JUDGE_EVALS)
JUDGE_BY_SOURCE = f"sum by ({L_SOURCE}) ({sel(JUDGE_EVALS)})"

Panel = tuple[dict, int, int]
Row = tuple[str, list[Panel]]


def training_row() -> Row:
    """The Training overview row."""
    return (
        "Training overview",
        [
            (
                timeseries(
                    "Loss & KL divergence",
                    "Last loss and kl_div the trainer reported (grpo.train.scalar).",
                    query_targets(
                        (
                            f"max by ({L_SCALAR}) ({sel(TRAIN_SCALAR, **{L_SCALAR: '~loss|kl_div'})})",
                            f"{{{{{L_SCALAR}}}}}",
                        )
                    ),
                    "short",
                ),
                12,
                8,
            ),
            (
                timeseries(
                    "Train & validation accuracy (%)",
                    "100 x correct / samples over the selected window (correct = correctness >= threshold).",
                    query_targets((accuracy(TRAIN), "train"), (accuracy(VAL), "val")),
                    "percent",
                    minimum=0,
                    maximum=100,
                ),
                8,
                8,
            ),
            (stat("Training step", "Last completed training step.", f"max({sel(TRAIN_STEP)})", "none", 0), 4, 8),
        ],
    )


def datasets_row() -> Row:
    """The Datasets row."""
    return (
        "Datasets",
        [
            (
                bargauge(
                    "Train accuracy per dataset (%)",
                    "Accuracy of each dataset's train samples over the selected window.",
                    accuracy(TRAIN, BY_SOURCE),
                    f"{{{{{L_SOURCE}}}}}",
                    "percent",
                    100,
                ),
                8,
                9,
            ),
            (
                timeseries(
                    "GSM8K & MATH accuracy (%)",
                    "Train accuracy of gsm8k and math over the selected window.",
                    query_targets((accuracy(TRAIN, BY_SOURCE, **HIGHLIGHTED), f"{{{{{L_SOURCE}}}}}")),
                    "percent",
                    minimum=0,
                    maximum=100,
                ),
                8,
                9,
            ),
            (
                timeseries(
                    "GSM8K & MATH average reward",
                    "Mean reward of gsm8k and math train samples over the selected window.",
                    query_targets((average_reward(TRAIN, BY_SOURCE, **HIGHLIGHTED), f"{{{{{L_SOURCE}}}}}")),
                    "short",
                ),
                8,
                9,
            ),
            (
                table(
                    "Dataset statistics (train)",
                    "Per dataset, over the selected window: accuracy, samples, mean reward; "
                    "and samples since the run started.",
                    [
                        ("Accuracy (%)", accuracy(TRAIN, BY_SOURCE), "percent", 1),
                        ("Samples", increase_sum(SAMPLES, BY_SOURCE, **{L_SPLIT: TRAIN}), "none", 0),
                        ("Avg reward", average_reward(TRAIN, BY_SOURCE), "none", 3),
                        (
                            "Samples since start",
                            f"sum by ({L_SOURCE}) ({sel(SAMPLES, **{L_SPLIT: TRAIN})})",
                            "none",
                            0,
                        ),
                    ],
                    L_SOURCE,
                    "Dataset",
                ),
                16,
                9,
            ),
            (
                timeseries(
                    "Zero-advantage groups (%)",
                    "Share of GRPO groups whose K rewards were all equal (no learning signal).",
                    query_targets(
                        (
                            share(
                                increase_sum(GROUPS_ZERO_ADV, BY_SOURCE, **{L_SPLIT: TRAIN}),
                                increase_sum(GROUPS, BY_SOURCE, **{L_SPLIT: TRAIN}),
                                scale="100",
                            ),
                            f"{{{{{L_SOURCE}}}}}",
                        )
                    ),
                    "percent",
                    minimum=0,
                    maximum=100,
                ),
                8,
                9,
            ),
        ],
    )


def judge_row() -> Row:
    """The Judge row."""
    return (
        "Judge",
        [
            (
                timeseries(
                    "Judge outcome rates",
                    "Share of judge evaluations ending in success, parse_failure or api_failure "
                    "over the selected window (the three sum to 1).",
                    query_targets(
                        (
                            f"{increase_sum(JUDGE_EVALS, (L_OUTCOME,))} / on() group_left() ({JUDGE_ALL} > 0)",
                            f"{{{{{L_OUTCOME}}}}}",
                        )
                    ),
                    "percentunit",
                    minimum=0,
                    maximum=1,
                ),
                8,
                8,
            ),
            (
                piechart(
                    "Judge verdicts",
                    "Verdicts of successful judge evaluations since the run started.",
                    f"sum by ({L_VERDICT}) ({sel(JUDGE_EVALS, **{L_OUTCOME: sc.OUTCOME_SUCCESS})})",
                    f"{{{{{L_VERDICT}}}}}",
                ),
                5,
                8,
            ),
            (
                bargauge(
                    "Judge success rate per dataset",
                    "Successful / all judge evaluations per dataset since the run started.",
                    share(
                        f"sum by ({L_SOURCE}) ({sel(JUDGE_EVALS, **{L_OUTCOME: sc.OUTCOME_SUCCESS})})",
                        JUDGE_BY_SOURCE,
                    ),
                    f"{{{{{L_SOURCE}}}}}",
                    "percentunit",
                    1,
                ),
                5,
                8,
            ),
            (
                timeseries(
                    "Judge latency (s)",
                    "p50 and p95 of judge evaluation time (retries included) over the selected window "
                    "(bucket estimates).",
                    query_targets((quantile(0.5, JUDGE_DURATION), "p50"), (quantile(0.95, JUDGE_DURATION), "p95")),
                    "s",
                    minimum=0,
                ),
                6,
                8,
            ),
            (
                timeseries(
                    "Judge HTTP requests per second",
                    "Requests per second to the judge, by error type (ok = no error), averaged over the "
                    "selected window.",
                    query_targets(
                        (
                            f"sum by ({L_ERROR}) (label_replace(rate({sel(JUDGE_REQUESTS)}[$window]), "
                            f'"{L_ERROR}", "ok", "{L_ERROR}", ""))',
                            f"{{{{{L_ERROR}}}}}",
                        )
                    ),
                    "reqps",
                    minimum=0,
                ),
                12,
                8,
            ),
            (
                timeseries(
                    "Judge tokens per second",
                    "GenAI token usage per second, input and output, averaged over the selected window.",
                    query_targets(
                        (
                            per_second(TOKEN_USAGE + "_sum", (L_TOKEN_TYPE,)),
                            f"{{{{{L_TOKEN_TYPE}}}}}",
                        )
                    ),
                    "short",
                    minimum=0,
                ),
                12,
                8,
            ),
        ],
    )


def validation_row() -> Row:
    """The Validation row."""
    return (
        "Validation",
        [
            (
                timeseries(
                    "Validation accuracy per dataset (%)",
                    "Accuracy of each dataset's validation samples over the selected window.",
                    query_targets((accuracy(VAL, BY_SOURCE), f"{{{{{L_SOURCE}}}}}")),
                    "percent",
                    minimum=0,
                    maximum=100,
                ),
                12,
                8,
            ),
            (
                timeseries(
                    "Validation avg cost vs accuracy",
                    "Mean executor cost per validation sample (right axis) against validation "
                    "accuracy (left axis), over the selected window.",
                    query_targets(
                        (
                            f"{increase_sum(EXEC_COST, **{L_SPLIT: VAL})}"
                            f" / ({increase_sum(SAMPLES, **{L_SPLIT: VAL})} > 0)",
                            "avg cost per sample",
                        ),
                        (accuracy(VAL), "accuracy"),
                    ),
                    "percent",
                    minimum=0,
                    overrides=[axis_override("A", "currencyUSD", "right"), axis_override("B", "percent", "left")],
                ),
                12,
                8,
            ),
        ],
    )
