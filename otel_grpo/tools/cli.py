"""``otel-grpo`` command line: demo | run | init | judge-server | inspect | dashboard | report | check-config."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from otel_grpo import keys
from otel_grpo.extras import MissingExtraError, require_extra
from otel_grpo.instrumentation.bootstrap import CONFIG_ENV

# ``inspect`` groups a run's keys like the workspace's panels: (title, key prefixes).
PANEL_GROUPS: list[tuple[str, tuple[str, ...]]] = [
    (title, tuple(keys.prefix(namespace) for namespace in namespaces)) for title, namespaces in keys.PANEL_GROUPS
]
# The reward-integrity keys live in several namespaces (train/, dataset/, val/, cost/): they
# form a group of their own, whatever their prefix, where the workspace has its section.
INTEGRITY_AFTER_DEFAULT = "Judge"


def _group_titles() -> list[str]:
    """The groups in the workspace's order: the namespace groups, the reward-integrity group
    after the workspace section before it, ``Other`` last."""
    titles = [title for title, _ in PANEL_GROUPS]
    after = INTEGRITY_AFTER_DEFAULT
    try:
        from otel_grpo.tools.dashboards.wandb_workspace import SECTION_NAMES

        names = list(SECTION_NAMES)
        if keys.INTEGRITY_GROUP in names and names.index(keys.INTEGRITY_GROUP) > 0:
            after = names[names.index(keys.INTEGRITY_GROUP) - 1]
    except ImportError:  # pragma: no cover - the workspace module needs only the core
        pass
    at = titles.index(after) + 1 if after in titles else len(titles)
    return [*titles[:at], keys.INTEGRITY_GROUP, *titles[at:], "Other"]


def latest_values(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The last value written for every key of a run's history."""
    latest: dict[str, Any] = {}
    for row in history:
        for key, value in row.items():
            if not key.startswith("_"):
                latest[key] = value
    return latest


def value_steps(history: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``train/step`` of the last row that wrote each key of a run's history.

    A per-step key a later row left out (nothing was measured there) keeps the step of
    the row its latest value comes from, which ``inspect`` prints next to the value.
    """
    steps: dict[str, Any] = {}
    for row in history:
        for key in row:
            if not key.startswith("_"):
                steps[key] = row.get(keys.STEP)
    return steps


def group_keys(latest: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Group ``{key: value}`` like the workspace's panels (keys of no panel group: ``Other``).

    A reward-integrity key (:func:`otel_grpo.keys.is_integrity_key`) goes to the
    ``Reward integrity`` group, not to its namespace's.
    """
    grouped: dict[str, dict[str, Any]] = {title: {} for title in _group_titles()}
    for key in sorted(latest):
        if keys.is_integrity_key(key):
            grouped[keys.INTEGRITY_GROUP][key] = latest[key]
            continue
        for title, prefixes in PANEL_GROUPS:
            if key.startswith(prefixes):
                grouped[title][key] = latest[key]
                break
        else:
            grouped["Other"][key] = latest[key]
    return {title: keys for title, keys in grouped.items() if keys}


def _tables(rows: list[dict[str, Any]]) -> dict[str, str]:
    """``{table: "N rows x M columns, at train/step S"}`` for the latest copy of each logged table.

    A logged ``wandb.Table`` is a file reference in the history (``_type``, ``path``,
    ``sha256``, ``artifact_path``, ...); only its shape and step are worth reading.
    """
    from otel_grpo.tools.runreader import table_name

    found: dict[str, str] = {}
    for row in rows:
        for key, value in row.items():
            name = table_name(key)
            if name is None or (key != name and not key.endswith("._type")):
                continue
            ref = (
                value
                if isinstance(value, dict)
                else {k[len(name) + 1 :]: v for k, v in row.items() if k.startswith(name + ".")}
            )
            shape = f"{ref.get('nrows', '?')} rows x {ref.get('ncols', '?')} columns"
            found[name] = f"table, {shape}, at {keys.STEP} {row.get(keys.STEP)}"
    return found


def inspect_summary(records: Any) -> dict[str, Any]:
    """What ``otel-grpo inspect`` shows: otel-grpo's rows, their latest values by panel, units, tables.

    ``coverage`` says what each value covers (:func:`otel_grpo.tools.runreader.coverage_of`),
    ``from_step`` the ``train/step`` of the row each value comes from.
    """
    from otel_grpo.tools.runreader import BUCKET_NOTE, table_name

    ours = records.otel_grpo_rows()
    others = [row for row in records.history if row not in ours]
    latest = {k: v for k, v in latest_values(ours).items() if table_name(k) is None}
    our_keys = set(latest)
    other_latest = {k: v for k, v in latest_values(others).items() if k not in our_keys and table_name(k) is None}
    val_rows = [row for row in ours if any(k.startswith(keys.prefix(keys.VAL)) for k in row)]
    validation = len(val_rows)
    steps = [row[keys.STEP] for row in ours if isinstance(row.get(keys.STEP), (int, float))]
    val_steps = [row[keys.STEP] for row in val_rows if _is_step(row.get(keys.STEP))]
    panels = group_keys(latest)
    return {
        "run": str(records.path),
        "rows": len(ours),
        "train_rows": len(ours) - validation,
        "validation_rows": validation,
        "last_step": max(steps) if steps else None,
        "last_validation_step": max(val_steps) if val_steps else None,
        "other_rows": len(others),
        "panels": panels,
        **_per_key(panels, value_steps(ours)),
        "tables": _tables(ours),
        "other_keys": other_latest,
        "note": BUCKET_NOTE,
    }


def _per_key(panels: dict[str, dict[str, Any]], from_step: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``units``, ``coverage`` and ``from_step`` (the step of the row its value comes from) of each key shown."""
    from otel_grpo.tools.runreader import coverage_of, unit_of

    shown = [key for values in panels.values() for key in values]
    return {
        "units": {key: unit_of(key) for key in shown},
        "coverage": {key: coverage_of(key) for key in shown},
        "from_step": {key: from_step.get(key) for key in shown},
    }


def _is_step(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _coverage_title(coverage: str, summary: dict[str, Any]) -> str:
    """``": step 12"``, ``": run total up to step 12"``, ``": last validation pass, at step 8"``, or ``""``."""
    from otel_grpo.tools.runreader import RUN_TOTAL, STEP_COVERAGE, VALIDATION_COVERAGE

    last, last_val = summary["last_step"], summary["last_validation_step"]
    if coverage == STEP_COVERAGE and last is not None:
        return f": step {last}"
    if coverage == RUN_TOTAL and last is not None:
        return f": run total up to step {last}"
    if coverage == VALIDATION_COVERAGE and last_val is not None:
        return f": last validation pass, at step {last_val}"
    return ""


def _print_panels(summary: dict[str, Any], width: int) -> None:
    """Each panel group, split by coverage; a value from a row older than the last says its step."""
    from otel_grpo.tools.runreader import RUN_TOTAL, STEP_COVERAGE, VALIDATION_COVERAGE, format_value

    order = (STEP_COVERAGE, VALIDATION_COVERAGE, RUN_TOTAL, "")
    units, coverage, from_step, last = summary["units"], summary["coverage"], summary["from_step"], summary["last_step"]
    for title, values in summary["panels"].items():
        for part in order:
            section = {key: value for key, value in values.items() if coverage[key] == part}
            if not section:
                continue
            print(f"\n== {title}{_coverage_title(part, summary)} ==")
            for key, value in section.items():
                unit, step = units[key], from_step[key]
                older = _is_step(step) and _is_step(last) and step < last
                line = f"  {key:<{width}}  {format_value(value, unit):>10}  {unit}".rstrip()
                print(f"{line}  (step {format_value(step, 'step')})" if older else line)


def _cmd_inspect(args: argparse.Namespace) -> int:
    from otel_grpo.tools.runreader import BUCKET_NOTE, SECONDS_ESTIMATE, format_value, read_run

    try:
        records = read_run(args.run_dir)
    except (FileNotFoundError, RuntimeError) as exc:
        print(f"otel-grpo inspect: {exc}", file=sys.stderr)
        return 2
    summary = inspect_summary(records)
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True, default=str))
        return 0
    print(f"run: {summary['run']}")
    passes = summary["validation_rows"]
    others = summary["other_rows"]
    print(
        f"otel-grpo rows: {summary['rows']} ({summary['train_rows']} train steps, {passes} validation "
        f"pass{'' if passes == 1 else 'es'})"
        + (f", last {keys.STEP} {summary['last_step']}" if summary["last_step"] is not None else "")
        + (f"; the run's {others} other rows were not written by otel-grpo" if others else "")
    )
    print("units: % is 0-100, fraction is 0-1, costs in USD")
    print(
        'coverage: "step N" = that training step only, "run total" = everything since the run started;\n'
        '  "(step N)" after a value = the step of the row it comes from (later rows left the key out)'
    )
    units = summary["units"]
    names = [k for values in summary["panels"].values() for k in values] + list(summary["tables"])
    width = max([len(k) for k in names] + [1])
    if not summary["rows"]:
        print("otel-grpo wrote no rows to this run")
    _print_panels(summary, width)
    if summary["tables"]:
        print("\n== Tables ==")
        for name, text in summary["tables"].items():
            print(f"  {name:<{width}}  {text}")
    if summary["other_keys"]:
        print("\n== Other keys in the run (not written by otel-grpo) ==")
        other_width = max(len(k) for k in summary["other_keys"])
        for key, value in sorted(summary["other_keys"].items()):
            print(f"  {key:<{other_width}}  {format_value(value)}")
    if any(unit == SECONDS_ESTIMATE for unit in units.values()):
        print(f"\nnote: {BUCKET_NOTE}")
    return 0


def _launch_environment() -> dict[str, str]:
    """The environment this command was started with.

    ``otel-grpo`` is itself a Python program: a ``sitecustomize`` of the user's on
    ``PYTHONPATH`` has already run in it and may have changed ``os.environ``. The child
    must see the environment as the user gave it, so it is read back from
    ``/proc/self/environ`` where there is one.
    """
    try:
        raw = Path("/proc/self/environ").read_bytes()
    except OSError:
        return dict(os.environ)
    env: dict[str, str] = {}
    for item in raw.split(b"\0"):
        name, sep, value = item.partition(b"=")
        if sep and name:
            env[os.fsdecode(name)] = os.fsdecode(value)
    return env or dict(os.environ)


def _cmd_run(args: argparse.Namespace) -> int:
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        print("otel-grpo run: give the command to run, e.g. otel-grpo run -- python train.py", file=sys.stderr)
        return 2
    env = _launch_environment()
    if args.config:
        from otel_grpo.config import ConfigError, load_config

        try:
            load_config(args.config)
        except ConfigError as exc:
            print(f"otel-grpo run: {exc}", file=sys.stderr)
            return 2
        env[CONFIG_ENV] = str(Path(args.config).resolve())
    # Only the bootstrap goes on the child's path; it takes itself off again and restores
    # PYTHONPATH, so the program sees the sys.path it would see without otel-grpo.
    bootstrap = str(Path(__file__).resolve().parents[1] / "bootstrap")
    original = env.get("PYTHONPATH")
    env["OTEL_GRPO_ORIGINAL_PYTHONPATH"] = original or ""
    env["PYTHONPATH"] = os.pathsep.join(p for p in (bootstrap, original) if p)
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        print(f"otel-grpo run: cannot run {command[0]!r}: {exc}", file=sys.stderr)
        return 127
    return 0  # not reached


def check_config_cli(path: str | None) -> int:
    """``otel-grpo check-config [FILE]``: print the verdict, return 0 (OK) or 2."""
    from otel_grpo.config import check_config

    code, text = check_config(path)
    print(text, file=sys.stdout if code == 0 else sys.stderr)
    return code


def _cmd_check_config(args: argparse.Namespace) -> int:
    return check_config_cli(args.file)


def _cmd_judge_server(args: argparse.Namespace, extra: list[str]) -> int:
    from otel_grpo.tools.demo.judge_server import main as judge_main

    return judge_main(extra)


def _cmd_demo(args: argparse.Namespace, extra: list[str]) -> int:
    from otel_grpo.tools.demo.cli import main as demo_main

    return demo_main(extra)


def _cmd_dashboard(args: argparse.Namespace, extra: list[str]) -> int:
    from otel_grpo.tools.dashboards.wandb_workspace import main as dashboard_main

    return dashboard_main(extra)


def _cmd_report(args: argparse.Namespace, extra: list[str]) -> int:
    from otel_grpo.tools.report import main as report_main

    return report_main(extra)


def _cmd_init(args: argparse.Namespace, extra: list[str]) -> int:
    from otel_grpo.tools.init_config import main as init_main

    return init_main(extra)


_PASSTHROUGH = {
    "demo": _cmd_demo,
    "judge-server": _cmd_judge_server,
    "dashboard": _cmd_dashboard,
    "report": _cmd_report,
    "init": _cmd_init,
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``otel-grpo`` command."""
    parser = argparse.ArgumentParser(
        prog="otel-grpo", description="OpenTelemetry instrumentation for GRPO training, with a WandB exporter."
    )
    sub = parser.add_subparsers(dest="command_name", metavar="COMMAND")
    sub.add_parser(
        "demo", help="run an instrumented GRPO demo on embedded defaults (--help for options)", add_help=False
    )
    run = sub.add_parser("run", help="run a training command with auto-instrumentation (no code change)")
    run.add_argument("--config", help="telemetry YAML (default: config/telemetry.yaml, else packaged)")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- python train.py ARGS")
    sub.add_parser(
        "init", help="write a commented config/telemetry.yaml to start from ([PATH] [--force]; --help)", add_help=False
    )
    sub.add_parser("judge-server", help="start the local OpenAI-compatible judge server (--help)", add_help=False)
    inspect_cmd = sub.add_parser("inspect", help="print the keys and latest values of a WandB run dir")
    inspect_cmd.add_argument("run_dir", help="an offline-run-* directory, a wandb/ directory, or a .wandb file")
    inspect_cmd.add_argument("--json", action="store_true", help="print JSON")
    sub.add_parser("dashboard", help="build the WandB workspace (--dry-run prints it)", add_help=False)
    sub.add_parser("report", help="render a local HTML report of a run dir", add_help=False)
    check = sub.add_parser("check-config", help="validate a telemetry YAML file")
    check.add_argument("file", nargs="?", default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``otel-grpo`` console script."""
    try:
        status = _main(argv)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (``otel-grpo inspect RUN | head``): not an error of ours.
        # Point stdout at devnull so the interpreter's final flush does not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    return status


#: The extra each passthrough command needs (judge-server and init need only the core).
_COMMAND_EXTRAS = {"demo": "demo", "dashboard": "dashboards", "report": "report"}


def _main(argv: Sequence[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if argv and argv[0] in _PASSTHROUGH:
        try:
            if argv[0] in _COMMAND_EXTRAS:
                require_extra(_COMMAND_EXTRAS[argv[0]], feature=f"otel-grpo {argv[0]}")
            return _PASSTHROUGH[argv[0]](argparse.Namespace(), argv[1:])
        except MissingExtraError as exc:
            print(exc, file=sys.stderr)
            return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command_name == "run":
        return _cmd_run(args)
    if args.command_name == "inspect":
        return _cmd_inspect(args)
    if args.command_name == "check-config":
        return _cmd_check_config(args)
    parser.print_help()
    return 0 if not argv else 2


if __name__ == "__main__":
    sys.exit(main())
