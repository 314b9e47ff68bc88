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


def _captured_call(call_id: int):
    """The records of one worker call (``call_id``) in which every recorder method was called once."""
    from otel_grpo.instrumentation.ray.records import CallRecords, begin_call, end_call

    records = CallRecords(call_id)
    token = begin_call(records)
    try:
        _record_everything(CapturingRecorder())
    finally:
        end_call(records, token)
    return records


def _record_everything(recorder) -> None:
    """One of each recording call, as the role wrappers make them inside a remote call."""
    from otel_grpo.recording.context import reset_sample, set_sample

    state = recorder.new_sample("gsm8k", "math", group="q1")
    token = set_sample(state)
    try:
        recorder.record_executor_run(0.02, 0.5, True, source="gsm8k")
        recorder.record_executor_llm_request(error_type=None, source="gsm8k")
        recorder.record_judge_request(input_tokens=1000, output_tokens=10, source="gsm8k")
        recorder.record_judge_evaluation("success", True, 0.2, source="gsm8k")
        recorder.genai_duration.record(0.2, {"gen_ai.operation.name": "chat"})
        recorder.record_sample(1.0, 1.0, state=state)
    finally:
        reset_sample(token)
    recorder.record_workflow("math", 0.0, cost="n/a", success=False)  # an invalid cost, judged on the driver
    recorder.record_scalars({"loss": 0.5})


def test_a_calls_records_are_typed_picklable_and_replay_as_recorded_in_one_process():
    """The records a worker ships (one typed record per recorder call) replay to the row one process writes."""
    import contextvars
    import pickle

    import otel_grpo
    from otel_grpo.instrumentation.ray.events import CallPayload, ExecutorRun, NewSample, Scalars, Workflow
    from otel_grpo.instrumentation.ray.replay import Lane, replay_call

    records = _captured_call(7)
    payload = pickle.loads(pickle.dumps(records.payload(None)))
    assert isinstance(payload, CallPayload) and payload.call_id == 7
    kinds = [type(event) for event in payload.events]
    assert kinds[0] is NewSample and ExecutorRun in kinds and kinds[-2:] == [Workflow, Scalars]
    assert len(pickle.dumps(payload)) < 2500  # small on the wire

    rows = {}
    for way in ("one process", "replayed"):
        tel = otel_grpo.setup(None, wandb={"mode": "disabled"}, judge={"price_input_per_mtok": 1.0})
        with tel.step(1):
            if way == "one process":
                _record_everything(tel.recorder)
            else:
                outcome = replay_call(tel.recorder, payload, contextvars.copy_context(), Lane("task"))
                assert outcome is not None and outcome.lost == 0
        rows[way] = {k: v for k, v in tel.rows[-1].items() if "latency" not in k}
        tel.shutdown()
    assert rows["replayed"] == rows["one process"]
    assert rows["replayed"]["cost/executor_calls"] == 2 and rows["replayed"]["cost/invalid_cost_count"] == 1


def test_records_and_tags_travel_as_plain_lists_that_read_back_the_same():
    """On the wire a call's records and its tag are lists of plain values (no pickle per call); read back,
    they are the same records and the same tag; anything that is not our wire form passes unchanged."""
    import pytest

    raylet = pytest.importorskip("ray._raylet")
    from otel_grpo.instrumentation.ray.events import WIRE_MARK, from_wire, to_wire
    from otel_grpo.instrumentation.ray.records import CallRecords, begin_call, end_call
    from otel_grpo.instrumentation.ray.worker import CallTag
    from otel_grpo.recording.context import reset_sample, set_sample

    worker = CapturingRecorder()
    records = CallRecords(7)
    token = begin_call(records)
    try:
        state = worker.new_sample("gsm8k", "math", group=12345)
        sample_token = set_sample(state)
        try:
            worker.record_executor_run(0.02, 0.5, True, source="gsm8k")
            worker.record_judge_evaluation("success", True, 0.2, source="gsm8k")
            worker.record_sample(1.0, 1.0, state=state)
        finally:
            reset_sample(sample_token)
    finally:
        end_call(records, token)
    payload = records.payload(None)
    pickled: list = []

    def python_object(value):  # what Ray's serializer would pickle
        pickled.append(value)
        return len(pickled) - 1

    wire = raylet.MessagePackSerializer.dumps(to_wire(payload), python_object)
    assert pickled == []
    assert from_wire(raylet.MessagePackSerializer.loads(wire, pickled.__getitem__)) == payload

    tag = CallTag(3, "train", 12, {"traceparent": "00-ab-cd-01"}, 1, ("session", None))
    wire = raylet.MessagePackSerializer.dumps(tag.to_wire(), python_object)
    assert pickled == []
    assert CallTag(*raylet.MessagePackSerializer.loads(wire, pickled.__getitem__)) == tag._replace(
        session=["session", None]
    )
    assert from_wire(payload) is payload and from_wire([WIRE_MARK]) == [WIRE_MARK] and from_wire(None) is None

    # a nested call's records that completed before its parent ended travel inline, read back the same
    parent = payload._replace(call_id=8, nested=(to_wire(payload), "a reference"))
    wire = raylet.MessagePackSerializer.dumps(to_wire(parent), python_object)
    assert pickled == []
    read = from_wire(raylet.MessagePackSerializer.loads(wire, pickled.__getitem__))
    assert read.nested == (payload, "a reference") and read == parent._replace(nested=(payload, "a reference"))


def test_a_late_calls_records_count_spend_and_judge_figures_but_no_sample():
    """Replayed late (its window closed first): executor runs, cost and judge figures count; samples don't."""
    import contextvars

    import otel_grpo
    from otel_grpo.instrumentation.ray.replay import Lane, replay_call

    records = _captured_call(1)
    tel = otel_grpo.setup(None, wandb={"mode": "disabled"})
    with tel.step(1):
        context = contextvars.copy_context()  # the call was made in step 1
    with tel.step(2):
        tel.record_sample(1.0, source="gsm8k")
        replay_call(tel.recorder, records.payload(None), context, Lane("task"), late=True)
    row = tel.rows[-1]
    tel.shutdown()
    assert row["dataset/gsm8k/count"] == 1  # step 2's own sample only
    assert "dataset/math/count" not in row
    assert row["cost/executor_calls"] == 2 and row["judge/total_calls"] == 1 and row["cost/judge_calls"] == 1
    assert row["exporter/late_samples"] == 2
    assert "train/loss" not in row  # a late call's scalars belong to no step


def test_the_exit_wait_reads_its_variable_when_it_is_needed(monkeypatch):
    from otel_grpo.instrumentation.ray.calls import WAIT_S_DEFAULT, exit_wait_s

    monkeypatch.delenv("OTEL_GRPO_RAY_WAIT_S", raising=False)
    assert exit_wait_s() == WAIT_S_DEFAULT == 5.0
    monkeypatch.setenv("OTEL_GRPO_RAY_WAIT_S", "0.5")
    assert exit_wait_s() == 0.5
    for bad in ("soon", "-1", "inf", "nan"):
        monkeypatch.setenv("OTEL_GRPO_RAY_WAIT_S", bad)
        assert exit_wait_s() == WAIT_S_DEFAULT
