"""The user's script: python train.py --judge-url URL --steps N --wandb-dir DIR (no otel-grpo import)."""

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from grpo_trainer import GRPOTrainer  # noqa: E402
from plan import make_plan  # noqa: E402


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--judge-url", required=True)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--wandb-dir", default=None)
    args = parser.parse_args()
    trainer = GRPOTrainer(make_plan(steps=args.steps), args.judge_url, wandb_dir=args.wandb_dir)
    asyncio.run(trainer.train(args.steps))
    import wandb

    wandb.finish()


if __name__ == "__main__":
    main()
