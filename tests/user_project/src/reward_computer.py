"""Reward computer (trimmed from the user's): rules first, an LLM judge as fallback.

Rewards are graded 0 / 0.2 / 0.4 / 0.7 / 1.0. Code with tests is scored by running the
tests in a separate process; code without tests goes to the judge as "code_llm_judge".
"""

import multiprocessing
import re
import string
from collections import Counter
from fractions import Fraction

import openai

JUDGE_SYSTEM = (
    "You are a strict grader. Decide whether the prediction is equivalent to the ground truth. "
    "End with <true_false>True</true_false> or <true_false>False</true_false>."
)

JUDGE_TEMPLATES = {
    "gsm8k": "Question: {problem}\nPrediction: {prediction}\nGround truth: {ground_truth}",
    "math": "Problem: {problem}\nPredicted answer: {prediction}\nReference answer: {ground_truth}",
    "hotpotqa": "Question: {problem}\nPrediction: {prediction}\nGround truth: {ground_truth}",
    "commonsenseqa": "Question: {problem}\nPrediction: {prediction}\nGround truth: {ground_truth}",
    "mmlu": "Question: {problem}\nPrediction: {prediction}\nGround truth: {ground_truth}",
    "code_llm_judge": "Problem: {problem}\nPredicted solution:\n{prediction}\n\nReference solution:\n{ground_truth}",
}
# Their bug, kept on purpose: the fallback template never receives the prediction.
FALLBACK_TEMPLATE = "Question: {problem}\nGround truth: {ground_truth}"

_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?")
_FRAC = re.compile(r"\\[dt]?frac\{(-?\d+)\}\{(\d+)\}")
_VERDICT = re.compile(r"<true_false>\s*(True|False)\s*</true_false>", re.I)


def _last_number(text):
    text = _FRAC.sub(r"\1/\2", str(text))
    found = _NUMBER.findall(text)
    if not found:
        return None
    try:
        return Fraction(found[-1].replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return None


def _normalize(text):
    text = str(text).lower()
    text = "".join(ch for ch in text if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def _f1(prediction, truth):
    pred, gold = _normalize(prediction).split(), _normalize(truth).split()
    common = Counter(pred) & Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def _run_tests_in_child(code, test, entry_point, conn):
    """Child process: define the solution, run the tests, send back (passed, error)."""
    try:
        namespace = {}
        exec(code, namespace)
        exec(test, namespace)
        if "check" in namespace and entry_point:
            namespace["check"](namespace[entry_point])
        conn.send((True, None))
    except BaseException as exc:  # noqa: BLE001 - any failure fails the tests
        conn.send((False, type(exc).__name__))
    finally:
        conn.close()


class RewardComputer:
    """compute_reward (sync), eval_stats counters, and an OpenAI-compatible LLM judge."""

    def __init__(
        self,
        judge_base_url="http://localhost:8002/v1",
        judge_model="gpt-oss-120b",
        use_llm_judge=True,
        test_timeout=20.0,
    ):
        self.use_llm_judge = use_llm_judge
        self.judge_model = judge_model
        self.test_timeout = test_timeout
        self.client = openai.OpenAI(base_url=judge_base_url, api_key="sk-dummy", timeout=30.0)
        self.eval_stats = {
            "total_evaluations": 0,
            "llm_judge_success": 0,
            "llm_judge_parse_failures": 0,
            "llm_judge_api_failures": 0,
            "correct_predictions": 0,
            "incorrect_predictions": 0,
        }

    # -- rules ------------------------------------------------------------------------
    def _math_reward(self, problem, prediction, ground_truth, source):
        pred, gold = _last_number(prediction), _last_number(ground_truth)
        if pred is not None and gold is not None:
            if pred == gold:
                return 1.0
            if gold != 0 and abs(pred - gold) / abs(gold) < Fraction(1, 100):
                return 0.7
        return self._judge_reward(problem, prediction, ground_truth, "math", source)

    def _qa_reward(self, problem, prediction, ground_truth, source):
        if _normalize(prediction) == _normalize(ground_truth):
            return 1.0
        letters = re.fullmatch(r"\(?([A-E])\)?", str(ground_truth).strip())
        if letters:
            chosen = re.findall(r"\b([A-E])\b", str(prediction))
            if chosen and chosen[-1] == letters.group(1):
                return 1.0
        f1 = _f1(prediction, ground_truth)
        if f1 >= 0.8:
            return 0.7
        if f1 >= 0.5:
            return 0.4
        if f1 > 0:
            return 0.2
        return self._judge_reward(problem, prediction, ground_truth, "qa", source)

    def _code_reward(self, problem, prediction, ground_truth, test, entry_point, source):
        if not test:
            return self._judge_reward(problem, prediction, ground_truth, "code", "code_llm_judge")
        passed, _error = self._run_code_tests(prediction, test, entry_point)
        return 1.0 if passed else 0.0

    def _run_code_tests(self, code, test, entry_point):
        """Multiprocess isolation: a crashing or looping solution cannot take the trainer down."""
        ctx = multiprocessing.get_context()
        receiver, sender = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_run_tests_in_child, args=(code, test, entry_point, sender), daemon=True)
        proc.start()
        sender.close()
        try:
            if receiver.poll(self.test_timeout):
                return receiver.recv()
            return False, "timeout"
        except EOFError:
            return False, "child died"
        finally:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
            receiver.close()

    def _judge_reward(self, problem, prediction, ground_truth, problem_type, source):
        if not self.use_llm_judge:
            return 0.0
        return 1.0 if self._llm_judge_compare(problem, prediction, ground_truth, problem_type, source=source) else 0.0

    # -- the trainer's entry point ------------------------------------------------------
    def compute_reward(
        self,
        problem,
        prediction,
        ground_truth,
        problem_type="math",
        metadata=None,
        test=None,
        entry_point=None,
        source=None,
    ):
        self.eval_stats["total_evaluations"] += 1
        if prediction is None:
            reward = 0.0
        elif problem_type == "code":
            reward = self._code_reward(problem, prediction, ground_truth, test, entry_point, source)
        elif problem_type == "qa":
            reward = self._qa_reward(problem, prediction, ground_truth, source)
        else:
            reward = self._math_reward(problem, prediction, ground_truth, source)
        if reward >= 0.9:
            self.eval_stats["correct_predictions"] += 1  # also bumped by rules (their quirk)
        return reward

    def _llm_judge_compare(self, problem, prediction, ground_truth, problem_type, source=None):
        """One judge evaluation: up to 2 attempts; False on every failure."""
        template = JUDGE_TEMPLATES.get(source, FALLBACK_TEMPLATE)
        prompt = template.format(problem=problem, prediction=prediction, ground_truth=ground_truth)
        for _attempt in range(2):
            try:
                reply = self.client.chat.completions.create(
                    model=self.judge_model,
                    temperature=0.0,
                    max_tokens=800,
                    messages=[{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": prompt}],
                )
                content = reply.choices[0].message.content
                if content is None:  # a reasoning model that ran out of tokens
                    self.eval_stats["llm_judge_api_failures"] += 1
                    continue
                found = _VERDICT.findall(content) or re.findall(r"\b(True|False)\b", content)
                if not found:
                    self.eval_stats["llm_judge_parse_failures"] += 1
                    return False
                verdict = found[-1].lower() == "true"
                self.eval_stats["llm_judge_success"] += 1
                self.eval_stats["correct_predictions" if verdict else "incorrect_predictions"] += 1
                return verdict
            except Exception:  # noqa: BLE001
                self.eval_stats["llm_judge_api_failures"] += 1
        return False
