"""Entry point, as the user runs it:  python train.py --config config/training.yaml [--judge-url URL]

Like the user's script, it puts its own ``src/`` first on ``sys.path`` and appends the
AFlow checkout, whose top-level ``benchmarks`` and ``scripts`` packages the generated
workflows import. It knows nothing about otel-grpo. At the end it prints one JSON line
with everything the trainer computed.
"""

import argparse
import asyncio
import json
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parent
sys.path.insert(0, str(PROJECT / "src"))
sys.path.append(str(PROJECT / "aflow"))  # appended: anything put in front of it could shadow AFlow

import yaml  # noqa: E402
from grpo_trainer import GRPOTrainer  # noqa: E402


def load_config(path, overrides):
    config = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    for key in ("train", "test"):
        config["data"][key] = str(PROJECT / config["data"][key])
    config["training"].update({k: v for k, v in overrides.items() if v is not None})
    return config


def main(argv=None):
    parser = argparse.ArgumentParser(description="GRPO training of AFlow workflow generation")
    parser.add_argument("--config", default=str(PROJECT / "config" / "training.yaml"))
    parser.add_argument("--judge-url", default=None, help="base URL of the gpt-oss-120b server (judge + executor)")
    parser.add_argument("--wandb-dir", default=None)
    parser.add_argument("--no-wandb", action="store_true")
    parser.add_argument("--steps", dest="max_steps", type=int, default=None)
    parser.add_argument("--eval-every", dest="eval_every", type=int, default=None)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    config = load_config(args.config, {"max_steps": args.max_steps, "eval_every": args.eval_every, "seed": args.seed})
    trainer = GRPOTrainer(config, judge_url=args.judge_url, wandb_dir=args.wandb_dir, use_wandb=not args.no_wandb)
    history = asyncio.run(trainer.train())
    if trainer.use_wandb:
        import wandb

        wandb.finish()
    results = {
        "steps": history["steps"],
        "val": history["val"],
        "temperatures": [trainer.get_current_temperature(s) for s in range(1, trainer.max_steps + 1)],
        "attempts": trainer.attempts,
        "eval_stats": trainer.reward_computer.eval_stats,
        "samples": trainer.samples_seen,
        "compile_errors": sorted(trainer.executor.compile_errors),
        "execution_errors": sorted(trainer.executor.execution_errors),
        "task_errors": sorted(trainer.task_errors),
    }
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
