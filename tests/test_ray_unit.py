"""Ray scale-out pieces that need no Ray cluster: the event capture covers the recorder, Ray stays optional."""

from __future__ import annotations

import inspect
import subprocess
import sys
import textwrap

from otel_grpo.instrumentation.ray.records import RECORDED_METHODS, CapturingRecorder, portable
from otel_grpo.instrumentation.ray.worker import TAG_PARAM, tagged_signature
from otel_grpo.recording.recorder import Recorder


def test_every_recording_method_of_the_recorder_is_shipped_from_workers():
    """A recorder method added later must be captured too, or workers would silently lose it."""
    public = {
        name
        for name, member in inspect.getmembers(Recorder, inspect.isfunction)
        if name.startswith("record_") or name in ("new_sample", "claim_pending")
    }
    assert public <= set(RECORDED_METHODS), f"not shipped from Ray workers: {sorted(public - set(RECORDED_METHODS))}"
    for name in RECORDED_METHODS:
        assert name in CapturingRecorder.__dict__, name


def test_values_cross_processes_as_the_driver_would_judge_them():
    assert portable("0.0125") == "0.0125" and portable(None) is None and portable(3) == 3
    assert portable(float("nan")) != portable(float("nan"))  # NaN stays NaN: counted invalid on the driver

    class Price:
        def __float__(self):
            return 0.5

    assert portable(Price()) == 0.5
    assert portable(object()).startswith("<unreadable")


def test_the_tag_keyword_goes_before_any_var_keyword():
    def f(a, b=1, *args, c, **kwargs):
        return a

    names = [p.name for p in tagged_signature(inspect.signature(f)).parameters.values()]
    assert names == ["a", "b", "args", "c", TAG_PARAM, "kwargs"]


def test_without_ray_nothing_changes(tmp_path):
    """With ``ray`` not importable, otel-grpo imports, records and writes rows as before."""
    script = textwrap.dedent(
        """
        import sys
        sys.modules["ray"] = None  # "pip uninstall ray"
        import otel_grpo
        tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
        with otel_grpo.step(1):
            otel_grpo.record_executor_run(0.5, source="gsm8k")
            otel_grpo.record_sample(1.0, source="gsm8k")
        row = tel.rows[-1]
        assert row["dataset/gsm8k/count"] == 1 and row["cost/total_cost"] == 0.5, row
        assert not any("ray" in key for key in row), row
        try:
            import ray  # noqa: F401
        except ImportError:
            print("ok")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")


def test_every_dashboard_and_alert_query_sums_across_processes():
    """Driver and Ray workers export with their own service.instance.id (Prometheus ``instance``).

    Workers export spans only (the driver publishes every figure), but every query must stay
    right whatever exports: counters are summed over ``instance`` (never grouped by it), except
    the two per-process health rules (a stalled or failing trainer process), gauges take ``max``.
    """
    import json
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    exprs = []
    for path in (root / "config" / "grafana" / "dashboards").glob("*.json"):

        def walk(node):
            if isinstance(node, dict):
                for key, value in node.items():
                    if key == "expr" and isinstance(value, str):
                        exprs.append(("dashboard", value))
                    else:
                        walk(value)
            elif isinstance(node, list):
                for item in node:
                    walk(item)

        walk(json.loads(path.read_text()))
    rules = (root / "config" / "prometheus" / "alerts.yml").read_text()
    per_process = ("grpo:train_steps:increase15m", "grpo:exporter_problems:increase10m", "GrpoTrainingStalled")
    blocks = re.split(r"\n      - (?=record:|alert:)", rules)[1:]
    for block in blocks:
        if not block.startswith(tuple(f"{kind}: {name}" for kind in ("record", "alert") for name in per_process)):
            exprs.append(("rule", block))
    assert len(exprs) > 20
    grouped_by_instance = [e for e in exprs if re.search(r"by \([^)]*\binstance\b", e[1])]
    assert not grouped_by_instance, grouped_by_instance
    raw_counters = [e for e in exprs if re.search(r"(?<![(\w])grpo_\w+_total\{", e[1]) and "sum" not in e[1]]
    assert not raw_counters, raw_counters
