"""Reward computer of the user's shape, with the judge on an OpenAI-compatible server."""

import json
import re

import openai


class RewardComputer:
    """compute_reward (sync) with an LLM judge fallback and eval_stats counters."""

    def __init__(self, judge_url=None, use_llm_judge=True):
        self.use_llm_judge = use_llm_judge
        self.judge_url = judge_url or "http://localhost:8002/v1"
        self.client = openai.OpenAI(base_url=self.judge_url, api_key="sk-dummy", timeout=5.0)
        self.eval_stats = {
            "total_evaluations": 0,
            "llm_judge_success": 0,
            "llm_judge_parse_failures": 0,
            "llm_judge_api_failures": 0,
            "correct_predictions": 0,
            "incorrect_predictions": 0,
        }

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
        spec = json.loads(prediction)
        self.eval_stats["total_evaluations"] += 1
        if spec["kind"] == "reward_raise":
            raise ValueError("reward computation failed")
        if spec["kind"] == "judge":
            label = "code_llm_judge" if problem_type == "code" else source
            ok = self._llm_judge_compare(problem, prediction, ground_truth, problem_type, source=label)
            if spec.get("judge_fault2"):  # a second opinion: correct if either evaluation says so
                second = json.dumps({**spec, "judge_fault": spec["judge_fault2"]})
                ok = self._llm_judge_compare(problem, second, ground_truth, problem_type, source=label) or ok
            return 1.0 if ok else 0.0
        if spec["reward"] >= 0.9:
            self.eval_stats["correct_predictions"] += 1  # the rule-based quirk
        return spec["reward"]

    def _llm_judge_compare(self, problem, prediction, ground_truth, problem_type, source=None):
        fault = json.loads(prediction)["judge_fault"]
        header = {"ok_true": "ok", "ok_false": "ok"}.get(fault, fault)
        truth = "42" if fault != "ok_false" else "41"
        for _attempt in range(2):
            try:
                reply = self.client.chat.completions.create(
                    model="gpt-oss-120b",
                    temperature=0.0,
                    max_tokens=800,
                    messages=[
                        {"role": "system", "content": "You judge answers."},
                        {"role": "user", "content": f"Prediction: 42\nGround truth: {truth}"},
                    ],
                    extra_headers={"X-Judge-Fault": header},
                )
                content = reply.choices[0].message.content
                if content is None:
                    self.eval_stats["llm_judge_api_failures"] += 1  # counted per attempt (quirk)
                    continue
                m = re.search(r"<true_false>(True|False)</true_false>", content)
                if not m:
                    self.eval_stats["llm_judge_parse_failures"] += 1
                    return False
                self.eval_stats["llm_judge_success"] += 1
                verdict = m.group(1) == "True"
                key = "correct_predictions" if verdict else "incorrect_predictions"
                self.eval_stats[key] += 1
                return verdict
            except Exception:
                self.eval_stats["llm_judge_api_failures"] += 1
                return False
        return False
