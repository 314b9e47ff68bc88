"""Small packaged sample data for the demo trainer: 30 items for each of 7 datasets.

The items are original, written for this project (see ``data/LICENSE.md``), in the
formats of GSM8K, MATH, HumanEval, MBPP, HotpotQA, CommonsenseQA and MMLU. Every item
is a dict with the keys the trainer samples: ``problem``, ``problem_type``
(``"math"``, ``"code"`` or ``"qa"``), ``ground_truth``, ``source`` (the dataset name),
``meta`` (a dict; code items carry ``entry_point`` and ``test``) and ``context``
(supporting paragraphs for hotpotqa, else ``None``).
"""

from __future__ import annotations

import copy
import functools
import json
import random
from importlib import resources
from typing import Any

from otel_grpo import semconv

__all__ = [
    "DATASETS",
    "PROBLEM_TYPES",
    "REQUIRED_KEYS",
    "load_all",
    "load_dataset",
    "split_train_val",
]

#: The seven dataset names, in the trainer's order.
DATASETS: tuple[str, ...] = tuple(semconv.DEFAULT_DATASETS)

#: The ``problem_type`` of every item of each dataset.
PROBLEM_TYPES: dict[str, str] = dict(semconv.PROBLEM_TYPE_BY_SOURCE)

#: Keys every item has.
REQUIRED_KEYS: tuple[str, ...] = (
    "problem",
    "problem_type",
    "ground_truth",
    "source",
    "meta",
    "context",
)


@functools.cache
def _read(name: str) -> tuple[str, ...]:
    """Read the non-empty lines of a packaged ``<name>.jsonl`` (cached)."""
    resource = resources.files("otel_grpo.tools.demo") / "data" / f"{name}.jsonl"
    text = resource.read_text(encoding="utf-8")
    return tuple(line for line in text.splitlines() if line.strip())


@functools.cache
def _parsed(name: str) -> tuple[dict[str, Any], ...]:
    """Parse a dataset once; callers get deep copies."""
    items = []
    for lineno, line in enumerate(_read(name), start=1):
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{name}.jsonl line {lineno}: {exc}") from exc
        items.append(item)
    return tuple(items)


def load_dataset(name: str) -> list[dict[str, Any]]:
    """Load one packaged dataset.

    Args:
        name: one of :data:`DATASETS` (case-insensitive).

    Returns:
        A fresh list of item dicts (safe to mutate; the parsed file is cached).

    Raises:
        ValueError: for an unknown dataset name.
    """
    key = str(name).strip().lower()
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    return copy.deepcopy(list(_parsed(key)))


def load_all() -> dict[str, list[dict[str, Any]]]:
    """Load every dataset: ``{name: items}`` in :data:`DATASETS` order."""
    return {name: load_dataset(name) for name in DATASETS}


def split_train_val(
    items: list[dict[str, Any]],
    val_fraction: float = 0.2,
    seed: int = 0,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Split items into train and validation sets, deterministically.

    The items are shuffled with ``random.Random(seed)``; the first
    ``round(len(items) * val_fraction)`` go to validation (at least one when
    ``val_fraction > 0`` and there are two or more items), the rest to training. Each
    part keeps the items' original relative order.

    Args:
        items: the items to split (not modified).
        val_fraction: share of items for validation, in ``[0, 1)``.
        seed: shuffle seed.

    Returns:
        ``(train, val)``.

    Raises:
        ValueError: if ``val_fraction`` is outside ``[0, 1)``.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    n = len(items)
    n_val = round(n * val_fraction)
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    indices = list(range(n))
    random.Random(seed).shuffle(indices)
    val_idx = set(indices[:n_val])
    train = [item for i, item in enumerate(items) if i not in val_idx]
    val = [item for i, item in enumerate(items) if i in val_idx]
    return train, val
