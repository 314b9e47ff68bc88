"""A tiny policy, tokenizer and dataset built offline, for a GRPO run on CPU in seconds.

No hub download: the tokenizer is trained on the dataset's own text with ``tokenizers``
(a word-level vocabulary of a few hundred words), the policy is a randomly initialised
Qwen2 (hidden size 64, 2 layers), and the dataset mixes questions from four of the seven
sources, with ``source`` and ``problem_type`` columns as otel-grpo reads them.
"""

from __future__ import annotations

import random
from pathlib import Path

# (source, problem_type, question, answer): a few questions per source.
QUESTIONS = [
    ("gsm8k", "math", "Janet has 3 apples and buys 4 more. How many apples does she have?", "7"),
    ("gsm8k", "math", "A box holds 6 eggs. How many eggs are in 2 boxes?", "12"),
    ("gsm8k", "math", "Tom reads 5 pages a day. How many pages does he read in 3 days?", "15"),
    ("gsm8k", "math", "There are 9 birds and 4 fly away. How many birds are left?", "5"),
    ("math", "math", "What is 2 plus 2?", "4"),
    ("math", "math", "What is 3 times 3?", "9"),
    ("math", "math", "What is 10 minus 7?", "3"),
    ("math", "math", "What is 8 divided by 2?", "4"),
    ("hotpotqa", "qa", "Which city is the capital of France?", "paris"),
    ("hotpotqa", "qa", "Which river flows through Cairo?", "nile"),
    ("hotpotqa", "qa", "Which planet is called the red planet?", "mars"),
    ("hotpotqa", "qa", "Which ocean lies west of Portugal?", "atlantic"),
    ("mmlu", "qa", "Water boils at 100 degrees on which scale? A celsius B kelvin", "a"),
    ("mmlu", "qa", "Which gas do plants take in? A oxygen B carbon", "b"),
    ("mmlu", "qa", "How many legs has a spider? A six B eight", "b"),
    ("mmlu", "qa", "Which is a mammal? A whale B shark", "a"),
]

SPECIAL = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]


def dataset_rows(repeat: int = 4, seed: int = 0) -> list[dict[str, str]]:
    """The training rows, shuffled: ``prompt``, ``answer``, ``source``, ``problem_type``."""
    rows = [
        {"prompt": f"Question: {q} Answer:", "answer": a, "source": s, "problem_type": p} for s, p, q, a in QUESTIONS
    ] * repeat
    random.Random(seed).shuffle(rows)
    return rows


def corpus() -> list[str]:
    """The text the tokenizer is trained on: every prompt and answer, plus the digits."""
    lines = [f"Question: {q} Answer: {a}" for _s, _p, q, a in QUESTIONS]
    return lines + [" ".join(str(i) for i in range(20))]


def build_tokenizer():
    """A word-level tokenizer trained on :func:`corpus`, as a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.decoder = decoders.WordPiece(prefix="##")  # joins words with spaces
    tok.train_from_iterator(corpus(), trainers.WordLevelTrainer(special_tokens=SPECIAL))
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]"
    )


def build_model(tokenizer, seed: int = 0):
    """A random Qwen2 causal LM: hidden size 64, 2 layers, the tokenizer's vocabulary."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=128,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    return Qwen2ForCausalLM(config)


def save_tiny(directory: str | Path, seed: int = 0) -> Path:
    """Build the tokenizer and model and save them to ``directory`` (``from_pretrained`` loads them)."""
    path = Path(directory)
    tokenizer = build_tokenizer()
    model = build_model(tokenizer, seed)
    tokenizer.save_pretrained(path)
    model.save_pretrained(path)
    return path
