"""Regenerate the report pictures ``docs/report-{group}.png`` from a demo-like run.

    python docs/make_example.py [--out-dir docs] [--html report.html] [--steps 30]

Writes an offline WandB run (in a temporary directory, removed afterwards) with the
manual otel-grpo API: seven datasets whose accuracy improves over training, GRPO
groups of K=4, a judge for the math and QA answers the rules cannot read (a third of
them) with an API outage at steps 13-15 (most judge evaluations fail, and those samples
get the trainer's fallback reward 0), executor costs, and a validation pass every 5
steps. Then renders each panel group with :func:`otel_grpo.tools.report.render_groups`
into ``--out-dir``: ``report-training.png``, ``-datasets``, ``-judge``, ``-integrity``,
``-validation``, ``-cost`` and ``-health`` (and, with ``--html``, the HTML report).
Deterministic (seeded); needs no network and no API key.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

DATASETS = [  # source, problem_type, accuracy at step 0, at the last step, judged
    ("gsm8k", "math", 0.55, 0.82, True),
    ("math", "math", 0.28, 0.50, True),
    ("humaneval", "code", 0.45, 0.66, False),
    ("mbpp", "code", 0.50, 0.70, False),
    ("hotpotqa", "qa", 0.38, 0.55, True),
    ("commonsenseqa", "qa", 0.66, 0.80, True),
    ("mmlu", "qa", 0.55, 0.71, True),
]
QUESTIONS_PER_SOURCE = 4
K = 4
VAL_EVERY = 5
OUTAGE = range(13, 16)  # training steps of the judge outage
JUDGED_SHARE = 0.35  # answers of a judged dataset the rules cannot read: the judge decides
FAIL_IN_OUTAGE, FAIL_OTHERWISE = 0.85, 0.02  # judge evaluations that fail (API error)


def _serve(
    otel_grpo,
    rng: random.Random,
    src: str,
    ptype: str,
    p_correct: float,
    judged: bool,
    outage: bool,
    group: object = None,
) -> None:
    with otel_grpo.sample(src, ptype, group=group):
        cost = round(rng.uniform(0.002, 0.02) * (2.0 if ptype == "code" else 1.0), 5)
        ok = rng.random() > 0.03
        otel_grpo.record_executor_run(cost=cost, duration_s=rng.uniform(0.4, 3.0), success=ok)
        correct = ok and rng.random() < p_correct
        reward = 1.0 if correct else round(rng.choice([0.0, 0.0, 0.2, 0.5]), 2)
        if judged and ok and rng.random() < JUDGED_SHARE:
            roll = rng.random()
            if roll < (FAIL_IN_OUTAGE if outage else FAIL_OTHERWISE):
                otel_grpo.record_judge_request(error_type="APIConnectionError", source=src)
                otel_grpo.record_judge_evaluation(
                    "api_failure", None, rng.uniform(2.0, 8.0), error_type="APIConnectionError"
                )
                reward = 0.0  # no verdict: the trainer's fallback, trained on all the same
            else:
                otel_grpo.record_judge_request(
                    input_tokens=rng.randint(300, 900), output_tokens=rng.randint(5, 60), source=src
                )
                if roll > 0.97:
                    otel_grpo.record_judge_evaluation("parse_failure", None, rng.uniform(0.3, 1.5))
                    reward = 0.0
                else:
                    otel_grpo.record_judge_evaluation("success", correct, rng.uniform(0.2, 1.2))
        otel_grpo.record_sample(reward)


def make_run(root: Path, steps: int = 30, seed: int = 7) -> Path:
    """Write the demo-like offline run under ``root``; returns the run directory."""
    import otel_grpo
    from otel_grpo.exporters.tables import attach_tables

    rng = random.Random(seed)
    tel = otel_grpo.setup(None, wandb={"mode": "offline", "dir": str(root), "run_name": "report-example"})
    attach_tables(tel)
    loss, kl = 1.2, 0.0
    for step in range(1, steps + 1):
        progress = step / steps
        outage = step in OUTAGE
        with otel_grpo.step(step):
            for src, ptype, start, end, judged in DATASETS:
                p = start + (end - start) * progress
                for q in range(QUESTIONS_PER_SOURCE):
                    for _ in range(K):
                        _serve(otel_grpo, rng, src, ptype, p, judged, outage, group=(step, src, q))
            loss = max(0.05, loss * 0.95 + rng.uniform(-0.04, 0.04))
            kl = kl + rng.uniform(0.0, 0.004)
            otel_grpo.record_scalars(loss=loss, kl_div=kl, temperature=max(0.3, 1.0 - 0.7 * progress))
        if step % VAL_EVERY == 0:
            with otel_grpo.validation():
                for src, ptype, start, end, judged in DATASETS:
                    p = start + (end - start) * progress - 0.04
                    for _ in range(12):
                        _serve(otel_grpo, rng, src, ptype, p, judged, False)
    run_dir = Path(tel.run.dir).parent
    tel.shutdown()
    return run_dir


def shrink_png(path: str | Path) -> None:
    """Rewrite the PNG with a 256-colour palette (the charts use a few dozen colours): a third of the size."""
    from PIL import Image

    with Image.open(path) as image:
        small = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    small.save(path, optimize=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    here = Path(__file__).resolve().parent
    parser.add_argument("--out-dir", default=str(here), help="where report-{group}.png go (default: docs/)")
    parser.add_argument("--html", help="also write the HTML report here")
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(here.parent))
    os.environ.setdefault("WANDB_SILENT", "true")
    from otel_grpo.tools.report import render_groups, render_report
    from otel_grpo.tools.runreader import read_run

    with tempfile.TemporaryDirectory(prefix="otel-grpo-example-") as tmp:
        records = read_run(make_run(Path(tmp), steps=args.steps))
        written = render_groups(records, args.out_dir)
        if args.html:
            render_report(records, args.html)
    empty = [name for counts in written.values() for name, n in counts.items() if n == 0]
    for path, charts in written.items():
        shrink_png(path)
        from PIL import Image

        with Image.open(path) as image:
            width, height = image.size
        size = path.stat().st_size
        print(f"wrote {path} ({width}x{height} px, {size // 1024} KB, {len(charts)} charts)")
    if empty:
        print(f"no data for: {', '.join(empty)}")
    return 1 if empty else 0


if __name__ == "__main__":
    sys.exit(main())
