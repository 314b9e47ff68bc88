"""4. WandB bytes per step: growth of the offline run's ``.wandb`` file per training step.

Each configuration is run twice in fresh processes, for a short and a long run; the
difference in ``.wandb`` size divided by the difference in steps is the per-step cost
(the run header, config, metric definitions and exit record cancel out). Every step
carries the full key set with all seven sources: samples with executor cost and
latency, GRPO groups, judge evaluations of every outcome with requests and tokens,
trainer scalars. WandB's system-metrics sampler is switched off
(``WANDB__DISABLE_STATS``): it writes on a timer, not per step. The records of the long
run are decoded (LevelDB-log framing + ``wandb_internal_pb2.Record``) to show what the
bytes are.
"""

from __future__ import annotations

import collections
import struct
from pathlib import Path
from typing import Any

from benchmarks import common, workload

SMOKE = {"short": 5, "long": 25, "per_step": 56, "configs": ["val_every_2", "val_every_2_no_tables"]}
FULL = {
    "short": 50,
    "long": 550,
    "per_step": 56,
    "configs": ["train_only", "val_every_2", "val_every_2_no_tables", "val_every_1"],
}
GOAL_BYTES = 3 * 1024
# name: (label, validation every N steps (0: never), WandB tables on)
CONFIGS = {
    "train_only": ("train row every step, no validation", 0, True),
    "val_every_2": ("train row every step + validation row every 2nd step", 2, True),
    "val_every_2_no_tables": ("same, tables off (table_every: 0, sample_table_rows: 0)", 2, False),
    "val_every_1": ("train row + validation row every step", 1, True),
}
GOAL_CONFIG = "val_every_2"
FLOOR_CONFIG = "val_every_2_no_tables"  # the floor is written without tables
GOAL_FLOOR_RATIO = 1.2

_BLOCK = 32768
_HEADER = 7


def read_records(path: Path) -> list[bytes]:
    """The records of a ``.wandb`` transaction log (LevelDB log framing, 7-byte file header)."""
    data = path.read_bytes()
    pos, records, pending = _HEADER, [], b""
    while pos + _HEADER <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + _HEADER])
        if kind == 0 and length == 0:
            pos += left
            continue
        chunk = data[pos + _HEADER : pos + _HEADER + length]
        pos += _HEADER + length
        if kind == 1:
            records.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            records.append(pending + chunk)
            pending = b""
    return records


def record_breakdown(path: Path) -> dict[str, list[int]]:
    """{record type: [count, bytes]} of a ``.wandb`` file."""
    from wandb.proto import wandb_internal_pb2 as pb

    out: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for data in read_records(path):
        record = pb.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type") or "unknown"
        if kind == "request":
            kind = f"request.{record.request.WhichOneof('request_type')}"
        out[kind][0] += 1
        out[kind][1] += len(data) + _HEADER
    return dict(out)


def worker(params: dict[str, Any]) -> dict[str, Any]:
    """One offline run of ``steps`` steps in this (fresh) process: its .wandb size."""
    import otel_grpo

    steps, per_step, val_every = params["steps"], params["per_step"], params["val_every"]
    tmp = Path(common.scratch_dir("bytes"))
    tables = {} if params.get("tables", True) else {"dashboard": {"table_every": 0, "sample_table_rows": 0}}
    tel = otel_grpo.setup({}, wandb={"mode": "offline", "dir": str(tmp), "project": "otel-grpo-bench", **tables})
    batch = common.make_samples(per_step, seed=4, k=4)
    val_batch = common.make_samples(max(14, per_step // 4), seed=5, k=1)
    assert workload.sources_covered(batch) and workload.sources_covered(val_batch)
    train_keys = val_keys = 0
    for step in range(1, steps + 1):
        val = val_batch if val_every and step % val_every == 0 else None
        workload.full_step(step, batch, val)
        for row in list(tel.rows)[-2:]:
            if any(k.startswith("val/") for k in row):
                val_keys = max(val_keys, len(row))
            else:
                train_keys = max(train_keys, len(row))
    tel.shutdown()
    files = sorted(tmp.rglob("*.wandb"))
    if not files:
        raise RuntimeError(f"no .wandb file under {tmp}")
    path = files[-1]
    run_dir = path.parent
    media = sum(f.stat().st_size for f in run_dir.rglob("*") if f.is_file() and "media" in f.parts)
    return {
        "size": path.stat().st_size,
        "records": record_breakdown(path) if params.get("breakdown") else {},
        "train_keys": train_keys,
        "val_keys": val_keys,
        "media": media,
    }


REPLAY_VARIANTS = {
    "define_metric with step_metric, WandB's default summary (every key; otel-grpo before this round)": (
        "last",
        False,
        False,
    ),
    "summary='none' for dataset/, judge/, grpo/, executor/, exporter/": ("some", False, False),
    "floats rounded to 6 significant digits": ("last", True, False),
    "validation rows without the cumulative judge/, cost/, exporter/ keys": ("last", False, True),
    "all three": ("some", True, True),
    "all three, and summary='none' for every key": ("none", True, True),
}


def _replay_run(steps: list[list[dict]], count: int, summary: str, rounded: bool, lean_val: bool) -> int:
    import wandb

    tmp = Path(common.scratch_dir("replay"))
    run = wandb.init(mode="offline", dir=str(tmp), project="otel-grpo-bench-replay")
    run.define_metric("train/step")
    for prefix in ("train", "dataset", "judge", "val", "cost", "grpo", "executor", "exporter"):
        none = summary == "none" or (summary == "some" and prefix not in ("train", "val", "cost"))
        if none:
            run.define_metric(f"{prefix}/*", step_metric="train/step", summary="none")
        else:
            run.define_metric(f"{prefix}/*", step_metric="train/step")
    for i in range(count):
        for row in steps[i % len(steps)]:
            if lean_val and any(k.startswith("val/") for k in row):
                row = {k: v for k, v in row.items() if k.startswith("val/") or k == "train/step"}
            if rounded:
                row = {k: float(f"{v:.6g}") if isinstance(v, float) else v for k, v in row.items()}
            run.log(row)
    run.finish()
    return sorted(tmp.rglob("*.wandb"))[-1].stat().st_size


def replay(params: dict[str, Any]) -> dict[str, float]:
    """Rows of the goal configuration (tables off) replayed into offline runs written in other ways."""
    import otel_grpo

    tel = otel_grpo.setup({}, wandb={"mode": "disabled"})
    batch = common.make_samples(56, seed=4, k=4)
    val_batch = common.make_samples(14, seed=5, k=1)
    steps = []
    for step in range(1, 41):
        workload.full_step(step, batch, val_batch if step % 2 == 0 else None)
        steps.append(_drain(tel))
    tel.shutdown()
    steps = steps[-20:]
    out = {}
    for label, variant in REPLAY_VARIANTS.items():
        short = _replay_run(steps, params["short"], *variant)
        long = _replay_run(steps, params["long"], *variant)
        out[label] = (long - short) / (params["long"] - params["short"])
    return out


def _drain(tel: Any) -> list[dict]:
    """The rows written since the last drain (the exporter keeps only its last 100, so take them all)."""
    rows = [dict(row) for row in tel.exporter.rows]
    tel.exporter.rows.clear()
    return rows


def _rows_of(steps: int, per_step: int, val_every: int) -> list[dict]:
    """The rows otel-grpo logs for ``steps`` steps of the workload (tables off), in order."""
    import otel_grpo

    tel = otel_grpo.setup({}, wandb={"mode": "disabled", "dashboard": {"table_every": 0, "sample_table_rows": 0}})
    batch = common.make_samples(per_step, seed=4, k=4)
    val_batch = common.make_samples(max(14, per_step // 4), seed=5, k=1)
    rows: list[dict] = []
    for step in range(1, steps + 1):
        workload.full_step(step, batch, val_batch if val_every and step % val_every == 0 else None)
        rows.extend(_drain(tel))
    tel.shutdown()
    return rows


def floor(params: dict[str, Any]) -> dict[str, Any]:
    """The floor: otel-grpo's rows (same keys, same values) written by a hand-written ``wandb.log`` per row.

    A plain ``wandb.init`` and one ``run.log(row)`` per row: no ``define_metric``, WandB's
    default summary. Returns the ``.wandb`` size.
    """
    import wandb

    rows = _rows_of(params["steps"], params["per_step"], params["val_every"])
    tmp = Path(common.scratch_dir("floor"))
    run = wandb.init(mode="offline", dir=str(tmp), project="otel-grpo-bench-floor")
    for row in rows:
        run.log(row)
    run.finish()
    return {"size": sorted(tmp.rglob("*.wandb"))[-1].stat().st_size, "rows": len(rows)}


def measure_floor(size: dict[str, Any], env: dict[str, str]) -> float:
    """Bytes per step of the hand-written floor for the goal configuration (tables off)."""
    val_every = CONFIGS[GOAL_CONFIG][1]
    sizes = [
        common.run_worker(
            "wandb_bytes", "floor", {"steps": size[n], "per_step": size["per_step"], "val_every": val_every}, 600, env
        )["size"]
        for n in ("short", "long")
    ]
    return (sizes[1] - sizes[0]) / (size["long"] - size["short"])


def run(params: dict[str, Any]) -> dict[str, Any]:
    """Section 4: short and long offline runs per configuration, in fresh processes."""
    size = SMOKE if params.get("smoke") else FULL
    env = common.clean_env(WANDB__DISABLE_STATS="true")
    rows, per_step, breakdown, keys = [], {}, {}, {}
    for config in size["configs"]:
        label, val_every, tables = CONFIGS[config]
        common_params = {"per_step": size["per_step"], "val_every": val_every, "tables": tables}
        short = common.run_worker("wandb_bytes", "worker", {**common_params, "steps": size["short"]}, 300, env)
        long = common.run_worker(
            "wandb_bytes", "worker", {**common_params, "steps": size["long"], "breakdown": True}, 600, env
        )
        per_step[config] = (long["size"] - short["size"]) / (size["long"] - size["short"])
        breakdown[config] = long["records"]
        keys[config] = (long["train_keys"], long["val_keys"])
        hist = long["records"].get("history", [0, 0])
        summ = long["records"].get("summary", [0, 0])
        media = (long["media"] - short["media"]) / (size["long"] - size["short"])
        rows.append(
            [
                label,
                f"{long['train_keys']} / {long['val_keys'] or '–'}",
                f"{short['size']:,} / {long['size']:,}",
                f"{per_step[config]:,.0f}",
                f"{hist[1] / max(hist[0], 1):,.0f} x {hist[0] / size['long']:.1f}",
                f"{summ[1] / max(summ[0], 1):,.0f} x {summ[0] / size['long']:.1f}",
                f"{media:,.0f}",
            ]
        )
    measured = per_step[GOAL_CONFIG]
    floor_bytes = measure_floor(size, env)
    ratio = per_step[FLOOR_CONFIG] / floor_bytes
    goals = [
        common.goal(
            f"bytes per step ({CONFIGS[GOAL_CONFIG][0]})",
            f"<= {GOAL_BYTES:,} B (3 KB)",
            f"{measured:,.0f} B",
            measured <= GOAL_BYTES,
        ),
        common.goal(
            "or: bytes per step against the hand-written floor (the same rows by a plain wandb.log, tables off)",
            f"<= {GOAL_FLOOR_RATIO}x",
            f"{ratio:.2f}x ({per_step[FLOOR_CONFIG]:,.0f} vs {floor_bytes:,.0f} B)",
            ratio <= GOAL_FLOOR_RATIO,
        ),
    ]
    rows.append(
        [
            "hand-written floor: the same rows (tables off), plain wandb.init + run.log(row)",
            "same",
            "–",
            f"{floor_bytes:,.0f}",
            "–",
            "–",
            "–",
        ]
    )
    profiles = []
    if measured > GOAL_BYTES:
        lines = [f"{'record type':<22} {'count':>7} {'bytes':>10} {'bytes/step':>10}"]
        records = breakdown[GOAL_CONFIG]
        for kind, (count, nbytes) in sorted(records.items(), key=lambda kv: -kv[1][1]):
            lines.append(f"{kind:<22} {count:>7} {nbytes:>10,} {nbytes / size['long']:>10,.0f}")
        profiles.append(
            {"title": f"records of the {size['long']}-step run ({CONFIGS[GOAL_CONFIG][0]})", "text": "\n".join(lines)}
        )
    analysis, tables = [], []
    if measured > GOAL_BYTES:
        rec = breakdown[GOAL_CONFIG]
        steps_long = size["long"]
        hist, summ = rec.get("history", [0, 0]), rec.get("summary", [0, 0])
        art = rec.get("artifact", [0, 0])[1] + rec.get("files", [0, 0])[1]
        train_keys = keys[GOAL_CONFIG][0]
        analysis.append(
            f"- Per step: history {hist[1] / steps_long:,.0f} B, summary {summ[1] / steps_long:,.0f} B, table "
            f"artifact/file records {art / steps_long:,.0f} B. The summary-update records now carry only the "
            "keys whose latest value the run summary keeps (otel_grpo.keys.SUMMARY_KEYS and the per-dataset "
            f"ones); every other key is history only. A train row has {train_keys} keys at ~40 B each in the "
            "history record, three quarters of it the key names themselves (dataset/{source}/... for 7 "
            "datasets x 10 figures), the rest the JSON-encoded value (up to 17 digits) and protobuf framing; "
            "validation rows repeat the cumulative judge/, cost/ and exporter/ keys. 3 KB a step would need "
            "fewer keys per row (e.g. per-dataset figures every N steps), which the key contract does not allow."
        )
    if measured > GOAL_BYTES and not params.get("smoke"):
        replay = common.run_worker("wandb_bytes", "replay", {"short": 20, "long": 220}, 600, env)
        tables.append(
            {
                "title": "What the bytes would be: the same rows (tables off, validation every 2nd step) "
                "replayed into offline runs, written differently",
                "columns": ["variant", "bytes per step"],
                "rows": [[label, f"{value:,.0f}"] for label, value in replay.items()],
            }
        )
    notes = [
        f"Short run {size['short']} steps, long run {size['long']} steps, {size['per_step']} train samples per step "
        "(7 sources x 2 questions x K=4), 14 validation samples; per step = Δ file size / Δ steps.",
        "Keys: train row / validation row. History and summary columns: bytes per record x records per step "
        "(framing included); WandB writes a summary update record next to every history row.",
        "Floor: the rows otel-grpo logs for the same steps (tables off), written by a hand-written loop: "
        "`run = wandb.init(mode='offline')`, then `run.log(row)` per row; no define_metric, WandB's default "
        "summary. It is what the same keys and values cost in WandB without otel-grpo.",
        "Table files: WandB writes each logged table as a JSON file under the run's media/ directory, outside "
        "the .wandb file; their growth per step is shown separately and is not counted against the goal.",
    ]
    return {
        "title": "4. WandB bytes per step",
        "params": size,
        "columns": [
            "configuration",
            "keys (train / val row)",
            ".wandb bytes (short / long run)",
            "bytes per step",
            "history record B x per step",
            "summary record B x per step",
            "table files B per step",
        ],
        "rows": rows,
        "goals": goals,
        "notes": notes,
        "tables": tables,
        "analysis": analysis,
        "profiles": profiles,
        "raw": {"per_step": per_step, "records": breakdown, "keys": keys, "floor": floor_bytes},
    }


if __name__ == "__main__":
    common.worker_main({"worker": worker, "replay": replay, "floor": floor, "run": run})
