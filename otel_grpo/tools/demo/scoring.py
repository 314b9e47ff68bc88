"""Rule-based scoring for the demo trainer's seven datasets.

Pure functions, one per kind of check the real reward computer makes before it falls
back to the LLM judge:

* math (gsm8k, math): :func:`extract_number` and :func:`numeric_match`;
* code (humaneval, mbpp): :func:`run_code_tests` runs the dataset's tests in a
  subprocess;
* qa (hotpotqa): :func:`token_f1`, SQuAD-style;
* multiple choice (commonsenseqa, mmlu): :func:`option_letter` and :func:`option_match`.

:func:`grade` maps a score in ``[0, 1]`` onto the trainer's graded reward scale
``0 / 0.2 / 0.4 / 0.7 / 1.0``. Functions returning ``None`` mean *inconclusive*: the
caller should ask the judge.
"""

from __future__ import annotations

import logging
import math
import os
import re
import signal
import string
import subprocess
import sys
import tempfile
from collections import Counter
from fractions import Fraction

__all__ = [
    "REWARD_LEVELS",
    "extract_number",
    "grade",
    "normalize_answer",
    "numeric_match",
    "option_letter",
    "option_match",
    "run_code_tests",
    "token_f1",
]

logger = logging.getLogger(__name__)

#: The graded reward scale, lowest first.
REWARD_LEVELS: tuple[float, ...] = (0.0, 0.2, 0.4, 0.7, 1.0)

# --- numbers -----------------------------------------------------------------------

_NUM = r"-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|-?\.\d+"
_NUM_RE = re.compile(rf"(?<![\w.])(?:{_NUM})(?:\s*/\s*(?:\d+))?")
_LATEX_FRAC_RE = re.compile(r"(-?)\\[dt]?frac\s*\{\s*(-?[\d.,]+)\s*\}\s*\{\s*(-?[\d.,]+)\s*\}")
_LATEX_FRAC_SHORT_RE = re.compile(r"(-?)\\[dt]?frac(\d)(\d)")
_HASHES_RE = re.compile(r"####\s*([^\n]*)")
_ANSWER_IS_RE = re.compile(r"\banswer\s*(?:is|was|:|=)\s*:?\s*([^\n]*)", re.IGNORECASE)
_STRIP_LATEX_RE = re.compile(
    r"\\text\s*\{[^{}]*\}|\\mathrm\s*\{[^{}]*\}|\\mbox\s*\{[^{}]*\}|\^\s*\{?\\circ\}?"
    r"|\\[,!;: ]|\\left|\\right|\\%|\\\$|\$|%"
)


def _boxed_contents(text: str) -> list[str]:
    """Return the contents of every ``\\boxed{...}`` / ``\\fbox{...}`` (balanced braces)."""
    out: list[str] = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            if text[i] == "{":
                depth += 1
            elif text[i] == "}":
                depth -= 1
            i += 1
        if depth == 0:
            out.append(text[m.end() : i - 1])
    return out


def _to_float(token: str) -> float | None:
    """Parse ``1,234.5``, ``-3``, ``.5`` or ``3/4`` into a float."""
    token = token.replace(",", "").replace(" ", "")
    try:
        if "/" in token:
            num, den = token.split("/", 1)
            value = Fraction(num) / Fraction(den)
            return float(value)
        return float(token)
    except (ValueError, ZeroDivisionError):
        return None


def _latex_fracs_to_slash(text: str) -> str:
    """Rewrite ``\\frac{3}{4}`` (also ``\\dfrac``, ``\\tfrac``, ``\\frac34``) as ``3/4``."""
    text = _LATEX_FRAC_RE.sub(lambda m: f"{m[1]}{m[2]}/{m[3]}", text)
    return _LATEX_FRAC_SHORT_RE.sub(lambda m: f"{m[1]}{m[2]}/{m[3]}", text)


def _clean(text: str) -> str:
    """Normalise minus signs, LaTeX fractions, units and currency for number search."""
    text = text.replace("\u2212", "-")
    return _STRIP_LATEX_RE.sub("", _latex_fracs_to_slash(text))


def _parse_answer_fragment(fragment: str) -> float | None:
    """Parse the first number of a short answer (a ``\\boxed{}`` body, text after ``####``)."""
    match = _NUM_RE.search(_clean(fragment))
    return _to_float(match.group(0)) if match else None


def extract_number(text: str | None) -> float | None:
    """Extract the final numeric answer from a model output or a reference solution.

    Looks, in order, for a GSM8K-style ``#### 42`` marker, the last ``\\boxed{...}``
    (``\\frac{a}{b}``, ``\\dfrac``, ``a/b`` and units in ``\\text{}`` are handled), the
    last ``answer is 7`` / ``Answer: 7`` phrase, and finally the last number in the text.
    Thousands separators, currency and percent signs and negative numbers (also with a
    Unicode minus) are understood.

    Args:
        text: free text; ``None`` or empty gives ``None``.

    Returns:
        The number as a float, or ``None`` when no number can be found.
    """
    if not text:
        return None
    text = str(text)
    for fragments in (
        _HASHES_RE.findall(text),
        _boxed_contents(text),
        _ANSWER_IS_RE.findall(text),
    ):
        for fragment in reversed(fragments):
            value = _parse_answer_fragment(fragment)
            if value is not None:
                return value
    numbers = _NUM_RE.findall(_clean(text))
    return _to_float(numbers[-1]) if numbers else None


def numeric_match(prediction: str | None, ground_truth: str | None) -> bool | None:
    """Compare the numbers extracted from a prediction and a ground truth.

    Args:
        prediction: the model's answer (free text).
        ground_truth: the reference answer or worked solution.

    Returns:
        ``None`` when a number cannot be extracted from either side (inconclusive: ask
        the judge), else whether the two agree within a relative tolerance of 1e-6.
    """
    pred = extract_number(prediction)
    gold = extract_number(ground_truth)
    if pred is None or gold is None:
        return None
    if not (math.isfinite(pred) and math.isfinite(gold)):
        return pred == gold
    return math.isclose(pred, gold, rel_tol=1e-6, abs_tol=1e-9)


# --- code execution ----------------------------------------------------------------

_MAX_REASON_CHARS = 200


def _build_program(code: str, test: str, entry_point: str | None) -> str:
    """Concatenate candidate code, the test code and, for HumanEval, the check call."""
    parts = [code.rstrip(), "", "", test.rstrip(), ""]
    if re.search(r"^\s*def\s+check\s*\(", test, re.MULTILINE) and entry_point:
        parts.append(f"check({entry_point})")
        parts.append("")
    return "\n".join(parts)


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    """Kill a child started in its own session together with its descendants."""
    try:
        if hasattr(os, "killpg"):
            os.killpg(proc.pid, signal.SIGKILL)
        else:  # pragma: no cover - Windows
            proc.kill()
    except (ProcessLookupError, PermissionError, OSError):
        proc.kill()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - defensive
        logger.warning("code-test subprocess %s did not exit after SIGKILL", proc.pid)


def _summarise_error(stderr: str) -> str:
    """Return the last non-empty line of a traceback, shortened."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1] if lines else "exit status non-zero"
    return last[:_MAX_REASON_CHARS]


def run_code_tests(
    code: str,
    test: str,
    entry_point: str | None,
    timeout_s: float = 5.0,
) -> tuple[bool, str]:
    """Run a candidate implementation against HumanEval- or MBPP-style tests.

    The code and the tests are written to a temporary file and run with
    ``sys.executable -I`` (isolated mode) in a fresh session, with stdin closed and
    the temporary directory as working directory. If ``test`` defines ``check`` (the
    HumanEval convention), ``check(<entry_point>)`` is appended; MBPP-style ``assert``
    lines run as they are.

    Args:
        code: the candidate source (e.g. a full function definition).
        test: test source: ``def check(candidate): ...`` or ``assert f(...) == ...`` lines.
        entry_point: name of the function under test (needed for HumanEval tests).
        timeout_s: wall-clock limit; the process group is killed when it is exceeded.

    Returns:
        ``(passed, reason)`` where reason is ``"passed"``, ``"failed"`` (an assertion
        failed), ``"timeout"`` or ``"error: <last traceback line>"``. Never raises.
    """
    if not code or not str(code).strip():
        return False, "error: empty code"
    if not test or not str(test).strip():
        return False, "error: empty test"
    try:
        program = _build_program(str(code), str(test), entry_point)
        with tempfile.TemporaryDirectory(prefix="otel_grpo_code_") as tmp:
            path = os.path.join(tmp, "candidate_test.py")
            err_path = os.path.join(tmp, "stderr.txt")
            with open(path, "w", encoding="utf-8") as fh:
                fh.write(program)
            with open(err_path, "w+b") as err:
                proc = subprocess.Popen(
                    [sys.executable, "-I", path],
                    cwd=tmp,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                    start_new_session=True,
                )
                try:
                    returncode = proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    _kill_group(proc)
                    logger.debug("code tests timed out after %.1fs", timeout_s)
                    return False, "timeout"
                err.seek(0, os.SEEK_END)
                size = err.tell()
                err.seek(max(0, size - 4000))
                stderr = err.read().decode("utf-8", errors="replace")
    except Exception as exc:  # noqa: BLE001 - this function must never raise
        logger.warning("could not run code tests: %s", exc)
        return False, f"error: {type(exc).__name__}: {exc}"[:_MAX_REASON_CHARS]

    if returncode == 0:
        return True, "passed"
    last = _summarise_error(stderr)
    if last.startswith("AssertionError"):
        return False, "failed"
    if returncode < 0:
        return False, f"error: killed by signal {-returncode}"
    return False, f"error: {last}"


# --- free-text QA -------------------------------------------------------------------

_ARTICLES_RE = re.compile(r"\b(a|an|the)\b")
_PUNCT = set(string.punctuation)


def normalize_answer(text: str | None) -> str:
    """SQuAD normalisation: lower-case, drop punctuation and articles, squash spaces."""
    if not text:
        return ""
    text = str(text).lower()
    text = "".join(ch for ch in text if ch not in _PUNCT)
    text = _ARTICLES_RE.sub(" ", text)
    return " ".join(text.split())


def token_f1(prediction: str | None, ground_truth: str | None) -> float:
    """Token-level F1 between a prediction and a ground truth, as in SQuAD/HotpotQA.

    Both strings are normalised with :func:`normalize_answer`. When either side has no
    tokens the score is 1.0 if both are empty, else 0.0.

    Returns:
        F1 in ``[0, 1]``.
    """
    pred_tokens = normalize_answer(prediction).split()
    gold_tokens = normalize_answer(ground_truth).split()
    if not pred_tokens or not gold_tokens:
        return float(pred_tokens == gold_tokens)
    common = Counter(pred_tokens) & Counter(gold_tokens)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision = same / len(pred_tokens)
    recall = same / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


# --- multiple choice ----------------------------------------------------------------

_BARE_LETTER_RE = re.compile(r"^\s*[\(\[]?\s*([A-Ea-e])\s*[\)\]]?\s*[.:!]?\s*$")
_ANSWER_LETTER_RE = re.compile(
    r"\b(?:final\s+answer|answer|option|choice)\b\s*(?:is|:|=|-|would\s+be|should\s+be)?"
    r"\s*:?\s*(?:option|choice)?\s*([\(\[]?)\s*([A-Ea-e])\s*([\)\]]?)(?![A-Za-z0-9])",
    re.IGNORECASE,
)
_PAREN_LETTER_RE = re.compile(r"[\(\[]([A-E])[\)\]]")
_BOLD_LETTER_RE = re.compile(r"\*\*\s*\(?([A-E])\)?[.:]?\s*\*\*")
_LEADING_LETTER_RE = re.compile(r"^\s*([A-E])\s*[.):]\s")
_TAG_LETTER_RE = re.compile(r"<answer>\s*\(?([A-Ea-e])\)?\s*</answer>", re.IGNORECASE)


def option_letter(text: str | None) -> str | None:
    """Extract a multiple-choice letter A-E from an answer.

    Understands ``"B"``, ``"(C)"``, ``"The answer is D."``, ``"Answer: a"``,
    ``"**E**"``, ``"<answer>B</answer>"`` and ``"C. Paris"``. A lower-case letter counts
    only when it stands alone (``"answer is a dog"`` gives ``None``).

    Returns:
        The upper-case letter, or ``None`` if no choice letter is found.
    """
    if not text:
        return None
    text = str(text)
    bare = _BARE_LETTER_RE.match(text)
    if bare:
        return bare.group(1).upper()
    tagged = _TAG_LETTER_RE.findall(text)
    if tagged:
        return tagged[-1].upper()
    candidates: list[str] = []
    for m in _ANSWER_LETTER_RE.finditer(text):
        opening, letter, closing = m.groups()
        if letter.islower() and not (opening and closing):
            # "Answer: a" and "the answer is a." count, "the answer is a dog" does not.
            rest_of_line = text[m.end() :].split("\n", 1)[0]
            if rest_of_line.strip() and rest_of_line[0] not in ".,;:!":
                continue
        candidates.append(letter.upper())
    if candidates:
        return candidates[-1]
    for regex in (_BOLD_LETTER_RE, _PAREN_LETTER_RE):
        found = regex.findall(text)
        if found:
            return found[-1]
    leading = _LEADING_LETTER_RE.match(text)
    if leading:
        return leading.group(1)
    return None


def option_match(prediction: str | None, ground_truth: str | None) -> bool | None:
    """Compare the choice letters of a prediction and a ground truth.

    Returns:
        ``None`` when either side has no recognisable letter, else whether they agree.
    """
    pred = option_letter(prediction)
    gold = option_letter(ground_truth)
    if pred is None or gold is None:
        return None
    return pred == gold


# --- reward scale -------------------------------------------------------------------


def grade(score: float) -> float:
    """Map a score in ``[0, 1]`` to the graded reward scale 0 / 0.2 / 0.4 / 0.7 / 1.0.

    Steps are taken from below: ``>= 0.9`` gives 1.0, ``>= 0.7`` gives 0.7, ``>= 0.4``
    gives 0.4, ``>= 0.2`` gives 0.2, anything lower (or NaN) gives 0.0.
    """
    try:
        value = float(score)
    except (TypeError, ValueError):
        return 0.0
    if math.isnan(value):
        return 0.0
    if value >= 0.9:
        return 1.0
    if value >= 0.7:
        return 0.7
    if value >= 0.4:
        return 0.4
    if value >= 0.2:
        return 0.2
    return 0.0
