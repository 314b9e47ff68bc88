"""JSONL datasets and the mixed-dataset batch sampler."""

import json
import random
from pathlib import Path

FIELDS = ("problem", "problem_type", "ground_truth", "source", "meta", "context")


def load_jsonl(path):
    """One dict per non-empty line, with every field of the trainer's sample schema present."""
    samples = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            sample = json.loads(line)
            for key in FIELDS:
                sample.setdefault(key, None)
            samples.append(sample)
    return samples


class BatchSampler:
    """Draws questions from a mixed pool with a seeded RNG (what a retried step draws is new)."""

    def __init__(self, samples, seed):
        self.samples = list(samples)
        self.rng = random.Random(seed)

    def sample(self, batch_size):
        return self.rng.sample(self.samples, min(batch_size, len(self.samples)))
