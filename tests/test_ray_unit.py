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
