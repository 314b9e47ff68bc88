"""Tests for the demo's rule-based scoring and its packaged sample data."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from otel_grpo.tools.demo.datasets import (
    DATASETS,
    PROBLEM_TYPES,
    REQUIRED_KEYS,
    load_all,
    load_dataset,
    split_train_val,
)
from otel_grpo.tools.demo.scoring import (
    extract_number,
    grade,
    numeric_match,
    option_letter,
    option_match,
    run_code_tests,
    token_f1,
)

# --- extract_number / numeric_match -------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Janet sells 9 eggs, 9 * 2 = 18.\n#### 18", 18.0),
        ("#### 1,234", 1234.0),
        ("#### -11", -11.0),
        (r"so $x = \boxed{42}$.", 42.0),
        (r"\boxed{\frac{3}{4}}", 0.75),
        (r"\boxed{\dfrac{10}{4}}", 2.5),
        (r"\boxed{-\frac{1}{6}}", -1 / 6),
        (r"\boxed{\frac{-2}{5}}", -0.4),
        (r"\boxed{12\text{ cm}}", 12.0),
        (r"first \boxed{1} then corrected to \boxed{2}", 2.0),
        ("It costs $1,234.50 in total.", 1234.5),
        ("We add 3 and 4. The answer is 7.", 7.0),
        ("Final answer: -3", -3.0),
        ("The temperature fell to \u221212 degrees", -12.0),
        ("x = -5", -5.0),
        ("The answer is 3/4", 0.75),
        ("about 0.5 of it", 0.5),
        ("35%", 35.0),
        ("To answer this, 3 + 4 = 7", 7.0),
        ("no digits here", None),
        ("", None),
        (None, None),
    ],
)
def test_extract_number(text: str | None, expected: float | None) -> None:
    value = extract_number(text)
    if expected is None:
        assert value is None
    else:
        assert value == pytest.approx(expected)


def test_numeric_match() -> None:
    assert numeric_match("The answer is 18.", "16 - 3 - 4 = 9\n9 * 2 = 18\n#### 18") is True
    assert numeric_match("17", "#### 18") is False
    assert numeric_match(r"\boxed{0.75}", r"\boxed{\frac{3}{4}}") is True
    assert numeric_match("1000000.0000001", "1000000") is True  # relative tolerance
    assert numeric_match("1.001", "1") is False
    assert numeric_match("0", "#### 0") is True
    assert numeric_match("I don't know", "#### 18") is None
    assert numeric_match("42", "no number") is None
    assert numeric_match(None, "#### 1") is None


# --- run_code_tests ------------------------------------------------------------------

_HUMANEVAL_TEST = """
def check(candidate):
    assert candidate(2, 3) == 5
    assert candidate(-1, 1) == 0
    assert candidate(0, 0) == 0
"""
_MBPP_TEST = "assert add(2, 3) == 5\nassert add(-1, 1) == 0\nassert add(0, 0) == 0\n"


def test_run_code_tests_humaneval_and_mbpp_styles() -> None:
    good = "def add(a, b):\n    return a + b\n"
    wrong = "def add(a, b):\n    return a - b\n"
    assert run_code_tests(good, _HUMANEVAL_TEST, "add") == (True, "passed")
    assert run_code_tests(good, _MBPP_TEST, "add") == (True, "passed")
    assert run_code_tests(wrong, _HUMANEVAL_TEST, "add") == (False, "failed")
    assert run_code_tests(wrong, _MBPP_TEST, "add") == (False, "failed")


def test_run_code_tests_errors_never_raise() -> None:
    passed, reason = run_code_tests("def add(a, b) return a + b", _MBPP_TEST, "add")
    assert not passed and reason.startswith("error: SyntaxError")
    passed, reason = run_code_tests("def other():\n    pass\n", _HUMANEVAL_TEST, "add")
    assert not passed and reason.startswith("error: NameError")
    passed, reason = run_code_tests("raise RuntimeError('boom')", _MBPP_TEST, "add")
    assert not passed and reason == "error: RuntimeError: boom"
    assert run_code_tests("", _MBPP_TEST, "add") == (False, "error: empty code")
    assert run_code_tests("x = 1", "", "add") == (False, "error: empty test")


def test_run_code_tests_timeout_kills_the_process() -> None:
    start = time.monotonic()
    passed, reason = run_code_tests("def add(a, b):\n    while True:\n        pass\n", _MBPP_TEST, "add", timeout_s=1)
    assert (passed, reason) == (False, "timeout")
    assert time.monotonic() - start < 4


def test_run_code_tests_is_isolated_from_the_repo() -> None:
    # -I: the current directory and PYTHON* variables are not on the import path.
    code = "import sys\ndef add(a, b):\n    return a + b\n"
    test = "import os\nassert not os.path.exists('otel_grpo')\n" + _MBPP_TEST
    assert run_code_tests(code, test, "add") == (True, "passed")


# --- token_f1 -----------------------------------------------------------------------


def test_token_f1_hand_computed() -> None:
    # pred tokens: cat sat on mat (4); gold: cat on mat (3); overlap 3.
    # P = 3/4, R = 3/3, F1 = 2 * 0.75 * 1 / 1.75 = 6/7.
    assert token_f1("The cat sat on the mat.", "a cat on a mat") == pytest.approx(6 / 7)
    # P = 2/2, R = 2/3 -> F1 = 0.8
    assert token_f1("Eric Blair", "Eric Arthur Blair") == pytest.approx(0.8)
    assert token_f1("The Seine!", "seine") == 1.0
    assert token_f1("Paris", "London") == 0.0
    assert token_f1("", "") == 1.0
    assert token_f1("the", "Paris") == 0.0  # only an article -> no tokens
    # repeated tokens are counted with multiplicity: common = min(2, 1) = 1
    assert token_f1("yes yes", "yes") == pytest.approx(2 * 0.5 * 1 / 1.5)


# --- option letters -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "letter"),
    [
        ("B", "B"),
        ("b", "B"),
        ("(C)", "C"),
        ("The answer is D.", "D"),
        ("Answer: a", "A"),
        ("the answer is (e)", "E"),
        ("**E**", "E"),
        ("C. Paris", "C"),
        ("I would go with option B because it fits best.", "B"),
        ("<answer>d</answer>", "D"),
        ("After thinking, (A) is wrong and the final answer is C", "C"),
        ("the answer is a dog", None),
        ("Because of this", None),
        ("", None),
        (None, None),
    ],
)
def test_option_letter(text: str | None, letter: str | None) -> None:
    assert option_letter(text) == letter


def test_option_match() -> None:
    assert option_match("The answer is B.", "B") is True
    assert option_match("(c)", "B") is False
    assert option_match("I am not sure", "B") is None


# --- grade --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "reward"),
    [
        (1.0, 1.0),
        (0.9, 1.0),
        (0.8999, 0.7),
        (0.7, 0.7),
        (0.69, 0.4),
        (0.4, 0.4),
        (0.39, 0.2),
        (0.2, 0.2),
        (0.19, 0.0),
        (0.0, 0.0),
        (-1.0, 0.0),
        (1.5, 1.0),
        (float("nan"), 0.0),
    ],
)
def test_grade(score: float, reward: float) -> None:
    assert grade(score) == reward


# --- datasets -----------------------------------------------------------------------


def test_datasets_order() -> None:
    assert DATASETS == ("gsm8k", "math", "humaneval", "mbpp", "hotpotqa", "commonsenseqa", "mmlu")


@pytest.mark.parametrize("name", DATASETS)
def test_dataset_files_load_with_required_keys(name: str) -> None:
    items = load_dataset(name)
    assert len(items) == 30
    for item in items:
        assert set(REQUIRED_KEYS) <= set(item)
        assert item["source"] == name
        assert item["problem_type"] == PROBLEM_TYPES[name]
        assert isinstance(item["problem"], str) and item["problem"].strip()
        assert isinstance(item["ground_truth"], str) and item["ground_truth"].strip()
        assert isinstance(item["meta"], dict)
        assert item["context"] is None or isinstance(item["context"], str)
    assert len({item["problem"] for item in items}) == 30  # no duplicates


def test_math_items_have_extractable_answers() -> None:
    for item in load_dataset("gsm8k"):
        gt = item["ground_truth"]
        assert gt.splitlines()[-1].startswith("#### ")
        assert extract_number(gt) == float(gt.rsplit("####", 1)[1])
        assert item["context"] is None
    for item in load_dataset("math"):
        assert r"\boxed{" in item["ground_truth"]
        assert extract_number(item["ground_truth"]) is not None
        assert item["meta"]["level"].startswith("Level ")


def _run_all(jobs: list[tuple[str, str, str]]) -> list[tuple[bool, str]]:
    """Run code tests concurrently (each in its own subprocess)."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda job: run_code_tests(*job), jobs))


@pytest.mark.parametrize("name", ["humaneval", "mbpp"])
def test_code_ground_truths_pass_their_tests(name: str) -> None:
    items = load_dataset(name)
    jobs = [(i["ground_truth"], i["meta"]["test"], i["meta"]["entry_point"]) for i in items]
    for item, result in zip(items, _run_all(jobs), strict=True):
        assert result == (True, "passed"), item["meta"]["entry_point"]


@pytest.mark.parametrize("name", ["humaneval", "mbpp"])
def test_code_tests_reject_a_wrong_implementation(name: str) -> None:
    items = load_dataset(name)
    jobs = [
        (
            f"def {i['meta']['entry_point']}(*args, **kwargs):\n    return None\n",
            i["meta"]["test"],
            i["meta"]["entry_point"],
        )
        for i in items
    ]
    for passed, reason in _run_all(jobs):
        assert not passed
        assert reason == "failed" or reason.startswith("error:"), reason


def test_code_items_follow_their_formats() -> None:
    for item in load_dataset("humaneval"):
        meta = item["meta"]
        assert f"def {meta['entry_point']}(" in item["problem"]
        assert item["ground_truth"].startswith(item["problem"])
        assert "def check(candidate):" in meta["test"]
        assert meta["test"].count("assert ") >= 3
    for item in load_dataset("mbpp"):
        meta = item["meta"]
        assert item["problem"].startswith("Write a ")
        lines = [line for line in meta["test"].splitlines() if line.strip()]
        assert len(lines) >= 3
        assert all(line.startswith(f"assert {meta['entry_point']}(") for line in lines)


def test_qa_items_follow_their_formats() -> None:
    for item in load_dataset("hotpotqa"):
        assert item["context"] and item["context"].count("\n\n") >= 1
        answer = item["ground_truth"]
        if answer not in ("yes", "no"):
            assert answer.lower() in item["context"].lower(), answer
    for name, letters in (("commonsenseqa", "ABCDE"), ("mmlu", "ABCD")):
        seen = set()
        for item in load_dataset(name):
            lines = item["problem"].splitlines()
            options = [line for line in lines if line[:2] in {f"{x}." for x in "ABCDE"}]
            assert [o[0] for o in options] == list(letters)
            assert item["ground_truth"] in letters
            assert option_letter(item["ground_truth"]) == item["ground_truth"]
            seen.add(item["ground_truth"])
            if name == "mmlu":
                assert item["meta"]["subject"]
        assert seen == set(letters)  # answers are spread over all letters


def test_load_dataset_returns_copies_and_rejects_unknown() -> None:
    first = load_dataset("gsm8k")
    first[0]["problem"] = "mutated"
    assert load_dataset("GSM8K")[0]["problem"] != "mutated"
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("squad")
    assert list(load_all()) == list(DATASETS)


def test_split_train_val_is_deterministic_and_disjoint() -> None:
    items = load_dataset("mmlu")
    train, val = split_train_val(items, val_fraction=0.2, seed=0)
    assert (len(train), len(val)) == (24, 6)
    again = split_train_val(items, val_fraction=0.2, seed=0)
    assert (train, val) == again
    ids = [i["meta"]["id"] for i in train] + [i["meta"]["id"] for i in val]
    assert sorted(ids) == sorted(i["meta"]["id"] for i in items)
    other = split_train_val(items, val_fraction=0.2, seed=1)[1]
    assert [i["meta"]["id"] for i in other] != [i["meta"]["id"] for i in val]
    assert split_train_val(items, val_fraction=0.0) == (items, [])
    assert split_train_val([], 0.2) == ([], [])
    with pytest.raises(ValueError):
        split_train_val(items, val_fraction=1.0)
