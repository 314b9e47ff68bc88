"""An independent, deliberately plain statement of the key contract (docs/keys.md) used to compute expected rows.

It shares no code with otel_grpo: it works from the list of events a test generated.
Events are dicts:
- sample: {"source", "ptype", "reward", "correctness" (None = reward), "cost", "exec": "ok"|"fail"|"none",
           "group" (optional), "llm_requests" (optional, default 0: executor LLM requests its executor
           run made), "judges" (optional: judge events made while serving this sample; they count
           as the sample's source whatever their own "source" says)}; exec "fail" means reward 0 /
           correctness 0 whatever "reward" says.
- judge: {"source", "outcome", "verdict", "requests"} ("requests": its judge requests, default 1)
A window is {"split": "train"|"val", "step", "samples", "judges", "scalars", "raises",
"judge_requests" (optional, default 0: judge requests made outside any judge evaluation, i.e. classified
by the judge endpoint rule, e.g. a judge reached inline from compute_reward)}.

Which HTTP requests are judge requests (docs/terms.md, "judge request") is restated in
:func:`request_role`: the innermost open call decides, then the configured judge endpoint.
"""

from __future__ import annotations

import math
from typing import Any

PTYPE = {
    "gsm8k": "math",
    "math": "math",
    "humaneval": "code",
    "mbpp": "code",
    "hotpotqa": "qa",
    "commonsenseqa": "qa",
    "mmlu": "qa",
}
THRESHOLD = 0.9
JUDGE_PREFIXES = ("/v1/chat/completions", "/v1/completions")  # the default judge.path_prefixes


def request_role(
    innermost: str | None,
    method: str,
    port: int,
    path: str,
    judge_ports: tuple[int, ...],
    judge_prefixes: tuple[str, ...] = JUDGE_PREFIXES,
) -> str | None:
    """What docs/terms.md calls one HTTP request: "judge", "executor" (an executor LLM request) or None.

    ``innermost`` is the innermost open call when the request is made: "judge" (a judge
    evaluation), "executor" (an executor run) or None. Only "judge" requests count in
    cost/judge_calls; only "executor" ones in executor/llm_requests. The endpoint rule is
    restated for ports only (judge.hosts left empty, as the tests configure it).
    """
    genai = method.upper() == "POST" and (path.endswith("/completions") or path.endswith("/completions/"))
    if innermost == "judge":
        return "judge"  # any request: any method, host, port or path
    if innermost == "executor" and genai:
        return "executor"  # never a judge request, even on the judge's own port
    if method.upper() == "POST" and port in judge_ports and path.startswith(judge_prefixes):
        return "judge"  # the configured endpoint rule, e.g. a judge reached inline from compute_reward
    return None


def norm_source(source: Any) -> str:
    return str(source).strip().lower() if source not in (None, "") else "unknown"


def norm_ptype(ptype: Any, source: str) -> str:
    return str(ptype).strip().lower() if ptype not in (None, "") else PTYPE.get(source, "unknown")


def cost_value(cost: Any) -> tuple[float, bool]:
    try:
        value = float(cost)
    except (TypeError, ValueError):
        return 0.0, True
    if not math.isfinite(value) or value < 0:
        return 0.0, True
    return value, False


def scored_by(s: dict) -> str:
    """The "scored by" of docs/keys.md: not_scored (failed execution), rule, judge or judge_failed."""
    if s.get("exec") == "fail":
        return "not_scored"
    outcomes = [j["outcome"] for j in s.get("judges", ())]
    if not outcomes:
        return "rule"
    return "judge" if "success" in outcomes else "judge_failed"


def sample_values(s: dict) -> tuple[str, str, float, float]:
    src = norm_source(s.get("source"))
    pt = norm_ptype(s.get("ptype"), src)
    if s.get("exec") == "fail":
        return src, pt, 0.0, 0.0
    reward = float(s["reward"])
    correctness = reward if s.get("correctness") is None else float(s["correctness"])
    return src, pt, reward, correctness


class Oracle:
    """Cumulative state across windows, producing the row docs/keys.md asks for per window."""

    def __init__(self) -> None:
        self.judge_outcomes = {"success": 0, "parse_failure": 0, "api_failure": 0}
        self.verdicts = {"correct": 0, "incorrect": 0}
        self.judge_by_source: dict[str, list[int]] = {}
        self.judge_requests = 0
        self.executor_llm_requests = 0
        self.cost_total = 0.0
        self.exec_runs = 0
        self.invalid_costs = 0
        self.rows_written = 0
        self.train_cost = 0.0  # every train attempt's executor cost (judge cost is unpriced: 0)
        self.train_correct = 0
        # step -> (executor cost of its attempts that raised, whether any of them ran an executor)
        self.carried: dict[int, tuple[float, bool]] = {}

    def _spend(self, window: dict) -> tuple[dict[str, float], dict[str, Any]]:
        cost_by_source: dict[str, float] = {}
        ok_by_source: dict[str, int] = {}
        runs_by_source: dict[str, int] = {}
        judges = list(window["judges"])
        for s in window["samples"]:
            judges += [{**j, "source": norm_source(s.get("source"))} for j in s.get("judges", ())]
            self.executor_llm_requests += s.get("llm_requests", 0)
            if s.get("exec", "ok") == "none":
                continue
            value, invalid = cost_value(s.get("cost"))
            src = norm_source(s.get("source"))
            self.cost_total += value
            self.exec_runs += 1
            self.invalid_costs += invalid
            cost_by_source[src] = cost_by_source.get(src, 0.0) + value
            runs_by_source[src] = runs_by_source.get(src, 0) + 1
            if s.get("exec", "ok") == "ok":
                ok_by_source[src] = ok_by_source.get(src, 0) + 1
        self.judge_requests += window.get("judge_requests", 0)
        step_judges = {"success": 0, "parse_failure": 0, "api_failure": 0}
        for j in judges:
            src = norm_source(j["source"])
            self.judge_outcomes[j["outcome"]] += 1
            step_judges[j["outcome"]] += 1
            if j["outcome"] == "success":
                self.verdicts["correct" if j["verdict"] else "incorrect"] += 1
            entry = self.judge_by_source.setdefault(src, [0, 0])
            entry[0] += 1
            entry[1] += j["outcome"] == "success"
            self.judge_requests += j.get("requests", 1)
        if window["split"] == "train":
            self.train_cost += sum(cost_by_source.values())
        extra = {"_ok": sum(ok_by_source.values()), "_ok_by_source": ok_by_source, "_runs_by_source": runs_by_source}
        return cost_by_source, {**extra, **step_judges}

    def window_row(self, window: dict) -> dict[str, Any] | None:
        """The row for ``window`` (None: a step that raised, or an empty validation)."""
        cost_by_source, extra = self._spend(window)
        runs = extra["_runs_by_source"]
        step_cost = sum(cost_by_source.values())
        spent = sum(runs.values()) > 0  # judge cost is unpriced (0) in these scripts
        if window.get("raises"):
            if window["split"] == "train":
                cost, was_spent = self.carried.get(window["step"], (0.0, False))
                self.carried[window["step"]] = (cost + step_cost, was_spent or spent)
            return None
        values = [sample_values(s) for s in window["samples"]]
        row: dict[str, Any] = {"train/step": window["step"]}
        n = len(values)
        if window["split"] == "train":
            for name, value in window.get("scalars", {}).items():
                row[f"train/{name}"] = value
            if n:
                rewards = [v[2] for v in values]
                row["train/avg_reward"] = sum(rewards) / n
                row["train/max_reward"] = max(rewards)
                row["train/min_reward"] = min(rewards)
                row["train/accuracy"] = 100.0 * sum(v[3] >= THRESHOLD for v in values) / n
            for pt in sorted({v[1] for v in values}):
                group = [v for v in values if v[1] == pt]
                row[f"train/accuracy_{pt}"] = 100.0 * sum(v[3] >= THRESHOLD for v in group) / len(group)
                row[f"train/avg_score_{pt}"] = sum(v[3] for v in group) / len(group)
                row[f"train/count_{pt}"] = len(group)
            for src in sorted({v[0] for v in values}):
                group = [v for v in values if v[0] == src]
                row[f"dataset/{src}/accuracy"] = 100.0 * sum(v[3] >= THRESHOLD for v in group) / len(group)
                row[f"dataset/{src}/count"] = len(group)
                row[f"dataset/{src}/avg_reward"] = sum(v[2] for v in group) / len(group)
                if runs.get(src):  # per executor run; omitted for a source without one
                    row[f"dataset/{src}/avg_cost"] = cost_by_source.get(src, 0.0) / runs[src]
            self._groups(window, row)
            total = sum(extra[k] for k in ("success", "parse_failure", "api_failure"))
            if total:
                for k in ("success", "parse_failure", "api_failure"):
                    row[f"judge/step_{k}_rate"] = extra[k] / total
            self._integrity(window, row, "train", cost_by_source, extra)
            self.train_correct += sum(v[3] >= THRESHOLD for v in values)
            carried, carried_spent = self.carried.pop(window["step"], (0.0, False))
            if spent or carried_spent:  # omitted when nothing in the step carried a cost
                row["cost/step_cost"] = step_cost + carried
        else:
            if not n:
                return None
            row["val/accuracy"] = 100.0 * sum(v[3] >= THRESHOLD for v in values) / n
            row["val/avg_correctness"] = sum(v[3] for v in values) / n
            if sum(runs.values()):  # over the pass's executor runs; omitted without one
                row["val/success_rate"] = 100.0 * extra["_ok"] / sum(runs.values())
                row["val/avg_cost"] = sum(cost_by_source.values()) / sum(runs.values())
            for src in sorted({v[0] for v in values}):
                group = [v for v in values if v[0] == src]
                row[f"val/{src}/accuracy"] = 100.0 * sum(v[3] >= THRESHOLD for v in group) / len(group)
                row[f"val/{src}/count"] = len(group)
                if runs.get(src):
                    row[f"val/{src}/avg_cost"] = cost_by_source.get(src, 0.0) / runs[src]
            self._integrity(window, row, "val", cost_by_source, extra)
        self._cumulative(row)
        return row

    def _integrity(self, window: dict, row: dict[str, Any], split: str, cost_by_source: dict, extra: dict) -> None:
        """docs/keys.md "Reward integrity and cost insight" for one window's samples."""
        judged_run = sum(self.judge_outcomes.values()) > 0
        total_key = (lambda f: f"train/{f}") if split == "train" else (lambda f: f"val/{f}")
        source_key = (lambda s, f: f"dataset/{s}/{f}") if split == "train" else (lambda s, f: f"val/{s}/{f}")
        all_scored = all_judged = all_failed = 0
        samples = window["samples"]
        for src in sorted({norm_source(s.get("source")) for s in samples}):
            mine = [s for s in samples if norm_source(s.get("source")) == src]
            by = [scored_by(s) for s in mine]
            correct = [sample_values(s)[3] >= THRESHOLD for s in mine]
            scored = sum(b != "not_scored" for b in by)
            judged = sum(b in ("judge", "judge_failed") for b in by)
            failed = sum(b == "judge_failed" for b in by)
            all_scored, all_judged, all_failed = all_scored + scored, all_judged + judged, all_failed + failed
            if judged_run and scored:
                row[source_key(src, "judge_share")] = judged / scored
                row[source_key(src, "judge_failed_share")] = failed / scored
            kept = [c for c, b in zip(correct, by, strict=True) if b != "judge_failed"]
            if kept:
                row[source_key(src, "accuracy_excl_judge_failed")] = 100.0 * sum(kept) / len(kept)
            runs = extra["_runs_by_source"].get(src, 0)
            if split == "train" and runs:  # over executor runs; omitted without one
                row[source_key(src, "exec_success_rate")] = 100.0 * extra["_ok_by_source"].get(src, 0) / runs
            if sum(correct) and runs:  # omitted when nothing of the source carried a cost
                row[source_key(src, "cost_per_correct")] = cost_by_source.get(src, 0.0) / sum(correct)
        if judged_run and all_scored:
            row[total_key("judge_share")] = all_judged / all_scored
            row[total_key("judge_failed_share")] = all_failed / all_scored
        kept = [sample_values(s)[3] >= THRESHOLD for s in samples if scored_by(s) != "judge_failed"]
        if kept:
            row[total_key("accuracy_excl_judge_failed")] = 100.0 * sum(kept) / len(kept)

    def _groups(self, window: dict, row: dict[str, Any]) -> None:
        groups: dict[Any, list] = {}
        for s in window["samples"]:
            if s.get("group") is None:
                continue
            src, _pt, reward, _c = sample_values(s)
            groups.setdefault(s["group"], [src, []])[1].append(reward)
        per_source: dict[str, list[int]] = {}
        for src, rewards in groups.values():
            if len(rewards) < 2:
                continue
            entry = per_source.setdefault(src, [0, 0])
            entry[0] += 1
            entry[1] += len(set(rewards)) == 1
        for src, (count, zero) in per_source.items():
            row[f"grpo/{src}/zero_advantage_rate"] = zero / count
        if per_source:
            row["grpo/zero_advantage_rate"] = sum(z for _c, z in per_source.values()) / sum(
                c for c, _z in per_source.values()
            )

    def _cumulative(self, row: dict[str, Any]) -> None:
        total = sum(self.judge_outcomes.values())
        if total:
            row["judge/total_calls"] = total
            for k, v in self.judge_outcomes.items():
                row[f"judge/{k}_rate"] = v / total
            row["judge/correct_predictions"] = self.verdicts["correct"]
            row["judge/incorrect_predictions"] = self.verdicts["incorrect"]
            if sum(self.verdicts.values()):
                row["judge/correct_ratio"] = self.verdicts["correct"] / sum(self.verdicts.values())
            for src, (evals, success) in self.judge_by_source.items():
                row[f"judge/{src}_success_rate"] = success / evals
        if self.exec_runs:
            row["cost/total_cost"] = self.cost_total
            row["cost/executor_calls"] = self.exec_runs
            row["cost/avg_cost_per_sample"] = self.cost_total / self.exec_runs
        if self.exec_runs or self.executor_llm_requests:
            row["executor/llm_requests"] = self.executor_llm_requests
        if self.exec_runs or self.judge_requests:
            row["cost/judge_calls"] = self.judge_requests
            row["cost/judge_cost"] = 0.0
            row["cost/invalid_cost_count"] = self.invalid_costs
        if self.train_correct and self.exec_runs:
            row["cost/cost_per_correct"] = self.train_cost / self.train_correct
        self.rows_written += 1
        row["exporter/rows_written"] = self.rows_written
        row["exporter/rows_dropped"] = 0
        row["exporter/export_errors"] = 0


def expected_rows(windows: list[dict]) -> list[dict[str, Any]]:
    """The rows docs/keys.md asks for, in order, for a scripted run."""
    oracle = Oracle()
    rows = []
    for window in windows:
        row = oracle.window_row(window)
        if row is not None:
            rows.append(row)
    return rows


def assert_rows_equal(
    actual: list[dict[str, Any]], expected: list[dict[str, Any]], ignore_prefixes: tuple[str, ...] = ()
) -> None:
    """Every key of every row equal (floats to 1e-9 relative), no key missing or extra."""
    assert len(actual) == len(expected), f"{len(actual)} rows written, {len(expected)} expected"
    for i, (got, want) in enumerate(zip(actual, expected, strict=True)):
        skip = ("_", "dataset_statistics.", "samples.", *ignore_prefixes)  # tables are tested elsewhere
        got = {k: v for k, v in got.items() if not k.startswith(skip)}
        want = {k: v for k, v in want.items() if not k.startswith(ignore_prefixes)}
        missing, extra = sorted(set(want) - set(got)), sorted(set(got) - set(want))
        assert not missing and not extra, f"row {i}: missing {missing}, unexpected {extra}"
        for key, value in want.items():
            assert math.isclose(float(got[key]), float(value), rel_tol=1e-9, abs_tol=1e-12), (
                f"row {i} {key}: got {got[key]!r}, expected {value!r}"
            )
