"""Train a tiny random Qwen2 with TRL's GRPOTrainer on CPU: a rule reward and an LLM judge.

    otel-grpo judge-server --port 8002 &            # the judge (OpenAI-compatible)
    python examples/trl/train.py                    # plain TRL
    otel-grpo run -- python examples/trl/train.py   # the same run, with otel-grpo's rows

Everything is built offline (examples/trl/tiny.py): no model or dataset download.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from rewards import answer_match, judge_reward  # noqa: E402
from tiny import build_model, build_tokenizer, dataset_rows  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6, help="optimizer steps")
    parser.add_argument("--judge-url", default=os.environ.get("JUDGE_URL", "http://127.0.0.1:8002/v1"))
    parser.add_argument("--output-dir", default=None, help="TRL's output_dir (default: a temporary directory)")
    parser.add_argument("--report-to", default="wandb", help="TRL's report_to: wandb or none")
    parser.add_argument("--eval-steps", type=int, default=3, help="evaluate every N steps (0: never)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (one is fastest for so small a model)")
    args = parser.parse_args(argv)
    os.environ["JUDGE_URL"] = args.judge_url
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_PROJECT", "otel-grpo-trl-example")

    import torch
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(args.threads)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, seed=args.seed)
    rows = dataset_rows()
    train, evaluation = Dataset.from_list(rows[:48]), Dataset.from_list(rows[48:56])
    output_dir = args.output_dir or tempfile.mkdtemp(prefix="trl-example-")
    config = GRPOConfig(
        output_dir=output_dir,
        use_cpu=True,
        max_steps=args.steps,
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        learning_rate=1e-4,
        logging_steps=1,
        save_strategy="no",
        report_to=args.report_to,
        reward_weights=[0.5, 0.5],
        eval_strategy="steps" if args.eval_steps else "no",
        eval_steps=args.eval_steps or None,
        per_device_eval_batch_size=4,
        seed=args.seed,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[answer_match, judge_reward],
        args=config,
        train_dataset=train,
        eval_dataset=evaluation if args.eval_steps else None,
        processing_class=tokenizer,
    )
    trainer.train()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
