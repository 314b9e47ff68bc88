"""Rendering the collected section results as Markdown."""

from __future__ import annotations

from typing import Any

MARK = {True: "✅ met", False: "❌ not met", None: "⚠️ not measured"}


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(columns: list[str], rows: list[list[Any]]) -> list[str]:
    """A Markdown table."""
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def render(results: dict[str, Any]) -> str:
    """The whole RESULTS.md."""
    machine, mode = results["machine"], results["mode"]
    out = ["# otel-grpo benchmarks", ""]
    out.append(
        f"{mode.capitalize()} run of `{results['command']}`, {machine['date']}, {results['duration_s']:.0f} s in total."
    )
    out += [
        "",
        "Reproduce (from the repository root, package installed with `pip install -e .`):",
        "",
        "```",
        "python -m benchmarks           # full: several minutes, writes benchmarks/RESULTS.md",
        "python -m benchmarks --smoke   # tiny sizes, < 60 s (what CI runs), writes to a temporary directory",
        "```",
        "",
    ]
    out += ["## Machine", ""]
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items())
    out += table(
        ["", ""],
        [
            ["CPU", machine["cpu"]],
            ["cores", machine["cores"]],
            ["OS", machine["os"]],
            ["Python", machine["python"]],
            ["packages", packages],
            ["git", f"{machine['git']} (code under test: sha256 {machine.get('code', '?')})"],
        ],
    )
    if machine.get("git_changed"):
        out += [
            "",
            f"> **Warning:** the code changed while the benchmarks ran (at the end: {machine['git_changed']}); "
            "sections may have measured different code. Run again.",
        ]
    out += ["", "## Goals", ""]
    goal_rows = []
    for section in results["sections"]:
        number = section["title"].split(".", 1)[0]
        if section.get("error"):
            goal_rows.append([number, "section failed", "", section["error"].splitlines()[0], MARK[None]])
        for g in section.get("goals", []):
            goal_rows.append([number, g["name"], g["target"], g["measured"], MARK[g["met"]]])
    for number, g in results.get("extra_goals", []):
        goal_rows.append([number, g["name"], g["target"], g["measured"], MARK[g["met"]]])
    out += table(["§", "goal", "target", "measured", "status"], goal_rows)
    if mode == "smoke":
        out += ["", "> Smoke run: tiny sizes, figures are indicative only; the goals are judged on the full run."]
    for section in results["sections"]:
        out += ["", f"## {section['title']}", ""]
        if section.get("error"):
            out += ["**The section failed:**", "", "```", section["error"], "```"]
            continue
        out += table(section["columns"], section["rows"])
        out += [""]
        for g in section["goals"]:
            out.append(f"- **{g['name']}** (target {g['target']}): {g['measured']} — {MARK[g['met']]}")
        if section.get("notes"):
            out += [""] + [f"- {note}" for note in section["notes"]]
        if section.get("load"):
            out.append(f"- Load average (1 min) at start / end of the section: {section['load']}.")
        for extra in section.get("tables", []):
            out += ["", f"**{extra['title']}**", ""] + table(extra["columns"], extra["rows"])
        if section.get("analysis"):
            out += ["", "**What limits it**", ""] + list(section["analysis"])
        for prof in section.get("profiles", []):
            out += ["", f"Profile: {prof['title']}", "", "```", prof["text"], "```"]
        out += ["", f"_Section time: {section.get('duration_s', 0):.1f} s._"]
    return "\n".join(out) + "\n"
